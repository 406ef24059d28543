"""Fuzzing the ``envoy-text`` collector with every format it knows: the four built-ins (read
with the format given, and detected) and a user's custom format.

Whatever the bytes, a read yields batches whose books balance (every line of the file is an
exchange, a reject or blank, once, under its own number) or raises ``InputError``; with the
format given, only a compressed stream that cannot be decompressed may be refused whole, and a
line identical to a good seed line stays an exchange wherever it moved.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest
from fuzzkit import (
    FIXTURES,
    SAMPLE,
    Read,
    assert_every_line_accounted,
    decompressed,
    fuzz,
    head_lines,
    inputs,
    kept_on_failure,
    line_number,
    read,
    sampled_positions,
    write,
)
from hypothesis import given
from hypothesis import strategies as st

from shadowdiff.collect import envoy_format
from shadowdiff.collect.base import Options
from shadowdiff.collect.envoy_text import COLLECTOR, TRUNCATED_REASON
from shadowdiff.errors import InputError

TEXT = FIXTURES / "envoy_text"


def _without_mixer(line: bytes) -> bytes:
    # Istio pre-1.9 lines without the Mixer status: what 1.9 and 1.10 wrote for older proxies.
    return re.sub(rb'^(\[[^]]*\] "[^"]*" \S+ \S+ )"[^"]*" ', rb"\1", line)


@dataclass(frozen=True)
class TextCase:
    """A format the collector knows and real lines written with it."""

    name: str
    log_format: str
    seeds: tuple[bytes, ...]

    @property
    def good_lines(self) -> set[bytes]:
        return {line for seed in self.seeds for line in seed.splitlines() if line}


PRE_1_9 = (TEXT / "istio_pre_1_9.log").read_bytes()
CASES = (
    TextCase(
        "Envoy default",
        envoy_format.ENVOY_DEFAULT_FORMAT,
        ((TEXT / "envoy_default.log").read_bytes(),),
    ),
    TextCase(
        "Istio default",
        envoy_format.ISTIO_DEFAULT_FORMAT,
        (
            (TEXT / "istio_default.log").read_bytes(),
            head_lines(SAMPLE / "primary" / "istio_text.log", 6),
            head_lines(SAMPLE / "mirror" / "istio_text.log", 6),
        ),
    ),
    TextCase("Istio pre-1.9", envoy_format.ISTIO_PRE_1_9_FORMAT, (PRE_1_9,)),
    TextCase(
        "Istio pre-1.9, no Mixer",
        envoy_format.ISTIO_PRE_1_9_NO_MIXER_FORMAT,
        (b"\n".join(_without_mixer(line) for line in PRE_1_9.split(b"\n")),),
    ),
    TextCase(
        "custom",
        (TEXT / "custom.format").read_text(),
        ((TEXT / "custom.log").read_bytes(),),
    ),
)
NAMES = [case.name for case in CASES]
assert set(envoy_format.BUILTIN_FORMATS) <= set(NAMES), "a built-in format has no seed here"
# What detection sees: every built-in's lines, and a sidecar log mixing in diagnostics.
DETECTED_SEEDS = [s for c in CASES if c.name != "custom" for s in c.seeds]
DETECTED_SEEDS.append((TEXT / "mixed.log").read_bytes())


def exchange_lines(got: Read) -> set[int]:
    numbers = set()
    for batch in got.batches:
        for location in batch.exchanges.column("location").to_pylist():
            numbers.add(line_number(location, got.path))
    return numbers


def assert_good_lines_kept(got: Read, data: bytes, good: set[bytes]) -> None:
    """Every terminated line equal to a seed line that parsed is an exchange."""
    text = decompressed(data)
    if text is None:
        return
    kept = exchange_lines(got)
    for number, line in enumerate(text.split(b"\n")[:-1], start=1):
        if line.removesuffix(b"\r") in good:
            assert number in kept, f"line {number} is a good line, not read: {line[:80]!r}"


def read_with_format(case: TextCase, path: Path) -> Read:
    got = read(COLLECTOR, path, Options(log_format=case.log_format))
    # With the format given, a plain file is never unreadable as a whole.
    assert isinstance(got, Read), f"refused a readable file: {got}"
    return got


@pytest.mark.parametrize("case", CASES, ids=NAMES)
def test_seeds_read_whole(case: TextCase, tmp_path: Path) -> None:
    # The mutations start from these: they must be good lines of their format.
    for seed in case.seeds:
        got = read_with_format(case, write(tmp_path, seed))
        assert (got.exchanges, got.rejects) == (len(seed.splitlines()), [])


def check_in_format(case: TextCase, path: Path, raw: bytes) -> None:
    """The property, for a file read with ``case``'s format given."""
    got = read(COLLECTOR, path, Options(log_format=case.log_format))
    if isinstance(got, InputError):
        assert decompressed(raw) is None, f"refused a readable file: {got}"
        return
    assert_every_line_accounted(got, raw)
    assert_good_lines_kept(got, raw, case.good_lines)


