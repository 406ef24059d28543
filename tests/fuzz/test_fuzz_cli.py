"""Fuzzing ``shadowdiff run`` end to end, on mutated primary and mirror inputs: text and JSON
access logs (files) and tap output (directories).

Every run ends with exit 0 or 2 and no traceback. A run that ends with 0 has books that
balance, by the manifest's own figures (``engine/local.py``: ``_conservation``, ``_manifest``)
and by the tables written: per side, read = paired + orphaned + duplicates + rejected; the
inputs' records add up to what the sides read; a line file's records and blank lines are its
lines; the tables hold as many rows as the figures say. Most runs are in-process (click's
``CliRunner``, as tests/test_cli.py does); a few are real processes.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from fuzzkit import (
    CORPUS,
    FIXTURES,
    ROOT,
    SAMPLE,
    decompressed,
    fuzz,
    head_lines,
    inputs,
    kept_on_failure,
    line_count,
    outcome,
)
from hypothesis import given
from hypothesis import strategies as st

import shadowdiff
from shadowdiff.cli import main
from shadowdiff.collect import envoy_format

SIDES = ("primary", "mirror", "secondary", "unassigned")
LINE_SOURCES = ("envoy-text", "envoy-json")


@dataclass(frozen=True)
class Window:
    """One mirroring window: the seeds of each side and the flags that read them."""

    name: str
    primary: tuple[bytes, ...]
    mirror: tuple[bytes, ...]
    flags: tuple[tuple[str, ...], ...]  # drawn from: how the user names the format
    files_per_side: int = 1  # more than one: the side is a directory (tap output)


def _request_id(tap: Path) -> str:
    match = re.search(rb'"x-request-id",\s*"value":\s*"([^"]+)"', tap.read_bytes())
    assert match is not None, tap
    return match.group(1).decode()


def _tap_pairs(count: int) -> tuple[tuple[bytes, ...], tuple[bytes, ...]]:
    """``count`` primary taps and the mirror taps of the same requests."""
    mirror = {_request_id(p): p for p in (SAMPLE / "taps" / "mirror").glob("*.json")}
    primary = sorted((SAMPLE / "taps" / "primary").glob("*.json"))[:count]
    return (
        tuple(p.read_bytes() for p in primary),
        tuple(mirror[_request_id(p)].read_bytes() for p in primary),
    )


TAPS = _tap_pairs(4)
WINDOWS = (
    Window(
        "istio-text",
        (head_lines(SAMPLE / "primary" / "istio_text.log", 8),),
        (head_lines(SAMPLE / "mirror" / "istio_text.log", 8),),
        ((), ("--source", "envoy-text"), ("--log-format", envoy_format.ISTIO_DEFAULT_FORMAT)),
    ),
    Window(
        "istio-json",
        (head_lines(SAMPLE / "primary" / "istio_json.log", 8),),
        (head_lines(SAMPLE / "mirror" / "istio_json.log", 8),),
        ((), ("--source", "envoy-json")),
    ),
    Window(
        "taps",
        *TAPS,
        ((), ("--source", "envoy-tap")),
        files_per_side=3,
    ),
)


def place(folder: Path, side: str, files: list[bytes], directory: bool) -> Path:
    """The side's input: one file, or a directory of files (as Envoy's file_per_tap writes)."""
    if not directory:
        path = folder / f"{side}.log"
        path.write_bytes(files[0])
        return path
    path = folder / side
    path.mkdir()
    for n, data in enumerate(files):
        (path / f"tap_{n:04d}.json").write_bytes(data)
    return path


def _contents(path: Path) -> bytes:
    """A side's input as one blob, for ``FUZZ_SAVE`` (a directory's files one after another)."""
    files = sorted(path.iterdir()) if path.is_dir() else [path]
    return b"\n".join(f.read_bytes() for f in files)


def rows(out: Path, table: str) -> int:
    con = shadowdiff.open(out)
    try:
        found = con.execute(f"SELECT count(*) FROM {table}").fetchone()
    finally:
        con.close()
    assert found is not None
    return int(found[0])


def assert_books_balance(out: Path, given: dict[str, Path]) -> dict[str, Any]:
    """The manifest's conservation figures, checked against each other, the inputs and the
    tables."""
    manifest = json.loads((out / "manifest.json").read_text())
    books = manifest["conservation"]
    assert set(books) == set(SIDES), books
    for side, f in books.items():
        assert f["read"] == f["paired"] + f["orphaned"] + f["duplicates"] + f["rejected"], side
        assert min(f.values()) >= 0, (side, f)
    reports = manifest["inputs"]
    assert sum(r["records"] for r in reports) == sum(f["read"] for f in books.values())
    for side in ("primary", "mirror"):
        mine = [r for r in reports if r["side"] == side]
        assert sum(r["records"] for r in mine) == books[side]["read"], side
        files = sorted(given[side].rglob("*")) if given[side].is_dir() else [given[side]]
        assert sorted(r["path"] for r in mine) == sorted(str(f) for f in files if f.is_file())
    for report in reports:
        raw = Path(report["path"]).read_bytes()
        text = decompressed(raw)
        assert report["rejected"] <= report["records"], report
        assert report["size"] == len(raw), report
        assert report["sha256"] == hashlib.sha256(raw).hexdigest(), report
        if text is None or report["source"] not in LINE_SOURCES:
            continue
        if str(report.get("note") or "").startswith("unwrapped"):
            # Pretty-printed JSON, CRI, Docker (collect/unwrap.py): a record is a document, a
            # wrapped line or the junk between documents, so a line may hold several.
            assert report["records"] >= 1 or not text.strip(), report
        else:
            assert report["records"] + report["blank"] == line_count(text), report
    assert books["secondary"]["read"] == books["unassigned"]["read"] == 0
    outcomes = manifest["outcomes"]
    assert manifest["pairs"] == sum(outcomes.values()) == rows(out, "pairs")
    paired = outcomes["match"] + outcomes["noise_only"] + outcomes["diverged"]
    assert books["primary"]["paired"] == books["mirror"]["paired"] == paired
    assert books["primary"]["orphaned"] == outcomes["primary_only"]
    assert books["mirror"]["orphaned"] == outcomes["mirror_only"]
    rejected = sum(f["rejected"] for f in books.values())
    assert manifest["rejects"] == rejected == rows(out, "rejects")
    read = sum(f["read"] for f in books.values())
    assert rows(out, "exchanges") == read - rejected
    return manifest


def assert_exit_0_or_2(code: int, output: str) -> None:
    assert code in (0, 2), f"exit {code}:\n{output[-3000:]}"
    assert "Traceback" not in output, output[-3000:]
    if code == 2:
        assert "shadowdiff: error:" in output, output[-3000:]


_runs = iter(range(10**9))


@fuzz(15, process=True)
@given(window=st.sampled_from(WINDOWS), data=st.data())
def test_a_run_on_mutated_inputs_exits_0_or_2_and_on_0_its_books_balance(
    tmp_path: Path, window: Window, data: st.DataObject
) -> None:
    folder = tmp_path / f"run-{next(_runs)}"
    folder.mkdir()
    directory = window.files_per_side > 1
    given_inputs: dict[str, Path] = {}
    for side, seeds in (("primary", window.primary), ("mirror", window.mirror)):
        files = [seeds[n % len(seeds)] for n in range(window.files_per_side)]
        for n in data.draw(st.sets(st.integers(0, len(files) - 1)), label=f"{side} mutated"):
            files[n] = data.draw(inputs(seeds), label=f"{side} file {n}")
        given_inputs[side] = place(folder, side, files, directory)
    flags = list(data.draw(st.sampled_from(window.flags), label="flags"))
    out = folder / "out"
    args = ["run", "--primary", str(given_inputs["primary"]), "--mirror"]
    args += [str(given_inputs["mirror"]), "--out", str(out), "-q", *flags]
    primary, mirror = (given_inputs[side] for side in ("primary", "mirror"))
    with (
        kept_on_failure(f"cli-{window.name}-primary", _contents(primary), ".log"),
        kept_on_failure(f"cli-{window.name}-mirror", _contents(mirror), ".log"),
    ):
        result = CliRunner().invoke(main, args)
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            raise result.exception  # the traceback a user would have seen
        assert_exit_0_or_2(result.exit_code, result.output)
        outcome(f"exit {result.exit_code}")
        if result.exit_code == 0:
            assert_books_balance(out, given_inputs)


def test_the_unmutated_windows_run_and_balance(tmp_path: Path) -> None:
    # The seeds make a clean run: the property above is checked on real figures too.
    for window in WINDOWS:
        folder = tmp_path / window.name
        folder.mkdir()
        directory = window.files_per_side > 1
        sides = {
            side: place(folder, side, list(seeds[: window.files_per_side]), directory)
            for side, seeds in (("primary", window.primary), ("mirror", window.mirror))
        }
        out = folder / "out"
        args = ["run", "--primary", str(sides["primary"]), "--mirror", str(sides["mirror"])]
        result = CliRunner().invoke(main, [*args, "--out", str(out), "-q"])
        assert result.exit_code == 0, result.output
        manifest = assert_books_balance(out, sides)
        assert manifest["conservation"]["primary"]["paired"] > 0


# A few real processes: what a user's shell sees, on the nastiest inputs of the corpus.
NASTIEST = [
    CORPUS / "envoy_text" / "001-nul-bytes.log",
    CORPUS / "envoy_json" / "004-truncated.jsonl.gz",
    CORPUS / "envoy_tap" / "002-invalid-utf8.json",
]


@pytest.mark.parametrize("nasty", NASTIEST, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_a_real_process_on_a_corpus_file_exits_0_or_2(tmp_path: Path, nasty: Path) -> None:
    good = {
        "envoy_text": FIXTURES / "envoy_text" / "istio_default.log",
        "envoy_json": FIXTURES / "envoy_json" / "istio.jsonl",
        "envoy_tap": FIXTURES / "envoy_tap" / "streamed_post.json",
    }[nasty.parent.name]
    out = tmp_path / "out"
    shadowdiff_bin = Path(sys.executable).with_name("shadowdiff")
    command = [str(shadowdiff_bin), "run", "--primary", str(nasty), "--mirror", str(good)]
    done = subprocess.run(
        [*command, "--out", str(out), "-q"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env={**os.environ, "PYTHONFAULTHANDLER": "1"},
    )
    assert_exit_0_or_2(done.returncode, done.stdout + done.stderr)
    if done.returncode == 0:
        assert_books_balance(out, {"primary": nasty, "mirror": good})
