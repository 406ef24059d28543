"""Body comparison: decode both sides, tell JSON from text from binary, and diff accordingly.

A side's body is JSON when its content type says so (``application/json``, ``*+json``) or, for
no type, ``text/plain`` and ``application/octet-stream``, when it starts like a JSON document and
parses. A body announced as JSON that does not parse is compared as text, with a note. Text is
diffed by lines (:mod:`~shadowdiff.diff.text_body`); anything else that differs is one
``binary`` row.

Bodies that cannot be compared leave a note and no rows: not captured on one side, truncated by
the capture, or cut by the decoded-size cap. Everything else that goes wrong with a body (an
encoding it does not have, an unknown charset) is a note too; nothing here raises on bad input.
"""

from __future__ import annotations

import codecs
from functools import lru_cache
from typing import Any, Literal, NamedTuple

import orjson

from shadowdiff.diff import json_body, text_body
from shadowdiff.diff.decode import charset, decode, encode, media_type, text
from shadowdiff.diff.model import REDACTED, Row
from shadowdiff.diff.rules import Rules
from shadowdiff.redact import Redactor

Shape = Literal["empty", "json", "text", "binary"]

_JSON_MEDIA = frozenset({"application/json", "text/json", "application/x-json"})
_TEXT_MEDIA = frozenset(
    {
        "application/xml",
        "application/javascript",
        "application/ecmascript",
        "application/x-www-form-urlencoded",
        "application/x-ndjson",
        "application/graphql",
        "application/yaml",
        "application/x-yaml",
    }
)
# Types that say little about the content: the body is sniffed.
_SNIFFED_MEDIA = frozenset({"", "text/plain", "application/octet-stream"})
_BINARY_FAMILIES = frozenset({"image", "audio", "video", "font", "model"})
_UTF8 = frozenset({"utf-8", "utf8", "us-ascii", "ascii"})
_SNIFF_BYTES = 8192
_OPENERS = (b"{", b"[")


class Side(NamedTuple):
    """What body comparison needs from one side's response (a tuple: built once per pair)."""

    body: bytes | None
    truncated: bool = False
    content_type: str | None = None
    content_encoding: str | None = None


class BodyResult(NamedTuple):
    """The body rows (``Diff`` fields as tuples) of a pair, notes, and ``settled``: the bodies
    were captured and have no real difference, or cannot be compared (truncated), so framing
    headers such as ``content-length`` are no evidence of a difference either."""

    rows: list[Row]
    notes: list[str]
    settled: bool


_NOTHING = BodyResult([], [], False)
_EQUAL = BodyResult([], [], True)


class _Read(NamedTuple):
    shape: Shape
    data: bytes
    document: Any
    content_type: str | None


# A Side, or any tuple of its fields (the engine's hot path passes plain tuples).
SideFields = tuple[bytes | None, bool, str | None, str | None]


def compare(primary: SideFields, mirror: SideFields, rules: Rules) -> BodyResult:
    """Compare two bodies (see the module docstring)."""
    body_a, cut_a, type_a, coding_a = primary
    body_b, cut_b, type_b, coding_b = mirror
    if body_a is None or body_b is None:
        if body_a is body_b:
            return _NOTHING
        missing = "primary" if body_a is None else "mirror"
        return BodyResult([], [f"{missing} body not captured; bodies not compared"], False)
    if cut_a or cut_b:
        cut = " and ".join(s for s, c in (("primary", cut_a), ("mirror", cut_b)) if c)
        # Settled too: a framing header cannot tell more than the bodies could.
        return BodyResult([], [f"{cut} body truncated by the capture; bodies not compared"], True)
    if body_a == body_b and coding_a == coding_b:
        return _EQUAL

    notes: list[str] = []
    if coding_a or coding_b:
        decoded = []
        for label, raw, coding in (("primary", body_a, coding_a), ("mirror", body_b, coding_b)):
            result = decode(raw, coding, rules.max_decoded_bytes)
            if result.note:
                notes.append(f"{label} body: {result.note}")
            if result.truncated:
                notes.append("bodies not compared")
                return BodyResult([], notes, True)
            decoded.append(result.data)
        body_a, body_b = decoded
        if body_a == body_b:
            return BodyResult([], notes, True)

    rows: list[Row] | None = None
    if type_a == type_b and _media(type_a)[1:3] == (True, None):
        # The common case, without the general path's ceremony: plain JSON on both sides.
        try:
            rows = _compare_json(orjson.loads(body_a), orjson.loads(body_b), rules, notes)
        except ValueError:
            pass  # the general path says why, in a note
    if rows is None:
        a = _read("primary", body_a, type_a, notes)
        b = _read("mirror", body_b, type_b, notes)
        rows = _compare_read(a, b, rules, notes)
    return BodyResult(rows, notes, all(row[6] for row in rows))


