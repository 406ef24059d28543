"""The ``envoy-tap`` collector: output of Envoy's HTTP tap filter, written as JSON.

What a file holds. Every document is an ``envoy.data.tap.v3.TraceWrapper`` (JSON of the proto,
sink format ``JSON_BODY_AS_BYTES`` or ``JSON_BODY_AS_STRING``). Field names follow
``api/envoy/data/tap/v3/{wrapper,http,common}.proto`` and ``api/envoy/config/core/v3/{base,
address}.proto`` in envoyproxy/envoy:

- ``http_buffered_trace``: ``request`` and ``response`` messages, each with ``headers`` (a list of
  ``{key, value, raw_value}``), ``body`` (``{as_bytes | as_string, truncated}``), ``trailers`` and
  ``headers_received_time``; plus ``downstream_connection`` and ``upstream_connection``
  (``{local_address, remote_address}``, each an ``Address`` with ``socket_address`` or ``pipe``).
- ``http_streamed_trace_segment``: a ``trace_id`` (uint64, a string in proto JSON) and one piece:
  ``request_headers`` / ``response_headers`` / ``*_trailers`` (``{headers: [...]}``) or
  ``request_body_chunk`` / ``response_body_chunk`` (a ``Body``). Segments carry no timestamps
  and no connection, so a streamed trace has no ``start_time``, ``duration_ms`` or addresses.

Envoy writes these with the proto field names (snake_case); other proto tools write
lowerCamelCase, so both are accepted. Envoy's ``file_per_tap`` sink
(``FilePerTapSink::FilePerTapSinkHandle::submitTrace`` in
``source/extensions/common/tap/tap_config_base.cc``) opens ``<path_prefix>_<trace_id>.json`` per
trace and appends every document of that trace to it, pretty-printed, one after another. So a file
holds one buffered trace, or all segments of one streamed trace; other sinks, and ``cat``, give
files with many documents, with or without whitespace between them. All of those are read.

Decisions:

- A *record* is a trace: a buffered document, or all segments of one ``trace_id`` joined. A
  document that belongs to no trace (not JSON, not an object, an unknown or socket trace kind, a
  segment without ``trace_id``) is a record of its own. Each record becomes exactly one exchange
  or one ``rejects`` row, so ``Batch.records`` counts records and nothing is dropped unseen. Any
  problem in any part of a record (base64 that does not decode, a malformed field, a ``:status``
  that is not a number) rejects the whole record: a half-read trace is not evidence.
- Streamed segments are joined per file, never across files: ``file_per_tap`` writes all of a
  trace's segments to one file, and trace ids are unique only per Envoy process (they repeat after
  a restart and across pods), so joining by id across a directory could glue unrelated requests.
  A trace without its ``request_headers`` or ``response_headers`` segment in the file (still being
  written when copied, or reset before the response) is rejected as incomplete.
- A buffered trace without a ``response`` (Envoy writes it only once response headers came) is
  kept, with the response columns null: it is the record of an unanswered request.
- ``:method``, ``:path``, ``:authority`` (request) and ``:status`` (response) become columns and
  are left out of the header lists; other pseudo-headers (``:scheme``, ``:protocol``) have no
  column and stay in the lists. Header names and order are kept as given, repeats too. A header
  given as ``raw_value`` (base64) is decoded as UTF-8, else Latin-1. Trailers have no column and
  are read only to check them.
- ``request_id`` is the first request header named ``Options.request_id_header`` (any case); an
  empty value counts as none.
- ``start_time`` is the request's ``headers_received_time``; ``duration_ms`` is the response's
  minus the request's: time to response headers, not to the last byte. Both need Envoy's
  ``record_headers_received_time``.
- ``server_addr``/``server_port`` come from the downstream connection's local address (the
  listener the client reached), ``client_addr`` from its remote address and ``upstream_host``
  from the upstream connection's remote address, as ``host:port`` like Envoy's
  ``%DOWNSTREAM_REMOTE_ADDRESS%`` and ``%UPSTREAM_HOST%`` (needs ``record_downstream_connection``
  and ``record_upstream_connection``).
- Bodies are stored exactly as captured (``content-encoding`` is decoded by the diff stage):
  ``as_bytes`` base64-decoded, ``as_string`` encoded as UTF-8 (Envoy has already replaced bytes
  that were not UTF-8, so ``JSON_BODY_AS_STRING`` loses binary bodies). A message without a
  ``body`` had no body bytes: ``b""``; a message that is absent: ``None``. Streamed chunks are
  concatenated; a body is truncated when any chunk was. Bodies longer than
  ``Options.max_body_bytes`` are cut there and marked truncated.
- A file that does not start with a JSON object is not tap output: ``InputError`` when it was
  named alone, one ``rejects`` row when it sits among many (``read_many``). Inside a file,
  a document that does not parse is rejected and reading resumes at the next document start
  (``{`` after a newline or after ``}``; after junk between documents, the next ``{``); a last
  document cut short is rejected as truncated.
- A directory of files is read by one reader (``read_many``): rows of many files go into one
  batch, built column by column, and each file's sha256 is taken from the bytes already read.
- The file is read whole (a tap file is one trace); the single-document case is parsed with
  ``orjson``, files of several documents with ``json.JSONDecoder.raw_decode``, which reports where
  each document ends.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import json
import re
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pyarrow as pa
import zstandard

from shadowdiff import schema
from shadowdiff.collect.base import (
    Batch,
    Input,
    InputReport,
    Options,
    capped,
    file_reason,
    reject,
)
from shadowdiff.collect.lines import compression, decompressing
from shadowdiff.errors import InputError

NAME = "envoy-tap"
BATCH_ROWS = 50_000
BATCH_BODY_BYTES = 256 * 1024 * 1024  # also cut a batch when its bodies hold this much

BUFFERED = "http_buffered_trace"
STREAMED = "http_streamed_trace_segment"
HTTP_KINDS = (BUFFERED, STREAMED)
SOCKET_KINDS = ("socket_buffered_trace", "socket_streamed_trace_segment")
REQUEST_PSEUDO = (":method", ":path", ":authority")
RESPONSE_PSEUDO = (":status",)
SEGMENT_PIECES = (
    "request_headers",
    "request_body_chunk",
    "request_trailers",
    "response_headers",
    "response_body_chunk",
    "response_trailers",
)

_BOM = b"\xef\xbb\xbf"
_SPACE = re.compile(r"[ \t\n\r]*")  # JSON's whitespace
_BYTES_SPACE = re.compile(rb"[ \t\n\r]*")
# Where a document may start after a bad one: '{' at the start of a line (Envoy pretty-prints,
# so nested objects are indented) or right after a '}' (documents written back to back).
_NEXT_START = re.compile(r"\n(?=\{)|\}[ \t\n\r]*(?=\{)")
_PARTIAL_TOKEN = re.compile(r"[-+.\w]*[ \t\n\r]*")
_MARKER = re.compile(
    rb'"(?:http_buffered_trace|httpBufferedTrace|http_streamed_trace_segment'
    rb'|httpStreamedTraceSegment)"\s*:'
)
_JSON_TYPES = {list: "array", str: "string", int: "number", float: "number", bool: "boolean"}
_URLSAFE = str.maketrans("-_", "+/")
_MS = timedelta(milliseconds=1)
_US = timedelta(microseconds=1)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


_CAMEL: dict[str, str] = {}


def _get(obj: dict[str, Any], name: str) -> Any:
    """``obj[name]`` under its proto name or its lowerCamelCase JSON name; ``None`` if absent."""
    value = obj.get(name)
    if value is None:
        camel = _CAMEL.get(name)
        if camel is None:
            camel = _CAMEL[name] = _camel(name)
        value = obj.get(camel)
    return value


# Both spellings of each trace kind, for finding the kind of a document.
_KIND_NAMES = {n: kind for kind in (*HTTP_KINDS, *SOCKET_KINDS) for n in (kind, _camel(kind))}


class _Bad(Exception):
    """A record that cannot be used; the message is the ``rejects`` reason."""


# Reading JSON values of the expected shapes. ``where`` names the field for the reason.


def _object(value: Any, where: str, required: bool = False) -> dict[str, Any] | None:
    if value is None:
        if required:
            raise _Bad(f"{where} is missing")
        return None
    if not isinstance(value, dict):
        raise _Bad(f"{where} is not a JSON object")
    return value


def _array(value: Any, where: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise _Bad(f"{where} is not a JSON array")
    return value


def _is_text(value: str) -> bool:
    """Whether ``value`` can be stored as UTF-8 (no lone surrogates from ``\\ud800`` escapes or
    from bytes that were not UTF-8)."""
    if value.isascii():
        return True
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _string(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise _Bad(f"{where} is not a string")
    if not _is_text(value):
        raise _Bad(f"{where} is not valid UTF-8 text")
    return value


def _bytes(value: Any, where: str) -> bytes:
    """A proto ``bytes`` field: base64, standard or URL-safe, padded or not (proto3 JSON)."""
    if not isinstance(value, str):
        raise _Bad(f"{where} is not a base64 string")
    text = value.translate(_URLSAFE) if "-" in value or "_" in value else value
    if len(text) % 4:
        text += "=" * (-len(text) % 4)
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as e:
        raise _Bad(f"{where} is not valid base64 ({e})") from e


def _header_text(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


@dataclass
class _Headers:
    headers: list[dict[str, str]]
    pseudo: dict[str, str]  # the pseudo-headers that become columns, first value of each


def _headers(value: Any, where: str, mapped: tuple[str, ...]) -> _Headers:
    headers: list[dict[str, str]] = []
    pseudo: dict[str, str] = {}
    for i, item in enumerate(_array(value, where)):
        if not isinstance(item, dict):
            raise _Bad(f"{where}[{i}] is not a JSON object")
        name = item.get("key")
        text = item.get("value")
        if isinstance(name, str) and isinstance(text, str) and name.isascii() and text.isascii():
            pass  # the usual case, checked at once
        elif not isinstance(name, str) or not _is_text(name):
            raise _Bad(f"{where}[{i}].key is missing or not UTF-8 text")
        elif text is not None and (not isinstance(text, str) or not _is_text(text)):
            raise _Bad(f"{where}[{i}].value is not UTF-8 text")
        if not text:
            raw = _get(item, "raw_value")
            text = _header_text(_bytes(raw, f"{where}[{i}].raw_value")) if raw else ""
        if name in mapped:
            pseudo.setdefault(name, text)
        else:
            headers.append({"name": name, "value": text})
    return _Headers(headers, pseudo)


def _body(value: Any, where: str) -> tuple[bytes, bool]:
    """A ``Body``: its bytes and its ``truncated`` flag. No body: no bytes, not truncated."""
    body = _object(value, where)
    if body is None:
        return b"", False
    truncated = _get(body, "truncated")
    if truncated is None:
        truncated = False
    elif not isinstance(truncated, bool):
        raise _Bad(f"{where}.truncated is not true or false")
    raw = _get(body, "as_bytes")
    if raw is not None:
        return _bytes(raw, f"{where}.as_bytes"), truncated
    text = _get(body, "as_string")
    if text is not None:
        return _string(text, f"{where}.as_string").encode("utf-8"), truncated
    return b"", truncated


def _time(value: Any, where: str) -> datetime | None:
    if value is None:
        return None
    text = _string(value, where)
    try:
        moment = datetime.fromisoformat(text)
        if moment.tzinfo is None:
            raise ValueError("no time zone")
        return moment.astimezone(UTC)
    except (ValueError, OverflowError) as e:
        raise _Bad(f"{where} is not an RFC 3339 time ({text!r})") from e


def _address(value: Any, where: str) -> tuple[str, int | None] | None:
    """An ``Address``: (host, port) of a socket address, (path, None) of a pipe, else None."""
    address = _object(value, where)
    if address is None:
        return None
    socket = _object(_get(address, "socket_address"), f"{where}.socket_address")
    if socket is not None:
        host = _string(_get(socket, "address") or "", f"{where}.socket_address.address")
        port = _get(socket, "port_value")
        if isinstance(port, str) and port.isascii() and port.isdigit():
            port = int(port)
        if port is not None and (isinstance(port, bool) or not isinstance(port, int)):
            raise _Bad(f"{where}.socket_address.port_value is not a port number")
        if port is not None and not 0 <= port <= 65535:
            raise _Bad(f"{where}.socket_address.port_value is not a port number")
        return host, port
    pipe = _object(_get(address, "pipe"), f"{where}.pipe")
    if pipe is not None:
        return _string(_get(pipe, "path") or "", f"{where}.pipe.path"), None
    return None


def _host_port(address: tuple[str, int | None] | None) -> str | None:
    if address is None:
        return None
    host, port = address
    if port is None:
        return host
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


@dataclass
class _Connection:
    local: tuple[str, int | None] | None = None
    remote: tuple[str, int | None] | None = None


def _connection(value: Any, where: str) -> _Connection:
    connection = _object(value, where)
    if connection is None:
        return _Connection()
    return _Connection(
        _address(_get(connection, "local_address"), f"{where}.local_address"),
        _address(_get(connection, "remote_address"), f"{where}.remote_address"),
    )


def _status(value: str | None) -> int | None:
    if value is None:
        return None
    if not (value.isascii() and value.isdigit() and len(value) <= 3):
        raise _Bad(f":status {value!r} is not an HTTP status code")
    return int(value)


@dataclass
class _Message:
    """One side of an exchange: a request or a response."""

    headers: _Headers
    body: bytes
    truncated: bool
    received: datetime | None = None


def _message(value: Any, where: str, mapped: tuple[str, ...]) -> _Message | None:
    message = _object(value, where)
    if message is None:
        return None
    headers = _headers(_get(message, "headers"), f"{where}.headers", mapped)
    body, truncated = _body(_get(message, "body"), f"{where}.body")
    _headers(_get(message, "trailers"), f"{where}.trailers", ())
    received = _time(_get(message, "headers_received_time"), f"{where}.headers_received_time")
    return _Message(headers, body, truncated, received)


@dataclass
class _Trace:
    """The segments of one streamed trace read so far."""

    trace_id: str
    first: int  # document numbers, for the location
    last: int
    excerpt: str
    request: _Headers | None = None
    response: _Headers | None = None
    request_chunks: list[bytes] = field(default_factory=list)
    response_chunks: list[bytes] = field(default_factory=list)
    request_truncated: bool = False
    response_truncated: bool = False
    problem: str | None = None

    def add(self, segment: dict[str, Any]) -> None:
        pieces = [name for name in SEGMENT_PIECES if _get(segment, name) is not None]
        if len(pieces) != 1:
            keys = ", ".join(sorted(segment)) or "none"
            count = "no message piece" if not pieces else "several message pieces"
            raise _Bad(f"{count} (keys: {keys})")
        name = pieces[0]
        value = _get(segment, name)
        if name.endswith("_body_chunk"):
            data, truncated = _body(value, name)
            if name == "request_body_chunk":
                self.request_chunks.append(data)
                self.request_truncated |= truncated
            else:
                self.response_chunks.append(data)
                self.response_truncated |= truncated
            return
        header_map = _object(value, name, required=True)
        assert header_map is not None
        if name == "request_headers":
            if self.request is not None:
                raise _Bad(_repeated(name))
            self.request = _headers(_get(header_map, "headers"), name, REQUEST_PSEUDO)
        elif name == "response_headers":
            if self.response is not None:
                raise _Bad(_repeated(name))
            self.response = _headers(_get(header_map, "headers"), name, RESPONSE_PSEUDO)
        else:
            _headers(_get(header_map, "headers"), name, ())  # trailers: checked, not kept

    @property
    def location(self) -> str:
        return f"#{self.first}" if self.first == self.last else f"#{self.first}-{self.last}"


def _repeated(name: str) -> str:
    return (
        f"a second {name} segment for this trace_id (trace ids are unique only per Envoy "
        "process: keep the taps of each Envoy in their own files)"
    )


# Splitting a file into documents.


@dataclass
class _Document:
    number: int  # 1-based position in the file
    value: Any
    text: str | bytes  # the file's text; the document is text[start:end]
    start: int
    end: int

    def excerpt(self) -> str:
        stop = min(self.end, self.start + 4 * schema.EXCERPT_CHARS)
        return _excerpt(self.text[self.start : stop])


@dataclass
class _Broken:
    """A stretch of the file that is not a JSON document."""

    number: int
    reason: str
    excerpt: str


def _excerpt(text: str | bytes) -> str:
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="backslashreplace")
    else:
        text = text.encode("utf-8", errors="surrogateescape").decode(
            "utf-8", errors="backslashreplace"
        )
    return schema.excerpt(" ".join(text.split()))


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


_DECODER = json.JSONDecoder(parse_constant=_no_constant)


def _documents(data: bytes, source: Input) -> Iterator[_Document | _Broken]:
    """The documents of ``data`` in file order. ``InputError`` when it holds no JSON object."""
    offset = len(_BOM) if data.startswith(_BOM) else 0
    first = _BYTES_SPACE.match(data, offset).end()  # type: ignore[union-attr]
    if first == len(data):
        return
    if data[first : first + 1] != b"{":
        raise InputError(
            f"{source.name}: not Envoy tap output: it does not start with a JSON object "
            f"({_excerpt(data[first : first + 60])!r}). The envoy-tap source reads traces of the "
            "HTTP tap filter written with format JSON_BODY_AS_BYTES or JSON_BODY_AS_STRING; for "
            "PROTO_* sinks, switch the sink format to JSON, or name the right --source."
        )
    try:
        value = orjson.loads(data[offset:] if offset else data)
    except orjson.JSONDecodeError:
        pass  # several documents, or a broken one
    else:
        yield _Document(1, value, data, first, len(data))
        return
    pieces = _lines_of_documents(data, first)
    if pieces is not None:
        yield from pieces
        return
    # Bytes that are not UTF-8 survive as lone surrogates; they are rejected where they are used.
    text = data[offset:].decode("utf-8", errors="surrogateescape")
    yield from _split(text)


def _lines_of_documents(data: bytes, first: int) -> list[_Document] | None:
    """The documents of ``data`` when each starts with ``{`` at the start of a line, as Envoy's
    ``file_per_tap`` sink writes a streamed trace's segments (pretty-printed, nested objects
    indented) and as JSON lines are: each piece parsed by ``orjson``. ``None`` when a piece
    does not parse, for the exact split. A newline never occurs inside a JSON string, so when
    every piece is a whole document the pieces are the file's documents."""
    starts = [first]
    at = data.find(b"\n{", first)
    while at >= 0:
        starts.append(at + 1)
        at = data.find(b"\n{", at + 2)
    if len(starts) == 1:
        return None
    documents: list[_Document] = []
    ends = [*starts[1:], len(data)]
    for number, (start, end) in enumerate(zip(starts, ends, strict=True), 1):
        try:
            value = orjson.loads(data[start:end])
        except orjson.JSONDecodeError:
            return None
        documents.append(_Document(number, value, data, start, end))
    return documents


