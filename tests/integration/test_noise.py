"""Noise detection on real Envoy traffic from the mirroring lab, with no rules file.

The lab runs with a secondary (a second v1 receiving the same mirrored requests). Besides the
default traffic mix, the test sends its own requests to the noise endpoints of the lab's backend
(``backends.NOISE_ENDPOINTS``): responses full of random values (ISO timestamps, hex trace ids,
UUIDs, random ints and floats, a random header), with real differences at 1%
(``$.quota``), 10% (``$.region``) and 100% (``$.amount`` in other units; ``$.score``, random on
every side but shifted on v2) of an endpoint's requests. The run is judged twice: with the
secondary (the baseline method) and without it (volatile detection). The ``diverged`` outcome is
scored against the planted truth (``backends.planted_for``): recall 100% in both modes,
precision ≥ 99% with the secondary and ≥ 95% without.
"""

from __future__ import annotations

import http.client
import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner

import shadowdiff
from shadowdiff.cli import main
from shadowdiff.testing import backends, lab

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

DEFAULT_MIX = 1000  # requests of the lab's default traffic
NOISE_REQUESTS = {"/api/metrics/{id}": 1500, "/api/quotes/{id}": 300, "/api/prices/{id}": 300}
SEED = 23


@dataclass(frozen=True)
class Sent:
    request_id: str
    request: backends.Request

    @property
    def real(self) -> bool:
        return any(p.part != "latency" for p in backends.planted_for(self.request))

    @property
    def endpoint(self) -> str:
        found = backends.endpoint_of(self.request.method, self.request.target)
        return found[0] if found else self.request.path


def send(url: str, requests: list[tuple[str, backends.Request]]) -> None:
    """GET each request through the edge, one keep-alive connection, our own request ids."""
    host, port = url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        for request_id, request in requests:
            headers = {"host": "app:8080", "x-request-id": request_id}
            connection.request(request.method, request.target, headers=headers)
            response = connection.getresponse()
            response.read()
            assert response.status == 200, (request.target, response.status)
    finally:
        connection.close()


def noise_requests(seed: int) -> list[tuple[str, backends.Request]]:
    rng = random.Random(f"noise endpoints {seed}")  # not the default mix's id sequence
    planned = [
        (template, number) for template, count in NOISE_REQUESTS.items() for number in range(count)
    ]
    rng.shuffle(planned)
    return [
        (
            str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            backends.Request("GET", template.replace("{id}", str(number))),
        )
        for template, number in planned
    ]


def concatenated(out: lab.SideOutput, target: Path) -> Path:
    """One side's tap files as one file of traces, as ``cat`` would make it (faster to read)."""
    with open(target, "wb") as f:
        for path in out.tap_files():
            f.write(path.read_bytes().rstrip() + b"\n")
    return target


@dataclass(frozen=True)
class LabRun:
    sent: tuple[Sent, ...]
    with_secondary: Path
    without_secondary: Path


@pytest.fixture(scope="module")
def noise_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabRun]:
    work = tmp_path_factory.mktemp("noise-lab")
    with lab.Lab(work / "lab", secondary=True) as running:
        record = running.drive(DEFAULT_MIX, seed=SEED)
        extra = noise_requests(SEED)
        send(running.ingress_url, extra)
        running.wait_for(DEFAULT_MIX + len(extra), timeout=120)
        sides = dict(running.sides)
    sent = tuple(Sent(s.request_id, s.request) for s in record.sent) + tuple(
        Sent(request_id, request) for request_id, request in extra
    )
    taps = {name: concatenated(out, work / f"{name}.taps.json") for name, out in sides.items()}
    runs = {}
    for name, secondary in (("with", True), ("without", False)):
        runs[name] = work / f"run-{name}"
        shadowdiff.run(
            primary=[str(taps["primary"])],
            mirror=[str(taps["mirror"])],
            secondary=[str(taps["secondary"])] if secondary else [],
            source="envoy-tap",
            out=runs[name],
        )
    yield LabRun(sent, runs["with"], runs["without"])


def scores(run_dir: Path, sent: tuple[Sent, ...]) -> tuple[float, float, dict[str, int]]:
    """Precision and recall of ``diverged`` against the planted truth, and the false positives
    and negatives by endpoint."""
    outcomes = dict(
        shadowdiff.open(run_dir).sql("SELECT request_id, outcome FROM pairs").fetchall()
    )
    assert set(outcomes) == {s.request_id for s in sent}
    tp = fp = fn = 0
    wrong: dict[str, int] = {}
    for s in sent:
        diverged = outcomes[s.request_id] == "diverged"
        tp += diverged and s.real
        fp += diverged and not s.real
        fn += s.real and not diverged
        if diverged != s.real:
            key = f"{'false positive' if diverged else 'false negative'} {s.endpoint}"
            wrong[key] = wrong.get(key, 0) + 1
    return tp / (tp + fp), tp / (tp + fn), wrong


