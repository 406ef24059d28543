"""Arrow IPC files: how the engine's tasks hand tables to each other (the buckets' spill, each
bucket's intermediate tables), never what a run leaves behind.

Uncompressed, and written once and read once by this engine: writing costs a copy of the
buffers, reading none (a file is mapped, or scanned a batch at a time). Parquet's encoding and
compression cost more than a second of CPU per 2M access-log records for files that live
seconds. Every write is atomic (a temporary name, then a rename), so a retried task writes the
same file again, never half of one.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Sequence
from pathlib import Path

import pyarrow as pa

SUFFIX = ".arrow"


def write(target: Path, table: pa.Table) -> None:
    """``table`` as the Arrow file ``target``, atomically."""
    temp = target.parent / f".{target.name}.{uuid.uuid4().hex[:12]}.tmp"
    try:
        with pa.OSFile(str(temp), "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
            writer.write_table(table)
        os.replace(temp, target)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


def read_all(paths: Sequence[Path]) -> pa.Table | None:
    """The rows of every file of ``paths``, in order, mapped rather than copied; ``None`` for
    no file."""
    tables = [pa.ipc.open_file(pa.memory_map(str(path))).read_all() for path in paths]
    if not tables:
        return None
    return pa.concat_tables(tables, promote_options="permissive")


def unified_schema(paths: Sequence[Path]) -> pa.Schema:
    """One schema for the files of ``paths`` (a column missing from some files is null
    there), read from their footers."""
    schemas = [pa.ipc.open_file(pa.memory_map(str(path))).schema for path in paths]
    return pa.unify_schemas(schemas, promote_options="permissive")
