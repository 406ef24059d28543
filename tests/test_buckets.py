"""The bucketed engine: a run's tables are the same whatever the bucket count, and a large log
read in pieces gives what it gives read whole."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_collection import tap_window
from test_engine import write_corpus
from test_fingerprint import log
from test_window import line

import shadowdiff
from benchmarks import noise as noise_corpus
from shadowdiff.collect import pieces
from shadowdiff.engine import buckets, collection, logcuts
from shadowdiff.testing.compare import differences


@pytest.fixture(autouse=True)
def one_key(monkeypatch: pytest.MonkeyPatch) -> None:
    """The same redaction key in every run here, so that runs can be compared tag for tag."""
    monkeypatch.setattr("shadowdiff.redact.secrets.token_bytes", lambda n: b"k" * n)


def run(out: Path, count: int | None, **inputs: object) -> dict[str, object]:
    result = shadowdiff.run(out=out, buckets=count, **inputs)  # type: ignore[arg-type]
    return result.manifest


def same_for_1_and_16_buckets(tmp_path: Path, **inputs: object) -> dict[str, object]:
    one = run(tmp_path / "one", 1, **inputs)
    many = run(tmp_path / "many", 16, **inputs)
    assert one["engine"] == {"name": "local", "buckets": 1}
    assert many["engine"] == {"name": "local", "buckets": 16}
    assert (tmp_path / "one" / "exchanges.parquet").is_file()
    # A part per bucket where a bucket changes its exchanges (fingerprint ids, a window);
    # else a part per piece of input, stored as it was prepared.
    parts = list((tmp_path / "many" / "exchanges").glob("part-*.parquet"))
    assert parts and all(p.stat().st_size > 0 for p in parts)
    assert differences(tmp_path / "one", tmp_path / "many") == []
    return many


def parts_of(out: Path) -> list[str]:
    return sorted(p.name for p in (out / "exchanges").glob("part-*.parquet"))


def test_exchanges_are_stored_per_piece_or_per_bucket(tmp_path: Path) -> None:
    primary, mirror = write_corpus(tmp_path)
    inputs = {"primary": [str(x) for x in primary], "mirror": [str(x) for x in mirror]}
    run(tmp_path / "pieces", 8, **inputs)
    by_piece = parts_of(tmp_path / "pieces")
    assert len(by_piece) >= 3 and all(
        re.fullmatch(r"part-\d{7}-\d{6}\.parquet", n) for n in by_piece
    )
    run(tmp_path / "buckets", 8, pair_by="fingerprint", **inputs)
    assert parts_of(tmp_path / "buckets") == [f"part-{b:04d}.parquet" for b in range(8)]


def test_noise_with_a_secondary_is_judged_the_same_in_16_buckets(tmp_path: Path) -> None:
    """Bodies, headers, a secondary side and the hard corpus's noise: the verdicts come from
    statistics over every bucket, so no bucket count changes one."""
    data = tmp_path / "corpus"
    noise_corpus.generate(data, 1200, corpus="hard")
    manifest = same_for_1_and_16_buckets(
        tmp_path,
        primary=[str(data / "primary.json")],
        mirror=[str(data / "mirror.json")],
        secondary=[str(data / "secondary.json")],
    )
    assert manifest["pairs"] == 1200
    con = shadowdiff.open(tmp_path / "many")
    verdicts = dict(con.sql("SELECT verdict, count(*) FROM noise GROUP BY 1").fetchall())
    assert verdicts.get("noise", 0) > 10 and verdicts.get("real", 0) > 5


def test_bad_lines_duplicates_and_orphans_in_16_buckets(tmp_path: Path) -> None:
    primary, mirror = write_corpus(tmp_path)
    manifest = same_for_1_and_16_buckets(
        tmp_path, primary=[str(p) for p in primary], mirror=[str(m) for m in mirror]
    )
    conservation = manifest["conservation"]
    assert isinstance(conservation, dict)
    assert conservation["primary"]["duplicates"] == 1
    assert conservation["mirror"]["duplicates"] == 2


def test_fingerprint_pairing_in_16_buckets(tmp_path: Path) -> None:
    primary = [(i * 2000.0, f"/api/items/{i % 5}", 200) for i in range(40)]
    primary += [(100_000, "/api/dup", 200), (100_050, "/api/dup", 200)]  # ambiguous
    mirror = [(ms + 7, p, 500 if p == "/api/items/3" else s) for ms, p, s in primary[:-1]]
    rules = tmp_path / "rules.toml"
    rules.write_text('[pairing]\nby = "fingerprint"\nmax_skew_ms = 500\n')
    manifest = same_for_1_and_16_buckets(
        tmp_path,
        primary=[str(log(tmp_path / "p.log", primary))],
        mirror=[str(log(tmp_path / "m.log", mirror))],
        rules=str(rules),
    )
    conservation = manifest["conservation"]
    assert isinstance(conservation, dict)
    assert conservation["primary"]["paired"] == 40 and conservation["primary"]["orphaned"] == 2


def test_a_time_window_in_16_buckets(tmp_path: Path) -> None:
    """--since/--until keep the mirror's copies of the primary's requests inside: each copy is
    in its request's bucket."""
    p, m = tmp_path / "p.log", tmp_path / "m.log"
    p.write_text("".join(line(i, i * 100.0) + "\n" for i in range(300)))
    # The mirror's copies arrive 900 ms late: outside the window's skew at its end.
    m.write_text("".join(line(i, i * 100.0 + 900, status=200 + (i % 3)) + "\n" for i in range(300)))
    manifest = same_for_1_and_16_buckets(
        tmp_path,
        primary=[str(p)],
        mirror=[str(m)],
        since="2026-11-28T10:00:05Z",
        until="2026-11-28T10:00:20Z",
    )
    conservation = manifest["conservation"]
    assert isinstance(conservation, dict)
    assert conservation["primary"]["outside_window"] == 150
    assert conservation["mirror"]["paired"] == 150


