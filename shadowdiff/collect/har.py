"""The ``har`` collector: HTTP Archive 1.2 files, as browsers' devtools (Chrome, Firefox, Edge,
Safari), mitmproxy, Insomnia, Charles and Fiddler export them.

What a file holds (the HAR 1.2 specification, and the exports in mitmproxy's test data). One JSON
object; ``log.entries`` is an array of exchanges, each with ``startedDateTime`` (ISO 8601),
``time`` (total milliseconds), ``timings`` (``blocked``, ``dns``, ``connect``, ``send``,
``wait``, ``receive``, ``ssl``: milliseconds, ``-1`` for not applicable, ``ssl`` already counted
in ``connect``), ``request`` (``method``, ``url``, ``httpVersion``, ``headers`` as a list of
``{name, value}``, ``postData`` with ``text`` or ``params``, ``bodySize``) and ``response``
(``status``, ``headers``, ``content`` with ``text``, ``encoding`` (``base64`` for binary bodies),
``size`` and ``mimeType``, ``bodySize``). Devtools write HTTP/2 requests with their pseudo-headers
(``:authority``, ``:method``, ``:path``, ``:scheme``) in the header list. Files are indented with
spaces or tabs, or not at all, and may start with a UTF-8 byte order mark (Fiddler writes one).

Decisions:

- A *record* is an entry: each becomes one exchange or one ``rejects`` row (location
  ``<file>#<n>``, ``n`` the entry's position, 1-based). A file that is not a HAR at all (not a
  JSON object, no ``log.entries``, cut before its entries) raises ``InputError``.
- A HAR is one side's recording and names no side: ``side`` is the input's (``--primary a.har
  --mirror b.har``), or left to normalisation (``[sides]`` rules, the ``-shadow`` authority).
- ``request_id`` is the request's ``Options.request_id_header`` (first, any case, not empty).
  Without one it is null, and normalisation turns the exchange into a ``rejects`` row ("no
  request id") until pairing by fingerprint takes it. A response header of that name is not
  used: a server that makes up an id makes up a different one on each side.
- ``:method``, ``:path`` and ``:authority`` become columns and leave the header list, as in
  taps; ``:scheme`` stays. Without them, method, authority (without userinfo) and path with its
  query come from ``method`` and ``url``; the fragment, never sent, is dropped.
- The request body is ``postData.text`` (base64-decoded where the exporter says
  ``encoding: base64``); a ``postData`` with only ``params`` is rebuilt as a URL-encoded form
  (HAR keeps no uploaded file's bytes). No ``postData``: an empty body, or not captured (null)
  when ``bodySize`` says there was one. The response body is ``content.text`` (base64-decoded
  for ``encoding: base64``); without ``text``, empty or, when ``content.size`` is positive, not
  captured. Exporters store bodies decoded while the headers still name the server's
  ``content-encoding``: the headers are kept as recorded (a change of encoding is a real
  difference) and the response body is encoded again with the codings they name (gzip, deflate,
  br, zstd; fast settings, no timestamps, so equal bodies stay equal bytes), so that an
  exchange from a HAR is what one from a tap is, the body as its headers describe it, and the
  diff stage decodes it as any other. A body that already carries the coding's magic bytes, or
  whose headers name a coding shadowdiff does not know, is stored as it is.
- A response with ``status`` 0 means the exporter saw no answer (mitmproxy's flows without a
  response, devtools' failed or blocked requests): the exchange is kept with the response
  columns null, like an unanswered tap trace. An entry without a ``response`` object is
  rejected (HAR requires one). An entry served from the browser's cache (Chrome's
  ``_fromCache``) never reached a server and is rejected.
- ``start_time`` is ``startedDateTime`` (without an offset: UTC; one that does not parse rejects
  the entry; none: null); ``duration_ms`` is ``time``, else the sum of the non-negative
  ``timings`` but ``ssl``. ``server_addr`` is ``serverIPAddress``, ``server_port`` the URL's port
  (or the scheme's), ``protocol`` ``httpVersion`` as Envoy writes it (``HTTP/1.1``, ``HTTP/2``,
  ``HTTP/3``), ``bytes_received``/``bytes_sent`` the request's and response's ``bodySize``.
  Bodies longer than ``Options.max_body_bytes`` are cut there and marked truncated.
- Large files (a 200 MB export) are read entry by entry, in pieces of ``READ_BYTES`` read as
  needed, and ``orjson`` parses each entry alone: memory holds about one entry's text and one
  batch of rows, never the document (measured on a 200 MB devtools-like export: 4.7 s and
  265 MiB peak RSS, against 850 MiB for parsing it whole). Where an entry ends is
  found from its layout when it is pretty-printed, as exporters write it (its closing brace
  starts a line indented as its opening one; the parse confirms it), else by a scan over its
  strings and brackets, by regular expressions. An entry that is not valid JSON is rejected
  and the next one read; where the brackets themselves no longer match, or the file ends
  inside an entry, that entry is rejected and reading stops.
"""