def _compare_json(primary: Any, mirror: Any, rules: Rules, notes: list[str]) -> list[Row] | None:
    """The rows for two parsed documents; ``None`` when they are nested too deeply to walk."""
    if rules.redact_body:
        primary = json_body.redact(primary, rules.redact_body)[0]
        mirror = json_body.redact(mirror, rules.redact_body)[0]
    try:
        if json_body.equal(primary, mirror):
            return []
        rows, note = json_body.diff(primary, mirror, rules)
    except (RecursionError, orjson.JSONEncodeError):
        return None
    if note:
        notes.append(note)
    return rows


def _compare_read(a: _Read, b: _Read, rules: Rules, notes: list[str]) -> list[Row]:
    if a.shape == "json" and b.shape == "json":
        rows = _compare_json(a.document, b.document, rules, notes)
        if rows is None:
            notes.append("JSON nested too deeply for a structural diff; compared as text")
            return _text_rows(a, b, rules, notes)
        return rows
    shapes = {a.shape, b.shape}
    if shapes == {"json", "empty"}:
        present = a if a.shape == "json" else b
        value = json_body.dumps(json_body.redact(present.document, rules.redact_body)[0])
        reason = rules.ignored_body(())
        return [
            (
                "body",
                "$",
                "$",
                "removed" if present is a else "added",
                value if present is a else None,
                value if present is b else None,
                reason is not None,
                reason,
            )
        ]
    if "binary" in shapes:
        return [text_body.binary_row(a.data, b.data, rules)]
    return _text_rows(a, b, rules, notes)


def _text_rows(a: _Read, b: _Read, rules: Rules, notes: list[str]) -> list[Row]:
    texts = []
    for label, read in (("primary", a), ("mirror", b)):
        if read.shape == "json" and rules.redact_body:
            redacted, hit = json_body.redact(read.document, rules.redact_body)
            if hit:  # never show a redacted value through the text view
                texts.append(json_body.dumps(redacted))
                continue
        body, note = text(read.data, charset(read.content_type))
        if note:
            notes.append(f"{label} body: {note}")
        texts.append(body)
    diffs, note = text_body.diff_text(texts[0], texts[1], rules)
    if note:
        notes.append(note)
    return diffs


def _read(label: str, data: bytes, content_type: str | None, notes: list[str]) -> _Read:
    if not data:
        return _Read("empty", data, None, content_type)
    media, declared, charset_name, sniffed, textual, binary = _media(content_type)
    if declared and charset_name is None and data[:1] in _OPENERS:  # the common case, quickly
        try:
            return _Read("json", data, orjson.loads(data), content_type)
        except ValueError:
            pass  # the general path below says why, in a note
    if declared or (sniffed and _starts_like_json(data)):
        try:
            return _Read("json", data, parse_json(data, charset_name), content_type)
        except (ValueError, UnicodeDecodeError) as e:
            if declared:
                notes.append(
                    f"{label} body: content-type {media}, but the body is not JSON ({e}); "
                    "compared as text"
                )
                return _Read("text", data, None, content_type)
    if textual:
        return _Read("text", data, None, content_type)
    if binary or not _looks_like_text(data):
        return _Read("binary", data, None, content_type)
    return _Read("text", data, None, content_type)