def _split(text: str) -> Iterator[_Document | _Broken]:
    pos = _SPACE.match(text, 0).end()  # type: ignore[union-attr]
    number = 0
    while pos < len(text):
        number += 1
        try:
            value, end = _DECODER.raw_decode(text, pos)
        except (ValueError, RecursionError) as e:
            stop = _resume(text, pos)
            yield _Broken(number, _why(e, text, pos, stop), _excerpt(text[pos : pos + 800]))
            pos = stop
            continue
        yield _Document(number, value, text, pos, end)
        pos = _SPACE.match(text, end).end()  # type: ignore[union-attr]


def _resume(text: str, pos: int) -> int:
    """Where to look for the next document after a bad one at ``pos``."""
    if text[pos] != "{":  # junk between documents: the next '{' starts one
        brace = text.find("{", pos + 1)
        return brace if brace >= 0 else len(text)
    resume = _NEXT_START.search(text, pos + 1)
    return resume.end() if resume else len(text)


def _why(error: Exception, text: str, start: int, stop: int) -> str:
    if isinstance(error, RecursionError):
        return "not valid JSON (nested too deeply)"
    if not isinstance(error, json.JSONDecodeError):
        return f"not valid JSON ({error})"
    where = f"{error.msg} at character {error.pos - start + 1} of the document"
    cut_short = stop == len(text) and (
        error.msg.startswith("Unterminated string")
        or _PARTIAL_TOKEN.fullmatch(text, error.pos) is not None
    )
    if cut_short:
        return (
            f"truncated JSON: the last document ends before it is complete ({where}). "
            "Was the file still being written, or copied in part?"
        )
    return f"not valid JSON ({where})"


