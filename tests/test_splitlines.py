"""The line cutter for files with a carriage return (``collect/splitlines.py``), and ``lines.scan``
choosing it: only a newline ends a line, a CR before one is part of the line end, and every line
is a row or a reject under its own number, whatever chunk it falls in."""

from __future__ import annotations

import gzip
import io
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shadowdiff.collect import envoy_text, lines, splitlines
from shadowdiff.collect.base import Input, Options
from shadowdiff.errors import InputError

STATUS_ONLY = Options(log_format="%RESPONSE_CODE%")


def expected(data: bytes, limit: int = splitlines.LINE_LIMIT) -> tuple[list[str], dict[int, str]]:
    """What the cutter must give for ``data``: the kept lines in order, and the rejected lines'
    reasons by number. Written the obvious way, one line at a time."""
    parts = data.split(b"\n")
    if parts[-1] == b"":
        parts.pop()  # the newline ended the last line
    kept: list[str] = []
    rejected: dict[int, str] = {}
    for number, line in enumerate(parts, start=1):
        line = line.removesuffix(b"\r")  # a CRLF's, or the last line's (a CRLF cut short)
        if len(line) > limit:
            rejected[number] = "exceeds the line limit"
            continue
        try:
            kept.append(line.decode("utf-8"))
        except UnicodeDecodeError:
            rejected[number] = splitlines.NOT_UTF8
    return kept, rejected


def check(data: bytes, limit: int = splitlines.LINE_LIMIT) -> None:
    split = splitlines.Split(Input(Path("t.log"), "primary"), io.BytesIO(data))
    rows = [v for b in split.batches() for v in b.column("line").to_pylist()]
    kept, rejected = expected(data, limit)
    assert rows == kept
    assert split.rejected == sorted(rejected)
    for row, (number, reason) in zip(split.rejects, sorted(rejected.items()), strict=True):
        assert row["location"] == f"t.log:{number}"
        assert reason in str(row["reason"])
    assert split.error is None


def test_crlf_lone_cr_blank_and_unterminated_lines() -> None:
    check(b"200\r\n201\r203\n\r\n\n\r\r\n204\r")


@pytest.mark.parametrize("chunk", [1, 2, 3, 7, 64])
def test_lines_across_chunks_keep_their_numbers(
    monkeypatch: pytest.MonkeyPatch, chunk: int
) -> None:
    monkeypatch.setattr(splitlines, "CHUNK_BYTES", chunk)
    check(b"a\r\nbb\rb\n\nccc\r\n\xff\xfe\r\ndddd\n" * 3 + b"tail")


@pytest.mark.parametrize("chunk", [2, 5, 1000])
def test_a_line_over_the_limit_is_rejected_and_the_next_keeps_its_number(
    monkeypatch: pytest.MonkeyPatch, chunk: int
) -> None:
    monkeypatch.setattr(splitlines, "CHUNK_BYTES", chunk)
    monkeypatch.setattr(splitlines, "LINE_LIMIT", 8)
    check(b"short\r\n" + b"x" * 40 + b"\r\nafter\n" + b"y" * 30 + b"\nlast\r\n" + b"z" * 9, 8)


def test_a_read_error_ends_the_lines_and_is_kept() -> None:
    class Broken(io.BytesIO):
        def read(self, size: int | None = -1) -> bytes:
            if self.tell() >= 6:
                raise EOFError("compressed stream ended early")
            return super().read(3)

    split = splitlines.Split(Input(Path("t.log.gz")), Broken(b"200\r\n201\r\n202\r\n"))
    rows = [v for b in split.batches() for v in b.column("line").to_pylist()]
    assert rows == ["200"]  # the line the error cut is not a row
    assert isinstance(split.error, InputError)
    assert "t.log.gz" in str(split.error)


line_bytes = st.lists(
    st.sampled_from([b"a", b"1", b" ", b"\r", b"\xff", b"\xc3\xa9", b"{}", b"\t"]), max_size=6
).map(b"".join)


@settings(max_examples=200, deadline=None)
@given(
    body=st.lists(line_bytes, max_size=30),
    endings=st.lists(st.sampled_from([b"\n", b"\r\n", b"\r\r\n"]), min_size=30, max_size=30),
    tail=line_bytes,
    chunk=st.integers(1, 20),
    limit=st.integers(2, 12),
)
def test_the_cut_matches_splitting_at_newlines(
    body: list[bytes], endings: list[bytes], tail: bytes, chunk: int, limit: int
) -> None:
    data = b"".join(line + end for line, end in zip(body, endings, strict=False)) + tail
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(splitlines, "CHUNK_BYTES", chunk)
        patch.setattr(splitlines, "LINE_LIMIT", limit)
        check(data, limit)


# --- lines.scan chooses the cutter -----------------------------------------------------------