def test_tap_directories_read_by_workers_in_16_buckets(tmp_path: Path) -> None:
    """Chunks read and prepared in worker processes, and whole buckets diffed there."""
    primary, mirror = tap_window(tmp_path, 2 * collection.MIN_CHUNK_FILES + 345)
    (primary / "tap_0000007.json").write_text("not a trace\n")
    manifest = same_for_1_and_16_buckets(tmp_path, primary=[str(primary)], mirror=[str(mirror)])
    conservation = manifest["conservation"]
    assert isinstance(conservation, dict)
    assert conservation["primary"]["rejected"] == 1


def logs_with_bad_lines(
    tmp_path: Path, n: int, final_newline: bool, carriage_returns: bool = False
) -> tuple[Path, Path]:
    """A primary log of ``n`` records with blank and broken lines among them (its last line
    without a newline unless ``final_newline``; with ``carriage_returns``, some lines end in
    CRLF and some hold two objects parted by a lone CR), and its mirror's ``n`` clean records."""
    p, m = tmp_path / "p.log", tmp_path / "m.log"
    lines = []
    for i in range(n):
        lines.append(line(i, i * 10.0) + ("\r" if carriage_returns and i % 41 == 0 else ""))
        if i % 37 == 0:
            lines.append("")
        if i % 53 == 0:
            lines.append('{"broken": ')
        if carriage_returns and i % 101 == 0:
            lines.append('{"response_code": 200}\r{"response_code": 203}')
    p.write_bytes(("\n".join(lines) + ("\n" if final_newline else "")).encode())
    m.write_text("".join(json.dumps(json.loads(line(i, i * 10.0 + 3))) + "\n" for i in range(n)))
    return p, m


def no_streams(*_args: object) -> set[str]:
    """No log streamed whole by a worker (tests/test_logstream.py): each is cut."""
    return set()


