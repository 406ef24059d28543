"""A capture read in shares: each reader of the same file takes the connections of its share
(``Share``), so that the cores read one capture at once, and together the shares give what one
reader of the whole file gives.

A connection belongs to the share its endpoints hash to (CRC-32 of the lesser of its two flow
keys, so both directions agree): everything reassembly and pairing do for a connection depends
on its own packets only, except when idle connections are swept. A sweep runs at the first TCP
segment at or past the next sweep's time, whoever's segment it is, so every share works out the
same sweeps from every segment's time; where another share's segment starts one, the share
keeps a *tick* in its place (no flow, no data), at which its own sweep runs.

Each share still reads and decodes every record of the file (about a seventh of the work on a
busy capture); what is divided is the rest: reassembly, HTTP parsing and the rows.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np

from shadowdiff.collect.pcap_headers import Segments

TICK = b""  # the flow key of a tick: no flow has an empty key


@dataclass(frozen=True)
class Share:
    """The ``index``-th of ``count`` shares of a capture's connections."""

    index: int
    count: int


def owned(found: Segments, share: Share, next_sweep: int, interval: int) -> Segments:
    """The segments of ``found`` whose connections are in ``share``, and a tick for each other
    segment that starts a sweep (``next_sweep``: when the next one is due; each is due
    ``interval`` after the last)."""
    if not len(found):
        return found
    _, first, inverse = np.unique(found.pairs, return_index=True, return_inverse=True)
    sides = found.sides
    shares = np.array([zlib.crc32(sides[i]) % share.count for i in first.tolist()], np.int64)
    own = shares[inverse.reshape(-1)] == share.index
    ticks = np.zeros(len(found), dtype=bool)
    ticks[sweep_points(found.times, next_sweep, interval)] = True
    ticks &= ~own
    kept = np.flatnonzero(own | ticks)
    taken = _taken(found, kept)
    at = np.flatnonzero(ticks[kept])
    for i in at.tolist():
        taken.keys[i] = TICK
        taken.sides[i] = TICK
        taken.shapes[i] = None
    # No flags, no data, and a flow of its own: every tick is handled one by one.
    for column in (taken.seqs, taken.acks, taken.flags, taken.data_starts, taken.data_ends):
        column[at] = 0
    taken.flows[at] = -1 - np.arange(len(at))
    taken.pairs[at] = -1 - np.arange(len(at))
    return taken


def sweep_points(times: np.ndarray, next_sweep: int, interval: int) -> list[int]:
    """The positions whose segments start a sweep: the first at or past ``next_sweep``, then
    the first at or past that one's time and ``interval``, and so on. Capture times need not
    rise (records out of order), so the first time at or past a value is found in their
    running maximum."""
    if not len(times):
        return []
    peak = np.maximum.accumulate(times)
    points: list[int] = []
    while True:
        at = int(np.searchsorted(peak, next_sweep, "left"))
        if at == len(times):
            return points
        points.append(at)
        next_sweep = int(times[at]) + interval


def _taken(found: Segments, kept: np.ndarray) -> Segments:
    places = kept.tolist()
    return Segments(
        found.buf,
        found.numbers[kept],
        found.times[kept],
        [found.keys[i] for i in places],
        [found.shapes[i] for i in places],
        found.seqs[kept],
        found.acks[kept],
        found.flags[kept],
        found.data_starts[kept],
        found.data_ends[kept],
        found.flows[kept],
        found.pairs[kept],
        [found.sides[i] for i in places],
    )
