"""HTTP/1.x exchanges from the two reassembled byte streams of a TCP connection.

Each direction is parsed by ``httptools`` (the binding of llhttp, Node's parser), which handles
keep-alive, pipelining, chunked transfer coding and the messages without a body (1xx, 204,
304) on its own. What this module adds is what a capture needs beyond a parser:

- **Where a message came from.** Each stream piece is fed on its own, with the packet that
  carried it, so a message's first and last packet (and their times and TCP sequence numbers)
  are those of the pieces in which llhttp began and completed it.
- **Resynchronising.** After bytes the capture lost (``gap``), a parse error, or at the start of
  a capture that joined a connection mid-way, the stream is scanned for the next request line or
  ``HTTP/1.x`` status line, and parsing starts again there: one bad stretch costs the message it
  hit, not the connection. llhttp does not say where in a piece it stopped, so a scan of that
  piece skips the start lines of the messages already begun in it.
- **What llhttp cannot know.** A response to HEAD has no body whatever its headers say, and a
  2xx to CONNECT (or a 101) turns the connection into a tunnel: both are told from the request
  the response answers, then parsing resumes by the scan above. A response that ends at the
  connection's close is completed when its stream ends (httptools has no ``finish``).
- **Pairing.** Responses answer requests in order (``Conversation``); interim 1xx responses
  are not final. After a loss the order is checked against TCP acknowledgements: a response is
  sent after its request arrived (its ACK covers the request's first byte), and after the
  client had received what it acknowledged when it sent the request. A response that fits no
  request seen is a record of its own, rejected.

Bodies are kept raw (content-encoding undone later, by the diff stage), cut at ``max_body``.
"""

from __future__ import annotations

import re
from collections import deque
from typing import Protocol

import httptools

from shadowdiff.collect.tcpstream import HALF, MASK, ahead

METHODS = (
    "GET|HEAD|POST|PUT|DELETE|CONNECT|OPTIONS|TRACE|PATCH|PROPFIND|PROPPATCH|MKCOL|COPY|MOVE"
    "|LOCK|UNLOCK|REPORT|SEARCH|PURGE|LINK|UNLINK|MKCALENDAR|SUBSCRIBE|UNSUBSCRIBE|NOTIFY|QUERY"
)
# Where a message may start when parsing resumes: a whole start line. Not only at the start of
# a line: after a body, the next message starts wherever the body ended (often a segment's
# start). A whole start line inside a body is rare enough not to matter.
REQUEST_LINE = re.compile(rb"(?:" + METHODS.encode() + rb") [\x21-\xff]+ HTTP/1\.[01]\r?\n")
STATUS_LINE = re.compile(rb"HTTP/1\.[01] [1-5][0-9][0-9](?:[ \t][^\r\n]*)?\r?\n")
MAX_RESYNC_BYTES = 64 * 1024  # kept while looking for a start line (a long request line fits)
MAX_START_LINE = 16 * 1024  # a start line cut by a piece's end is kept up to this long
EXCERPT_BYTES = 200
BODYLESS_STATUSES = frozenset({204, 304})

PARSING, RESYNC, TUNNEL, ENDED = range(4)


class Message:
    """One request or response as far as the capture showed it. A request is also its own
    place in the connection's queue (``response``, ``answered``); a marker (``marker``) stands
    for requests the capture lost.

    Rarely set fields are class attributes: a message sets only what it has, which matters at
    hundreds of thousands of messages.
    """

    marker = False
    last_packet = 0
    last_time = 0
    last_end = 0
    started_line = False  # its start line was read
    method: str | None = None
    target = b""
    status = 0
    version = ""
    body_size = 0  # bytes of body seen (kept or not)
    kept = 0  # bytes of body kept (at most max_body)
    truncated = False  # the body kept is not the whole body
    headers_done = False
    complete = False
    problem: str | None = None  # why the message cannot be used
    excerpt = b""
    # As a request in its connection's queue:
    response: Message | None = None
    answered = False
    missing: str | None = None  # why it has no response

    def __init__(self, packet: int, time: int, seq: int, ack: int, began_in: int) -> None:
        self.first_packet = packet
        self.first_time = time
        self.first_seq = seq
        self.first_ack = ack
        self.began_in = began_in  # which parser call began it (for the resync scan)
        self.headers: list[bytes] = []  # name, value, name, value, ... as sent
        self.body: list[bytes] = []

    @property
    def finished(self) -> bool:
        return self.complete or self.problem is not None

    def header(self, name: bytes) -> bytes | None:
        """The first value of header ``name`` (lower case), any case."""
        size = len(name)
        headers = self.headers
        for index in range(0, len(headers), 2):
            key = headers[index]
            if len(key) == size and key.lower() == name:
                return headers[index + 1]
        return None

    def start_line(self) -> bytes:
        if self.method is not None:
            return f"{self.method} ".encode() + self.target + f" HTTP/{self.version}".encode()
        if self.status:
            return f"HTTP/{self.version} {self.status}".encode()
        return self.excerpt