from __future__ import annotations

import base64
import binascii
import gzip
import re
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, BinaryIO
from urllib.parse import SplitResult, quote_plus, urlsplit

import brotli
import orjson
import zstandard

from shadowdiff import schema
from shadowdiff.collect.base import Batch, Input, Options, reject, rows_table
from shadowdiff.collect.lines import open_input
from shadowdiff.errors import InputError

NAME = "har"
READ_BYTES = 1 << 20
GUESS_BYTES = 16 << 20  # an entry longer than this is delimited by the scan, not by its layout
BATCH_ROWS = 5_000
BATCH_BODY_BYTES = 64 * 1024 * 1024
REQUEST_PSEUDO = (":method", ":path", ":authority")
RESPONSE_PSEUDO = (":status",)
TIMING_PARTS = ("blocked", "dns", "connect", "send", "wait", "receive")  # ssl is in connect
DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}

_BOM = b"\xef\xbb\xbf"
_SPACE = re.compile(rb"[ \t\r\n]*")
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_LINE_END = re.compile(rb"[ \t]*\r?\n")
_BETWEEN_BRACKETS = re.compile(rb'(?:[^"\[\]{}]+|"[^"\\]*(?:\\.[^"\\]*)*")*')
_SCALAR = re.compile(rb"[^ \t\r\n,:\[\]{}\"]+")
_CLOSERS = {ord("}"): ord("{"), ord("]"): ord("[")}
_SNIFF_LOG = re.compile(rb'\A[ \t\r\n]*\{[ \t\r\n]*"log"[ \t\r\n]*:[ \t\r\n]*\{')
_SNIFF_KEYS = re.compile(rb'"(?:entries|creator)"[ \t\r\n]*:')
_PROTOCOLS = {"http/1.0": "HTTP/1.0", "http/1.1": "HTTP/1.1", "http/2": "HTTP/2", "h2": "HTTP/2"}
_PROTOCOLS |= {"http/2.0": "HTTP/2", "h2c": "HTTP/2", "http/3": "HTTP/3", "h3": "HTTP/3"}
_PROTOCOLS |= {"http/3.0": "HTTP/3"}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)


class _Bad(Exception):
    """An entry that cannot be used; the message is the ``rejects`` reason."""


class _Cut(Exception):
    """The file ends inside a JSON value."""


class _Broken(Exception):
    """The bytes at ``position`` cannot be where they are in a JSON document."""

    def __init__(self, what: str, position: int) -> None:
        super().__init__(f"{what} at byte {position + 1}")


# Scanning the document.


