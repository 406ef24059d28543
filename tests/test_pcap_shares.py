"""A capture read in shares (``pcap_shares``) gives what it gives read whole: the same rows,
rejects and figures, whatever the number of shares, also where idle connections are swept,
closed ones forgotten, ports reused and records out of time order."""

from __future__ import annotations

import gzip
import random
import shutil
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import pcapgen as gen
import pyarrow as pa
import pytest
from held import Watch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pcapgen import Conversation, http_request, http_response

import shadowdiff
from shadowdiff.collect import pcap
from shadowdiff.collect.base import Batch, Input, Options
from shadowdiff.collect.pcap import Capture, Figures, merged_figures
from shadowdiff.collect.pcap_shares import Share, sweep_points
from shadowdiff.engine import captureshares, collection, logcuts
from shadowdiff.engine.buckets import Layout
from shadowdiff.errors import InputError
from shadowdiff.testing.compare import differences

CAPTURES = Path(__file__).parent / "fixtures" / "captures"  # copied from ../shared/captures
TAP = Path(__file__).parent / "fixtures" / "envoy_tap" / "streamed_post.json"


def _read(path: Path, share: Share | None) -> tuple[list[str], list[str], Figures]:
    capture = Capture(Input(path), Options(), share)
    tables: list[pa.Table] = []
    rejects: list[dict[str, object]] = []
    for batch in capture.batches():
        tables.append(batch.exchanges)
        rejects.extend(batch.rejects)
    rows = [repr(r) for t in tables for r in t.to_pylist()]
    return rows, [repr(r) for r in rejects], capture.figures


def assert_same_in_shares(path: Path, counts: tuple[int, ...] = (2, 3)) -> int:
    """Read ``path`` whole and in each count of shares; how many rows it had."""
    rows, rejects, figures = _read(path, None)
    for count in counts:
        shares = [_read(path, Share(index, count)) for index in range(count)]
        assert sorted(r for s in shares for r in s[0]) == sorted(rows), count
        assert sorted(r for s in shares for r in s[1]) == sorted(rejects), count
        assert merged_figures([s[2] for s in shares]) == figures, count
        # Each share has connections of its own (not one share doing all the work).
        if figures.connections >= 20:
            assert all(s[2].connections > 0 for s in shares), count
    return len(rows)


def test_every_real_capture_is_here() -> None:
    assert len(list(CAPTURES.glob("*.pcap*"))) == 13


def test_the_sweep_points_follow_the_running_maximum_of_the_times() -> None:
    times = np.array([0, 5, 3, 12, 11, 13, 25, 24, 40], dtype=np.int64)
    # due at 0: the first; then at 10 (12 starts it), at 22 (25), at 35 (40)
    assert sweep_points(times, 0, 10) == [0, 3, 6, 8]
    assert sweep_points(times, 100, 10) == []
    assert sweep_points(np.array([], dtype=np.int64), 0, 10) == []


@pytest.mark.parametrize("name", sorted(p.name for p in CAPTURES.glob("*.pcap*")))
def test_real_captures_read_the_same_in_shares(name: str) -> None:
    assert_same_in_shares(CAPTURES / name)


def test_busy_keepalive_traffic_reads_the_same_in_shares(tmp_path: Path) -> None:
    packets = gen.keepalive_traffic(connections=300, exchanges=4, seed=3)
    path = gen.write_pcap(tmp_path / "busy.pcap", gen.frames(packets))
    assert assert_same_in_shares(path, (2, 3, 5)) == 300 * 4


def _request(number: int) -> bytes:
    headers = (("Host", "app"), ("x-request-id", f"r-{number}"))
    return http_request("GET", f"/api/{number}", headers)


def _response(number: int) -> bytes:
    return http_response(200, b'{"n": %d}' % number, (("Content-Type", "application/json"),))