def _marker() -> Message:
    marker = Message(0, 0, 0, 0, 0)
    marker.marker = True
    return marker


_METHODS: dict[bytes, str] = {}


class Listener(Protocol):
    """What a ``MessageReader`` tells about its stream."""

    special: bool  # a HEAD or CONNECT request was seen: responses must ask ``answering``
    spoke_http: bool  # a start line was read in either direction
    queue: deque[Message]  # where a request goes when it begins

    def pair(self, response: Message) -> None: ...

    def done(self, message: Message, requests: bool) -> None: ...

    def lost(self, requests: bool, inside: bool) -> None: ...

    def answering(self) -> str | None: ...

    def tunnel(self) -> None: ...


Piece = tuple[bytes, int, int, int, int]  # data, packet, time, seq, ack


class MessageReader:
    """Parses one direction's bytes into messages (requests or responses), as a ``Sink`` of a
    TCP stream."""

    requests = True  # which kind of message it reads

    def __init__(self, listener: Listener, max_body: int) -> None:
        self.listener = listener
        self.max_body = max_body
        self.start = REQUEST_LINE if self.requests else STATUS_LINE
        self.parser = self._parser()
        self.state = PARSING
        self.current: Message | None = None
        # The piece being parsed: its packet, time, sequence numbers and acknowledgement.
        self.packet = self.time = self.seq = self.ack = self.end_seq = 0
        self.calls = 0  # parser calls so far; a message remembers the one that began it
        self.lines_begun = 0  # start lines read of messages begun in the current call
        self.stop: str | None = None  # set during a call: "head" or "tunnel"
        self.pending: list[Piece] = []  # pieces kept while looking for a start line
        # For the first scan after a parse error or a stop: start lines to pass over, and the
        # least offset a new start may have (so that every failure makes progress).
        self.skip_lines = 0
        self.skip_bytes = 0

    def _parser(self) -> httptools.HttpRequestParser | httptools.HttpResponseParser:
        raise NotImplementedError

    # The stream side (tcpstream.Sink).

    def feed(self, data: bytes, packet: int, time: int, seq: int, ack: int) -> None:
        self.packet, self.time, self.seq, self.ack = packet, time, seq, ack
        self.end_seq = (seq + len(data)) & 0xFFFFFFFF
        if self.state == PARSING:
            # The common case, written out: one parser call, nothing stopped it.
            self.calls += 1
            self.lines_begun = 0
            try:
                self.parser.feed_data(data)
            except httptools.HttpParserError as e:
                again: Piece | None = self._stopped(data) if self.stop else self._failed(e, data)
            except httptools.HttpParserUpgrade as e:
                again = self._upgraded(e, data)
            else:
                if self.stop is None:
                    return
                again = self._stopped(data)
            if again is not None:
                self._run(deque([again]))
        elif self.state == RESYNC:
            self._run(deque([(data, packet, time, seq, ack)]))

    def _run(self, work: deque[Piece]) -> None:
        """Parse pieces in order; a piece that stops parsing part-way is put back (whole, to be
        scanned, or its rest) for the next turn."""
        while work:
            piece = work.popleft()
            data, self.packet, self.time, self.seq, self.ack = piece
            self.end_seq = (self.seq + len(data)) & 0xFFFFFFFF
            if self.state == PARSING:
                again = self._execute(data)
                if again is not None:
                    work.appendleft(again)
            elif self.state == RESYNC:
                found = self._scan(piece)
                if found:
                    work.extendleft(reversed(found))
            else:
                return

    def gap(self, lost: int) -> None:
        if self.state in (TUNNEL, ENDED):
            return
        if self.state == RESYNC:
            self.pending.clear()  # a start line cannot run across lost bytes
            return
        message = self.current
        if message is None:
            self.listener.lost(self.requests, inside=False)
        elif self.requests:
            message.problem = f"gap in the capture inside the request ({lost} bytes lost)"
            self._deliver(message)
        elif message.headers_done:
            message.truncated = True  # the response is kept, marked incomplete
            self._complete(message)
            self.listener.lost(False, inside=True)
        else:
            message.problem = (
                f"response missing (capture lost it: {lost} bytes lost inside its headers)"
            )
            self._deliver(message)
            self.listener.lost(False, inside=True)
        self._restart(RESYNC)

    def end(self) -> None:
        if self.state == ENDED:
            return
        message = self.current
        if message is not None and self.state == PARSING:
            if not message.headers_done:
                message.problem = (
                    "request incomplete (the connection closed or the capture ended in it)"
                    if self.requests
                    else "response missing (capture lost it or ended)"
                )
            elif self.requests:
                message.problem = (
                    "request incomplete (the connection closed or the capture ended in its body)"
                )
            elif not self._ends_at_close(message):
                message.truncated = True
            if message.problem is None:
                self._complete(message)
            else:
                self._deliver(message)
        self.current = None
        self.pending.clear()
        self.state = ENDED

    def unaligned(self) -> None:
        """The stream's first byte is not known to start a message (no SYN was seen)."""
        if self.state == PARSING and self.current is None:
            self.state = RESYNC
            if self.requests:
                self.listener.lost(True, inside=False)

    # Parsing.

    def _execute(self, data: bytes) -> Piece | None:
        """Feed ``data`` (the current piece) to llhttp. Returns what is left to handle when
        parsing stopped part-way: the piece again (to be scanned for a start line, after an
        error or a HEAD response's end), or its rest (after an upgrade request)."""
        self.calls += 1
        self.lines_begun = 0
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade as e:
            return self._upgraded(e, data)
        except httptools.HttpParserError as e:
            return self._stopped(data) if self.stop is not None else self._failed(e, data)
        return self._stopped(data) if self.stop is not None else None

    def _upgraded(self, error: httptools.HttpParserUpgrade, data: bytes) -> Piece | None:
        """llhttp paused after a message that switches protocols (CONNECT, Upgrade, 101)."""
        if self.stop is not None:
            return self._stopped(data)
        if not self.requests:
            self.listener.tunnel()  # 101 Switching Protocols
            return None
        offset = error.args[0] if error.args and isinstance(error.args[0], int) else len(data)
        offset = min(max(offset, 0), len(data))
        self.parser = self._parser()  # the server may decline the upgrade: read on
        if offset >= len(data):
            return None
        return (data[offset:], self.packet, self.time, (self.seq + offset) & 0xFFFFFFFF, self.ack)

    def _piece(self, data: bytes) -> Piece:
        return (data, self.packet, self.time, self.seq, self.ack)

    def _failed(self, error: Exception, data: bytes) -> Piece:
        reason = str(error).strip() or type(error).__name__
        message = self.current
        if message is None or not message.started_line:
            message = message or self._begin()
            side = "request" if self.requests else "response"
            message.problem = f"not HTTP: the {side} does not parse ({reason})"
        else:
            message.problem = f"not valid HTTP ({reason})"
        message.excerpt = data[:EXCERPT_BYTES]
        lines = self.lines_begun
        self._deliver(message)
        self._restart(RESYNC)
        self.skip_lines, self.skip_bytes = lines, 1
        return self._piece(data)

    def _stopped(self, data: bytes) -> Piece | None:
        """A HEAD response's headers are its end; a CONNECT's 2xx starts a tunnel. llhttp has
        read on as if a body followed: parse again from the next status line in this piece."""
        message = self.current
        stop, lines = self.stop, self.lines_begun
        self.stop = None
        if message is not None:
            self._complete(message)
        if stop == "tunnel":
            self.listener.tunnel()
            return None
        self._restart(RESYNC)
        self.skip_lines, self.skip_bytes = lines, 0
        return self._piece(data)

    def _restart(self, state: int) -> None:
        self.parser = self._parser()
        self.current = None
        self.state = state
        self.pending.clear()
        self.skip_lines = self.skip_bytes = 0

    def _scan(self, piece: Piece) -> list[Piece] | None:
        """Look for the next start line in the pieces kept so far plus ``piece``. Found: the
        pieces from there on, to parse (and parsing is on again); else ``None``."""
        self.pending.append(piece)
        pending = self.pending
        joined = b"".join(p[0] for p in pending) if len(pending) > 1 else piece[0]
        cut = 0
        found = None
        for match in self.start.finditer(joined, self.skip_bytes):
            if self.skip_lines:
                self.skip_lines -= 1
                cut = match.end()
                continue
            found = match.start()
            break
        self.skip_lines = self.skip_bytes = 0
        if found is None:
            self._keep_tail(joined, cut)
            return None
        self.pending = []
        self.state = PARSING
        return _pieces_from(pending, found)

    def _keep_tail(self, joined: bytes, cut: int) -> None:
        """Keep only the last, unfinished line (a start line may be cut by the piece's end)."""
        keep = max(joined.rfind(b"\n") + 1, cut, len(joined) - MAX_RESYNC_BYTES)
        if len(joined) - keep > MAX_START_LINE:
            keep = len(joined) - MAX_START_LINE
        self.pending = _pieces_from(self.pending, keep)

    # llhttp callbacks. After a stop (``self.stop``), llhttp's view of the bytes is wrong, so
    # the callbacks ignore the rest of the call.

    def _begin(self) -> Message:
        message = Message(self.packet, self.time, self.seq, self.ack, self.calls)
        self.current = message
        if self.requests:
            self.listener.queue.append(message)
        return message

    def _line_read(self, message: Message) -> None:
        message.started_line = True
        if message.began_in == self.calls:
            self.lines_begun += 1

    def on_header(self, name: bytes, value: bytes) -> None:
        message = self.current
        if message is not None and self.stop is None:
            message.headers += (name, value)

    def on_body(self, body: bytes) -> None:
        message = self.current
        if message is None or self.stop is not None:
            return
        size = len(body)
        message.body_size += size
        room = self.max_body - message.kept
        if size <= room:
            message.body.append(body)
            message.kept += size
        else:
            if room > 0:
                message.body.append(body[:room])
                message.kept += room
            message.truncated = True

    def _complete(self, message: Message) -> None:
        message.complete = True
        self._deliver(message)

    def _deliver(self, message: Message) -> None:
        message.last_packet = self.packet
        message.last_time = self.time
        message.last_end = self.end_seq
        if self.current is message:
            self.current = None
        self.listener.done(message, self.requests)

    def _ends_at_close(self, message: Message) -> bool:
        """Whether a response's body runs to the connection's close (no length, not chunked)."""
        if message.status < 200 or message.status in BODYLESS_STATUSES:
            return False
        return (
            message.header(b"content-length") is None
            and b"chunked" not in (message.header(b"transfer-encoding") or b"").lower()
        )