class _Scanner:
    """The file's bytes read piece by piece, and a position in them. ``buffer`` only grows while
    a value is scanned (its positions stay valid); ``release`` drops what was read before the
    position, between entries."""

    def __init__(self, stream: BinaryIO) -> None:
        self.stream = stream
        self.buffer = b""
        self.pos = 0
        self.base = 0  # the file offset of buffer[0]
        self.eof = False

    def more(self) -> bool:
        """Read another piece (at least as large as what is held past the position, so a long
        value is scanned in time linear in its size). ``False`` at the end of the file."""
        if self.eof:
            return False
        piece = self.stream.read(max(READ_BYTES, len(self.buffer) - self.pos))
        if not piece:
            self.eof = True
            return False
        self.buffer += piece
        return True

    def release(self) -> None:
        """Forget the bytes before the position, once they are many (copying what is left
        costs as much as the bytes dropped, not more)."""
        if self.pos >= READ_BYTES:
            self.base += self.pos
            self.buffer = self.buffer[self.pos :]
            self.pos = 0

    @property
    def offset(self) -> int:
        return self.base + self.pos

    def next_byte(self) -> int | None:
        """The first byte past white space (the position moves to it); ``None`` at the end."""
        while True:
            self.pos = _SPACE.match(self.buffer, self.pos).end()  # type: ignore[union-attr]
            if self.pos < len(self.buffer):
                return self.buffer[self.pos]
            if not self.more():
                return None

    def expect(self, char: bytes, what: str) -> None:
        found = self.next_byte()
        if found is None:
            raise _Cut()
        if found != char[0]:
            raise _Broken(f"{what} expected, {chr(found)!r} found", self.offset)
        self.pos += 1

    def string_end(self, start: int) -> int:
        """Where the JSON string starting at ``start`` ends."""
        while True:
            match = _STRING.match(self.buffer, start)
            if match is not None:
                return match.end()
            if not self.more():
                raise _Cut()

    def value_end(self) -> int:
        """Where the JSON value at the position ends. Only strings and brackets are checked;
        the value's own parser judges the rest."""
        first = self.next_byte()
        if first is None:
            raise _Cut()
        start = self.pos
        if first == ord('"'):
            return self.string_end(start)
        if first in (ord("{"), ord("[")):
            return self._nested_end(start)
        while True:
            match = _SCALAR.match(self.buffer, start)
            if match is None:
                raise _Broken(f"a JSON value expected, {chr(first)!r} found", self.base + start)
            if match.end() < len(self.buffer) or not self.more():
                return match.end()

    def _nested_end(self, start: int) -> int:
        # Everything but brackets (strings whole, brackets in them too) is skipped by one
        # regular expression: Python sees only the brackets.
        openers: list[int] = []
        at = start
        while True:
            at = _BETWEEN_BRACKETS.match(self.buffer, at).end()  # type: ignore[union-attr]
            if at == len(self.buffer) or self.buffer[at] == ord('"'):
                # The piece ends here, or inside the string starting here.
                if not self.more():
                    raise _Cut()
                continue
            char = self.buffer[at]
            if char in _CLOSERS:
                if not openers or openers[-1] != _CLOSERS[char]:
                    raise _Broken(f"unbalanced {chr(char)!r}", self.base + at)
                openers.pop()
                at += 1
                if not openers:
                    return at
            else:
                openers.append(char)
                at += 1

    def indented_end(self) -> int | None:
        """Where the object at the position ends, if it is pretty-printed: its ``{`` ends a line
        and the ``}`` that closes it starts a line with the same indentation (a newline never
        occurs inside a JSON string). ``None`` when it is not laid out so, or the file ends
        first. Only a guess, and a cheap one: the parser must accept what it delimits."""
        line_start = self.buffer.rfind(b"\n", 0, self.pos) + 1
        indent = self.buffer[line_start : self.pos]
        if indent.strip(b" \t") or not self.buffer.startswith(b"{", self.pos):
            return None
        while (after := _LINE_END.match(self.buffer, self.pos + 1)) is None:
            if len(self.buffer) - self.pos > 256 or not self.more():
                return None
        closing = b"\n" + indent + b"}"
        at = after.end() - 1
        while True:
            found = self.buffer.find(closing, at)
            if found >= 0:
                return found + len(closing)
            at = max(at, len(self.buffer) - len(closing))
            if len(self.buffer) - self.pos > GUESS_BYTES or not self.more():
                return None

    def skip_value(self) -> None:
        self.pos = self.value_end()

    def keys(self) -> Iterator[bytes]:
        """The keys of the object whose ``{`` is at the position, as raw JSON strings; after
        each key the position is at its value, which the caller reads or skips."""
        self.expect(b"{", "'{'")
        first = True
        while True:
            found = self.next_byte()
            if found is None:
                raise _Cut()
            if found == ord("}"):
                self.pos += 1
                return
            if not first:
                self.expect(b",", "',' or '}'")
                found = self.next_byte()
            first = False
            if found is None:
                raise _Cut()
            if found != ord('"'):
                raise _Broken("an object key expected", self.offset)
            end = self.string_end(self.pos)
            key = self.buffer[self.pos : end]
            self.pos = end
            self.expect(b":", "':'")
            yield key


