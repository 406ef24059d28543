"""Fuzzing the ``envoy-json`` collector: Envoy ``json_format`` (string values), typed JSON,
Istio's encoding, a ``kubectl logs`` mix with diagnostics, and a user's ``json_format``.

Whatever the bytes, a read yields batches whose books balance (every line is an exchange, a
reject or blank, once, under its own number) or, for a compressed stream that cannot be
decompressed only, raises ``InputError``.
"""

from __future__ import annotations

import json
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

from shadowdiff.collect.base import Options
from shadowdiff.collect.envoy_json import COLLECTOR, REASON_TRUNCATED
from shadowdiff.errors import InputError

JSON = FIXTURES / "envoy_json"
# The json_format dictionary that wrote custom_format.jsonl (as in tests/test_envoy_json.py).
CUSTOM_FORMAT = {
    "ts": "%START_TIME%",
    "rid": "%REQ(X-REQUEST-ID)%",
    "verb": "%REQ(:METHOD)%",
    "uri": "%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%",
    "code": "%RESPONSE_CODE%",
    "took": "%DURATION%",
    "in": "%BYTES_RECEIVED%",
    "out": "%BYTES_SENT%",
    "cluster": "%UPSTREAM_CLUSTER%",
    "peer": "%DOWNSTREAM_REMOTE_ADDRESS%",
    "local": "%DOWNSTREAM_LOCAL_ADDRESS%",
    "status": "%REQ(X-TIER)%",
    "extra_info": "%DYNAMIC_METADATA(com.example:note)%",
}


@dataclass(frozen=True)
class JsonCase:
    name: str
    log_format: str | None
    seeds: tuple[bytes, ...]


CASES = (
    JsonCase(
        "keys by name",
        None,
        (
            (JSON / "envoy_string.jsonl").read_bytes(),
            (JSON / "envoy_typed.jsonl").read_bytes(),
            (JSON / "istio.jsonl").read_bytes(),
            (JSON / "bad_lines.jsonl").read_bytes(),
            (JSON / "kubectl_istio_proxy.log").read_bytes(),
            head_lines(SAMPLE / "primary" / "istio_json.log", 4),
        ),
    ),
    JsonCase(
        "json_format given",
        json.dumps(CUSTOM_FORMAT),
        ((JSON / "custom_format.jsonl").read_bytes(),),
    ),
)
NAMES = [case.name for case in CASES]
CLEAN = [  # seeds of which every line is a good access-log object
    (JSON / name).read_bytes()
    for name in ("envoy_string.jsonl", "envoy_typed.jsonl", "istio.jsonl")
]


def exchange_lines(got: Read) -> set[int]:
    return {
        line_number(location, got.path)
        for batch in got.batches
        for location in batch.exchanges.column("location").to_pylist()
    }


def read_json(path: Path, log_format: str | None) -> Read | InputError:
    return read(COLLECTOR, path, Options(log_format=log_format))


@pytest.mark.parametrize("seed", CLEAN, ids=["envoy_string", "envoy_typed", "istio"])
def test_clean_seeds_read_whole(seed: bytes, tmp_path: Path) -> None:
    got = read_json(write(tmp_path, seed, ".jsonl"), None)
    assert isinstance(got, Read)
    assert (got.exchanges, got.rejects) == (len(seed.splitlines()), [])


def check(case: JsonCase, path: Path, raw: bytes) -> None:
    """The property: the books balance, or a compressed stream that cannot be read is refused."""
    got = read_json(path, case.log_format)
    if isinstance(got, InputError):
        assert decompressed(raw) is None, f"refused a readable file: {got}"
        return
    assert_every_line_accounted(got, raw)


def check_file(path: Path, scratch: Path) -> None:
    """The property for a corpus file, read both ways."""
    for case in CASES:
        check(case, path, path.read_bytes())


@fuzz(70)
@given(case=st.sampled_from(CASES), data=st.data())
def test_mutated_json_logs_account_for_every_line(
    tmp_path: Path, case: JsonCase, data: st.DataObject
) -> None:
    raw = data.draw(inputs(case.seeds), label="input")
    with kept_on_failure(f"envoy_json-{case.name}", raw, ".jsonl"):
        check(case, write(tmp_path, raw, ".jsonl"), raw)


@pytest.mark.parametrize("ending", [b"\n", b"\r\n"], ids=["lf", "crlf"])
@pytest.mark.parametrize("seed", CLEAN, ids=["envoy_string", "envoy_typed", "istio"])
def test_every_prefix_of_a_json_line_is_one_record(
    seed: bytes, ending: bytes, tmp_path: Path
) -> None:
    line = seed.split(b"\n")[0]
    data = b"".join(line[:n] + ending for n in range(len(line) + 1))
    got = read_json(write(tmp_path, data, ".jsonl"), None)
    assert isinstance(got, Read), got
    assert_every_line_accounted(got, data)
    assert got.blank == 1
    assert len(line) + 1 in exchange_lines(got)  # only the whole line is an object


@pytest.mark.parametrize("seed", CLEAN, ids=["envoy_string", "envoy_typed", "istio"])
def test_a_json_log_cut_at_any_byte_keeps_the_lines_before_the_cut(
    seed: bytes, tmp_path: Path
) -> None:
    first, second = seed.split(b"\n")[:2]
    whole = first + b"\n" + second + b"\n"
    for cut in sampled_positions(len(first), len(whole), every=61):
        data = whole[:cut]
        got = read_json(write(tmp_path, data, ".jsonl"), None)
        assert isinstance(got, Read), (cut, got)
        assert_every_line_accounted(got, data)
        assert set(range(1, data.count(b"\n") + 1)) <= exchange_lines(got), cut
        for row in got.rejects:
            assert row["reason"] == REASON_TRUNCATED, (cut, row)