def _connection(rng: random.Random, number: int, start: float) -> list[gen.Packet]:
    """One connection, as the strategies below draw it: a few exchanges, pauses long enough
    for the idle sweep or the forgetting of closed connections, an unanswered request, a
    close, a reset or neither, and late copies of its packets after the close."""
    talk = Conversation(
        (f"10.0.{rng.randrange(3)}.{rng.randrange(1, 4)}", 40000 + rng.randrange(3)),
        ("10.0.0.2", rng.choice((8081, 8082))),
        start=start,
        client_isn=rng.randrange(1 << 32),
        server_isn=rng.randrange(1 << 32),
    )
    packets = talk.handshake() if rng.random() < 0.9 else []
    for exchange in range(rng.randrange(4)):
        if rng.random() < 0.3:
            talk.time += rng.choice((5, pcap.IDLE_SECONDS + 1, pcap.CLOSED_SECONDS + 1))
        packets += talk.exchange(_request(number * 10 + exchange), _response(exchange))
    if rng.random() < 0.3:
        packets += talk.request(_request(number * 10 + 9))
    ending = rng.random()
    if ending < 0.5:
        packets += talk.close()
    elif ending < 0.7:
        packets += talk.reset()
    for _ in range(rng.randrange(3)):  # late copies, some within CLOSED_SECONDS, some past it
        late = rng.choice((1, pcap.CLOSED_SECONDS + 15, pcap.IDLE_SECONDS + 20))
        if packets:
            packets.append(replace(rng.choice(packets), time=talk.time + late))
    return packets


def _capture(seed: int, connections: int, swaps: int) -> list[gen.Packet]:
    rng = random.Random(seed)
    packets: list[gen.Packet] = []
    for number in range(connections):
        start = 1000.0 + rng.choice((0, 1, 30, 200, pcap.IDLE_SECONDS + 50)) * rng.random()
        packets += _connection(rng, number, start)
    packets.sort(key=lambda p: p.time)
    for _ in range(swaps):  # records out of time order, as a capture of several queues has
        if len(packets) > 1:
            i = rng.randrange(len(packets) - 1)
            packets[i], packets[i + 1] = packets[i + 1], packets[i]
    return packets


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    seed=st.integers(0, 2**32 - 1),
    connections=st.integers(1, 40),
    swaps=st.integers(0, 30),
)
def test_any_capture_reads_the_same_in_shares(
    tmp_path: Path, seed: int, connections: int, swaps: int
) -> None:
    path = gen.write_pcap(tmp_path / "c.pcap", gen.frames(_capture(seed, connections, swaps)))
    assert_same_in_shares(path)


def test_a_capture_cut_short_is_rejected_once(tmp_path: Path) -> None:
    packets = gen.keepalive_traffic(connections=20, exchanges=2, seed=1)
    path = gen.write_pcap(tmp_path / "cut.pcap", gen.frames(packets))
    path.write_bytes(path.read_bytes()[:-30])
    _, rejects, _ = _read(path, None)
    assert len(rejects) >= 1
    assert_same_in_shares(path)