@dataclass
class _Piece:
    """An entry: its text and parsed value, or why it cannot be read."""

    number: int
    text: bytes = b""
    value: Any = None
    problem: str | None = None


def _entries(scanner: _Scanner, source: Input) -> Iterator[_Piece]:
    """The entries of the HAR document, one by one. ``InputError`` when the file is not a HAR
    or ends before its entries."""
    try:
        found = _find_entries(scanner, source)
    except (_Cut, _Broken) as e:
        where = "ends before its log.entries" if isinstance(e, _Cut) else f"is not JSON ({e})"
        raise InputError(
            f"{source.name}: not a usable HAR file: it {where}. Export it again, or check that "
            "the copy is complete."
        ) from None
    if not found:
        raise InputError(
            f"{source.name}: not a HAR file: it holds no log.entries array (a HAR is "
            '{"log": {"entries": [...]}}).'
        )
    yield from _array_items(scanner)


def _find_entries(scanner: _Scanner, source: Input) -> bool:
    """Move to the ``[`` of ``log.entries``; ``False`` if the document has none."""
    scanner.more()
    if scanner.buffer.startswith(_BOM):
        scanner.pos = len(_BOM)
    first = scanner.next_byte()
    if scanner.buffer.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise InputError(
            f"{source.name}: the file is UTF-16 text; HAR files are read as UTF-8. Convert it "
            f"first: iconv -f UTF-16 -t UTF-8 {source.name} > export.har"
        )
    if first != ord("{"):
        shown = "nothing" if first is None else repr(scanner.buffer[scanner.pos :][:40])
        raise InputError(
            f"{source.name}: not a HAR file: it does not start with a JSON object ({shown}). "
            "A HAR export is one JSON object with a log.entries array."
        )
    for key in scanner.keys():
        if key != b'"log"':
            scanner.skip_value()
            continue
        if scanner.next_byte() != ord("{"):
            raise InputError(f"{source.name}: not a HAR file: its log is not a JSON object.")
        for log_key in scanner.keys():
            if log_key == b'"entries"':
                if scanner.next_byte() != ord("["):
                    raise InputError(f"{source.name}: not a HAR file: log.entries is not an array.")
                return True
            scanner.skip_value()
        return False
    return False


def _array_items(scanner: _Scanner) -> Iterator[_Piece]:
    """The items of the array whose ``[`` is at the position, parsed one by one."""
    scanner.pos += 1
    number = 0
    while True:
        scanner.release()
        inside = False
        try:
            found = scanner.next_byte()
            if found is None:
                raise _Cut()
            if found == ord("]"):
                return
            if number:
                scanner.expect(b",", "',' or ']' after an entry")
                if scanner.next_byte() is None:
                    raise _Cut()
            inside = True
            piece = _item(scanner, number + 1)
        except _Cut:
            yield _Piece(number + 1, problem=_cut(number, inside))
            return
        except _Broken as e:
            reason = f"not valid JSON ({e}); the entries after it cannot be told apart"
            yield _Piece(number + 1, problem=reason)
            return
        number += 1
        yield piece


def _item(scanner: _Scanner, number: int) -> _Piece:
    """The value at the position, parsed; the position moves past it. A pretty-printed object
    is delimited by its indentation, else (or when that guess does not parse) by the scan."""
    start = scanner.pos
    guess = scanner.indented_end()
    if guess is not None:
        text = scanner.buffer[start:guess]
        try:
            value = orjson.loads(text)
        except orjson.JSONDecodeError:
            pass
        else:
            scanner.pos = guess
            return _Piece(number, text, value)
    end = scanner.value_end()
    text = scanner.buffer[start:end]
    scanner.pos = end
    try:
        return _Piece(number, text, orjson.loads(text))
    except orjson.JSONDecodeError as e:
        return _Piece(number, text, problem=f"not valid JSON ({e})")