def test_a_log_read_in_pieces_gives_what_it_gives_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Cut every few kilobytes: locations and rejects keep the log's line numbers, blank lines
    and bad lines are counted as in one piece."""
    p, m = logs_with_bad_lines(tmp_path, 400, final_newline=True)
    inputs = {"primary": [str(p)], "mirror": [str(m)]}
    whole = run(tmp_path / "whole", None, **inputs)
    monkeypatch.setattr(pieces, "PIECE_BYTES", 4096)
    cut = run(tmp_path / "cut", None, **inputs)
    assert differences(tmp_path / "whole", tmp_path / "cut") == []
    assert whole["conservation"] == cut["conservation"]
    con = shadowdiff.open(tmp_path / "cut")
    located = con.sql("SELECT location FROM rejects ORDER BY 1").fetchall()
    assert len(located) == 8 and all(loc.startswith(f"{p}:") for (loc,) in located)


@pytest.mark.parametrize(("count", "carriage_returns"), [(1, False), (4, False), (4, True)])
def test_logs_read_as_cuts_by_the_workers_give_what_they_give_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, count: int, carriage_returns: bool
) -> None:
    """Each log cut every few kilobytes and read by the reading workers (engine.logcuts):
    the tables, every input's figures, the line numbers of locations and rejects, and the
    conservation are those of the logs read whole in this process. With carriage returns, the
    cuts that hold one are cut into lines by splitlines, as the whole log is."""
    p, m = logs_with_bad_lines(tmp_path, 600, False, carriage_returns)
    inputs = {"primary": [str(p)], "mirror": [str(m)]}
    whole = run(tmp_path / "whole", count, **inputs)
    cut_into: list[int] = []
    planned = logcuts.plan_cuts

    def plan_cuts(*args: object) -> Iterator[pieces.Cut]:
        for cut in planned(*args):  # type: ignore[arg-type]
            cut_into.append(cut.number)
            yield cut

    monkeypatch.setattr(logcuts, "plan_cuts", plan_cuts)
    monkeypatch.setattr(collection, "PARALLEL_MIN_LOG_BYTES", 0)
    monkeypatch.setattr(collection, "cores", lambda: 2)
    monkeypatch.setattr(collection, "_streamed", no_streams)
    monkeypatch.setattr(pieces, "PIECE_BYTES", 4096)
    cut = run(tmp_path / "cut", count, **inputs)
    assert len(cut_into) > 20  # both logs, in many cuts
    assert differences(tmp_path / "whole", tmp_path / "cut") == []
    assert whole["conservation"] == cut["conservation"]
    assert whole["inputs"] == cut["inputs"]
    con = shadowdiff.open(tmp_path / "cut")
    located = con.sql("SELECT location FROM rejects ORDER BY 1").fetchall()
    assert len(located) == 12 + 6 * carriage_returns
    assert all(loc.startswith(f"{p}:") for (loc,) in located)


def test_pieces_cut_at_line_ends_and_count_the_lines(tmp_path: Path) -> None:
    path = tmp_path / "big.log"
    text = "".join(f"line {i} {'x' * (i % 50)}\n" for i in range(2000))
    path.write_text(text)
    source = shadowdiff.collect.base.Input(path)
    seen = []
    for piece in pieces.pieces(source, tmp_path / "scratch", piece_bytes=5000):
        data = piece.source.path.read_text()
        assert data.endswith("\n") and piece.source.name == str(path)
        seen.append((piece.lines_before, data))
    assert len(seen) > 10
    assert "".join(data for _, data in seen) == text
    for (before, data), (after, _) in zip(seen, seen[1:], strict=False):
        assert after == before + data.count("\n")
    assert not list((tmp_path / "scratch").iterdir())  # each piece removed once read


def test_pieces_also_end_at_a_number_of_lines(tmp_path: Path) -> None:
    """A log of short lines is cut by its lines before its bytes: a piece's memory follows
    its records."""
    path = tmp_path / "dense.log"
    text = "".join(f"{i}\n" for i in range(1000)) + "tail"
    path.write_text(text)
    with open(path, "rb") as log:
        cuts = list(pieces.cuts(log, path.stat().st_size, piece_bytes=1 << 20, piece_lines=300))
    assert [c.lines for c in cuts] == [300, 300, 300, 101]  # the last one unterminated
    assert [c.lines_before for c in cuts] == [0, 300, 600, 900]
    data = path.read_bytes()
    assert b"".join(data[c.start : c.end] for c in cuts) == data
    assert all(data[c.end - 1 : c.end] == b"\n" for c in cuts[:-1])


def test_a_log_of_many_short_lines_read_in_pieces_gives_what_it_gives_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Cut by lines only (the bytes' limit far off): in this process and by the workers, the
    tables and figures are those of the log read whole."""
    p, m = logs_with_bad_lines(tmp_path, 500, final_newline=False, carriage_returns=True)
    inputs = {"primary": [str(p)], "mirror": [str(m)]}
    whole = run(tmp_path / "whole", 4, **inputs)
    monkeypatch.setattr(pieces, "PIECE_LINES", 97)
    source = shadowdiff.collect.base.Input(p)
    assert len([piece for piece in pieces.pieces(source, tmp_path / "scratch")]) > 5
    here = run(tmp_path / "here", 4, **inputs)
    monkeypatch.setattr(collection, "PARALLEL_MIN_LOG_BYTES", 0)
    monkeypatch.setattr(collection, "cores", lambda: 2)
    monkeypatch.setattr(collection, "_streamed", no_streams)
    cut = run(tmp_path / "cut", 4, **inputs)
    for other in ("here", "cut"):
        assert differences(tmp_path / "whole", tmp_path / other) == []
    assert whole["conservation"] == here["conservation"] == cut["conservation"]
    assert whole["inputs"] == here["inputs"] == cut["inputs"]


def test_the_working_area_is_gone_after_a_run(tmp_path: Path) -> None:
    primary, mirror = write_corpus(tmp_path)
    out = tmp_path / "out"
    run(out, 8, primary=[str(x) for x in primary], mirror=[str(x) for x in mirror])
    names = sorted(p.name for p in out.iterdir())
    assert buckets.SPILL_DIR not in names and "parts" not in names
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out.run-")]
    shutil.rmtree(out)


def test_bucket_count_follows_the_input_size() -> None:
    assert buckets.bucket_count(0) == 1
    assert buckets.bucket_count(buckets.BUCKET_INPUT_BYTES) == 1
    assert buckets.bucket_count(buckets.BUCKET_INPUT_BYTES + 1) == 2
    assert buckets.bucket_count(10**15) == buckets.MAX_BUCKETS
    assert buckets.bucket_count(10**12, requested=3) == 3