def verdicts(run_dir: Path) -> dict[tuple[str, str], str]:
    con = shadowdiff.open(run_dir)
    return {
        (endpoint, pattern): verdict
        for endpoint, pattern, verdict in con.sql(
            "SELECT endpoint, pattern, verdict FROM noise WHERE kind = 'changed' OR "
            "pattern = 'x-api-version'"
        ).fetchall()
    }


VOLATILE_BODY = ("$.served_at", "$.trace_id", "$.request_uuid", "$.sample", "$.jitter")


def test_with_a_secondary_recall_is_total_and_precision_at_least_99(noise_run: LabRun) -> None:
    precision, recall, wrong = scores(noise_run.with_secondary, noise_run.sent)
    assert recall == 1.0, wrong
    assert precision >= 0.99, wrong


def test_without_a_secondary_recall_is_total_and_precision_at_least_95(noise_run: LabRun) -> None:
    precision, recall, wrong = scores(noise_run.without_secondary, noise_run.sent)
    assert recall == 1.0, wrong
    assert precision >= 0.95, wrong


def test_planted_differences_are_real_and_volatile_fields_noise_with_a_secondary(
    noise_run: LabRun,
) -> None:
    found = verdicts(noise_run.with_secondary)
    assert found[("GET /api/metrics/{id}", "$.quota")] == "real"  # 1% of requests
    assert found[("GET /api/metrics/{id}", "$.region")] == "real"  # 10%
    assert found[("GET /api/prices/{id}", "$.amount")] == "real"  # 100%, a transform
    assert found[("GET /api/quotes/{id}", "$.score")] == "real"  # random, but shifted
    assert found[("GET /api/users/{id}", "x-api-version")] == "real"
    for endpoint in backends.NOISE_ENDPOINTS:
        for pattern in (*VOLATILE_BODY, backends.NOISE_HEADER):
            assert found[(f"GET {endpoint}", pattern)] == "noise", (endpoint, pattern)
    for endpoint in ("GET /api/users/{id}", "GET /api/orders/{id}", "POST /api/cart"):
        assert found[(endpoint, "$.served_at")] == "noise"
    assert found[("GET /api/report", "$.generated_at")] == "noise"  # inside a gzip body


def test_planted_differences_are_not_noise_without_a_secondary(noise_run: LabRun) -> None:
    found = verdicts(noise_run.without_secondary)
    # 15 pairs of 1500: too few to judge values, and never called noise.
    assert found[("GET /api/metrics/{id}", "$.quota")] in ("real", "insufficient data")
    for key in [
        ("GET /api/metrics/{id}", "$.region"),
        ("GET /api/prices/{id}", "$.amount"),
        ("GET /api/quotes/{id}", "$.score"),
        ("POST /api/cart", "$.status"),
    ]:
        assert found[key] == "real", key
    for endpoint in backends.NOISE_ENDPOINTS:
        for pattern in (*VOLATILE_BODY, backends.NOISE_HEADER):
            assert found[(f"GET {endpoint}", pattern)] == "noise", (endpoint, pattern)


def test_every_diff_row_says_why_it_is_noise(noise_run: LabRun) -> None:
    for run_dir, prefix in (
        (noise_run.with_secondary, "baseline: "),
        (noise_run.without_secondary, "volatile: "),
    ):
        con = shadowdiff.open(run_dir)
        reasons = [
            r for (r,) in con.sql("SELECT DISTINCT noise_reason FROM diffs WHERE noise").fetchall()
        ]
        assert reasons and all(r.startswith(prefix) for r in reasons), reasons
        [(unexplained,)] = con.sql(
            "SELECT count(*) FROM diffs WHERE noise = (noise_reason IS NULL)"
        ).fetchall()
        assert unexplained == 0
        # Outcomes follow: a pair of only noise rows is noise_only, never diverged.
        [(wrong,)] = con.sql(
            "SELECT count(*) FROM pairs p WHERE outcome = 'diverged' AND NOT EXISTS "
            "(SELECT 1 FROM diffs d WHERE d.request_id = p.request_id AND NOT d.noise)"
        ).fetchall()
        assert wrong == 0


def test_noise_command_and_suggested_rules(noise_run: LabRun) -> None:
    shown = CliRunner().invoke(main, ["noise", str(noise_run.with_secondary)])
    assert shown.exit_code == 0, shown.output
    assert "GET /api/quotes/{id}" in shown.output and "Thresholds" in shown.output
    suggested = CliRunner().invoke(
        main, ["noise", str(noise_run.without_secondary), "--suggest-rules"]
    )
    assert suggested.exit_code == 0, suggested.output
    for path in ("$.served_at", "$.trace_id", "$.request_uuid", "$.generated_at"):
        assert f'"{path}"' in suggested.output
    for path in ("$.quota", "$.region", "$.amount", "$.score", "$.status"):
        assert f'"{path}"' not in suggested.output
    assert f'"{backends.NOISE_HEADER}"' in suggested.output
