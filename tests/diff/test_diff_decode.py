from __future__ import annotations

import gzip
import zlib
from collections.abc import Callable

import brotli
import pytest
import zstandard

from shadowdiff.diff.decode import charset, decode, encode, encodings, media_type, text

BODY = b'{"entries": [' + b", ".join(b'{"id": %d}' % i for i in range(200)) + b"]}"


def raw_deflate(data: bytes) -> bytes:
    stream = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    return stream.compress(data) + stream.flush()


CODERS: dict[str, Callable[[bytes], bytes]] = {
    "gzip": gzip.compress,
    "x-gzip": gzip.compress,
    "deflate": zlib.compress,
    "deflate (raw)": raw_deflate,
    "br": brotli.compress,
    "zstd": lambda data: zstandard.ZstdCompressor().compress(data),
}


def header(name: str) -> str:
    return name.split(" ")[0]


@pytest.mark.parametrize("name", CODERS)
def test_every_coding_decodes(name: str) -> None:
    result = decode(CODERS[name](BODY), header(name))
    assert result.data == BODY
    assert not result.truncated and result.note is None


@pytest.mark.parametrize("name", CODERS)
def test_a_bomb_becomes_a_truncated_body_and_a_note(name: str) -> None:
    bomb = CODERS[name](bytes(8 * 1024 * 1024))
    assert len(bomb) < 64 * 1024
    result = decode(bomb, header(name), limit=1024 * 1024)
    assert result.truncated
    assert len(result.data) == 1024 * 1024
    assert result.note == (
        f"decoded body larger than 1 MiB (content-encoding {header(name).removeprefix('x-')}); "
        "truncated"
    )


@pytest.mark.parametrize("name", CODERS)
def test_a_cut_stream_is_truncated(name: str) -> None:
    encoded = CODERS[name](bytes(range(256)) * 64)
    result = decode(encoded[: len(encoded) // 2], header(name))
    assert result.truncated
    assert result.note is not None and "ends early" in result.note


@pytest.mark.parametrize("coding", ["gzip", "deflate", "br", "zstd"])
def test_a_body_that_is_not_what_it_claims_is_kept_with_a_note(coding: str) -> None:
    result = decode(b'{"plain": "json"}', coding)
    assert result.data == b'{"plain": "json"}'
    assert not result.truncated
    assert result.note is not None
    assert result.note.startswith(f"content-encoding {coding}, but the body is not {coding} (")
    assert result.note.endswith("); compared as received")


def test_stacked_codings_are_undone_last_first() -> None:
    encoded = brotli.compress(gzip.compress(BODY))
    assert decode(encoded, "gzip, br").data == BODY
    assert decode(encoded, "gzip, identity, br").data == BODY


def test_concatenated_gzip_members_are_one_body() -> None:
    assert decode(gzip.compress(b"ab") + gzip.compress(b"cd"), "gzip").data == b"abcd"


def test_unknown_and_empty() -> None:
    assert (
        decode(b"x", "compress").note == "unknown content-encoding 'compress'; compared as received"
    )
    assert decode(b"", "gzip").data == b""
    assert decode(b"x", None).data == b"x"
    assert decode(b"x", "identity").note is None


def test_encode_round_trips() -> None:
    for coding in ("gzip", "deflate", "br", "zstd", "gzip, br", None):
        assert decode(encode(BODY, coding), coding).data == BODY


def test_content_type_parts() -> None:
    assert encodings(" GZIP , br ") == ("gzip", "br")
    assert media_type("Application/JSON; charset=UTF-8") == "application/json"
    assert media_type(None) == ""
    assert charset('text/html; q=1; charset="ISO-8859-1"') == "iso-8859-1"
    assert charset("text/html") is None
    assert text("café".encode("latin-1"), "iso-8859-1") == ("café", None)
    assert text(b"caf\xc3\xa9", "klingon") == ("café", "unknown charset 'klingon'; read as utf-8")