def check_detected(path: Path, raw: bytes) -> None:
    """The property, for a file whose format is detected: ``InputError`` when none fits."""
    got = read(COLLECTOR, path)
    if not isinstance(got, InputError):
        assert_every_line_accounted(got, raw)


def check_file(path: Path, scratch: Path) -> None:
    """Everything above, for a corpus file: read in Istio's format (the commonest),
    in the custom one (a user's format, its time holding a space), and detected."""
    raw = path.read_bytes()
    for case in CASES:
        if case.name in ("Istio default", "custom"):
            check_in_format(case, path, raw)
    check_detected(path, raw)


@fuzz(80)
@given(case=st.sampled_from(CASES), data=st.data())
def test_mutated_logs_in_a_given_format_account_for_every_line(
    tmp_path: Path, case: TextCase, data: st.DataObject
) -> None:
    raw = data.draw(inputs(case.seeds), label="input")
    with kept_on_failure(f"envoy_text-{case.name}", raw, ".log"):
        check_in_format(case, write(tmp_path, raw), raw)


@fuzz(30)
@given(raw=inputs(DETECTED_SEEDS))
def test_mutated_logs_with_the_format_detected_account_for_every_line(
    tmp_path: Path, raw: bytes
) -> None:
    with kept_on_failure("envoy_text-detected", raw, ".log"):
        check_detected(write(tmp_path, raw), raw)


@pytest.mark.parametrize("ending", [b"\n", b"\r\n"], ids=["lf", "crlf"])
@pytest.mark.parametrize("case", CASES, ids=NAMES)
def test_every_prefix_of_a_line_is_one_record(
    case: TextCase, ending: bytes, tmp_path: Path
) -> None:
    # Truncation at every byte boundary of a line, exhaustively: prefix n is line n + 1.
    line = case.seeds[0].split(b"\n")[0]
    data = b"".join(line[:n] + ending for n in range(len(line) + 1))
    got = read_with_format(case, write(tmp_path, data))
    assert_every_line_accounted(got, data)
    assert got.blank == 1  # the empty prefix
    assert len(line) + 1 in exchange_lines(got)  # the whole line


@pytest.mark.parametrize("case", CASES, ids=NAMES)
def test_a_log_cut_at_any_byte_keeps_the_lines_before_the_cut(
    case: TextCase, tmp_path: Path
) -> None:
    # As a log still being written is copied: the last line may end anywhere.
    first, second = case.seeds[0].split(b"\n")[:2]
    seed = first + b"\n" + second + b"\n"
    for cut in sampled_positions(len(first), len(seed), every=47):
        data = seed[:cut]
        got = read_with_format(case, write(tmp_path, data))
        assert_every_line_accounted(got, data)
        assert set(range(1, data.count(b"\n") + 1)) <= exchange_lines(got), cut
        for row in got.rejects:
            assert row["reason"] == TRUNCATED_REASON, (cut, row)
