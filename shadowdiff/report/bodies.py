"""Side-by-side views of example pairs: status, response headers and body, differing rows marked.

Bodies are stored as captured: bytes, possibly content-encoded, possibly cut short. A body is
shown as decoded text when it decodes to UTF-8 (JSON as one row per leaf field, other text line
by line); otherwise as sizes and a digest. Everything here is plain data: escaping is the
template's job (autoescape), so nothing in this module produces markup.
"""

from __future__ import annotations

import difflib
import hashlib
import re
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import brotli
import orjson
import zstandard

MAX_DECODED_BYTES = 1 << 20  # what a report shows is for reading, not for comparing
MAX_ROWS = 200
MAX_VALUE_CHARS = 400

Mark = Literal["diff", "noise", "differs", ""]
BodyKind = Literal["json", "text", "binary", "empty", "missing"]

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_TEXT_TYPES = ("text/", "json", "xml", "javascript", "x-www-form-urlencoded", "yaml", "csv")


@dataclass(frozen=True)
class Row:
    """One line of a side-by-side view; ``None`` means absent on that side."""

    label: str
    primary: str | None
    mirror: str | None
    mark: Mark = ""
    reason: str | None = None  # the noise reason, for a noise row


@dataclass(frozen=True)
class Body:
    """A decoded body, for display."""

    kind: BodyKind
    size: int | None  # bytes as stored
    decoded_size: int | None
    media_type: str
    digest: str | None  # sha256 prefix of the stored bytes
    note: str | None = None
    text: str | None = None  # decoded text (json and text kinds)
    value: Any = None  # parsed JSON (json kind)

    def summary(self) -> str:
        if self.kind == "missing":
            return "not captured"
        if self.kind == "empty":
            return "empty"
        size = f"{self.size:,} bytes"
        if self.decoded_size is not None and self.decoded_size != self.size:
            size += f" ({self.decoded_size:,} decoded)"
        parts = [self.kind, self.media_type or "no content-type", size]
        if self.digest:
            parts.append(f"sha256 {self.digest}")
        return ", ".join(parts)


@dataclass(frozen=True)
class DiffRef:
    """A ``diffs`` row as the view needs it."""

    part: str
    path: str
    kind: str
    noise: bool
    noise_reason: str | None = None


@dataclass(frozen=True)
class Side:
    """One side of an exchange as stored (``exchanges`` columns)."""

    status: int | None = None
    duration_ms: float | None = None
    headers: Sequence[tuple[str, str]] = ()
    body: bytes | None = None
    truncated: bool = False
    location: str | None = None


@dataclass(frozen=True)
class View:
    """What the report shows for one example pair."""

    status: list[Row] = field(default_factory=list)
    headers: list[Row] = field(default_factory=list)
    body: list[Row] = field(default_factory=list)
    body_kind: str = ""
    primary_body: str = ""
    mirror_body: str = ""
    notes: list[str] = field(default_factory=list)


