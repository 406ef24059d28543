"""Pure ACKs applied in bulk (``pcap_acks``) must leave every record and figure as handling them
one by one does: checked against the collector with deferring turned off, on traffic with idle
gaps (sweeps), reused ports, reordering and losses, cut into stretches of any size."""

from __future__ import annotations

import random
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import pcapgen as gen
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pcapgen import Conversation, http_request, http_response

from shadowdiff.collect import pcap, pcap_acks, pcap_records
from shadowdiff.collect.base import Input, Options
from shadowdiff.collect.pcap import Capture


def _read(path: Path) -> tuple[pa.Table, list[dict[str, object]], dict[str, Any]]:
    capture = Capture(Input(path), Options())
    tables, rejects = [], []
    for batch in capture.batches():
        tables.append(batch.exchanges)
        rejects.extend(batch.rejects)
    return pa.concat_tables(tables), rejects, asdict(capture.figures)


def _one_by_one(monkeypatch: pytest.MonkeyPatch) -> None:
    """Defer nothing: with the next sweep always due, every packet is handled on its own."""
    plan = pcap_acks.plan
    monkeypatch.setattr(
        pcap_acks, "plan", lambda found, start, _, known: plan(found, start, -(2**62), known)
    )


def _traffic(seed: int) -> list[gen.Packet]:
    rng = random.Random(seed)
    packets = gen.keepalive_traffic(connections=rng.randint(2, 30), exchanges=3, seed=seed)
    time = 1_700_000_000.0
    spaced = []
    for packet in packets:
        time += rng.choice([1e-4] * 30 + [5.0, 40.0, pcap.IDLE_SECONDS + 1.0])
        spaced.append(replace(packet, time=time))
    for _ in range(rng.randint(0, 10)):
        spaced = gen.reorder(spaced, rng.randrange(len(spaced)), rng.randrange(len(spaced)))
    lost = rng.sample(range(len(spaced)), rng.randint(0, 5))
    again = [replace(p, time=p.time + 100.0) for p in spaced[: len(spaced) // 3]]
    return gen.drop(spaced, *lost) + again  # the same ports again: new and late packets


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(seed=st.integers(0, 2**32 - 1), chunk=st.sampled_from([200, 1500, 20_000, 4 << 20]))
def test_pure_acks_in_bulk_change_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, seed: int, chunk: int
) -> None:
    path = gen.write_pcap(tmp_path / "t.pcap", gen.frames(_traffic(seed)))
    with monkeypatch.context() as patched:
        patched.setattr(pcap_records, "READ_CHUNK", chunk)
        bulk = _read(path)
        _one_by_one(patched)
        alone = _read(path)
    assert bulk[0].equals(alone[0])
    assert bulk[1:] == alone[1:]


def test_pure_acks_after_the_close_count_as_late(tmp_path: Path) -> None:
    talk = Conversation()
    get = http_request("GET", "/", (("Host", "app"),))
    packets = gen.session([(get, http_response(204))], talk)
    packets += [talk._packet(True, gen.ACK), talk._packet(False, gen.ACK)]
    result = _read(gen.write_pcap(tmp_path / "c.pcap", gen.frames(packets)))
    assert result[0].num_rows == 1
    assert result[2]["late_packets"] == 3  # the closing ACK and the two after it


def test_most_pure_acks_of_keepalive_traffic_are_deferred(tmp_path: Path) -> None:
    path = gen.write_pcap(tmp_path / "k.pcap", gen.frames(gen.keepalive_traffic(50, 4)))
    plans: list[pcap_acks.Plan] = []
    plan = pcap_acks.plan

    def recorded(*args: Any) -> pcap_acks.Plan:
        plans.append(plan(*args))
        return plans[-1]

    with pytest.MonkeyPatch.context() as patched:
        patched.setattr(pcap_acks, "plan", recorded)
        _read(path)
    deferred = sum(len(p.deferred) for p in plans)
    # Per exchange: two data segments (or more) and two ACKs; a connection's handshake and
    # close add three and three, its first packet per direction is handled.
    assert deferred >= 50 * (4 * 2 + 1)
