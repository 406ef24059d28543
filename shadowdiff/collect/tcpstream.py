"""TCP reassembly of one direction of a connection: the bytes one endpoint sent, in order, as
the capture saw them, handed to a ``Sink`` piece by piece with the packet each piece came in.

Decisions, and why:

- Sequence numbers stay 32-bit and are compared modulo 2**32 (``_ahead``), so a connection that
  wraps its sequence space, or a capture that starts anywhere in it, needs nothing special.
- In-order data (the common case) is handed on at once, without copying or buffering: the cost
  per packet is a comparison and a call.
- Data ahead of the next expected byte is held until the hole before it fills. Overlaps keep the
  first copy: a retransmission is compared with what was already handed on (the last
  ``RECENT_SEGMENTS`` segments are kept for that) or held, and a copy with other bytes is counted
  in ``conflicts``, never used.
- A hole is declared lost (``Sink.gap``) only when it is known to be lost: the receiver
  acknowledged bytes beyond it (``acked``, set from the other direction's packets) and data after
  it is already here, or more than ``MAX_HELD_BYTES`` wait behind it, or the connection ends
  (``flush``). Holes are not declared on the acknowledgement alone, because a capture that
  merges the two directions (a mirror port, two taps) can show an ACK before the data it
  acknowledges; the owner calls ``resolve`` when it needs the hole settled (a response needs its
  request).
- SYN and FIN take one sequence number each; the FIN ends the stream when every byte before it
  has been handed on, even if it came early.
"""

from __future__ import annotations

from collections import deque
from typing import Protocol

MASK = 0xFFFFFFFF
HALF = 1 << 31
RECENT_SEGMENTS = 8
MAX_HELD_BYTES = 4 * 1024 * 1024
MAX_HELD_SEGMENTS = 2048


class Sink(Protocol):
    """Where a stream's bytes go, with where they came from."""

    def feed(self, data: bytes, packet: int, time: int, seq: int, ack: int) -> None:
        """``data`` follows the previous piece directly; it came in packet number ``packet`` (at
        ``time`` ns), starting at sequence number ``seq``, in a packet acknowledging ``ack``."""
        ...

    def gap(self, lost: int) -> None:
        """``lost`` bytes (the capture never saw them) come between the previous piece and the
        next."""
        ...

    def end(self) -> None:
        """The stream ended: its FIN was reached, or the connection is being closed."""
        ...


def ahead(a: int, b: int) -> int:
    """How far sequence number ``a`` is after ``b`` (negative: before), modulo 2**32."""
    distance = (a - b) & MASK
    return distance - (1 << 32) if distance >= HALF else distance