def _cut(number: int, inside: bool) -> str:
    where = "inside this entry" if inside else f"after entry {number}, before log.entries ends"
    return f"truncated: the file ends {where}. Was it still being written, or copied in part?"


# Reading one entry.


def _object(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _Bad(f"{where} is missing or not a JSON object")
    return value


def _optional_object(value: Any, where: str) -> dict[str, Any] | None:
    return None if value is None else _object(value, where)


def _text(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise _Bad(f"{where} is missing or not a string")
    return value


def _number(value: Any) -> float | None:
    """A number of the file, ``None`` for none, ``-1`` (not applicable) and other types."""
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        return None
    return float(value)


def _headers(
    value: Any, where: str, mapped: tuple[str, ...]
) -> tuple[list[dict[str, str]], dict[str, str]]:
    """The header list, and the first value of each pseudo-header of ``mapped`` (left out)."""
    if value is None:
        return [], {}
    if not isinstance(value, list):
        raise _Bad(f"{where} is not a JSON array")
    try:
        # The usual case, checked at once: every item a {name, value} of strings.
        headers = [{"name": h["name"], "value": h["value"]} for h in value]
        plain = all(type(h["name"]) is str and type(h["value"]) is str for h in headers)
    except (TypeError, KeyError):
        plain = False
    if not plain:
        headers = [_header(item, f"{where}[{i}]") for i, item in enumerate(value)]
    pseudo: dict[str, str] = {}
    if any(h["name"][:1] == ":" for h in headers):
        for h in headers:
            name = h["name"].lower()
            if name in mapped:
                pseudo.setdefault(name, h["value"])
        headers = [h for h in headers if h["name"].lower() not in mapped]
    return headers, pseudo


def _header(item: Any, where: str) -> dict[str, str]:
    item = _object(item, where)
    name = _text(item.get("name"), f"{where}.name")
    text = item.get("value")
    if text is not None and not isinstance(text, str):
        raise _Bad(f"{where}.value is not a string")
    return {"name": name, "value": text or ""}


def _decoded(text: str, encoding: Any, where: str) -> bytes:
    """A body text of the file as bytes: base64-decoded when ``encoding`` says so."""
    if encoding is None or encoding == "":
        return text.encode("utf-8", "surrogatepass")
    if not isinstance(encoding, str) or encoding.lower() != "base64":
        raise _Bad(f"{where}.encoding {encoding!r} is not one shadowdiff reads (base64)")
    try:
        return base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError) as e:
        raise _Bad(f"{where}.text is not valid base64 ({e})") from e


def _request_body(request: dict[str, Any]) -> bytes | None:
    post = _optional_object(request.get("postData"), "request.postData")
    if post is None:
        size = _number(request.get("bodySize"))
        return None if size else b""
    text = post.get("text")
    params = post.get("params") or []
    if not isinstance(params, list):
        raise _Bad("request.postData.params is not a JSON array")
    if text is not None and (text != "" or not params):
        return _decoded(_text(text, "request.postData.text"), post.get("encoding"), "postData")
    fields = []
    for i, param in enumerate(params):
        param = _object(param, f"request.postData.params[{i}]")
        name = _text(param.get("name"), f"request.postData.params[{i}].name")
        value = param.get("value") or ""
        fields.append(f"{quote_plus(name)}={quote_plus(_text(value, 'a param value'))}")
    return "&".join(fields).encode()


def _response_body(response: dict[str, Any]) -> bytes | None:
    content = _optional_object(response.get("content"), "response.content")
    if content is None:
        return None
    text = content.get("text")
    if text is None:
        return None if _number(content.get("size")) else b""
    return _decoded(_text(text, "response.content.text"), content.get("encoding"), "content")


def _gzip(data: bytes) -> bytes:
    return gzip.compress(data, compresslevel=1, mtime=0)


_ENCODERS: dict[str, Callable[[bytes], bytes]] = {
    "gzip": _gzip,
    "x-gzip": _gzip,
    "deflate": lambda data: zlib.compress(data, 1),
    "br": lambda data: brotli.compress(data, quality=1),
    "zstd": lambda data: zstandard.ZstdCompressor(level=1).compress(data),
}
_MAGIC = {"gzip": b"\x1f\x8b", "x-gzip": b"\x1f\x8b", "zstd": b"\x28\xb5\x2f\xfd"}


def _encoded(body: bytes | None, headers: list[dict[str, str]]) -> bytes | None:
    """A response body the exporter decoded, in the content-encoding its headers name."""
    named = ",".join(h["value"] for h in headers if h["name"].lower() == "content-encoding")
    codings = [c.strip().lower() for c in named.split(",") if c.strip()]
    codings = [c for c in codings if c != "identity"]
    if not body or not codings or any(c not in _ENCODERS for c in codings):
        return body
    if body.startswith(_MAGIC.get(codings[-1], b"\0\0\0\0\0")):
        return body  # the exporter kept the bytes as sent
    for coding in codings:
        body = _ENCODERS[coding](body)
    return body


def _started(value: Any) -> int | None:
    """``startedDateTime`` as microseconds since the epoch."""
    if value is None:
        return None
    text = _text(value, "startedDateTime")
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise _Bad(f"startedDateTime {text[:60]!r} is not an ISO 8601 date and time") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - _EPOCH) // _US


