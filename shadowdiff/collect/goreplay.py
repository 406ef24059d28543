"""The ``goreplay`` collector: recordings of GoReplay (``gor --output-file``), ``.gor`` files.

What a file holds (``protocol.go`` / ``proto`` and ``output_file.go`` in buger/goreplay). Each
payload is written as a header line, the HTTP message exactly as it was on the wire, and the
separator ``"\\n🐵🙈🙉\\n"``. The header line is ``TYPE ID TIMESTAMP [LATENCY]``, space-separated:

- ``TYPE``: ``1`` a request, ``2`` the original response (``--input-raw-track-response``),
  ``3`` the response of the replay target (``--output-http-track-response``).
- ``ID``: hex, the same for a request and its responses.
- ``TIMESTAMP`` and ``LATENCY``, nanoseconds; ``-1`` means none. Their meaning moved between
  GoReplay versions: 0.x wrote a response's timestamp as its request's start and its latency as
  the round trip; 1.x writes the response's own first packet and the time it took to arrive; a
  replayed response (type 3) carries the round trip and the moment the replay started, in one
  order or the other depending on the version. So the fields are told apart by size: a number
  of at least ``EPOCH_NS_MIN`` is a Unix time in nanoseconds, a smaller one a duration.

Decisions:

- A *record* of the ``Batch`` counts is an exchange: a request together with one of its
  responses. A file with responses is a comparison on its own: a type-2 response gives an
  exchange with ``side = "primary"``, a type-3 response one with ``side = "mirror"``, both
  with the request's columns, paired by GoReplay's id. A file with requests only (the common
  recording) gives one exchange per request, with the response columns null (as an unanswered
  tap trace) and the side left to normalisation. In a file with responses, a request that has
  none is a ``rejects`` row (the recording started or stopped while it was in flight), and so
  is a response whose request is not in the file. Each payload is used once: a second request
  or a second response of one kind for an id is a reject.
- A side given by the user (``--primary``/``--mirror``/``--secondary``) wins: the engine sets
  it on every row. A file holding both original and replayed responses is a whole comparison,
  which one side cannot describe: given with a side it is refused (``InputError``) with the
  advice to pass it with ``--input``.
- ``request_id`` is the request's ``Options.request_id_header`` (first, any case, not empty),
  else GoReplay's id, so both responses of a request pair. (Ids are made per recording: two
  recordings of one traffic pair only through a request-id header.)
- ``start_time`` is the request's timestamp. ``duration_ms`` of an original response runs from
  its request's timestamp to the end of the response (its timestamp plus its latency; without a
  latency, to its timestamp); of a replayed response it is its latency, GoReplay's round trip
  (its request's timestamp is the original request's, not the replay's).
- The HTTP message: line ends CRLF or LF, headers as written (names and order kept, repeats
  too, folded lines joined), decoded as UTF-8, else Latin-1. The body is framed by
  ``transfer-encoding: chunked`` (de-chunked) or ``content-length``, else it is the rest of the
  payload; responses to ``HEAD`` and with status 1xx, 204 or 304 have none. A body shorter
  than its framing says is kept and marked truncated: GoReplay cuts messages longer than
  ``--copy-buffer-size``. ``content-encoding`` is kept as received (the diff stage decodes
  it). Bodies longer than ``Options.max_body_bytes`` are cut there and marked truncated. A
  payload whose header line or HTTP head cannot be read is rejected.
- ``location`` is ``<file>#<n>``, ``n`` the payload's position in the file (1-based): that of
  the response for an exchange with one, else the request's.
- The file is read twice, through a memory map: the first pass reads only the header lines
  (which ids have which responses), the second parses and joins, holding a request only until
  its responses have come.
"""

from __future__ import annotations

import contextlib
import mmap
import os
import re
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import BinaryIO
from urllib.parse import urlsplit

import zstandard

from shadowdiff import schema
from shadowdiff.collect.base import Batch, Input, Options, capped, reject, rows_table
from shadowdiff.collect.lines import compression, decompressing
from shadowdiff.errors import InputError

