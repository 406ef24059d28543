"""A large packet capture read in shares, each by a worker of its own: every core reads the
capture's connections of its share (:mod:`~shadowdiff.collect.pcap_shares`) and prepares them
(normalized, spilled into the buckets) where it read them.

One capture read in this process takes one core, and the noise stage's imports then wait for
it; read in shares, the cores divide reassembly and HTTP parsing between them (each still
decodes every record's headers) and this process only merges their figures. What the buckets
get, and so a run's tables, are the rows a reading of the whole file gives, in other pieces.

As with a log read as cuts (:mod:`~shadowdiff.engine.logcuts`), only a capture that is as the
run found it at its start (uncompressed, the same file at the same size) is shared, and each
share reads no further than the size the run found.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass

from shadowdiff.collect import pcap
from shadowdiff.collect.base import Input, InputReport, Options
from shadowdiff.collect.pcap_shares import Share
from shadowdiff.engine import logcuts
from shadowdiff.engine.logcuts import CutResult, Expected, Rows
from shadowdiff.engine.tasks import Prepare, Prepared
from shadowdiff.errors import InputError

# A smaller capture is read whole in the run's process: its reading takes less than starting
# the workers (``collection.Plan.shared_captures``).
MIN_SHARED_BYTES = 16 * 1024 * 1024
MAX_SHARES = 16

ShareResult = tuple[Rows, pcap.Figures, Prepared, int]  # and the records read


def share_count(workers: int, captures: int) -> int:
    """How many shares each of ``captures`` large captures is read in by ``workers``: enough
    to keep every worker busy, and no more (each share decodes every record again), so that
    a directory of rotated captures is read a file per worker."""
    return max(1, min(workers // max(captures, 1), MAX_SHARES))


@dataclass(frozen=True)
class ShareTask:
    """One share's work: which capture (named as ``source``), what it must find, and the run's
    order of it (``number``: the input's place among the run's)."""

    source: Input
    share: Share
    expected: Expected
    number: int


def tasks(source: Input, expected: Expected, number: int, count: int) -> list[ShareTask]:
    return [ShareTask(source, Share(index, count), expected, number) for index in range(count)]


def read_share(task: ShareTask, options: Options, prepare: Prepare) -> ShareResult:
    """Read and prepare one share: its rejects, figures, what preparing found, and how many
    records it read."""
    source, share = task.source, task.share
    rows: Rows = []
    prepared = Prepared()
    records = 0
    capture = pcap.Capture(source, options, share if share.count > 1 else None)
    with logcuts.opened(source, task.expected) as fd:
        with open(fd, "rb", closefd=False) as file:
            prefix = _Prefix(file, task.expected.size)
            number = 0  # not enumerate(): its tuple would hold each batch through the next
            for batch in capture.batches(prefix):  # type: ignore[arg-type]
                table = logcuts.sided(batch.exchanges, source.side)
                piece = f"{task.number:07d}-{share.index:06d}-{number:06d}"
                prepared.add(prepare(table, piece))
                rows.extend(batch.rejects)
                records += batch.records
                number += 1
                del batch, table  # not held while the next batch is reassembled
    return rows, capture.figures, prepared, records


def merged(
    source: Input, size: int, strict: bool, results: Sequence[ShareResult | InputError]
) -> CutResult:
    """One capture's rejects, report and preparation from its shares'. A share that could not
    be read ends the run for a capture named on its own (``strict``), else it is one reject
    row, as a capture read whole would be (:func:`logcuts.merged`)."""
    as_cuts: list[CutResult | InputError] = []
    figures: list[pcap.Figures] = []
    for result in results:
        if isinstance(result, InputError):
            as_cuts.append(result)
            continue
        rows, share_figures, prepared, records = result
        report = InputReport(source.name, source.side, pcap.NAME, 0, records, len(rows))
        as_cuts.append((rows, report, prepared))
        figures.append(share_figures)
    rows, report, prepared = logcuts.merged(source, pcap.NAME, size, strict, as_cuts)
    if figures and len(figures) == len(results):
        report.note = pcap.figures_note(pcap.merged_figures(figures), source)
    return rows, report, prepared


class _Prefix(io.RawIOBase):
    """The first ``size`` bytes of ``file``: a capture that grew since the run found it reads
    as it was."""

    def __init__(self, file: io.BufferedReader, size: int) -> None:
        self.file = file
        self.left = size

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        wanted = self.left if n is None or n < 0 else min(n, self.left)
        data = self.file.read(wanted)
        self.left -= len(data)
        return data