# Turning documents into rows.


class _Reader:
    """Rows and rejects of the files read so far, one file after another (``begin``), cut into
    batches of many files; each file's figures are kept for the batch it ends in."""

    def __init__(self, options: Options) -> None:
        self.options = options
        self.request_id_header = options.request_id_header.lower()
        self.rows: list[dict[str, object]] = []
        self.rejects: list[dict[str, object]] = []
        self.figures: list[InputReport] = []
        self.body_bytes = 0
        self.traces: dict[str, _Trace] = {}
        self.kept = self.rejected = 0  # of the current file

    def begin(self, source: Input) -> None:
        self.source = source
        self.kept = self.rejected = 0

    def read(self, data: bytes) -> Iterator[None]:
        """Read the current file's (decompressed) bytes; yields whenever a batch is full.
        ``InputError`` when the file is not tap output at all."""
        for item in _documents(data, self.source):
            self.add(item)
            if self.full():
                yield
        yield from self.finish_traces()

    def end(self, source_name: str, raw: bytes | None) -> None:
        """Record the current file's figures (``raw``: its bytes on disk, ``None`` when it
        could not be read)."""
        self.figures.append(
            InputReport(
                path=self.source.name,
                side=self.source.side,
                source=source_name,
                size=len(raw) if raw is not None else 0,
                records=self.kept + self.rejected,
                rejected=self.rejected,
                sha256=hashlib.sha256(raw).hexdigest() if raw is not None else None,
            )
        )

    def add(self, item: _Document | _Broken) -> None:
        if isinstance(item, _Broken):
            self._reject(f"#{item.number}", item.reason, item.excerpt)
            return
        location = f"#{item.number}"
        document = item.value
        if not isinstance(document, dict):
            kind = _JSON_TYPES.get(type(document), "value")
            self._reject(location, f"not a tap trace: the document is a JSON {kind}", item)
            return
        kinds = [kind for name, kind in _KIND_NAMES.items() if name in document]
        if len(kinds) != 1:
            keys = ", ".join(sorted(document)[:8]) or "none"
            reason = (
                f"unknown trace kind: the document holds none of {', '.join(HTTP_KINDS)} "
                f"(its keys: {keys})"
                if not kinds
                else f"several traces in one document ({', '.join(kinds)}); a TraceWrapper "
                "holds one"
            )
            self._reject(location, reason, item)
            return
        kind = kinds[0]
        if kind in SOCKET_KINDS:
            reason = (
                f"{kind}: a transport-socket tap (raw connection bytes), not an HTTP exchange; "
                "tap with the HTTP tap filter (envoy.filters.http.tap) instead"
            )
            self._reject(location, reason, item)
        elif kind == BUFFERED:
            try:
                row = self._buffered(_get(document, kind), location)
            except _Bad as e:
                self._reject(location, f"{kind}: {e}", item)
            else:
                self._keep(row)
        else:
            self._segment(_get(document, kind), item)

    def _reject(self, location: str | int, reason: str, text: _Document | str | bytes) -> None:
        excerpt = text.excerpt() if isinstance(text, _Document) else text
        self.rejects.append(reject(self.source, location, reason, excerpt))
        self.rejected += 1

    def _keep(self, row: dict[str, object]) -> None:
        self.rows.append(row)
        self.kept += 1
        for column in ("request_body", "response_body"):
            body = row[column]
            if isinstance(body, bytes):
                self.body_bytes += len(body)

    def _buffered(self, value: Any, location: str) -> dict[str, object]:
        trace = _object(value, BUFFERED, required=True)
        assert trace is not None
        request = _message(_get(trace, "request"), "request", REQUEST_PSEUDO)
        if request is None:
            raise _Bad("no request message")
        response = _message(_get(trace, "response"), "response", RESPONSE_PSEUDO)
        downstream = _connection(_get(trace, "downstream_connection"), "downstream_connection")
        upstream = _connection(_get(trace, "upstream_connection"), "upstream_connection")
        return self._row(location, request, response, downstream, upstream)

    def _segment(self, value: Any, item: _Document) -> None:
        location = f"#{item.number}"
        try:
            segment = _object(value, STREAMED, required=True)
            assert segment is not None
            trace_id = _get(segment, "trace_id")
            if isinstance(trace_id, bool) or not isinstance(trace_id, str | int):
                raise _Bad("trace_id is missing or not a number")
        except _Bad as e:
            self._reject(location, f"{STREAMED}: {e}", item)
            return
        key = str(trace_id)
        trace = self.traces.get(key)
        if trace is None:
            trace = self.traces[key] = _Trace(key, item.number, item.number, item.excerpt())
        trace.last = item.number
        if trace.problem is not None:
            return
        try:
            trace.add(segment)
        except _Bad as e:
            trace.problem = f"segment #{item.number}: {e}"

    def finish_traces(self) -> Iterator[None]:
        """Turn the streamed traces into rows or rejects; yields whenever a batch is full."""
        for trace in self.traces.values():
            prefix = f"streamed trace {trace.trace_id}"
            if trace.problem is not None:
                self._reject(trace.location, f"{prefix}: {trace.problem}", trace.excerpt)
            elif trace.request is None or trace.response is None:
                missing = "request_headers" if trace.request is None else "response_headers"
                reason = (
                    f"{prefix} is incomplete: no {missing} segment in this file. Envoy writes "
                    "all segments of a trace to one file; was it copied while the stream was "
                    "open, or was the stream reset?"
                )
                self._reject(trace.location, reason, trace.excerpt)
            else:
                request = _Message(
                    trace.request, b"".join(trace.request_chunks), trace.request_truncated
                )
                response = _Message(
                    trace.response, b"".join(trace.response_chunks), trace.response_truncated
                )
                try:
                    row = self._row(trace.location, request, response, _Connection(), None)
                except _Bad as e:
                    self._reject(trace.location, f"{prefix}: {e}", trace.excerpt)
                else:
                    self._keep(row)
            if self.full():
                yield
        self.traces.clear()

    def _row(
        self,
        location: str,
        request: _Message,
        response: _Message | None,
        downstream: _Connection,
        upstream: _Connection | None,
    ) -> dict[str, object]:
        limit = self.options.max_body_bytes
        request_body, request_truncated = capped(request.body, request.truncated, limit)
        response_body: bytes | None = None
        response_truncated: bool | None = None
        status: int | None = None
        if response is not None:
            response_body, response_truncated = capped(response.body, response.truncated, limit)
            status = _status(response.headers.pseudo.get(":status"))
        start = request.received
        duration = None
        if start is not None and response is not None and response.received is not None:
            duration = (response.received - start) / _MS
        request_id = next(
            (
                h["value"]
                for h in request.headers.headers
                if h["name"].lower() == self.request_id_header
            ),
            None,
        )
        server = downstream.local
        pseudo = request.headers.pseudo
        return {
            "request_id": request_id or None,
            "side": self.source.side,
            "source": NAME,
            "location": f"{self.source.name}{location}",
            "start_time": start,
            "duration_ms": duration,
            "method": pseudo.get(":method"),
            "authority": pseudo.get(":authority"),
            "path": pseudo.get(":path"),
            "status": status,
            "upstream_host": _host_port(upstream.remote) if upstream else None,
            "client_addr": _host_port(downstream.remote),
            "server_addr": server[0] if server else None,
            "server_port": server[1] if server else None,
            "request_headers": request.headers.headers,
            "response_headers": response.headers.headers if response else None,
            "request_body": request_body,
            "response_body": response_body,
            "request_body_truncated": request_truncated,
            "response_body_truncated": response_truncated,
            "body_truncated": request_truncated or bool(response_truncated),
        }

    def full(self) -> bool:
        return len(self.rows) >= BATCH_ROWS or self.body_bytes >= BATCH_BODY_BYTES

    def batch(self) -> Batch:
        # Column by column: an order of magnitude cheaper than ``Table.from_pylist`` of rows.
        rows = self.rows
        table = pa.Table.from_arrays(
            [_column([row.get(f.name) for row in rows], f.type) for f in schema.EXCHANGES],
            schema=schema.EXCHANGES,
        )
        batch = Batch(table, self.rejects, inputs=self.figures)
        self.rows, self.rejects, self.figures, self.body_bytes = [], [], [], 0
        return batch


