"""What the fuzz tests share: their settings, scratch files, the mutations of a seed, and the
properties every reader of an input must keep whatever the bytes.

The properties (``read`` and the ``assert_*`` functions) are the ones the corpus test replays,
so a corpus file is checked exactly as the example that found it was.
"""

from __future__ import annotations

import contextlib
import gzip
import itertools
import os
import re
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import zstandard
from hypothesis import event, settings
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument, UnsatisfiedAssumption

from shadowdiff import schema
from shadowdiff.collect.base import Batch, Collector, Input, Options
from shadowdiff.errors import InputError

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures"
SAMPLE = ROOT / "sample_data" / "envoy"
CORPUS = Path(__file__).resolve().parent / "corpus"

# --- settings ----------------------------------------------------------------------------------

LONG = int(os.environ.get("FUZZ_EXAMPLES", "0") or 0)


def fuzz(examples: int, *, process: bool = False) -> settings:
    """The settings of one fuzz test: ``examples`` in CI; with ``FUZZ_EXAMPLES=N``, random
    examples, ``N`` of them (``N // 10`` for a test that runs the whole CLI each time)."""
    if not LONG:
        return settings(settings.get_profile("shadowdiff-fuzz-ci"), max_examples=examples)
    wanted = max(examples, LONG // 10 if process else LONG)
    return settings(settings.get_profile("shadowdiff-fuzz-long"), max_examples=wanted)


def sampled_positions(start: int, stop: int, every: int) -> list[int]:
    """Cut points in ``start..stop`` for truncation tests: all of them in a long run or when
    ``every`` is 1, else every ``every``-th one and both ends."""
    if LONG or every <= 1:
        return list(range(start, stop + 1))
    return sorted({*range(start, stop + 1, every), stop})


def outcome(label: str) -> None:
    """Count ``label`` in ``--hypothesis-show-statistics`` (a no-op outside a fuzz test)."""
    try:
        event(label)
    except InvalidArgument:
        pass


# --- scratch files -----------------------------------------------------------------------------

_names = itertools.count()


def write(folder: Path, data: bytes, suffix: str = ".log") -> Path:
    """``data`` in a new file of ``folder`` (a fresh name each time: nothing a reader may have
    cached about an earlier example's file applies)."""
    path = folder / f"input-{next(_names):06d}{suffix}"
    path.write_bytes(data)
    return path


@contextlib.contextmanager
def kept_on_failure(test: str, data: bytes | str, suffix: str) -> Iterator[None]:
    """With ``FUZZ_SAVE=DIR``, write the input of a failing example to ``DIR/<test><suffix>``;
    Hypothesis replays the minimal failing example last, so that is the one left."""
    try:
        yield
    except UnsatisfiedAssumption:
        raise  # assume() or reject(): not a failure
    except BaseException:
        folder = os.environ.get("FUZZ_SAVE")
        if folder:
            Path(folder).mkdir(parents=True, exist_ok=True)
            raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data
            (Path(folder) / f"{test}{suffix}").write_bytes(raw)
        raise


def head_lines(path: Path, lines: int) -> bytes:
    """The first ``lines`` lines of a seed file."""
    return b"".join(path.read_bytes().splitlines(keepends=True)[:lines])


# --- mutations ---------------------------------------------------------------------------------

INVALID_UTF8 = (
    b"\xff",
    b"\xfe\xff",
    b"\x80",
    b"\xc3",  # a lead byte and no continuation
    b"\xc3\x28",
    b"\xe2\x82",
    b"\xed\xa0\x80",  # a UTF-16 surrogate, encoded
    b"\xf4\x90\x80\x80",  # above U+10FFFF
    b"\xc0\xaf",  # an overlong "/"
)
NASTY = (b"\x00", b"\r\n", b"\n", b"\t", b'"', b"\\", b"{", b"}", b"[", b"%", b"-", b" ", b"\x1f")
NASTY += (b"\xef\xbb\xbf", b"\xe2\x80\xa8", b"\\u0000", b"null", b"1e999", b"\x1b[31m")
BLANK_LINES = (b"\n", b" \n", b"\t\n", b"\r\n", b"   \t \r\n")


def lines_of(data: bytes) -> list[bytes]:
    """``data`` cut after every newline (a last line without one kept as it is)."""
    return [piece for piece in re.split(rb"(?<=\n)", data) if piece]


def _ended(line: bytes, ending: bytes) -> bytes:
    return line.rstrip(b"\r\n") + ending


@st.composite
def _line_edit(draw: st.DrawFn, data: bytes) -> bytes:
    lines = lines_of(data)
    if not lines:
        return data
    how = draw(st.sampled_from(["shuffle", "duplicate", "drop", "blank", "endings", "swap"]))
    if how == "shuffle":
        lines = list(draw(st.permutations(lines)))
    elif how == "duplicate":
        at = draw(st.integers(0, len(lines) - 1))
        lines[at:at] = [_ended(lines[at], b"\n")] * draw(st.integers(1, 3))
    elif how == "drop":
        del lines[draw(st.integers(0, len(lines) - 1))]
    elif how == "blank":
        for _ in range(draw(st.integers(1, 3))):
            lines.insert(draw(st.integers(0, len(lines))), draw(st.sampled_from(BLANK_LINES)))
    elif how == "endings":  # a CRLF/LF mix, as an editor or a Windows copy leaves it
        endings = draw(st.lists(st.sampled_from([b"\n", b"\r\n"]), min_size=len(lines)))
        lines = [_ended(line, end) for line, end in zip(lines, endings, strict=False)]
    else:
        a, b = (draw(st.integers(0, len(lines) - 1)) for _ in range(2))
        lines[a], lines[b] = lines[b], lines[a]
    if lines and not lines[-1].endswith(b"\n") and draw(st.booleans()):
        lines[-1] = lines[-1] + b"\n"  # a moved last line takes its missing newline along
    return b"".join(lines)


@st.composite
def _byte_edit(draw: st.DrawFn, data: bytes) -> bytes:
    size = len(data)
    how = draw(st.sampled_from(["truncate", "cut", "flip", "insert", "replace", "nul", "utf8"]))
    at = draw(st.integers(0, size))
    if how == "truncate":
        return data[:at]
    if how == "cut":
        return data[:at] + data[draw(st.integers(at, size)) :]
    if how == "flip":
        out = bytearray(data)
        for _ in range(draw(st.integers(1, 8)) if out else 0):
            out[draw(st.integers(0, len(out) - 1))] ^= 1 << draw(st.integers(0, 7))
        return bytes(out)
    if how == "insert":
        piece = draw(st.one_of(st.binary(min_size=1, max_size=16), st.sampled_from(NASTY)))
        return data[:at] + piece + data[at:]
    if how == "replace":
        end = draw(st.integers(at, min(size, at + 32)))
        return data[:at] + draw(st.binary(max_size=32)) + data[end:]
    if how == "nul":
        return data[:at] + b"\x00" * draw(st.integers(1, 4)) + data[at:]
    return data[:at] + draw(st.sampled_from(INVALID_UTF8)) + data[at:]


@st.composite
def _compressed(draw: st.DrawFn, data: bytes) -> bytes:
    """``data`` gzip- or zstd-compressed (as rotation leaves logs), perhaps cut short."""
    packed = (
        gzip.compress(data, mtime=0)
        if draw(st.booleans())
        else zstandard.ZstdCompressor().compress(data)
    )
    if draw(st.booleans()):
        return packed
    return packed[: draw(st.integers(0, len(packed)))]


@st.composite
def mutated(draw: st.DrawFn, seed: bytes, compress: bool = True) -> bytes:
    """``seed`` after one to four edits (lines moved, doubled, dropped, blanked or re-ended;
    bytes cut, flipped, replaced, inserted: NUL, invalid UTF-8, random), maybe compressed."""
    data = seed
    for _ in range(draw(st.integers(1, 4))):
        data = draw(st.one_of(_line_edit(data), _byte_edit(data)))
    if compress and draw(st.integers(0, 7)) == 0:
        data = draw(_compressed(data))
    return data


def inputs(seeds: Sequence[bytes], compress: bool = True) -> st.SearchStrategy[bytes]:
    """A seed as it is, a mutated seed, a few seeds joined, or arbitrary bytes."""
    seed = st.sampled_from(list(seeds))
    joined = st.lists(seed, min_size=2, max_size=3).map(b"".join)
    return st.one_of(
        seed,
        seed.flatmap(lambda s: mutated(s, compress)),
        joined.flatmap(lambda s: mutated(s, compress)),
        st.binary(max_size=512),
    )


# --- reading and the properties ----------------------------------------------------------------


@dataclass
class Read:
    """Everything one ``read`` of a collector gave."""

    path: Path
    batches: list[Batch]

    @property
    def records(self) -> int:
        return sum(b.records for b in self.batches)

    @property
    def exchanges(self) -> int:
        return sum(b.exchanges.num_rows for b in self.batches)

    @property
    def rejects(self) -> list[dict[str, object]]:
        return [row for b in self.batches for row in b.rejects]

    @property
    def blank(self) -> int:
        return sum(b.blank for b in self.batches)

    def locations(self) -> list[str]:
        found = [str(r["location"]) for r in self.rejects]
        for batch in self.batches:
            found += [str(v) for v in batch.exchanges.column("location").to_pylist()]
        return found


def read(collector: Collector, path: Path, options: Options | None = None) -> Read | InputError:
    """Read ``path`` with ``collector`` (side ``primary``) and check what every batch must hold.
    ``InputError`` (the file as a whole is unusable, with a message) is returned; any other
    exception is a bug and propagates."""
    source = Input(path, "primary")
    try:
        batches = list(collector.read(source, options or Options()))
    except InputError as e:
        assert str(e).strip(), "an InputError without a message"
        outcome("refused whole (InputError)")
        return e
    for batch in batches:
        assert batch.records == batch.exchanges.num_rows + len(batch.rejects)
        assert batch.blank >= 0
        _check_exchanges(batch.exchanges, path)
        for row in batch.rejects:
            assert set(schema.REJECTS.names) <= set(row), row
            assert row["source"] == str(path) and row["side"] == "primary", row
            assert str(row["location"]).startswith(str(path)), row
            assert isinstance(row["reason"], str) and row["reason"].strip(), row
            assert isinstance(row["excerpt"], str), row
    got = Read(path, batches)
    outcome("read, with rejects" if got.rejects else "read, no reject")
    return got


def _check_exchanges(table: pa.Table, path: Path) -> None:
    for name in table.column_names:
        if name in schema.EXCHANGES.names:
            expected = schema.EXCHANGES.field(name).type
            assert table.schema.field(name).type.equals(expected), (name, table.schema)
    assert table.num_rows == 0 or set(table.column("side").to_pylist()) == {"primary"}
    locations = table.column("location").to_pylist()
    assert all(str(v).startswith(str(path)) for v in locations), locations[:5]


def decompressed(data: bytes) -> bytes | None:
    """The bytes a reader sees in ``data`` (gzip and zstd undone), or None when the compressed
    stream is broken or cut short."""
    try:
        if data.startswith(b"\x1f\x8b"):
            return gzip.decompress(data)
        if data.startswith(b"\x28\xb5\x2f\xfd"):
            reader = zstandard.ZstdDecompressor().stream_reader(data, read_across_frames=True)
            with reader:
                return reader.read()
    except (OSError, EOFError, zlib.error, zstandard.ZstdError):
        return None
    return data


def line_count(text: bytes) -> int:
    """Lines of ``text`` as a log has them: each ends at a newline, and a last one without its
    newline (a write cut short) is a line too."""
    return text.count(b"\n") + (1 if text and not text.endswith(b"\n") else 0)


def line_number(location: str, path: Path) -> int:
    prefix = f"{path}:"
    assert location.startswith(prefix), location
    return int(location[len(prefix) :])


def assert_every_line_accounted(got: Read, data: bytes) -> None:
    """A line reader's books: every line of the (decompressed) file is an exchange, a reject or
    blank, each line at most once, under its own line number (only a newline ends a line: a
    carriage return before one is part of the line end, any other is part of the line)."""
    text = decompressed(data)
    numbers = [line_number(loc, got.path) for loc in got.locations()]
    assert len(numbers) == got.records
    assert len(set(numbers)) == len(numbers), f"a line counted twice: {sorted(numbers)}"
    if text is None:
        return  # cut-short compression: the lines before the cut, if any, are all we know
    lines = line_count(text)
    assert got.records + got.blank == lines, (
        f"{lines} lines, but {got.exchanges} exchanges + {len(got.rejects)} rejects "
        f"+ {got.blank} blank"
    )
    assert all(1 <= n <= lines for n in numbers), sorted(numbers)
