"""Access logs as people keep them: the wrappers around each line taken off, and JSON that is
not one object per line made so, before the Envoy text or JSON reader sees the file.

- **CRI** (containerd, CRI-O: ``/var/log/pods/…/istio-proxy/0.log``):
  ``2026-11-28T09:16:27.162345678Z stdout F <line>``; ``P`` marks a partial line, joined to the
  next until an ``F``.
- **Docker json-file**: ``{"log": "<line>\\n", "stream": "stdout", "time": "…"}``; a ``log``
  that does not end in a newline is partial, as Docker splits lines over 16 KiB.
- **Log shippers** (Fluent Bit, Vector, Logstash exports): a JSON object per line that carries
  the access-log line in a ``log`` or ``message`` field, its time in ``@timestamp``,
  ``timestamp`` or ``time``.
- **Pretty-printed JSON** (``jq .``: one object over several lines, one after another) and a
  file holding **one JSON array** of records.

Each becomes a plain file of one access-log line per record in the run's scratch directory,
with what maps it back: the original line of each record (``location`` keeps naming the file
and line the record starts on) and the wrapper's timestamp (the fallback for ``start_time``
when the line has none). What cannot be unwrapped (a CRI line without its fields, a document
that is not JSON) is a ``rejects`` row at its original line.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from shadowdiff import schema
from shadowdiff.collect.base import (
    Input,
    location_lines,
    moved_reject_lines,
    reject,
    with_location_lines,
)
from shadowdiff.collect.lines import open_input

CRI = "CRI (containerd/CRI-O)"
DOCKER = "Docker json-file"
SHIPPER = "a log shipper's JSON"
PRETTY = "pretty-printed JSON"
ARRAY = "a JSON array"

_CRI_LINE = re.compile(
    rb"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:?\d\d)) (stdout|stderr) ([FP])"
    rb"(?: (.*))?\Z"
)
_ARRAY_START = re.compile(rb"\[\s*(\{|\]|\Z)")
_SHIPPED_TEXT = ("log", "message")
_SHIPPED_TIME = ("@timestamp", "timestamp", "time")
# An Envoy access line inside a wrapper: a JSON object, or a text line starting with the
# default formats' [START_TIME].
_ENVOY_LINE = re.compile(r"\s*(\{|\[\d{4}-\d\d-\d\dT)")
_SAMPLE_LINES = 8
_CHUNK = 4 * 1024 * 1024


# --- what a file is -----------------------------------------------------------------------------


def detect(head: bytes) -> str | None:
    """The wrapper (or JSON layout) of a file starting with ``head``, or ``None`` for a plain
    access log."""
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if _ARRAY_START.match(text):  # not "[2026-11-28T…" of a text access log
        return ARRAY
    lines = [line for line in head.split(b"\n")[:_SAMPLE_LINES] if line.strip()]
    if len(head) >= 4096 and len(lines) > 1:
        lines = lines[:-1]  # cut by the size of the head
    if not lines:
        return None
    if sum(1 for line in lines if _CRI_LINE.match(line.rstrip(b"\r"))) * 2 > len(lines):
        return CRI
    if lines[0].strip() == b"{" or (text.startswith(b"{") and _spans_lines(lines[0])):
        return PRETTY
    kinds = [_json_wrapper(line) for line in lines]
    for kind in (DOCKER, SHIPPER):
        if kinds.count(kind) * 2 > len(lines):
            return kind
    return None


def _spans_lines(first: bytes) -> bool:
    """Whether the object opening on line ``first`` goes on past it."""
    try:
        orjson.loads(first)
    except orjson.JSONDecodeError:
        return True
    return False


def _json_wrapper(line: bytes) -> str | None:
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(obj, dict):
        return None
    if isinstance(obj.get("log"), str) and "stream" in obj and "time" in obj:
        return DOCKER
    for key in _SHIPPED_TEXT:
        value = obj.get(key)
        if isinstance(value, str) and _ENVOY_LINE.match(value):
            return SHIPPER
    return None


def inner_head(head: bytes) -> bytes | None:
    """The first access-log lines inside ``head``, for sniffing their format; ``None`` when
    ``head`` has no wrapper."""
    kind = detect(head)
    if kind is None:
        return None
    lines = [record.line for record in _records(iter([head]), kind, final=False)]
    return b"\n".join(line for line in lines if line is not None)[: len(head)] or None


# --- unwrapping ---------------------------------------------------------------------------------


@dataclass
class Unwrapped:
    """A wrapped input as plain lines: ``source`` to read (named as the original), and for
    each of its lines the original line number and the wrapper's time (``None`` if none)."""

    kind: str
    source: Input
    lines: np.ndarray
    times: list[str | None]
    rejects: list[dict[str, object]] = field(default_factory=list)
    blank: int = 0

    @property
    def note(self) -> str:
        return f"unwrapped from {self.kind}: {len(self.lines):,} records"