class RequestReader(MessageReader):
    """Reads requests: the client's stream."""

    requests = True

    def _parser(self) -> httptools.HttpRequestParser:
        return httptools.HttpRequestParser(self)

    def on_message_begin(self) -> None:
        if self.stop is None:
            message = Message(self.packet, self.time, self.seq, self.ack, self.calls)
            self.current = message
            self.listener.queue.append(message)

    def on_url(self, url: bytes) -> None:
        message = self.current
        if message is not None and self.stop is None:
            message.target += url
            if not message.started_line:
                self._line_read(message)

    def on_headers_complete(self) -> None:
        message = self.current
        if message is None or self.stop is not None:
            return
        if not message.started_line:
            self._line_read(message)
        message.headers_done = True
        parser = self.parser
        message.version = parser.get_http_version()
        raw = parser.get_method()  # type: ignore[union-attr]
        method = _METHODS.get(raw)
        if method is None:
            method = _METHODS[raw] = raw.decode("ascii", "replace")
        message.method = method
        if method == "HEAD" or method == "CONNECT":
            self.listener.special = True

    def on_message_complete(self) -> None:
        message = self.current
        if message is None or self.stop is not None:
            return
        message.complete = True
        message.last_packet, message.last_time = self.packet, self.time
        message.last_end = self.end_seq
        self.current = None
        conversation = self.listener
        conversation.spoke_http = True
        if message.answered:  # an early response came first
            conversation.done(message, True)