def side_by_side(primary: Side, mirror: Side, diffs: Iterable[DiffRef]) -> View:
    """The rows for one pair, with the rows named by ``diffs`` marked (noise ones apart)."""
    refs = list(diffs)
    notes: list[str] = []
    status_refs = [d for d in refs if d.part == "status"]
    status = [
        Row(
            "status",
            _str(primary.status),
            _str(mirror.status),
            _mark_for(status_refs, primary.status != mirror.status),
        ),
        Row(
            "duration (ms)",
            _str(primary.duration_ms),
            _str(mirror.duration_ms),
        ),
        Row("evidence", primary.location, mirror.location),
    ]
    header_refs = {d.path.lower(): d for d in refs if d.part == "header"}
    headers = _header_rows(primary.headers, mirror.headers, header_refs)
    p_body = decode(primary.body, _header(primary.headers, "content-encoding"), primary.headers)
    m_body = decode(mirror.body, _header(mirror.headers, "content-encoding"), mirror.headers)
    for side, body, captured in (("primary", p_body, primary), ("mirror", m_body, mirror)):
        if captured.truncated:
            notes.append(f"the {side} body was cut short by the capture")
        if body.note:
            notes.append(f"{side} body: {body.note}")
    body_refs = [d for d in refs if d.part == "body"]
    if p_body.kind == "json" and m_body.kind == "json":
        rows, kind = _json_rows(p_body.value, m_body.value, body_refs), "json"
    elif p_body.kind in ("json", "text") and m_body.kind in ("json", "text"):
        rows, kind = _text_rows(p_body.text or "", m_body.text or "", body_refs), "text"
    else:
        differs = (primary.body or b"") != (mirror.body or b"")
        rows = [
            Row(
                "body",
                p_body.summary(),
                m_body.summary(),
                _mark_for(body_refs, differs and primary.body is not None),
            )
        ]
        kind = "summary"
    if len(rows) > MAX_ROWS:
        marked = [r for r in rows if r.mark]
        kept = marked[:MAX_ROWS]
        kept_ids = {id(r) for r in kept}
        rest = [r for r in rows if id(r) not in kept_ids][: MAX_ROWS - len(kept)]
        order = {id(r): i for i, r in enumerate(rows)}
        notes.append(f"{len(rows) - MAX_ROWS} of {len(rows)} body rows not shown")
        rows = sorted(kept + rest, key=lambda r: order[id(r)])
    return View(
        status=status,
        headers=headers,
        body=rows,
        body_kind=kind,
        primary_body=p_body.summary(),
        mirror_body=m_body.summary(),
        notes=notes,
    )


def decode(
    body: bytes | None,
    content_encoding: str | None,
    headers: Sequence[tuple[str, str]] = (),
) -> Body:
    """``body`` decoded for display: undo ``content_encoding`` and read it as UTF-8 text or JSON."""
    media = (_header(headers, "content-type") or "").split(";", 1)[0].strip().lower()
    if body is None:
        return Body("missing", None, None, media, None)
    if not body:
        return Body("empty", 0, 0, media, None)
    digest = hashlib.sha256(body).hexdigest()[:12]
    data, note = _undo(body, content_encoding)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return Body("binary", len(body), len(data), media, digest, note)
    textual = any(t in media for t in _TEXT_TYPES) or _printable(text)
    if not textual:
        return Body("binary", len(body), len(data), media, digest, note)
    stripped = text.lstrip()
    if "json" in media or stripped[:1] in ("{", "["):
        try:
            value = orjson.loads(data)
        except orjson.JSONDecodeError:
            pass
        else:
            return Body("json", len(body), len(data), media, digest, note, text, value)
    return Body("text", len(body), len(data), media, digest, note, text)


def _undo(body: bytes, content_encoding: str | None) -> tuple[bytes, str | None]:
    codings = [
        c.strip().lower()
        for c in (content_encoding or "").split(",")
        if c.strip() and c.strip().lower() != "identity"
    ]
    data = body
    for coding in reversed(codings):
        try:
            if coding in ("gzip", "x-gzip"):
                data = _inflate(data, 16 + zlib.MAX_WBITS)
            elif coding == "deflate":
                try:
                    data = _inflate(data, zlib.MAX_WBITS)
                except zlib.error:
                    data = _inflate(data, -zlib.MAX_WBITS)
            elif coding == "zstd":
                reader = zstandard.ZstdDecompressor().stream_reader(data, read_across_frames=True)
                data = reader.read(MAX_DECODED_BYTES)
            elif coding == "br":
                stream = brotli.Decompressor()
                data = stream.process(data, output_buffer_limit=MAX_DECODED_BYTES)
            else:
                return body, f"unknown content-encoding {coding!r}; shown as received"
        except Exception as e:  # any decoder failure: show the body as received
            return body, f"content-encoding {coding}, but it does not decode ({type(e).__name__})"
    if len(data) >= MAX_DECODED_BYTES:
        return data[:MAX_DECODED_BYTES], f"decoded body cut at {MAX_DECODED_BYTES:,} bytes"
    return data, None


def _inflate(data: bytes, wbits: int) -> bytes:
    stream = zlib.decompressobj(wbits)
    return stream.decompress(data, MAX_DECODED_BYTES)


def _printable(text: str) -> bool:
    sample = text[:2000]
    bad = sum(1 for ch in sample if ord(ch) < 32 and ch not in "\t\n\r")
    return bad == 0