@dataclass(frozen=True)
class _Record:
    line: bytes | None  # the access-log line, or None for a reject
    number: int  # the original line it starts on
    time: str | None = None
    problem: str | None = None
    excerpt: bytes = b""


def unwrap(source: Input, kind: str, copy: Path) -> Unwrapped:
    """Write the access-log lines of ``source`` (a ``kind`` file) to ``copy``."""
    numbers: list[int] = []
    times: list[str | None] = []
    rejects: list[dict[str, object]] = []
    blank = 0
    with open_input(source) as stream, open(copy, "wb") as out:
        for record in _records(_chunks(stream), kind, final=True):
            if record.problem is not None:
                rejects.append(reject(source, record.number, record.problem, record.excerpt))
            elif record.line is None or not record.line.strip():
                blank += 1
            else:
                out.write(record.line.replace(b"\n", b" ") + b"\n")
                numbers.append(record.number)
                times.append(record.time)
    named = Input(copy, source.side, shown=source.name)
    return Unwrapped(kind, named, np.array(numbers, dtype=np.int64), times, rejects, blank)


def _chunks(stream: BinaryIO) -> Iterator[bytes]:
    while chunk := stream.read(_CHUNK):
        yield chunk


def _records(chunks: Iterator[bytes], kind: str, final: bool) -> Iterator[_Record]:
    if kind in (PRETTY, ARRAY):
        yield from _documents(chunks, array=kind == ARRAY, final=final)
    else:
        yield from _wrapped_lines(_lines(chunks, final), kind)


def _lines(chunks: Iterator[bytes], final: bool) -> Iterator[tuple[int, bytes]]:
    """(line number, line without its end) of the text, a chunk at a time."""
    number = 0
    rest = b""
    for chunk in chunks:
        data = rest + chunk
        parts = data.split(b"\n")
        rest = parts.pop()
        for part in parts:
            number += 1
            yield number, part.rstrip(b"\r")
    if rest and final:
        yield number + 1, rest.rstrip(b"\r")


def _wrapped_lines(lines: Iterator[tuple[int, bytes]], kind: str) -> Iterator[_Record]:
    """Each wrapper line's content, partial lines joined to the next (the record starts at the
    first of them)."""
    parts: list[bytes] = []
    start = 0
    started: str | None = None
    for number, raw in lines:
        if not raw.strip():
            yield _Record(None, number)
            continue
        parsed = _cri(raw) if kind == CRI else _json_line(raw)
        if isinstance(parsed, str):
            yield _Record(None, number, problem=f"not a {kind} line: {parsed}", excerpt=raw)
            continue
        content, when, complete = parsed
        if not parts:
            start, started = number, when
        parts.append(content)
        if complete:
            yield _Record(b"".join(parts), start, started)
            parts = []
    if parts:  # the file ends inside a partial line
        yield _Record(b"".join(parts), start, started)


def _cri(raw: bytes) -> tuple[bytes, str | None, bool] | str:
    match = _CRI_LINE.match(raw)
    if match is None:
        return "expected `<time> stdout|stderr F|P <line>`"
    when, _stream, tag, content = match.groups()
    return content or b"", when.decode(), tag == b"F"


def _json_line(raw: bytes) -> tuple[bytes, str | None, bool] | str:
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        return f"not JSON ({e})"
    if not isinstance(obj, dict):
        return "not a JSON object"
    text = next((obj[k] for k in ("log", *_SHIPPED_TEXT) if isinstance(obj.get(k), str)), None)
    if text is None:
        return "no `log` or `message` field holding the line"
    when = next((str(obj[k]) for k in _SHIPPED_TIME if obj.get(k) is not None), None)
    complete = "stream" not in obj or text.endswith("\n")  # Docker splits lines over 16 KiB
    return text.rstrip("\r\n").encode(), when, complete


def _documents(chunks: Iterator[bytes], array: bool, final: bool) -> Iterator[_Record]:
    """The JSON objects of a stream of pretty-printed documents (or of one array), each as one
    compact line, numbered by the line it starts on. The text is decoded a window at a time:
    one document never needs more than its own size in memory. A document that is not JSON is
    a reject, and reading goes on at the next document (a ``{`` at the start of a line, with the
    broken one's indentation)."""
    window = _Window(array)
    for chunk in chunks:
        window.text += chunk.decode("utf-8", errors="surrogateescape")
        yield from window.decode(final=False)
    if final:
        yield from window.decode(final=True)