NAME = "goreplay"
SEPARATOR = "\n🐵🙈🙉\n".encode()
REQUEST, ORIGINAL, REPLAYED = "1", "2", "3"
SIDE_OF = {ORIGINAL: "primary", REPLAYED: "mirror"}
EPOCH_NS_MIN = 10**17  # 1973-03-03 in Unix nanoseconds
BATCH_ROWS = 10_000
BATCH_BODY_BYTES = 64 * 1024 * 1024
NO_BODY_STATUS = frozenset({204, 304})

# A separator line; Windows tools may have turned its line ends into CRLF.
_SEPARATOR = re.compile(rb"\r?\n\xf0\x9f\x90\xb5\xf0\x9f\x99\x88\xf0\x9f\x99\x89\r?\n")
_EMOJI = "🐵🙈🙉".encode()
_CONTENT = re.compile(rb"[^ \t\r\n]")
NEWLINE, CR = 10, 13
_HEADER_LINE = re.compile(rb"[123] [0-9A-Za-z]+ -?[0-9]+( -?[0-9]+)?\r?\n")
_NUMBER = re.compile(rb"-?[0-9]+")
_HEX = re.compile(rb"[0-9A-Fa-f]+")
_HEAD_END = re.compile(rb"\r?\n\r?\n")
_REQUEST_LINE = re.compile(rb"[A-Za-z]+ \S+ HTTP/[0-9.]+")
_STATUS_LINE = re.compile(rb"(HTTP/[0-9.]+) +([0-9]{3})(?: .*)?")
_US_PER_NS = 1000
_MS_PER_NS = 1e-6


class _Bad(Exception):
    """A payload that cannot be used; the message is the ``rejects`` reason."""


@dataclass(frozen=True)
class _Payload:
    """One payload of the file: ``data[start:end]``, ``number`` its position (1-based)."""

    number: int
    start: int
    end: int
    complete: bool  # followed by a separator (the last one of a cut file is not)


@dataclass(frozen=True)
class _Header:
    kind: str
    id: str
    timestamp_ns: int | None
    latency_ns: int | None
    size: int  # bytes of the header line, line end included


@dataclass
class _Message:
    headers: _Fields
    body: bytes  # de-chunked, not capped yet
    truncated: bool


@dataclass
class _Request:
    header: _Header
    method: str
    authority: str | None
    path: str
    protocol: str
    message: _Message
    pending: int = 0  # responses still to come


@dataclass
class _Plan:
    """What the first pass learnt: the responses each id has, and which kinds the file holds."""

    responses: dict[str, set[str]] = field(default_factory=dict)
    kinds: set[str] = field(default_factory=set)


def _payloads(data: bytes | mmap.mmap) -> Iterator[_Payload]:
    """The payloads of ``data`` in file order; stretches of white space between separators are
    not payloads. The emoji are searched as bytes (fast), then checked to fill a line."""
    number = 0
    start = at = 0
    while (found := data.find(_EMOJI, at)) >= 0:
        at = found + len(_EMOJI)
        line_end = at + 1 if data[at : at + 1] == b"\r" else at
        if (
            found == 0
            or data[found - 1] != NEWLINE
            or data[line_end : line_end + 1]
            not in (
                b"\n",
                b"",
            )
        ):
            continue  # the emoji inside a line: not a separator
        end = found - 2 if found > 1 and data[found - 2] == CR else found - 1
        if _CONTENT.search(data, start, end):
            number += 1
            yield _Payload(number, start, end, True)
        start = at = line_end + 1
    if _CONTENT.search(data, start):
        yield _Payload(number + 1, start, len(data), False)


