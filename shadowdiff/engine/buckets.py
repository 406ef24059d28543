"""Request-id hash buckets on disk: what lets a run's memory depend on a bucket, not the window.

Collecting writes each piece it reads (a chunk of tap files, a piece of a log) into the buckets
of the run's working area, one Arrow file per piece and bucket; a bucket is then read back
whole, and paired and diffed on its own (:mod:`shadowdiff.engine.tasks`). Every record of a
request id (or, pairing by fingerprint, of a fingerprint) lands in the same bucket, so what a
bucket finds is exactly what the whole window would find for those ids.

Decisions:

- **The spill is Arrow IPC files,** not Parquet: written once and read once, by this engine,
  while Parquet's encoding would be paid again when the bucket's exchanges are written to the
  run. Uncompressed: a bucket is read back by mapping its files, with no copy at all (lz4 cost
  half a second per 2M log records to write and read again, for files that live seconds).
- **Names are the piece's, so writing is idempotent:** a collecting task that is retried writes
  the same files again (atomically: temporary name, then rename), never a second copy.
- **The bucket of a row** is DuckDB's ``hash`` of its key modulo the bucket count; the key is
  the request id, or what ``fingerprint`` hashes (method, path with query, request body).
- **How many buckets:** one per ``BUCKET_INPUT_BYTES`` of input (a bucket of JSON access logs
  is then ~350k records, of tap traces with 4 KB bodies ~30k exchanges), unless the run names
  a count (``--buckets``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from shadowdiff import db, schema
from shadowdiff.engine import ipc

SPILL_DIR = "buckets"
BUCKET_INPUT_BYTES = 256 * 1024 * 1024
MAX_BUCKETS = 4096


def bucket_count(input_bytes: int, requested: int | None = None) -> int:
    """The run's bucket count: ``requested``, else one per ``BUCKET_INPUT_BYTES`` of input."""
    if requested is not None:
        return max(1, min(requested, MAX_BUCKETS))
    return max(1, min(-(-input_bytes // BUCKET_INPUT_BYTES), MAX_BUCKETS))


@dataclass(frozen=True)
class Layout:
    """Where a run's buckets are (``root``, a path every task can open) and how rows are sent
    to them. Small and plain: it travels to worker processes with every task."""

    root: str
    count: int
    by_fingerprint: bool = False
    # The exchanges are written to the run where each piece is prepared, and the buckets get
    # only what pairing and diffing read (``PAIRING_COLUMNS``): see ``narrow_for``.
    narrow: bool = False

    def directory(self, bucket: int) -> Path:
        return Path(self.root) / f"b{bucket:04d}"

    def key_sql(self) -> str:
        if self.by_fingerprint:
            return "hash(method, coalesce(path, ''), request_body)"
        return "hash(request_id)"

    def create(self) -> None:
        for bucket in range(self.count):
            self.directory(bucket).mkdir(parents=True, exist_ok=True)


# What a bucket's pairing and diffing read of an exchange; the rest (addresses, Envoy's
# details, the location) is only written to the run's ``exchanges``.
PAIRING_COLUMNS = (
    "request_id",
    "side",
    "endpoint",
    "method",
    "path",
    "status",
    "duration_ms",
    "start_time",
    "request_headers",
    "response_headers",
    "request_body",
    "response_body",
    "request_body_truncated",
    "response_body_truncated",
    "body_truncated",
)


def narrow_for(count: int, by_fingerprint: bool, windowed: bool) -> bool:
    """Whether a run's buckets can hold only ``PAIRING_COLUMNS``: when a bucket changes no
    exchange before it is stored (no fingerprint ids to assign, no ``--since/--until`` to
    apply), each piece's exchanges are stored as prepared, and a bucket writes none. Most of
    an access-log record is then never spilled. One bucket writes the exchanges whole, as one
    file, as before."""
    return count > 1 and not by_fingerprint and not windowed


def assign(table: pa.Table, layout: Layout) -> pa.Array:
    """The bucket of every row of ``table``, in row order (uint64)."""
    if layout.count == 1:
        return pa.array([0] * table.num_rows, pa.uint64())
    columns = ["method", "path", "request_body"] if layout.by_fingerprint else ["request_id"]
    con = db.cursor()
    try:
        con.register("keyed", table.select(columns))
        query = f"SELECT ({layout.key_sql()}) % {layout.count} AS bucket FROM keyed"
        return con.sql(query).to_arrow_table().column("bucket").combine_chunks()
    finally:
        con.close()


def spill(table: pa.Table, layout: Layout, piece: str) -> None:
    """Write the rows of ``table`` to their buckets, as the file ``piece.arrow`` of each."""
    if table.num_rows == 0:
        return
    table = schema.conform(table)
    if layout.narrow:
        table = table.select(list(PAIRING_COLUMNS))
    if layout.count == 1:
        ipc.write(layout.directory(0) / f"{piece}{ipc.SUFFIX}", table)
        return
    buckets = assign(table, layout)
    ordered = table.take(pc.sort_indices(buckets))
    start = 0
    for found in sorted(pc.value_counts(buckets).to_pylist(), key=lambda c: c["values"]):
        bucket, rows = int(found["values"]), int(found["counts"])
        ipc.write(layout.directory(bucket) / f"{piece}{ipc.SUFFIX}", ordered.slice(start, rows))
        start += rows


def unspill(layout: Layout, piece: str) -> None:
    """Remove what :func:`spill` wrote of ``piece``, from every bucket."""
    for bucket in range(layout.count):
        (layout.directory(bucket) / f"{piece}{ipc.SUFFIX}").unlink(missing_ok=True)


def read(layout: Layout, bucket: int) -> pa.Table:
    """Every row spilled to ``bucket``, in piece order (the pieces' names sort in input order)."""
    spilled = ipc.read_all(sorted(layout.directory(bucket).glob(f"*{ipc.SUFFIX}")))
    if spilled is None:
        spilled = schema.empty(schema.EXCHANGES)
    if layout.narrow:
        return spilled.select(list(PAIRING_COLUMNS))
    return schema.conform(spilled)


def discard(layout: Layout, bucket: int) -> None:
    """Remove a bucket's spilled files once its exchanges are written to the run."""
    for path in layout.directory(bucket).glob(f"*{ipc.SUFFIX}"):
        path.unlink(missing_ok=True)