class _Window:
    def __init__(self, array: bool) -> None:
        self.decoder = json.JSONDecoder()
        self.array = array
        self.opened = not array  # inside the array, past its "["
        self.text = ""
        self.line = 1  # the line of text[0]

    def decode(self, final: bool) -> Iterator[_Record]:
        position = 0
        while (start := self._skip(position)) is not None:
            number = self.line + self.text.count("\n", 0, start)
            try:
                document, end = self.decoder.raw_decode(self.text, start)
            except json.JSONDecodeError as e:
                resume = self._resync(start, e, final)
                if resume is None:
                    break  # the rest of the document is in the next chunk
                excerpt = self.text[start:resume].strip()[:200].encode(errors="replace")
                yield _Record(None, number, problem=_broken(self.array, e), excerpt=excerpt)
                position = resume
                continue
            if isinstance(document, dict):
                yield _Record(_compact(document), number)
            else:
                excerpt = self.text[start:end][:200].encode(errors="replace")
                yield _Record(None, number, problem="not a JSON object", excerpt=excerpt)
            position = end
        else:
            position = len(self.text) if final else position
        self.line += self.text.count("\n", 0, position)
        self.text = self.text[position:]

    def _skip(self, position: int) -> int | None:
        """Past white space, the array's ``[`` and the commas between its items; ``None`` when
        the text (or the array) ends first."""
        text, n = self.text, len(self.text)
        while position < n:
            c = text[position]
            if c.isspace() or (self.opened and self.array and c == ","):
                position += 1
            elif self.array and not self.opened and c == "[":
                self.opened = True
                position += 1
            elif self.array and c == "]":
                return None
            else:
                return position
        return None

    def _resync(self, start: int, error: json.JSONDecodeError, final: bool) -> int | None:
        """Where the next document starts after a broken one at ``start``; ``None`` to wait for
        more text (the document may only be incomplete)."""
        incomplete = error.pos >= len(self.text) - 1 or error.msg.startswith("Unterminated")
        indent = start - (self.text.rfind("\n", 0, start) + 1)
        marker = "\n" + " " * indent + "{"
        found = self.text.find(marker, max(error.pos, start + 1))
        if found >= 0 and not (incomplete and not final):
            return found + 1
        if final:
            return len(self.text)
        return None


def _broken(array: bool, error: json.JSONDecodeError) -> str:
    what = "an item of the array" if array else "a document"
    return f"{what} that is not JSON, or cut short ({error.msg})"


def _compact(document: dict[str, Any]) -> bytes:
    return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode(
        "utf-8", errors="surrogateescape"
    )


# --- back to the original file ------------------------------------------------------------------


def restore(table: pa.Table, unwrapped: Unwrapped) -> pa.Table:
    """``table`` (read from the unwrapped copy) with ``location`` naming the original line and
    ``start_time``, where the line had none, the wrapper's time."""
    if table.num_rows == 0:
        return table
    name = unwrapped.source.name
    index = pc.subtract(location_lines(table, name), 1)
    table = with_location_lines(table, name, pa.array(unwrapped.lines).take(index))
    start = table.column("start_time")
    if start.null_count and any(t is not None for t in unwrapped.times):
        times = _timestamps(unwrapped.times).take(index)
        filled = pc.coalesce(start, times.cast(start.type))
        table = table.set_column(table.schema.get_field_index("start_time"), "start_time", filled)
    return table


def restore_rejects(rows: list[dict[str, object]], unwrapped: Unwrapped) -> list[dict[str, object]]:
    """Rejects of the copy at the original lines."""
    lines = unwrapped.lines
    return moved_reject_lines(
        rows, unwrapped.source.name, lambda n: lines[n - 1] if 1 <= n <= len(lines) else None
    )


_FRACTION = re.compile(r"(\.\d{6})\d+")


def _timestamps(texts: list[str | None]) -> pa.Array:
    """Wrapper times as UTC timestamps (nanoseconds cut to microseconds); one that cannot be
    read is null."""
    parsed: list[datetime | None] = []
    for text in texts:
        try:
            when = None if text is None else datetime.fromisoformat(_FRACTION.sub(r"\1", text))
        except ValueError:
            when = None
        if when is not None and when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        parsed.append(when)
    return pa.array(parsed, schema.TIMESTAMP)