def statuses(path: Path, source: Input | None = None) -> tuple[list[tuple[str, int]], list[str]]:
    source = source or Input(path, "primary")
    exchanges, rejects = [], []
    for batch in envoy_text.COLLECTOR.read(source, STATUS_ONLY):
        table = batch.exchanges
        located = table.column("location").to_pylist()
        exchanges += list(zip(located, table.column("status").to_pylist(), strict=True))
        rejects += [str(r["location"]) for r in batch.rejects]
    return exchanges, rejects


def test_a_file_with_a_cr_is_read_line_for_line(tmp_path: Path) -> None:
    path = tmp_path / "a.log"
    path.write_bytes(b"200\r\n201\r203\n202\n")
    exchanges, rejects = statuses(path)
    assert exchanges == [(f"{path}:1", 200), (f"{path}:3", 202)]
    assert rejects == [f"{path}:2"]  # "201\r203" is no status: rejected, not read as 3


def test_a_compressed_file_with_a_cr_is_read_the_same(tmp_path: Path) -> None:
    plain = tmp_path / "a.log"
    plain.write_bytes(b"200\r\n201\r203\n\xff\r\n202")
    packed = tmp_path / "b.log.gz"
    packed.write_bytes(gzip.compress(plain.read_bytes()))
    got_plain, got_packed = statuses(plain), statuses(packed)
    assert [s for _, s in got_plain[0]] == [s for _, s in got_packed[0]] == [200, 202]
    assert [r.rsplit(":", 1)[1] for r in got_packed[1]] == ["2", "3"]


def test_cut_short_compressed_data_with_a_cr_is_an_input_error(tmp_path: Path) -> None:
    data = gzip.compress(b"200\r\n" * 50_000)
    path = tmp_path / "cut.log.gz"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match="cut.log.gz"):
        statuses(path)


def test_a_piece_known_to_hold_a_cr_goes_to_the_cutter(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "piece.log"
    path.write_bytes(b"200\r\n201\r\n")

    def no_count(source: Input, kind: str | None) -> None:
        raise AssertionError("a piece's count is known: it is not counted again")

    monkeypatch.setattr(lines, "count_lines", no_count)
    piece = Input(path, "primary", "log", lines=2, carriage_return=True)
    exchanges, rejects = statuses(path, piece)
    assert exchanges == [("log:1", 200), ("log:2", 201)] and rejects == []


def test_counting_sees_a_carriage_return_in_any_chunk(tmp_path: Path) -> None:
    path = tmp_path / "big.log"
    path.write_bytes(b"200\n" * (lines.COUNT_CHUNK // 2) + b"201\r\n")
    size, lf_lines = path.stat().st_size, lines.COUNT_CHUNK // 2
    with open(path, "rb") as f:
        assert lines.count_range(f.fileno(), 0, 4 * lf_lines) == lines.Counted(
            lf_lines, False, 4 * lf_lines
        )
        assert lines.count_range(f.fileno(), 0, size) == lines.Counted(lf_lines + 1, True, size)
        # Stopped after a number of lines: where they end, and only what they hold.
        assert lines.count_range(f.fileno(), 0, size, lf_lines) == lines.Counted(
            lf_lines, False, 4 * lf_lines
        )
        assert lines.count_range(f.fileno(), 4, size, 3) == lines.Counted(3, False, 16)


@settings(max_examples=60, deadline=None)
@given(
    data=st.binary(max_size=400).map(lambda b: b.replace(b"x", b"\n")),
    start=st.integers(0, 50),
    most=st.none() | st.integers(1, 40),
)
def test_counting_a_range_agrees_with_counting_its_bytes(
    tmp_path_factory: pytest.TempPathFactory, data: bytes, start: int, most: int | None
) -> None:
    path = tmp_path_factory.mktemp("count") / "any.log"
    path.write_bytes(data)
    start = min(start, len(data))
    with open(path, "rb") as f:
        chunk = lines.COUNT_CHUNK
        try:
            lines.COUNT_CHUNK = 7  # many chunks, lines across their edges
            counted = lines.count_range(f.fileno(), start, len(data), most)
        finally:
            lines.COUNT_CHUNK = chunk
    body = data[start:]
    if most is not None and body.count(b"\n") >= most:
        body = b"\n".join(body.split(b"\n")[:most]) + b"\n"  # up to its most-th newline
    expected_lines = body.count(b"\n") + (bool(body) and not body.endswith(b"\n"))
    assert counted == lines.Counted(expected_lines, b"\r" in body, start + len(body))


def test_a_log_cut_short_while_it_is_counted_is_an_error_naming_it(tmp_path: Path) -> None:
    from shadowdiff.collect import pieces

    path = tmp_path / "primary.log"
    path.write_bytes(b"200\n" * 1000)
    with open(path, "rb") as f:
        # As if truncated after its size was taken: the count finds the end too soon. (A
        # memory map of it would have raised SIGBUS, or read past the map's end.)
        with pytest.raises(lines.CutShort, match="ends at byte 4,000, 8,000 expected"):
            lines.count_range(f.fileno(), 0, 8000)
        with pytest.raises(InputError, match=r"primary\.log: cut short while the run read it"):
            list(pieces.cuts(f, 8000, piece_bytes=1000, name=str(path)))