class Stream:
    """One direction of a TCP connection."""

    __slots__ = (
        "sink",
        "started",
        "aligned",
        "next",
        "acked",
        "held",
        "held_bytes",
        "recent",
        "fin",
        "ended",
        "conflicts",
        "retransmitted",
        "lost_bytes",
        "gaps",
    )

    def __init__(self, sink: Sink) -> None:
        self.sink = sink
        self.started = False  # a packet of this direction was seen
        self.aligned = False  # the stream began with its SYN: its first byte starts a message
        self.next = 0  # sequence number of the next byte expected
        self.acked: int | None = None  # the latest acknowledgement the other side sent
        # Segments ahead of ``next``: seq -> (data, packet, time, ack)
        self.held: dict[int, tuple[bytes, int, int, int]] = {}
        self.held_bytes = 0
        self.recent: deque[tuple[int, bytes]] = deque(maxlen=RECENT_SEGMENTS)
        self.fin: int | None = None  # sequence number of the FIN, once seen
        self.ended = False
        self.conflicts = 0  # overlapping copies whose bytes differed (the first was kept)
        self.retransmitted = 0  # segments whose bytes had all been seen already
        self.lost_bytes = 0
        self.gaps = 0

    def begin(self, seq: int, syn: bool) -> None:
        """The first packet of this direction: ``seq`` is its sequence number."""
        self.started = True
        self.aligned = syn
        self.next = (seq + 1) & MASK if syn else seq

    def segment(self, seq: int, data: bytes, packet: int, time: int, ack: int) -> None:
        """A segment carrying ``data`` at sequence number ``seq``."""
        if seq == self.next and not self.held:
            self.next = (seq + len(data)) & MASK
            self.recent.append((seq, data))
            self.sink.feed(data, packet, time, seq, ack)
            return
        if self.ended:
            return
        distance = ahead(seq, self.next)
        if distance > 0:
            self._hold(seq, data, packet, time, ack)
            return
        overlap = -distance
        if overlap:
            self._compare(seq, data[:overlap])
            if overlap >= len(data):
                self.retransmitted += 1
                return
            data, seq = data[overlap:], self.next
        self._deliver(seq, data, packet, time, ack)
        self._drain()

    def _deliver(self, seq: int, data: bytes, packet: int, time: int, ack: int) -> None:
        self.next = (seq + len(data)) & MASK
        self.recent.append((seq, data))
        self.sink.feed(data, packet, time, seq, ack)

    def _hold(self, seq: int, data: bytes, packet: int, time: int, ack: int) -> None:
        known = self.held.get(seq)
        if known is not None:
            first = known[0]
            if data[: len(first)] != first[: len(data)]:
                self.conflicts += 1
            if len(data) <= len(first):
                self.retransmitted += 1
                return
            # First copy wins; the new one only adds the bytes after it.
            data = first + data[len(first) :]
            self.held_bytes -= len(first)
            packet, time, ack = known[1], known[2], known[3]
        self.held[seq] = (data, packet, time, ack)
        self.held_bytes += len(data)
        if self.held_bytes > MAX_HELD_BYTES or len(self.held) > MAX_HELD_SEGMENTS:
            self.skip(self._earliest_held())
        else:
            self.resolve()

    def _compare(self, seq: int, data: bytes) -> None:
        """Count a conflict if ``data`` (at ``seq``, already handed on) differs from the copy
        handed on, where that copy is still known."""
        for start, known in self.recent:
            offset = ahead(seq, start)
            if offset < 0:
                lo, known_lo = -offset, 0
            else:
                lo, known_lo = 0, offset
            size = min(len(data) - lo, len(known) - known_lo)
            if size > 0 and data[lo : lo + size] != known[known_lo : known_lo + size]:
                self.conflicts += 1
                return

    def _earliest_held(self) -> int:
        return min(self.held, key=lambda s: ahead(s, self.next))

    def _drain(self) -> None:
        """Hand on held segments that the stream has reached."""
        held = self.held
        while held:
            exact = held.pop(self.next, None)
            if exact is not None:
                self.held_bytes -= len(exact[0])
                self._deliver(self.next, *exact)
                continue
            reached = [s for s in held if ahead(s, self.next) <= 0]
            if not reached:
                break
            for start in reached:
                data, packet, time, ack = held.pop(start)
                self.held_bytes -= len(data)
                overlap = ahead(self.next, start)
                if overlap < len(data):
                    self._compare(start, data[:overlap])
                    self._deliver(self.next, data[overlap:], packet, time, ack)
                else:
                    self._compare(start, data)
                    self.retransmitted += 1
        self._check_fin()

    def resolve(self) -> None:
        """Declare the hole at ``next`` lost if the receiver acknowledged bytes beyond it and
        the capture already holds later data (or the acknowledgement reaches past the FIN)."""
        if self.acked is None or self.ended:
            return
        beyond = ahead(self.acked, self.next)
        if self.fin is not None and self.fin == self.next:
            beyond -= 1  # the FIN's own sequence number
        if beyond <= 0:
            return
        if self.held:
            earliest = self._earliest_held()
            target = earliest if ahead(self.acked, earliest) >= 0 else self.acked
        elif self.fin is not None and ahead(self.fin, self.next) > 0:
            target = self.fin if ahead(self.acked, self.fin) >= 0 else self.acked
        else:
            return  # nothing after the hole yet: the data may still come
        self.skip(target)

    def resolve_acknowledged(self) -> None:
        """Declare lost whatever the receiver acknowledged that the capture has not shown, even
        with nothing after it yet: the caller needs this direction settled up to ``acked``."""
        if self.acked == self.next or self.acked is None:
            return  # the usual case: everything acknowledged was seen
        self.resolve()
        if self.acked is None or self.ended:
            return
        if ahead(self.acked, self.next) > (1 if self.fin == self.next else 0):
            self.skip(self.acked)

    def skip(self, target: int) -> None:
        """The bytes from ``next`` to ``target`` are lost."""
        lost = ahead(target, self.next)
        if lost <= 0:
            return
        self.gaps += 1
        self.lost_bytes += lost
        self.sink.gap(lost)
        self.next = target
        self._drain()

    def finish(self, seq: int) -> None:
        """A FIN at sequence number ``seq`` (after the segment's data)."""
        if self.fin is None:
            self.fin = seq
        self._check_fin()

    def _check_fin(self) -> None:
        if self.fin is not None and self.fin == self.next and not self.ended:
            self.next = (self.next + 1) & MASK
            self._end()

    def _end(self) -> None:
        self.ended = True
        sink, self.sink = self.sink, NULL_SINK  # bytes after the FIN are not the stream's
        self.held.clear()
        self.held_bytes = 0
        sink.end()

    def flush(self) -> None:
        """The connection is over: hand on everything held, with the holes between declared
        lost, and end the stream."""
        while self.held and not self.ended:
            count = len(self.held)
            earliest = self._earliest_held()
            if ahead(earliest, self.next) > 0:
                self.skip(earliest)
            else:
                self._drain()
            if len(self.held) == count:  # no progress: nothing more can be handed on
                break
        if not self.ended:
            self._end()


class _NullSink:
    """Takes the bytes of a stream that has ended."""

    def feed(self, data: bytes, packet: int, time: int, seq: int, ack: int) -> None:
        pass

    def gap(self, lost: int) -> None:
        pass

    def end(self) -> None:
        pass


NULL_SINK = _NullSink()
