"""Body decoding: undo ``content-encoding`` (gzip, deflate, br, zstd) under a size cap, and read
the media type and charset of ``content-type``.

The cap turns a decompression bomb into a truncated body and a note instead of an out-of-memory;
a body that claims an encoding it does not have is returned as received, with a note. Nothing
here raises on bad input.

>>> import gzip
>>> decode(gzip.compress(b'{"a": 1}'), "gzip").data
b'{"a": 1}'
>>> decode(b"not gzip", "gzip").note.split(" (")[0]
'content-encoding gzip, but the body is not gzip'
"""

from __future__ import annotations

import codecs
import io
import zlib
from collections.abc import Callable
from dataclasses import dataclass

import brotli
import zstandard

DEFAULT_MAX_DECODED_BYTES = 16 * 1024 * 1024
_CHUNK = 256 * 1024


@dataclass(frozen=True)
class Decoded:
    """A decoded body: ``truncated`` when the cap (or a stream that ends early) cut it short."""

    data: bytes
    truncated: bool = False
    note: str | None = None


class _Bad(Exception):
    """The body is not what its content-encoding says."""


def encodings(content_encoding: str | None) -> tuple[str, ...]:
    """The codings of a ``content-encoding`` value, in the order they were applied."""
    if not content_encoding:
        return ()
    names = (c.strip().lower() for c in content_encoding.split(","))
    return tuple(_ALIASES.get(n, n) for n in names if n and n != "identity")


def decode(
    body: bytes, content_encoding: str | None, limit: int = DEFAULT_MAX_DECODED_BYTES
) -> Decoded:
    """Undo every coding of ``content_encoding`` (last applied first), at most ``limit`` bytes."""
    codings = encodings(content_encoding)
    if not codings or not body:
        return Decoded(body)
    unknown = [c for c in codings if c not in _DECODERS]
    if unknown:
        return Decoded(body, note=f"unknown content-encoding {unknown[0]!r}; compared as received")
    data = body
    for coding in reversed(codings):
        try:
            data, complete = _DECODERS[coding](data, limit)
        except _Bad as e:
            return Decoded(
                body,
                note=f"content-encoding {coding}, but the body is not {coding} ({e}); "
                "compared as received",
            )
        if len(data) > limit:
            return Decoded(
                data[:limit],
                truncated=True,
                note=f"decoded body larger than {_size(limit)} (content-encoding {coding}); "
                "truncated",
            )
        if not complete:
            return Decoded(
                data, truncated=True, note=f"{coding} stream ends early: the body was cut"
            )
    return Decoded(data)


def encode(data: bytes, content_encoding: str | None) -> bytes:
    """Apply the codings of ``content_encoding`` to ``data`` (to store a redacted body in the
    encoding its headers announce)."""
    for coding in encodings(content_encoding):
        if coding == "gzip":
            data = _gzip_compress(data)
        elif coding == "deflate":
            data = zlib.compress(data)
        elif coding == "br":
            data = brotli.compress(data)
        elif coding == "zstd":
            data = zstandard.ZstdCompressor().compress(data)
    return data


def media_type(content_type: str | None) -> str:
    """``application/json`` from ``application/json; charset=utf-8`` (lowercase, ``""`` if none)."""
    if not content_type:
        return ""
    return content_type.split(";", 1)[0].strip().lower()


def charset(content_type: str | None) -> str | None:
    """The ``charset`` parameter of ``content_type``, if any."""
    if not content_type:
        return None
    for param in content_type.split(";")[1:]:
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset":
            return value.strip().strip("\"'").lower() or None
    return None


def text(data: bytes, charset_name: str | None) -> tuple[str, str | None]:
    """``data`` as text in ``charset_name`` (UTF-8 when none), and a note for an unknown one."""
    note = None
    name = charset_name or "utf-8"
    try:
        codecs.lookup(name)
    except LookupError:
        note = f"unknown charset {charset_name!r}; read as utf-8"
        name = "utf-8"
    return data.decode(name, errors="replace"), note


# --- codings ---------------------------------------------------------------------------------
# Each returns (decoded, complete): at most limit + 1 bytes, so the caller sees the overflow.


def _zlib_stream(data: bytes, wbits: int, limit: int, members: bool) -> tuple[bytes, bool]:
    out: list[bytes] = []
    total = 0
    while True:
        stream = zlib.decompressobj(wbits)
        try:
            chunk = stream.decompress(data, limit + 1 - total)
        except zlib.error as e:
            raise _Bad(e) from e
        out.append(chunk)
        total += len(chunk)
        if total > limit:
            return b"".join(out), True
        if not stream.eof:
            return b"".join(out), False
        data = stream.unused_data
        # Concatenated gzip members are one body (RFC 1952); other trailing bytes are ignored.
        if not (members and data.startswith(b"\x1f\x8b")):
            return b"".join(out), True


def _gzip(data: bytes, limit: int) -> tuple[bytes, bool]:
    return _zlib_stream(data, 16 + zlib.MAX_WBITS, limit, members=True)


def _deflate(data: bytes, limit: int) -> tuple[bytes, bool]:
    # "deflate" is meant to be zlib-wrapped (RFC 9110), but servers also send raw deflate.
    try:
        return _zlib_stream(data, 32 + zlib.MAX_WBITS, limit, members=False)
    except _Bad:
        return _zlib_stream(data, -zlib.MAX_WBITS, limit, members=False)


def _brotli(data: bytes, limit: int) -> tuple[bytes, bool]:
    stream = brotli.Decompressor()
    try:
        out = stream.process(data, output_buffer_limit=limit + 1)
    except brotli.error as e:
        raise _Bad(e) from e
    if len(out) > limit:
        return out, True
    return out, bool(stream.is_finished())


def _zstd(data: bytes, limit: int) -> tuple[bytes, bool]:
    out: list[bytes] = []
    total = 0
    try:
        reader = zstandard.ZstdDecompressor().stream_reader(
            io.BytesIO(data), read_across_frames=True
        )
        while total <= limit:
            chunk = reader.read(min(_CHUNK, limit + 1 - total))
            if not chunk:
                break
            out.append(chunk)
            total += len(chunk)
        if total > limit:
            return b"".join(out), True
        # The reader stops quietly at a cut frame; a frame-by-frame pass (its output is known
        # to fit under the cap now) tells a complete body from a cut one.
        rest = data
        while rest:
            frame = zstandard.ZstdDecompressor().decompressobj()
            frame.decompress(rest)
            if not frame.eof:
                return b"".join(out), False
            rest = frame.unused_data
    except zstandard.ZstdError as e:
        raise _Bad(e) from e
    return b"".join(out), True


def _gzip_compress(data: bytes) -> bytes:
    stream = zlib.compressobj(wbits=16 + zlib.MAX_WBITS)
    return stream.compress(data) + stream.flush()


def _size(n: int) -> str:
    if n % (1024 * 1024) == 0:
        return f"{n // (1024 * 1024)} MiB"
    if n % 1024 == 0:
        return f"{n // 1024} KiB"
    return f"{n} bytes"


_DECODERS: dict[str, Callable[[bytes, int], tuple[bytes, bool]]] = {
    "gzip": _gzip,
    "deflate": _deflate,
    "br": _brotli,
    "zstd": _zstd,
}
_ALIASES = {"x-gzip": "gzip"}
