"""Pure ACKs applied in bulk: the packet loop handles one by one only the segments that carry
data, a SYN, FIN or RST, or that it cannot account for otherwise; in a busy capture that is
about half of the packets.

A pure ACK (no data, no SYN/FIN/RST) of an open connection sets two things: the time of the
connection's last packet and the acknowledgement its receiver's stream knows. Each is
overwritten by the next packet in the same direction, and read only while a packet of the same
connection is handled (reassembly, pairing, closing) or by a sweep for idle connections. So a
pure ACK is *deferred* when its effect is known without handling it:

- an earlier packet of its flow came since the plan began (handling it made sure that the
  connection exists and this direction has begun), or, for the flow's first packet in the plan,
  the capture's state says so;
- no FIN, RST or SYN without ACK of the connection came since then (only those close a
  connection or open a new one on the same addresses), so it is still the same connection,
  open or already closed; and
- it is before the next sweep's time (a packet at or past it starts the sweep, so it is handled).

Deferred ACKs are applied, the latest of each direction, just before the connection's next
handled packet (``Plan.runs``), before a sweep (``Plan.before``), or at the end of the stretch
(``Plan.tail``); those of a connection that had closed count as late packets, as they would one
by one. A sweep can close and forget connections, so the packets after one get a new plan.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from shadowdiff.collect.pcap_headers import Segments

FIN, SYN, RST, ACK = 0x01, 0x02, 0x04, 0x10
CONTROL = SYN | FIN | RST
UNKNOWN = -2  # no packet of the flow before, and its state unknown

# Per flow key, in the order of their packets: the latest ACK, its time, how many there were
Run = list[tuple[bytes, int, int, int]]


@dataclass
class Plan:
    """How the packet loop takes a stretch's segments (``found``) from a position on: ``kept``
    are the positions it handles one by one (ascending), ``runs[i]`` the deferred ACKs to apply
    before ``kept[i]`` (or ``None``), and each of the ``deferred`` positions is applied before the
    kept position ``applied_at`` of the same index (the stretch's length: at its end).

    A deferred ACK followed by a kept packet of its own flow that acknowledges is overwritten
    by that packet before anything reads it: it is in no run, and only counts as late if its
    connection had closed (``late_before``)."""

    found: Segments
    kept: np.ndarray
    runs: list[Run | None]
    deferred: np.ndarray
    applied_at: np.ndarray
    overwritten_at: np.ndarray  # sorted: the kept positions that overwrite deferred ACKs

    @property
    def tail(self) -> Run:
        """The deferred ACKs left at the stretch's end."""
        return _run(self.found, self.deferred[self.applied_at == len(self.found)])

    def before(self, position: int) -> Run:
        """The deferred ACKs to apply before a sweep after the packet at ``position``: those
        before it whose connection has no handled packet up to it."""
        waiting = (self.deferred < position) & (self.applied_at > position)
        return _run(self.found, self.deferred[waiting])

    def late_before(self, position: int) -> int:
        """How many deferred ACKs the kept packet at ``position`` overwrites."""
        found = self.overwritten_at
        return int(np.searchsorted(found, position, "right") - np.searchsorted(found, position))


def plan(found: Segments, start: int, next_sweep: int, known: Callable[[bytes], bool]) -> Plan:
    """Which of ``found``'s segments from ``start`` on to defer (see the module docstring);
    ``known(key)``: whether the flow's direction has begun (or its connection closed) now."""
    end = len(found)
    flags = found.flags[start:]
    size = end - start
    pure = (
        (found.data_starts[start:] >= found.data_ends[start:])
        & (flags & CONTROL == 0)
        & (flags & ACK != 0)
        & np.asarray(found.times[start:] < next_sweep, dtype=bool)
    )
    previous = _previous_of_flow(found.flows[start:])
    keys = found.keys
    for first in np.flatnonzero(pure & (previous < 0)).tolist():
        if not known(keys[start + first]):
            previous[first] = UNKNOWN
    by_pair = np.argsort(found.pairs[start:], kind="stable")  # by pair, then position
    group = _groups(found.pairs[start:][by_pair])
    resets = (flags & (FIN | RST) != 0) | ((flags & SYN != 0) & (flags & ACK == 0))
    last_reset = np.empty(size, dtype=np.int64)
    last_reset[by_pair] = _last_before(group, np.where(resets[by_pair], by_pair, -1))
    deferred = pure & (previous != UNKNOWN) & (last_reset <= previous)
    kept = ~deferred
    next_kept = np.empty(size, dtype=np.int64)
    next_kept[by_pair] = _next_at_or_after(group, np.where(kept[by_pair], by_pair, size))
    kept_at = np.flatnonzero(kept) + start
    deferred_at = np.flatnonzero(deferred) + start
    applied_at = next_kept[deferred_at - start] + start
    overwritten = _overwritten(found, deferred_at, applied_at)
    runs = _runs(found, deferred_at[~overwritten], applied_at[~overwritten])
    return Plan(
        found,
        kept_at,
        [runs.get(k) for k in kept_at.tolist()] if runs else [None] * len(kept_at),
        deferred_at,
        applied_at,
        np.sort(applied_at[overwritten]),
    )


def _overwritten(found: Segments, deferred: np.ndarray, applied_at: np.ndarray) -> np.ndarray:
    """Whether each deferred ACK is applied before a packet of its own flow that acknowledges
    (and so sets the same two things)."""
    at = np.minimum(applied_at, len(found) - 1)
    return (
        (applied_at < len(found))
        & (found.flows[at] == found.flows[deferred])
        & (found.flags[at] & ACK != 0)
    )


def _previous_of_flow(flows: np.ndarray) -> np.ndarray:
    """Per position, the position of the flow's packet before it (-1: none since the plan
    began)."""
    by_flow = np.argsort(flows, kind="stable")  # by flow, then position
    same = flows[by_flow[1:]] == flows[by_flow[:-1]]
    previous = np.full(len(flows), -1, dtype=np.int64)
    previous[by_flow[1:][same]] = by_flow[:-1][same]
    return previous


def _groups(sorted_keys: np.ndarray) -> np.ndarray:
    """The number of each element's group in sorted keys (0, 1, ...)."""
    if not len(sorted_keys):
        return sorted_keys
    return np.concatenate([[0], np.cumsum(sorted_keys[1:] != sorted_keys[:-1])])


def _last_before(group: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Per element, the greatest of ``values`` (each -1 or more) before it in its group, or -1:
    a running maximum that starts again at each group."""
    if not len(values):
        return values
    span = len(values) + 2
    running = np.maximum.accumulate(group * span + values + 1) - group * span - 1
    before = np.concatenate([[-1], running[:-1]])
    before[np.concatenate([[True], group[1:] != group[:-1]])] = -1
    return before


def _next_at_or_after(group: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Per element, the least of ``values`` at or after it in its group: a running minimum
    from the end that starts again at each group."""
    if not len(values):
        return values
    span = len(values) + 1
    backwards = group[::-1] * span + values[::-1]
    return (np.minimum.accumulate(backwards) - group[::-1] * span)[::-1]


def _runs(found: Segments, deferred: np.ndarray, applied_at: np.ndarray) -> dict[int, Run]:
    """The deferred ACKs at ``deferred`` as runs by the position they are applied before."""
    if not len(deferred):
        return {}
    flows = found.flows[deferred]
    order = np.lexsort((deferred, flows, applied_at))
    at, flows, deferred = applied_at[order], flows[order], deferred[order]
    last = np.flatnonzero(np.concatenate([(at[1:] != at[:-1]) | (flows[1:] != flows[:-1]), [True]]))
    counts = np.diff(np.concatenate([[-1], last]))
    latest = deferred[last]
    by_time = np.lexsort((latest, at[last]))  # a run's flows in the order of their latest ACK
    keys = found.keys
    runs: dict[int, Run] = {}
    rows = zip(
        at[last][by_time].tolist(),
        latest[by_time].tolist(),
        found.acks[latest][by_time].tolist(),
        found.times[latest][by_time].tolist(),
        counts[by_time].tolist(),
        strict=True,
    )
    for applied, position, ack, time, count in rows:
        runs.setdefault(applied, []).append((keys[position], ack, time, count))
    return runs


def _run(found: Segments, deferred: np.ndarray) -> Run:
    """The deferred ACKs at ``deferred`` as one run."""
    runs = _runs(found, deferred, np.zeros(len(deferred), dtype=np.int64))
    return runs.get(0, [])