class ResponseReader(MessageReader):
    """Reads responses: the server's stream."""

    requests = False

    def _parser(self) -> httptools.HttpResponseParser:
        return httptools.HttpResponseParser(self)

    def on_message_begin(self) -> None:
        if self.stop is None:
            self.current = Message(self.packet, self.time, self.seq, self.ack, self.calls)

    def on_headers_complete(self) -> None:
        message = self.current
        if message is None or self.stop is not None:
            return
        if not message.started_line:
            self._line_read(message)
        message.headers_done = True
        parser = self.parser
        message.version = parser.get_http_version()
        status = message.status = parser.get_status_code()  # type: ignore[union-attr]
        if status == 101:
            self.stop = "tunnel"  # llhttp pauses only when the headers also say so
        elif status >= 200 and self.listener.special:
            answering = self.listener.answering()
            if answering == "HEAD" and status not in BODYLESS_STATUSES:
                self.stop = "head"
            elif answering == "CONNECT" and status < 300:
                self.stop = "tunnel"

    def on_message_complete(self) -> None:
        message = self.current
        if message is None or self.stop is not None:
            return
        message.complete = True
        message.last_packet, message.last_time = self.packet, self.time
        message.last_end = self.end_seq
        self.current = None
        conversation = self.listener
        conversation.spoke_http = True
        if message.status >= 200 or message.status == 101:
            conversation.pair(message)
        # else: an interim response (100 Continue, 103 Early Hints): the final one follows