def _header(headers: Sequence[tuple[str, str]], name: str) -> str | None:
    found = None
    for key, value in headers:
        if key.lower() == name:
            found = value
    return found


def _header_rows(
    primary: Sequence[tuple[str, str]],
    mirror: Sequence[tuple[str, str]],
    refs: Mapping[str, DiffRef],
) -> list[Row]:
    def grouped(headers: Sequence[tuple[str, str]]) -> dict[str, str]:
        out: dict[str, list[str]] = {}
        for name, value in headers:
            out.setdefault(name.lower(), []).append(value)
        return {k: "\n".join(v) for k, v in out.items()}

    p, m = grouped(primary), grouped(mirror)
    rows = []
    for name in dict.fromkeys([*p, *m]):
        ref = refs.get(name)
        differs = p.get(name) != m.get(name)
        rows.append(
            Row(
                name,
                _cut(p.get(name)),
                _cut(m.get(name)),
                _mark_for([ref] if ref else [], differs),
                ref.noise_reason if ref and ref.noise else None,
            )
        )
    for name, ref in refs.items():
        if name not in p and name not in m:
            rows.append(Row(name, None, None, _mark_for([ref], False)))
    return rows


def _mark_for(refs: Sequence[DiffRef], differs: bool) -> Mark:
    if any(not r.noise for r in refs):
        return "diff"
    if refs:
        return "noise"
    return "differs" if differs else ""


def _json_rows(primary: Any, mirror: Any, refs: Sequence[DiffRef]) -> list[Row]:
    p = dict(_leaves(primary))
    m = dict(_leaves(mirror))
    rows = []
    for path in dict.fromkeys([*p, *m]):
        matching = [r for r in refs if _covers(r.path, path)]
        differs = p.get(path) != m.get(path)
        reason = next((r.noise_reason for r in matching if r.noise and r.noise_reason), None)
        rows.append(
            Row(path, _cut(p.get(path)), _cut(m.get(path)), _mark_for(matching, differs), reason)
        )
    return rows


def _covers(diff_path: str, path: str) -> bool:
    """True when ``diff_path`` names ``path`` or one of its parents (``$`` covers all)."""
    if diff_path == path or diff_path == "$":
        return True
    return path.startswith(diff_path) and path[len(diff_path)] in ".["


def _leaves(value: Any, path: str = "$") -> Iterable[tuple[str, str]]:
    """``(path, JSON text)`` for every leaf, in document order; paths as in ``diffs.path``."""
    if isinstance(value, dict) and value:
        for key, item in value.items():
            yield from _leaves(item, path + _key(str(key)))
    elif isinstance(value, list) and value:
        for index, item in enumerate(value):
            yield from _leaves(item, f"{path}[{index}]")
    else:
        yield path, orjson.dumps(value).decode("utf-8")


def _key(key: str) -> str:
    if _IDENTIFIER.match(key):
        return "." + key
    return "['" + key.replace("\\", "\\\\").replace("'", "\\'") + "']"


def _text_rows(primary: str, mirror: str, refs: Sequence[DiffRef]) -> list[Row]:
    p_lines = primary.splitlines() or [""]
    m_lines = mirror.splitlines() or [""]
    real = [r for r in refs if not r.noise]
    diff_mark: Mark = "diff" if real else ("noise" if refs else "differs")
    rows: list[Row] = []
    matcher = difflib.SequenceMatcher(None, p_lines, m_lines, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            for k in range(i2 - i1):
                rows.append(Row(f"{i1 + k + 1}", _cut(p_lines[i1 + k]), _cut(m_lines[j1 + k])))
            continue
        for k in range(max(i2 - i1, j2 - j1)):
            p_line = p_lines[i1 + k] if i1 + k < i2 else None
            m_line = m_lines[j1 + k] if j1 + k < j2 else None
            label = f"{i1 + k + 1}" if p_line is not None else f"+{j1 + k + 1}"
            rows.append(Row(label, _cut(p_line), _cut(m_line), diff_mark))
    return rows


def _cut(text: str | None) -> str | None:
    if text is None or len(text) <= MAX_VALUE_CHARS:
        return text
    return text[: MAX_VALUE_CHARS - 1] + "…"


def _str(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
