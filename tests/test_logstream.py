"""Logs streamed whole by the reading workers (engine.logstream): the tables and figures are
those of the logs read in this process, and a stream that gives up late takes back what it
prepared before the log is read as cuts."""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pytest
from held import Watch
from test_buckets import one_key, parts_of, run  # noqa: F401 - one_key: a fixture
from test_window import line

import shadowdiff
from shadowdiff.collect import envoy_json, envoy_text, pieces
from shadowdiff.collect.base import Batch, Input, Options
from shadowdiff.engine import buckets, collection, logcuts, logstream
from shadowdiff.engine.buckets import Layout
from shadowdiff.engine.tasks import Prepared
from shadowdiff.testing.compare import differences

RECORDS = 600
LATE = 550  # past ten batches of 50 lines
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def text_line(i: int, ms: float) -> str:
    """A line of Istio's default text format."""
    at = (T0 + timedelta(milliseconds=ms)).isoformat(timespec="milliseconds")
    return (
        f'[{at.replace("+00:00", "Z")}] "GET /api/items/{i} HTTP/1.1" 200 - via_upstream - "-" '
        f'0 34 5 4 "192.0.2.2" "curl/8.5.0" "r{i}" "app:8080" "10.0.0.9:8080" '
        "outbound|8080||app 10.0.0.5:41000 10.0.0.5:8080 192.0.2.2:0 - default"
    )


LINES = {"json": line, "text": text_line}
# (kind of log, a line after the primary's LATE-th record; whether the stream gives up on it)
PROBLEMS: dict[str, tuple[str, bytes | None, bool]] = {
    "json clean": ("json", None, False),
    "json, a blank line": ("json", b"", True),  # read_json skips it: the count tells
    "json, a line that is not JSON": ("json", b'{"broken": ', True),
    "json, a null line": ("json", b"null", True),
    "json, a bad value": (
        "json",
        line(9999, 1.0).replace('"response_code": 200', '"response_code": "2x0"').encode(),
        False,
    ),
    "json, a CRLF line": ("json", line(9998, 1.0).encode() + b"\r", False),
    "json, a last line cut short": ("json", b"", True),
    "text clean": ("text", None, False),
    "text, a blank line": ("text", b"", False),
    "text, a line that does not match": ("text", b"garbage here", False),
    "text, a bad value": ("text", text_line(9999, 1.0).replace(" 200 ", " 2x0 ").encode(), False),
    "text, a line that is not UTF-8": ("text", b"\xff\xfe\n", True),
    "text, a CRLF line": ("text", text_line(9998, 1.0).encode() + b"\r", True),
    # DuckDB's reader makes two lines of the first and drops the second: as many rows as lines
    "text, a lone CR, then a line not UTF-8": (
        "text",
        f"{text_line(9998, 1.0)}\r{text_line(9996, 1.0)}\n".encode() + b"\xff\xfe",
        True,
    ),
    "text, a last line cut short": ("text", b"", True),
}


def logs(tmp_path: Path, kind: str, problem: bytes | None, end: bytes = b"\n") -> tuple[Path, Path]:
    """A primary and a mirror log of ``RECORDS`` records each, ``problem`` (a line) in the
    primary's after its ``LATE``-th record; ``end``: what ends the primary's last line."""
    p, m = tmp_path / "p.log", tmp_path / "m.log"
    make = LINES[kind]
    primary = [make(i, i * 10.0).encode() for i in range(RECORDS)]
    if problem is not None:
        primary.insert(LATE, problem)
    p.write_bytes(b"\n".join(primary) + end)
    m.write_text("".join(make(i, i * 10.0 + 3) + "\n" for i in range(RECORDS)))
    return p, m


def streaming(monkeypatch: pytest.MonkeyPatch) -> None:
    """Reading workers for any log, two of them, and streams of 50 lines a batch."""
    monkeypatch.setattr(collection, "PARALLEL_MIN_LOG_BYTES", 0)
    monkeypatch.setattr(collection, "cores", lambda: 2)
    monkeypatch.setattr(logstream, "STREAM_ROWS", 50)