def _pieces_from(pieces: list[Piece], offset: int) -> list[Piece]:
    """``pieces`` from byte ``offset`` of their joined data on."""
    out: list[Piece] = []
    for data, packet, time, seq, ack in pieces:
        if offset >= len(data):
            offset -= len(data)
            continue
        if offset:
            data, seq = data[offset:], (seq + offset) & 0xFFFFFFFF
            offset = 0
        out.append((data, packet, time, seq, ack))
    return out


class Settling(Protocol):
    """The request stream, as far as pairing needs it (``tcpstream.Stream``)."""

    acked: int | None
    next: int

    def resolve_acknowledged(self) -> None: ...


class Records(Protocol):
    """Where a conversation's records go, once each is whole."""

    def exchange(self, request: Message, response: Message | None) -> None: ...

    def reject(self, message: Message, reason: str) -> None:
        """``message`` (a request, or a response without one) cannot be used: a rejects row."""
        ...


RESPONSE_MISSING = "response missing (capture lost it or ended)"
NO_REQUEST = "response without a request (the capture started after the request, or lost it)"
LOST_REQUEST = "response to a request the capture lost"


class Conversation:
    """The requests and responses of one connection, paired in order.

    ``records`` gets each record once it is whole. Before a response is paired, the request
    stream (``request_stream``) is asked to declare the holes the server acknowledged. The queue
    holds the requests still waiting for their response or their end, in order, and markers
    where the capture lost requests."""

    def __init__(
        self, records: Records, max_body: int, request_stream: Settling | None = None
    ) -> None:
        self.records = records
        self.request_stream = request_stream
        self.requests = RequestReader(self, max_body)
        self.responses = ResponseReader(self, max_body)
        self.queue: deque[Message] = deque()
        self.responses_lost = False  # the next response cannot answer the oldest request
        self.after_gap = False  # check the order against acknowledgements once
        self.last_response_end: int | None = None
        self.tunnelled = False
        self.spoke_http = False  # a start line was read in either direction
        self.special = False  # a HEAD or CONNECT request was seen

    # Listener

    def done(self, message: Message, requests: bool) -> None:
        if message.started_line:
            self.spoke_http = True
        elif message.problem is not None:
            if requests:
                message.answered = True  # bytes that never were a request expect no response
            if not self.spoke_http:
                # The first bytes of the connection are not HTTP (TLS, another protocol): one
                # record says so, and the rest of the connection is not read.
                self.tunnel()
        if requests:
            if message.answered:
                self._emit_ready()
        elif message.status >= 200 or message.problem is not None or message.status == 101:
            self.pair(message)
        # else: an interim response (100 Continue, 103 Early Hints): the final one follows

    def lost(self, requests: bool, inside: bool) -> None:
        if requests:
            self.queue.append(_marker())
        else:
            self.responses_lost = self.responses_lost or not inside
            self.after_gap = True

    def answering(self) -> str | None:
        for request in self.queue:
            if not request.marker and not request.answered:
                return request.method
        return None

    def tunnel(self) -> None:
        """The connection stopped speaking HTTP (CONNECT, an accepted upgrade)."""
        self.tunnelled = True
        for reader in (self.requests, self.responses):
            reader.current = None
            reader.state = TUNNEL

    # Pairing

    def _open(self) -> int:
        """Index of the first request (or marker) still waiting for its response."""
        for index, request in enumerate(self.queue):
            if not request.answered:
                return index
        return len(self.queue)

    def pair(self, response: Message) -> None:
        """A final response (or one that failed): pair it with its request."""
        stream = self.request_stream
        if stream is not None and stream.acked != stream.next:
            stream.resolve_acknowledged()
        queue = self.queue
        if queue and not (self.responses_lost or self.after_gap):
            request = queue[0]
            # The usual case, written out: the oldest request, whose first byte the server had.
            if (
                not request.answered
                and not request.marker
                and 0 < ((response.first_ack - request.first_seq) & MASK) < HALF
            ):
                request.response = response
                request.answered = True
                self.last_response_end = response.last_end
                if request.complete and response.problem is None:
                    queue.popleft()
                    self.records.exchange(request, response)
                    if queue and queue[0].answered:
                        self._emit_ready()
                elif request.problem is not None or request.complete:
                    self._emit_ready()
                return
        self._pair_after_loss(response)

    def _pair_after_loss(self, response: Message) -> None:
        """Pair ``response`` where the order may have been broken by lost bytes."""
        queue = self.queue
        index = self._open()
        if self.responses_lost and index < len(queue) and not queue[index].marker:
            self._missing(queue[index])
            index += 1
        self.responses_lost = False
        if self.after_gap:
            self.after_gap = False
            index = self._skip_answered_elsewhere(index, response)
        while index < len(queue) and queue[index].marker:
            following = queue[index + 1] if index + 1 < len(queue) else None
            del queue[index]
            if following is None or not self._may_answer(response, following, marker=True):
                self._reject(response, LOST_REQUEST)
                return
        if index == len(queue):
            self._reject(response, NO_REQUEST)
            return
        request = queue[index]
        if not self._may_answer(response, request, marker=False):
            self._reject(response, NO_REQUEST)
            return
        request.response = response
        request.answered = True
        self.last_response_end = response.last_end
        self._emit_ready()

    def _may_answer(self, response: Message, request: Message, marker: bool) -> bool:
        """Whether the acknowledgements allow ``response`` to answer ``request``: the server had
        the request's first byte, and (after lost requests) the client had received, when it
        sent the request, no byte of the response's place in the stream or beyond."""
        if ahead(response.first_ack, request.first_seq) <= 0:
            return False
        if not marker:
            return True
        if ahead(response.first_seq, request.first_ack) < 0:
            return False
        previous = self.last_response_end
        return previous is None or ahead(request.first_ack, previous) > 0

    def _skip_answered_elsewhere(self, index: int, response: Message) -> int:
        """After lost response bytes: pass over requests whose response must lie in them. A
        client that sent request k+1 having received more than when it sent request k, and
        no more than up to where this response starts, had received the answer to k."""
        queue = self.queue
        while index + 1 < len(queue):
            first, second = queue[index], queue[index + 1]
            if first.marker or second.marker:
                break
            if not (
                ahead(second.first_ack, first.first_ack) > 0
                and ahead(response.first_seq, second.first_ack) >= 0
            ):
                break
            self._missing(first)
            index += 1
        return index

    def _missing(self, request: Message) -> None:
        request.answered = True
        request.missing = RESPONSE_MISSING

    def _reject(self, response: Message, reason: str) -> None:
        self.records.reject(response, response.problem or reason)

    def _emit_ready(self) -> None:
        queue = self.queue
        while queue:
            request = queue[0]
            if request.marker or not request.answered or not request.finished:
                return
            queue.popleft()
            self._emit(request)

    def _emit(self, request: Message) -> None:
        response = request.response
        problem = request.problem or request.missing
        if problem is None and response is not None:
            problem = response.problem
        if problem is None:
            self.records.exchange(request, response)
        else:
            self.records.reject(request, problem)

    def finish(self) -> None:
        """Both streams ended: every request still waiting is a record now."""
        self.requests.end()
        self.responses.end()
        for request in self.queue:
            if not request.marker and not request.answered:
                self._missing(request)
        while self.queue:
            request = self.queue.popleft()
            if not request.marker:
                self._emit(request)
        self._release()

    def _release(self) -> None:
        """Break the reference cycles (parser and reader, reader and conversation), so that
        reference counting frees a closed connection at once, without the cyclic collector."""
        for reader in (self.requests, self.responses):
            reader.parser = None  # type: ignore[assignment]
            reader.listener = None  # type: ignore[assignment]
            reader.current = None
            reader.pending = []
            reader.state = ENDED
        self.request_stream = None