@lru_cache(maxsize=1024)
def _media(content_type: str | None) -> tuple[str, bool, str | None, bool, bool, bool]:
    """What a content type says: (media type, JSON, charset, to sniff, text, binary)."""
    media = media_type(content_type)
    return (
        media,
        media in _JSON_MEDIA or media.endswith("+json"),
        charset(content_type),
        media in _SNIFFED_MEDIA,
        media.startswith("text/") or media in _TEXT_MEDIA or media.endswith("+xml"),
        media.split("/", 1)[0] in _BINARY_FAMILIES,
    )


def parse_json(data: bytes, charset_name: str | None = None) -> Any:
    """Parse a JSON body (UTF-8 unless ``charset_name`` says otherwise; a BOM is skipped).

    Raises ``ValueError`` when it is not JSON."""
    if charset_name and charset_name not in _UTF8:
        return orjson.loads(text(data, charset_name)[0])
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8) :]
    return orjson.loads(data)


def _starts_like_json(data: bytes) -> bool:
    head = data[:64].lstrip(b" \t\r\n\xef\xbb\xbf")
    return head[:1] in (b"{", b"[")


def _looks_like_text(data: bytes) -> bool:
    head = data[:_SNIFF_BYTES]
    if b"\x00" in head:
        return False
    try:
        codecs.getincrementaldecoder("utf-8")().decode(head, final=len(data) <= _SNIFF_BYTES)
    except UnicodeDecodeError:
        return False
    return True


# --- redaction -----------------------------------------------------------------------------


def redact(
    body: bytes | None,
    content_type: str | None,
    content_encoding: str | None,
    rules: Rules,
    redactor: Redactor | None = None,
) -> bytes | None:
    """``body`` with its secrets hidden, in the content-encoding it came in: the values at
    ``[redact] body`` paths and, with a run's ``redactor``, every JSON field with a credential
    name (at any depth) and the credential fields of a form body, each replaced by its keyed
    tag (without one: by ``"[redacted]"``). Other bodies are returned as they are, except one
    that looks like JSON, cannot be read (cut, or over the size cap) and may hold a secret: it
    is replaced as a whole, since what cannot be parsed cannot be redacted in part."""
    patterns = rules.redact_body
    if not body or not (patterns or redactor):
        return body
    form = redactor is not None and _is_form(content_type)
    if not content_encoding and not form and not _may_hold(body, patterns, redactor):
        return body
    decoded = decode(body, content_encoding, rules.max_decoded_bytes)
    if decoded.note and not decoded.truncated:  # not in its announced encoding: compared raw too
        data, encoding = body, None
    else:
        data, encoding = decoded.data, content_encoding
    if form and redactor is not None:
        fixed = redactor.form(data)
        return body if fixed == data else encode(fixed, encoding)
    if not _starts_like_json(data) or not _may_hold(data, patterns, redactor):
        return body
    hide = redactor.value if redactor is not None else None
    try:
        if decoded.truncated:
            raise ValueError("cut")
        document = parse_json(data, charset(content_type))
    except (ValueError, UnicodeDecodeError):
        whole = REDACTED if redactor is None else redactor.tag(data.decode("latin-1"))
        return encode(orjson.dumps(whole), encoding)
    redacted, hit = json_body.redact(document, patterns, hide)
    if redactor is not None:
        redacted, named = redactor.document(redacted)
        hit = hit or named
    if not hit:
        return body
    return encode(orjson.dumps(redacted), encoding)


def _is_form(content_type: str | None) -> bool:
    return content_type is not None and "x-www-form-urlencoded" in content_type.lower()


def _may_hold(data: bytes, patterns: tuple[Any, ...], redactor: Redactor | None = None) -> bool:
    """False only when no pattern can match and no secret field is there: each pattern names a
    key that is nowhere in the raw text (and no ``\\u`` escape could spell it differently)."""
    if b"\\u" in data or (redactor is not None and redactor.may_hold_field(data)):
        return True
    for pattern in patterns:
        keys = pattern.keys
        if not keys or all(orjson.dumps(k) in data for k in keys):
            return True
    return False