def _column(values: list[Any], kind: pa.DataType) -> pa.Array:
    if kind == schema.TIMESTAMP:
        # As microseconds: pyarrow converts zone-aware datetimes through pandas, whose import
        # costs each reading worker a third of a second.
        values = [None if v is None else (v - _EPOCH) // _US for v in values]
    return pa.array(values, type=kind)


def _bytes_on_disk(source: Input) -> bytes | None:
    try:
        return source.path.read_bytes()
    except OSError:
        return None


def _load(source: Input) -> tuple[bytes, bytes]:
    """The file's bytes on disk and, decompressed, its text (a tap file is one trace: small)."""
    try:
        raw = source.path.read_bytes()
    except OSError as e:
        raise InputError(
            f"{source.name}: cannot open ({e.strerror}). Check the path and permissions."
        ) from e
    if compression(raw[:4]) is None:
        return raw, raw
    try:
        with decompressing(io.BytesIO(raw)) as stream:
            return raw, stream.read()
    except (OSError, EOFError, zlib.error, ValueError, zstandard.ZstdError) as e:
        raise InputError(
            f"{source.name}: cannot be read ({e}). If it is compressed, is it complete? "
            "Decompress it by hand to check."
        ) from e


class EnvoyTapCollector:
    """Reads Envoy HTTP tap traces (buffered traces and streamed segments) as exchanges.

    >>> for batch in COLLECTOR.read(Input(Path("taps/tap_123.json"), "primary"), Options()):
    ...     batch.exchanges.num_rows, batch.rejects
    (1, [])
    """

    name = NAME

    def sniff(self, head: bytes) -> float:
        text = head[len(_BOM) :] if head.startswith(_BOM) else head
        if not text.lstrip().startswith(b"{"):
            return 0.0
        match = _MARKER.search(text)
        if match is None:
            return 0.0
        # The trace kind is the first key of a TraceWrapper document.
        return 0.95 if text[: match.start()].strip() == b"{" else 0.8

    def read(self, source: Input, options: Options) -> Iterator[Batch]:
        reader = _Reader(options)
        reader.begin(source)
        for _ in reader.read(_load(source)[1]):
            yield reader.batch()
        if reader.rows or reader.rejects:
            yield reader.batch()

    def read_many(self, sources: Sequence[Input], options: Options) -> Iterator[Batch]:
        """Read ``sources`` one after another into shared batches (a directory of
        ``file_per_tap`` files). A file that cannot be read, holds nothing or is not tap output
        is one ``rejects`` row (``file:0``), never an error."""
        reader = _Reader(options)
        for source in sources:
            reader.begin(source)
            try:
                raw, data = _load(source)
            except InputError as e:
                reader._reject(0, file_reason(e, source), b"")
                reader.end(NAME, _bytes_on_disk(source))  # its size and digest, if readable
                continue
            if not data.strip():
                reader._reject(0, "empty file: nothing to read", b"")
                reader.end("-", raw)
                continue
            try:
                for _ in reader.read(data):
                    yield reader.batch()
            except InputError as e:
                reader.traces.clear()
                reader._reject(0, file_reason(e, source), data[:200])
            reader.end(NAME, raw)
            if reader.full():
                yield reader.batch()
        if reader.rows or reader.rejects or reader.figures:
            yield reader.batch()


COLLECTOR = EnvoyTapCollector()