def batches_of(out: Path, item: int) -> list[str]:
    """The names of input ``item``'s exchanges parts, as piece and batch."""
    prefix = f"part-{item:07d}-"
    return [n[len(prefix) : -len(".parquet")] for n in parts_of(out) if n.startswith(prefix)]


@pytest.mark.parametrize("problem", PROBLEMS)
def test_streamed_logs_give_what_they_give_read_here(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, problem: str
) -> None:
    kind, text, gives_up = PROBLEMS[problem]
    unterminated = problem.endswith("cut short")
    half = LINES[kind](9997, 1.0)[:60].encode()
    p, m = logs(
        tmp_path, kind, None if unterminated else text, b"\n" + half if unterminated else b"\n"
    )
    inputs = {"primary": [str(p)], "mirror": [str(m)]}
    here = run(tmp_path / "here", 4, **inputs)
    streaming(monkeypatch)
    streamed = run(tmp_path / "streamed", 4, **inputs)
    assert differences(tmp_path / "here", tmp_path / "streamed") == []
    assert here["conservation"] == streamed["conservation"]
    assert here["inputs"] == streamed["inputs"]
    # The mirror streamed in batches of 50 lines; the primary too, unless the stream gave up,
    # when what it prepared was taken back and the log read as one cut.
    assert batches_of(tmp_path / "streamed", 1) == [f"000000-{k:06d}" for k in range(12)]
    lines = p.read_bytes().count(b"\n") + unterminated
    streamed_batches = [f"000000-{k:06d}" for k in range(-(-lines // 50))]
    expected = ["000000-000000"] if gives_up else streamed_batches
    assert batches_of(tmp_path / "streamed", 0) == expected


def test_a_bad_value_is_a_reject_at_its_line_with_its_text(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    p, m = logs(tmp_path, "json", PROBLEMS["json, a bad value"][1])
    streaming(monkeypatch)
    run(tmp_path / "streamed", 4, primary=[str(p)], mirror=[str(m)])
    con = shadowdiff.open(tmp_path / "streamed")
    ((location, excerpt),) = con.sql("SELECT location, excerpt FROM rejects").fetchall()
    assert location == f"{p}:{LATE + 1}" and '"2x0"' in excerpt


def test_a_log_written_to_while_it_is_streamed_reads_as_it_was_at_the_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A record appended once the stream has begun: the stream gives up (the file is not the
    size the run pinned), what it spilled is taken back, and the log is read as cuts of what
    it held at the start. (Run here, not in a worker: the writing is patched in.)"""
    p, _ = logs(tmp_path, "json", None)
    original = envoy_json.EnvoyJsonCollector.stream

    def appending(self: object, source: Input, options: Options, rows: int) -> Iterator[Batch]:
        for n, batch in enumerate(original(self, source, options, rows)):  # type: ignore[arg-type]
            if n == 1:
                with open(p, "a") as log:
                    log.write(line(RECORDS, 1.0) + "\n")
            yield batch

    monkeypatch.setattr(envoy_json.EnvoyJsonCollector, "stream", appending)
    kept = Layout(str(tmp_path / "kept"), 1)
    kept.create()
    source = Input(p, "primary")
    expected = logcuts.Expected(p.stat().st_size)
    task = logstream.StreamTask(source, envoy_json.NAME, expected, 3, str(tmp_path / "s"), 50)
    rows, report, _ = logstream.read_stream(task, Options(), collection.Keep(kept))
    assert rows == [] and report.records == RECORDS
    assert sorted(f.name for f in kept.directory(0).iterdir()) == ["0000003-000000-000000.arrow"]
    assert buckets.read(kept, 0).num_rows == RECORDS


def test_a_streamed_batch_is_let_go_before_the_next_is_parsed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker holds one batch of a log at a time: by the time the stream is asked for the
    next (and DuckDB parses it), nothing in the reading holds the one before, whose tables
    are a quarter of a million lines in a run. (An ``enumerate`` over the batches held each
    one through the next in its reused tuple: 40-60 MB more per worker on 2 x 1M lines.)"""
    p, _ = logs(tmp_path, "json", None)
    original = envoy_json.EnvoyJsonCollector.stream
    watch: Watch[Batch] = Watch()

    def watched(self: object, source: Input, options: Options, rows: int) -> Iterator[Batch]:
        return watch.watched(original(self, source, options, rows))  # type: ignore[arg-type]

    monkeypatch.setattr(envoy_json.EnvoyJsonCollector, "stream", watched)
    kept = Layout(str(tmp_path / "kept"), 1)
    kept.create()
    expected = logcuts.Expected(p.stat().st_size)
    task = logstream.StreamTask(Input(p), envoy_json.NAME, expected, 0, str(tmp_path / "s"), 50)
    _, report, _ = logstream.read_stream(task, Options(), collection.Keep(kept))
    assert report.records == RECORDS and len(watch.given) == RECORDS // 50
    assert watch.held == []


def test_a_text_log_with_a_carriage_return_gives_up_after_one_batch(tmp_path: Path) -> None:
    """The count runs far ahead of the parsing: once the first batch is in, the stream asks
    it, and gives up on a carriage return then rather than after reading the whole log."""
    p, _ = logs(tmp_path, "text", text_line(9998, 1.0).encode() + b"\r")
    kept = Layout(str(tmp_path / "kept"), 1)
    kept.create()
    prepared: list[str] = []
    discarded: list[str] = []

    class Recording(collection.Keep):
        def __call__(self, collected: pa.Table, piece: str) -> Prepared:
            prepared.append(piece)
            return super().__call__(collected, piece)

        def discard(self, piece: str) -> None:
            discarded.append(piece)
            super().discard(piece)

    expected = logcuts.Expected(p.stat().st_size)
    task = logstream.StreamTask(Input(p), envoy_text.NAME, expected, 0, str(tmp_path / "s"), 50)
    _, report, _ = logstream.read_stream(task, Options(), Recording(kept))
    assert discarded == ["0000000-000000-000000"]  # the stream's one batch, taken back
    assert prepared == [*discarded, "0000000-000000-000000"]  # then the log as one cut
    assert report.records == RECORDS + 1 and buckets.read(kept, 0).num_rows == RECORDS + 1


def test_a_log_read_on_its_own_leaves_the_other_to_be_cut(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A compressed mirror is read in the run's process, not by a worker: streaming the
    primary alone would leave the other worker idle, so the primary is cut instead."""
    p, m = logs(tmp_path, "json", None)
    gz = tmp_path / "m.log.gz"
    gz.write_bytes(gzip.compress(m.read_bytes()))
    inputs = {"primary": [str(p)], "mirror": [str(gz)]}
    here = run(tmp_path / "here", 4, **inputs)
    streaming(monkeypatch)
    cut = run(tmp_path / "cut", 4, **inputs)
    assert differences(tmp_path / "here", tmp_path / "cut") == []
    assert batches_of(tmp_path / "cut", 0) == ["000000-000000"]  # one cut, not 12 batches
    assert here["conservation"] == cut["conservation"]


def test_logs_of_unlike_sizes_are_cut_rather_than_streamed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """One worker streaming a large log while the other has a small one would leave a core
    idle: such logs are cut instead, as is a log left over once every worker has one."""
    sizes = {"a": 900 << 20, "b": 850 << 20, "c": 10 << 20, "d": 2000 << 20, "t": 900 << 20}
    monkeypatch.setattr(pieces, "file_size", lambda source: sizes[source.path.name])

    def chosen(names: str, workers: int = 2) -> set[str]:
        logs = [
            collection._One(
                Input(Path(n)), envoy_text.COLLECTOR if n == "t" else envoy_json.COLLECTOR, True
            )
            for n in names
        ]
        return collection._streamed(logs, workers)

    assert chosen("ab") == {"a", "b"}
    assert chosen("abc") == {"a", "b"}  # c is cut, its cuts spread over both workers
    assert chosen("ac") == chosen("da") == set()  # sizes too far apart
    assert chosen("ab", workers=1) == set()
    assert chosen("at") == {"a", "t"}  # JSON and text logs alike