def _duration(entry: dict[str, Any]) -> float | None:
    total = _number(entry.get("time"))
    if total is not None:
        return total
    timings = entry.get("timings")
    if not isinstance(timings, dict):
        return None
    parts = [_number(timings.get(name)) for name in TIMING_PARTS]
    known = [p for p in parts if p is not None]
    return sum(known) if known else None


def _url(text: str) -> SplitResult:
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 - raises for a port that is not a number
    except ValueError as e:
        raise _Bad(f"request.url {text[:80]!r} is not a URL ({e})") from None
    return parts


def _path(parts: SplitResult) -> str:
    path = parts.path or "/"
    return f"{path}?{parts.query}" if parts.query else path


def _status(value: Any) -> int:
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 999:
        raise _Bad(f"response.status {value!r} is not an HTTP status code")
    if 0 < value < 100:
        raise _Bad(f"response.status {value!r} is not an HTTP status code")
    return value


def _protocol(value: Any) -> str | None:
    if not isinstance(value, str) or not value:
        return None
    return _PROTOCOLS.get(value.lower(), value)


def _capped(body: bytes | None, limit: int) -> tuple[bytes | None, bool | None]:
    if body is None:
        return None, None
    if len(body) > limit:
        return body[:limit], True
    return body, False


def _row(
    entry: dict[str, Any], options: Options, location: str, side: str | None
) -> dict[str, object]:
    """The exchange of one entry; ``_Bad`` when it cannot be one."""
    if entry.get("_fromCache"):
        raise _Bad(
            f"served from the browser's {entry['_fromCache']} cache: the request never reached "
            "a server"
        )
    request = _object(entry.get("request"), "request")
    if entry.get("response") is None:
        raise _Bad("no response object (HAR 1.2 requires one; a missing answer is status 0)")
    response = _object(entry.get("response"), "response")
    url = _url(_text(request.get("url"), "request.url"))
    request_headers, pseudo = _headers(request.get("headers"), "request.headers", REQUEST_PSEUDO)
    limit = options.max_body_bytes
    request_body, request_truncated = _capped(_request_body(request), limit)
    wanted = options.request_id_header.lower()
    request_id = next(
        (h["value"] for h in request_headers if h["name"].lower() == wanted and h["value"]),
        None,
    )
    row: dict[str, object] = {
        "request_id": request_id,
        "side": side,
        "source": NAME,
        "location": location,
        "start_time": _started(entry.get("startedDateTime")),
        "method": pseudo.get(":method") or _text(request.get("method"), "request.method"),
        "authority": pseudo.get(":authority") or url.netloc.rpartition("@")[2] or None,
        "path": pseudo.get(":path") or _path(url),
        "protocol": _protocol(request.get("httpVersion")),
        "server_addr": _server_addr(entry.get("serverIPAddress")),
        "server_port": url.port or DEFAULT_PORTS.get(url.scheme.lower()),
        "bytes_received": _size(request.get("bodySize")),
        "request_headers": request_headers,
        "request_body": request_body,
        "request_body_truncated": request_truncated,
        "body_truncated": bool(request_truncated),
    }
    status = _status(response.get("status"))
    if status:
        response_headers, _ = _headers(response.get("headers"), "response.headers", RESPONSE_PSEUDO)
        body = _encoded(_response_body(response), response_headers)
        response_body, response_truncated = _capped(body, limit)
        row |= {
            "duration_ms": _duration(entry),
            "status": status,
            "response_headers": response_headers,
            "response_body": response_body,
            "response_body_truncated": response_truncated,
            "bytes_sent": _size(response.get("bodySize")),
            "body_truncated": bool(request_truncated) or bool(response_truncated),
        }
    return row