def test_a_share_lets_each_batch_go_before_the_next_is_reassembled(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A reading worker holds one batch of its share at a time: by the time the capture is
    asked for the next, nothing in the share's reading holds the one before."""
    monkeypatch.setattr(pcap, "BATCH_ROWS", 10)
    packets = gen.keepalive_traffic(connections=300, exchanges=6, seed=5)
    path = gen.write_pcap(tmp_path / "busy.pcap", gen.frames(packets))
    original = Capture.batches
    watch: Watch[Batch] = Watch()

    def watched(self: Capture, *args: object) -> Iterator[Batch]:
        return watch.watched(original(self, *args))  # type: ignore[arg-type]

    monkeypatch.setattr(Capture, "batches", watched)
    expected = logcuts.Expected(path.stat().st_size)
    task = captureshares.ShareTask(Input(path), Share(0, 2), expected, 0)
    kept = Layout(str(tmp_path / "kept"), 1)
    kept.create()
    _, _, _, records = captureshares.read_share(task, Options(), collection.Keep(kept))
    assert records > 0 and len(watch.given) > 2
    assert watch.held == []


def test_figures_of_shares_count_packets_once_and_connections_in_sum() -> None:
    a = Figures(packets=10, tcp_packets=9, not_tcp=1, connections=2, gaps=1, late_packets=3)
    b = Figures(packets=10, tcp_packets=9, not_tcp=1, connections=3, gaps=0, late_packets=1)
    merged = merged_figures([a, b])
    assert (merged.packets, merged.tcp_packets, merged.not_tcp) == (10, 9, 1)
    assert (merged.connections, merged.gaps, merged.late_packets) == (5, 1, 4)


def test_a_run_reads_a_large_capture_in_shares_and_writes_what_a_whole_read_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("shadowdiff.redact.secrets.token_bytes", lambda n: b"k" * n)
    monkeypatch.setattr("shadowdiff.engine.collection.cores", lambda: 2)
    packets = gen.keepalive_traffic(connections=200, exchanges=3, seed=5)
    capture = gen.write_pcap(tmp_path / "busy.pcap", gen.frames(packets))
    capture.write_bytes(capture.read_bytes()[:-7])  # and a record cut short at the end
    rules = tmp_path / "rules.toml"
    rules.write_text('[sides]\nprimary = "server_port = 8080"\nmirror = "server_port = 8081"\n')
    monkeypatch.setattr(captureshares, "MIN_SHARED_BYTES", 1 << 40)
    run = {"inputs": [str(capture)], "rules": str(rules), "buckets": 4}
    whole = shadowdiff.run(out=tmp_path / "whole", **run)  # type: ignore[arg-type]
    assert (tmp_path / "whole" / "exchanges.parquet").is_file()  # one piece, one file
    monkeypatch.setattr(captureshares, "MIN_SHARED_BYTES", 1)
    shares = shadowdiff.run(out=tmp_path / "shares", **run)  # type: ignore[arg-type]
    # The exchanges as each share's worker prepared them: a part per share and batch.
    assert _parts(tmp_path / "shares") == [f"part-0000000-00000{n}-000000.parquet" for n in (0, 1)]
    assert differences(tmp_path / "whole", tmp_path / "shares") == []
    assert whole.manifest["inputs"] == shares.manifest["inputs"]
    assert shares.manifest["pairs"] == 300 and shares.manifest["rejects"] == 1


def _parts(out: Path) -> list[str]:
    return sorted(p.name for p in (out / "exchanges").iterdir())


def test_inputs_of_messages_count_for_more_buckets_than_a_log_of_their_size(
    tmp_path: Path,
) -> None:
    """A capture's and a tap directory's bytes are messages that their buckets hold whole:
    counted at ``MESSAGE_WEIGHT`` times their size, a long capture or window of taps gets
    buckets as small as a short one's. A log of lines longer than a JSON access log's counts
    at its size."""
    packets = gen.keepalive_traffic(connections=20, exchanges=2, seed=2)
    capture = gen.write_pcap(tmp_path / "c.pcap", gen.frames(packets))
    size = capture.stat().st_size
    pad = "x" * 800  # lines longer than a JSON access log's: counted at their size
    line = f'{{"x_request_id": "r", "path": "/", "response_code": 200, "ua": "{pad}"}}\n'.encode()
    log = tmp_path / "access.log"
    log.write_bytes(line * (size // len(line) + 1))
    taps = tmp_path / "taps"
    taps.mkdir()
    for n in range(3):
        shutil.copy(TAP, taps / f"tap-{n}.json")
    tap_files = [Input(path) for path in sorted(taps.iterdir())]
    planned = collection.plan([[Input(capture)], [Input(log)], tap_files], None)
    assert planned.many_files == 3  # read as one group of files
    weight = collection.MESSAGE_WEIGHT
    tap_bytes = 3 * TAP.stat().st_size
    assert planned.size() == (size + tap_bytes) * weight + log.stat().st_size


def test_a_log_of_short_lines_counts_for_its_records(tmp_path: Path) -> None:
    """A bucket holds a few narrow columns per log record, whatever the line's length: a log
    of 96-byte lines counts for as many bytes of ``LOG_LINE_BYTES`` lines as it has lines."""
    line = b"[2026-11-28T10:00:00.000Z] " + b"x" * 68 + b"\n"
    assert len(line) == 96
    log = tmp_path / "access.log"
    log.write_bytes(line * 10_000)
    planned = collection.plan([[Input(log)]], "envoy-text")
    assert planned.size() == 10_000 * collection.LOG_LINE_BYTES


def test_captures_as_many_as_the_workers_are_each_read_whole_by_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two large captures and two workers: a capture per worker, each read whole (a share
    decodes every record, so sharing them as well would only add work)."""
    monkeypatch.setattr("shadowdiff.redact.secrets.token_bytes", lambda n: b"k" * n)
    monkeypatch.setattr("shadowdiff.engine.collection.cores", lambda: 2)
    sides = {}
    for side, port in (("primary", 8080), ("mirror", 8081)):
        packets = gen.keepalive_traffic(connections=60, exchanges=3, seed=4, server_ports=(port,))
        sides[side] = [str(gen.write_pcap(tmp_path / f"{side}.pcap", gen.frames(packets)))]
    monkeypatch.setattr(captureshares, "MIN_SHARED_BYTES", 1 << 40)
    here = shadowdiff.run(out=tmp_path / "here", buckets=4, **sides)  # type: ignore[arg-type]
    monkeypatch.setattr(captureshares, "MIN_SHARED_BYTES", 1)
    workers = shadowdiff.run(out=tmp_path / "workers", buckets=4, **sides)  # type: ignore[arg-type]
    assert _parts(tmp_path / "workers") == [f"part-000000{n}-000000-000000.parquet" for n in (0, 1)]
    assert differences(tmp_path / "here", tmp_path / "workers") == []
    assert here.manifest["inputs"] == workers.manifest["inputs"]
    assert workers.manifest["pairs"] == 180


def test_a_compressed_capture_leaves_the_workers_to_the_plain_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A compressed capture is read in this process, never in shares: it does not count when
    the large captures share out the workers, so the plain one gets both."""
    monkeypatch.setattr("shadowdiff.redact.secrets.token_bytes", lambda n: b"k" * n)
    monkeypatch.setattr("shadowdiff.engine.collection.cores", lambda: 2)
    sides = {}
    for side, port in (("primary", 8080), ("mirror", 8081)):
        packets = gen.keepalive_traffic(connections=60, exchanges=3, seed=4, server_ports=(port,))
        path = gen.write_pcap(tmp_path / f"{side}.pcap", gen.frames(packets))
        if side == "mirror":
            packed = path.with_suffix(".pcap.gz")
            packed.write_bytes(gzip.compress(path.read_bytes()))
            path.unlink()
            path = packed
        sides[side] = [str(path)]
    monkeypatch.setattr(captureshares, "MIN_SHARED_BYTES", 1 << 40)
    here = shadowdiff.run(out=tmp_path / "here", buckets=4, **sides)  # type: ignore[arg-type]
    monkeypatch.setattr(captureshares, "MIN_SHARED_BYTES", 1)
    workers = shadowdiff.run(out=tmp_path / "workers", buckets=4, **sides)  # type: ignore[arg-type]
    shares = [p for p in _parts(tmp_path / "workers") if p.startswith("part-0000000-")]
    assert shares == [f"part-0000000-00000{n}-000000.parquet" for n in (0, 1)]
    assert differences(tmp_path / "here", tmp_path / "workers") == []
    assert here.manifest["inputs"] == workers.manifest["inputs"]
    assert workers.manifest["pairs"] == 180


def test_shares_keep_every_worker_busy_and_no_more() -> None:
    assert captureshares.share_count(2, 1) == 2
    assert captureshares.share_count(8, 3) == 2
    assert captureshares.share_count(2, 10) == 1
    assert captureshares.share_count(64, 1) == captureshares.MAX_SHARES


def test_a_capture_no_share_can_read_fails_the_run_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every share meets the same error (a link type the source does not read): the run ends
    with it once, as a whole read does, and a capture in a directory is one reject row."""
    monkeypatch.setattr("shadowdiff.engine.collection.cores", lambda: 2)
    monkeypatch.setattr(captureshares, "MIN_SHARED_BYTES", 1)
    packets = gen.keepalive_traffic(connections=10, exchanges=1, seed=8)
    capture = gen.write_pcap(tmp_path / "odd.pcap", gen.frames(packets), linktype=147)
    with pytest.raises(InputError, match=r"odd\.pcap: link type 147 is not one"):
        shadowdiff.run(inputs=[str(capture)], out=tmp_path / "run", source="pcap")
    good = gen.write_pcap(tmp_path / "good.pcap", gen.frames(packets))
    folder = tmp_path / "captures"
    folder.mkdir()
    for path in (capture, good):
        path.rename(folder / path.name)
    rules = tmp_path / "rules.toml"
    rules.write_text('[sides]\nprimary = "server_port = 8080"\nmirror = "server_port = 8081"\n')
    result = shadowdiff.run(inputs=[str(folder)], rules=str(rules), out=tmp_path / "run")
    assert result.manifest["pairs"] == 5 and result.manifest["rejects"] == 1
    con = shadowdiff.open(tmp_path / "run")
    ((location, reason),) = con.sql("SELECT location, reason FROM rejects").fetchall()
    assert location.endswith("odd.pcap:0") and "link type 147" in reason