def _header(data: bytes | mmap.mmap, payload: _Payload) -> _Header:
    """The header line of ``payload``: ``TYPE ID TIMESTAMP [LATENCY]``."""
    newline = data.find(b"\n", payload.start, payload.end)
    if newline < 0:
        raise _Bad(
            "no header line: a GoReplay payload starts with 'TYPE ID TIMESTAMP', then a newline"
            if payload.complete
            else "truncated: the file ends inside the header line of its last payload"
        )
    fields = data[payload.start : newline].strip().split()
    if len(fields) < 2:
        raise _Bad("the header line has no payload id (expected 'TYPE ID TIMESTAMP [LATENCY]')")
    kind = fields[0].decode("latin-1")
    if kind not in (REQUEST, ORIGINAL, REPLAYED):
        raise _Bad(
            f"unknown payload type {_shown(fields[0])} (GoReplay writes 1 for a request, 2 for "
            "the original response, 3 for the replayed response)"
        )
    timestamp, latency = _times(fields[2:4])
    size = newline + 1 - payload.start
    return _Header(kind, fields[1].decode("utf-8", "replace"), timestamp, latency, size)


def _times(fields: list[bytes]) -> tuple[int | None, int | None]:
    """(timestamp, latency) in nanoseconds from a header line's numbers, told apart by size."""
    numbers: list[int] = []
    for text in fields:
        if _NUMBER.fullmatch(text) is None or not -(2**63) < int(text) < 2**63:
            raise _Bad(f"the header line field {_shown(text)} is not a number of nanoseconds")
        numbers.append(int(text))
    stamps = [n for n in numbers if n >= EPOCH_NS_MIN]
    durations = [n for n in numbers if 0 <= n < EPOCH_NS_MIN]
    return (stamps[0] if stamps else None), (durations[0] if durations else None)


def _shown(text: bytes) -> str:
    return repr(text[:40].decode("utf-8", "backslashreplace"))