def _server_addr(value: Any) -> str | None:
    if not isinstance(value, str) or not value:
        return None
    return value[1:-1] if value.startswith("[") and value.endswith("]") else value


def _size(value: Any) -> int | None:
    size = _number(value)
    return int(size) if size is not None and size < 2**63 else None


# Rows into batches.


class _Reader:
    def __init__(self, source: Input, options: Options) -> None:
        self.source = source
        self.options = options
        self.rows: list[dict[str, object]] = []
        self.rejects: list[dict[str, object]] = []
        self.body_bytes = 0

    def add(self, piece: _Piece) -> None:
        location = f"#{piece.number}"
        if piece.problem is not None:
            self._reject(location, piece.problem, piece.text)
            return
        if not isinstance(piece.value, dict):
            self._reject(location, "the entry is not a JSON object", piece.text)
            return
        try:
            row = _row(piece.value, self.options, f"{self.source.name}{location}", self.source.side)
        except _Bad as e:
            self._reject(location, str(e), piece.text)
            return
        self.rows.append(row)
        for column in ("request_body", "response_body"):
            body = row.get(column)
            if isinstance(body, bytes):
                self.body_bytes += len(body)

    def _reject(self, location: str, reason: str, text: bytes) -> None:
        excerpt = " ".join(text[: 4 * schema.EXCERPT_CHARS].decode("utf-8", "replace").split())
        self.rejects.append(reject(self.source, location, reason, excerpt))

    def full(self) -> bool:
        return len(self.rows) >= BATCH_ROWS or self.body_bytes >= BATCH_BODY_BYTES

    def batch(self) -> Batch:
        batch = Batch(rows_table(self.rows), self.rejects)
        self.rows, self.rejects, self.body_bytes = [], [], 0
        return batch


class HarCollector:
    """Reads HAR 1.2 exports (one side's recording each) as exchanges.

    >>> batches = COLLECTOR.read(Input(Path("primary.har"), "primary"), Options())
    >>> sum(b.exchanges.num_rows for b in batches)
    42
    """

    name = NAME

    def sniff(self, head: bytes) -> float:
        """Sure for ``{"log": {`` at the start; fairly sure for a JSON object whose first bytes
        name a ``"log"`` and its ``"entries"`` or ``"creator"``."""
        text = head[len(_BOM) :] if head.startswith(_BOM) else head
        if _SNIFF_LOG.match(text):
            return 0.95
        if text.lstrip().startswith(b"{") and b'"log"' in text and _SNIFF_KEYS.search(text):
            return 0.85
        return 0.0

    def read(self, source: Input, options: Options) -> Iterator[Batch]:
        reader = _Reader(source, options)
        with open_input(source) as stream:
            try:
                for piece in _entries(_Scanner(stream), source):
                    reader.add(piece)
                    if reader.full():
                        yield reader.batch()
            except (OSError, EOFError, zlib.error, zstandard.ZstdError) as e:
                raise InputError(
                    f"{source.name}: cannot be read ({e}). If it is compressed, is it "
                    "complete? Decompress it by hand to check."
                ) from e
        if reader.rows or reader.rejects:
            yield reader.batch()


COLLECTOR = HarCollector()