def _header_text(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def _head_lines(head: bytes) -> list[bytes]:
    lines = head.split(b"\n")
    return [line[:-1] if line.endswith(b"\r") else line for line in lines]


@dataclass
class _Fields:
    """The header fields of a message in order, and their values by lowercase name."""

    items: list[dict[str, str]]
    by_name: dict[str, list[str]]

    def values(self, name: str) -> list[str]:
        return self.by_name.get(name, [])


def _fields(lines: list[bytes]) -> _Fields:
    """Header fields of a message head (the lines after the start line); folded lines (starting
    with a space or tab) continue the field before them."""
    items: list[dict[str, str]] = []
    for number, line in enumerate(lines, 2):
        if line[:1] in (b" ", b"\t") and items:
            items[-1]["value"] = f"{items[-1]['value']} {_header_text(line.strip())}"
            continue
        name, colon, value = line.partition(b":")
        if not colon or not name.strip():
            raise _Bad(f"line {number} of the HTTP head is not a header field: {_shown(line)}")
        items.append({"name": _header_text(name.strip()), "value": _header_text(value.strip())})
    by_name: dict[str, list[str]] = {}
    for item in items:
        by_name.setdefault(item["name"].lower(), []).append(item["value"])
    return _Fields(items, by_name)


def _dechunked(data: bytes) -> tuple[bytes, bool]:
    """The body of a chunked message and whether it is complete (its last chunk came)."""
    pieces: list[bytes] = []
    at = 0
    while True:
        newline = data.find(b"\n", at)
        if newline < 0:
            return b"".join(pieces), False
        size_text = data[at:newline].split(b";", 1)[0].strip()
        if _HEX.fullmatch(size_text) is None:
            raise _Bad(f"chunked body: {_shown(size_text)} is not a chunk size")
        size = int(size_text, 16)
        if size == 0:
            return b"".join(pieces), True
        start = newline + 1
        pieces.append(data[start : start + size])
        if start + size > len(data):
            return b"".join(pieces), False
        at = start + size
        at += 2 if data.startswith(b"\r\n", at) else 1 if data.startswith(b"\n", at) else 0


def _framed(headers: _Fields, rest: bytes, has_body: bool) -> tuple[bytes, bool]:
    """The body in ``rest`` (what follows the head) as the headers frame it, and whether it was
    cut short."""
    if not has_body:
        return b"", False
    codings = ",".join(headers.values("transfer-encoding")).lower()
    if codings.replace(" ", "").endswith("chunked"):
        body, complete = _dechunked(rest)
        return body, not complete
    lengths = {v.strip() for v in headers.values("content-length")}
    if not lengths:
        return rest, False
    if len(lengths) > 1 or not all(v.isdigit() for v in lengths):
        raise _Bad(f"content-length {', '.join(sorted(lengths))!r} is not one number")
    length = int(lengths.pop())
    return rest[:length], len(rest) < length


def _parts(payload: bytes, complete: bool) -> tuple[bytes, _Fields, bytes]:
    """The start line, the header fields and what follows the head, of the HTTP message of a
    payload (the bytes after its header line)."""
    end = _HEAD_END.search(payload)
    if end is not None:
        head, rest = payload[: end.start()], payload[end.end() :]
    elif complete and payload.endswith(b"\n"):
        # The separator's newline ended the head: a message without a body.
        head, rest = payload.rstrip(b"\r\n"), b""
    else:
        raise _Bad("truncated: the HTTP head does not end (no blank line after the headers)")
    lines = _head_lines(head)
    return lines[0], _fields(lines[1:]), rest


def _request(data: bytes | mmap.mmap, payload: _Payload, header: _Header) -> _Request:
    text = data[payload.start + header.size : payload.end]
    start_line, headers, rest = _parts(text, payload.complete)
    if _REQUEST_LINE.fullmatch(start_line) is None:
        raise _Bad(f"not an HTTP request line: {_shown(start_line)}")
    method, target, protocol = _header_text(start_line).split(" ")
    authority, path = _authority_and_path(method, target, headers)
    body, truncated = _framed(headers, rest, has_body=True)
    return _Request(header, method, authority, path, protocol, _Message(headers, body, truncated))


def _response(
    data: bytes | mmap.mmap, payload: _Payload, header: _Header, method: str
) -> tuple[int, _Message]:
    """The status and message of a response to a ``method`` request."""
    text = data[payload.start + header.size : payload.end]
    start_line, headers, rest = _parts(text, payload.complete)
    match = _STATUS_LINE.fullmatch(start_line)
    if match is None:
        raise _Bad(f"not an HTTP status line: {_shown(start_line)}")
    status = int(match.group(2))
    has_body = method != "HEAD" and status >= 200 and status not in NO_BODY_STATUS
    body, truncated = _framed(headers, rest, has_body)
    return status, _Message(headers, body, truncated)


def _authority_and_path(method: str, target: str, headers: _Fields) -> tuple[str | None, str]:
    """The authority (``Host``, or the absolute-form target's) and the path with its query."""
    host = next(iter(headers.values("host")), None)
    if "://" in target:
        try:
            parts = urlsplit(target)
        except ValueError as e:
            raise _Bad(f"the request target {target[:80]!r} is not a URL ({e})") from None
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        return host or parts.netloc.rpartition("@")[2] or None, path
    if method == "CONNECT":
        return host or target, target
    return host, target


def _duration(request: _Request, header: _Header) -> float | None:
    if header.kind == REPLAYED:
        return header.latency_ns * _MS_PER_NS if header.latency_ns is not None else None
    start = request.header.timestamp_ns
    if header.timestamp_ns is None or start is None:
        return header.latency_ns * _MS_PER_NS if header.latency_ns is not None else None
    end = header.timestamp_ns + (header.latency_ns or 0)
    return (end - start) * _MS_PER_NS if end >= start else None


class _Reader:
    """Rows and rejects of one file, cut into batches. The second pass keeps a request until
    its responses have come (``requests``) and a response until its request has (``waiting``).
    """

    def __init__(self, source: Input, options: Options, data: bytes | mmap.mmap) -> None:
        self.source = source
        self.options = options
        self.data = data
        self.request_id_header = options.request_id_header.lower()
        self.rows: list[dict[str, object]] = []
        self.rejects: list[dict[str, object]] = []
        self.body_bytes = 0
        self.plan = _Plan()
        self.requests: dict[str, _Request] = {}
        self.waiting: dict[str, list[tuple[_Payload, _Header]]] = {}
        self.unreadable: dict[str, int] = {}  # id → number of a request that cannot be read
        self.used: set[tuple[str, str]] = set()  # (id, type) of the payloads taken

    def first_pass(self) -> None:
        """The header lines only: which responses each id has."""
        for payload in _payloads(self.data):
            try:
                header = _header(self.data, payload)
            except _Bad:
                if payload.number == 1 and not payload.complete:
                    raise self._not_goreplay() from None
                continue
            self.plan.kinds.add(header.kind)
            if header.kind != REQUEST:
                self.plan.responses.setdefault(header.id, set()).add(header.kind)

    def _not_goreplay(self) -> InputError:
        return InputError(
            f"{self.source.name}: not a GoReplay recording: it holds no '🐵🙈🙉' separator line "
            "and does not start with a GoReplay header line ('1 ID TIMESTAMP'). Name the format "
            "with --source."
        )

    def read(self) -> Iterator[Batch]:
        self.first_pass()
        if self.source.side is not None and {ORIGINAL, REPLAYED} <= self.plan.kinds:
            raise InputError(
                f"{self.source.name}: holds both original (type 2) and replayed (type 3) "
                f"responses: it is a whole comparison, not one side's recording. Give it with "
                f"--input instead of --{self.source.side}."
            )
        for payload in _payloads(self.data):
            self._take(payload)
            if self.full():
                yield self.batch()
        for pieces in self.waiting.values():
            for payload, header in pieces:
                reason = (
                    f"a response (type {header.kind}) whose request (type 1, id {header.id}) "
                    "is not in this file: was the recording started while it was in flight?"
                )
                self._reject(payload, reason)
        if self.rows or self.rejects:
            yield self.batch()

    def _take(self, payload: _Payload) -> None:
        try:
            header = _header(self.data, payload)
        except _Bad as e:
            self._reject(payload, str(e))
            return
        key = (header.id, header.kind)
        if key in self.used:
            self._reject(payload, _repeated(header))
            return
        self.used.add(key)
        if header.kind == REQUEST:
            self._take_request(payload, header)
            return
        request = self.requests.get(header.id)
        if request is not None:
            self._answer(request, payload, header)
        elif header.id in self.unreadable:
            self._reject(payload, f"its request (#{self.unreadable[header.id]}) cannot be read")
        else:
            self.waiting.setdefault(header.id, []).append((payload, header))

    def _take_request(self, payload: _Payload, header: _Header) -> None:
        early = self.waiting.pop(header.id, [])
        try:
            request = _request(self.data, payload, header)
        except _Bad as e:
            self._reject(payload, str(e))
            self.unreadable[header.id] = payload.number
            for response, _ in early:
                self._reject(response, f"its request (#{payload.number}) cannot be read")
            return
        request.pending = len(self.plan.responses.get(header.id, ()))
        if request.pending == 0:
            if self.plan.responses:
                reason = (
                    "a request without a response in this file (it holds responses to other "
                    "requests): was the recording stopped while it was in flight?"
                )
                self._reject(payload, reason)
            else:
                self._row(request, None, None, payload)
            return
        self.requests[header.id] = request
        for response, response_header in early:
            self._answer(request, response, response_header)

    def _answer(self, request: _Request, payload: _Payload, header: _Header) -> None:
        request.pending -= 1
        if request.pending <= 0:
            self.requests.pop(header.id, None)
        try:
            status, message = _response(self.data, payload, header, request.method)
        except _Bad as e:
            self._reject(payload, str(e))
            return
        self._row(request, header, (status, message), payload)

    def _row(
        self,
        request: _Request,
        header: _Header | None,
        response: tuple[int, _Message] | None,
        payload: _Payload,
    ) -> None:
        limit = self.options.max_body_bytes
        message = request.message
        request_body, request_truncated = capped(message.body, message.truncated, limit)
        request_id = next(
            (v for v in message.headers.values(self.request_id_header) if v), request.header.id
        )
        start = request.header.timestamp_ns
        row: dict[str, object] = {
            "request_id": request_id,
            "side": self.source.side,
            "source": NAME,
            "location": f"{self.source.name}#{payload.number}",
            "start_time": start // _US_PER_NS if start is not None else None,
            "method": request.method,
            "authority": request.authority,
            "path": request.path,
            "protocol": request.protocol,
            "request_headers": message.headers.items,
            "request_body": request_body,
            "request_body_truncated": request_truncated,
            "bytes_received": len(message.body),
            "body_truncated": request_truncated,
        }
        if header is not None and response is not None:
            status, answer = response
            response_body, response_truncated = capped(answer.body, answer.truncated, limit)
            row.update(
                {
                    "side": self.source.side or SIDE_OF[header.kind],
                    "duration_ms": _duration(request, header),
                    "status": status,
                    "response_headers": answer.headers.items,
                    "response_body": response_body,
                    "response_body_truncated": response_truncated,
                    "bytes_sent": len(answer.body),
                    "body_truncated": request_truncated or response_truncated,
                }
            )
            self.body_bytes += len(response_body)
        self.body_bytes += len(request_body)
        self.rows.append(row)

    def _reject(self, payload: _Payload, reason: str) -> None:
        stop = min(payload.end, payload.start + 4 * schema.EXCERPT_CHARS)
        excerpt = bytes(self.data[payload.start : stop])
        self.rejects.append(reject(self.source, f"#{payload.number}", reason, excerpt))

    def full(self) -> bool:
        return len(self.rows) >= BATCH_ROWS or self.body_bytes >= BATCH_BODY_BYTES

    def batch(self) -> Batch:
        batch = Batch(rows_table(self.rows), self.rejects)
        self.rows, self.rejects, self.body_bytes = [], [], 0
        return batch


def _repeated(header: _Header) -> str:
    what = "request" if header.kind == REQUEST else f"type-{header.kind} response"
    return f"a second {what} with id {header.id} in this file; only the first is used"


@contextlib.contextmanager
def _contents(source: Input) -> Iterator[bytes | mmap.mmap]:
    """The file's bytes: a memory map of a plain file (a recording can hold gigabytes), the
    decompressed bytes of a ``.gz`` or ``.zst`` one."""
    try:
        raw = open(source.path, "rb")  # noqa: SIM115 - closed below
    except OSError as e:
        raise InputError(
            f"{source.name}: cannot open ({e.strerror}). Check the path and permissions."
        ) from e
    with raw:
        if compression(raw.read(4)) is not None:
            raw.seek(0)
            yield _decompressed(raw, source)
        elif os.fstat(raw.fileno()).st_size == 0:
            yield b""
        else:
            with mmap.mmap(raw.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
                yield mapped


def _decompressed(raw: BinaryIO, source: Input) -> bytes:
    try:
        with decompressing(raw) as stream:
            return stream.read()
    except (OSError, EOFError, zlib.error, ValueError, zstandard.ZstdError) as e:
        raise InputError(
            f"{source.name}: cannot be read ({e}). If it is compressed, is it complete? "
            "Decompress it by hand to check."
        ) from e


class GoReplayCollector:
    """Reads GoReplay ``.gor`` recordings as exchanges.

    >>> batches = list(COLLECTOR.read(Input(Path("comparison.gor")), Options()))
    >>> batches[0].exchanges.column("side").to_pylist()  # types 1, 2, 3: both sides
    ['primary', 'mirror']
    """

    name = NAME

    def sniff(self, head: bytes) -> float:
        """Sure when the file starts with a GoReplay header line and holds a separator line;
        fairly sure when the header line is followed by an HTTP start line (a first payload
        longer than the head), less with a separator line alone."""
        starts = _HEADER_LINE.match(head)
        separated = _SEPARATOR.search(head) is not None
        if starts and separated:
            return 0.95
        if starts:
            second = head[starts.end() :].split(b"\n", 1)[0].rstrip(b"\r")
            http = _REQUEST_LINE.fullmatch(second) or _STATUS_LINE.fullmatch(second)
            return 0.8 if http else 0.3
        return 0.6 if separated else 0.0

    def read(self, source: Input, options: Options) -> Iterator[Batch]:
        with _contents(source) as data:
            yield from _Reader(source, options, data).read()


COLLECTOR = GoReplayCollector()
