"""Noise detection on real Envoy traffic from the mirroring lab, with no rules file.

The lab runs with a secondary (a second v1 receiving the same mirrored requests). Besides the
default traffic mix, the test sends its own requests to the noise endpoints of the lab's backend
(``backends.NOISE_ENDPOINTS``): responses full of random values (ISO timestamps, hex trace ids,
UUIDs, random ints and floats, a random header), with real differences at 1%
(``$.quota``), 10% (``$.region``) and 100% (``$.amount`` in other units; ``$.score``, random on
every side but shifted on v2) of an endpoint's requests; and to the harder ones
(``backends.HARD_NOISE_ENDPOINTS``), with the noise real services make (floating-point jitter, ids
and counters inside text, sets in random order, an etag of the body, endpoints requested 1 to 7
times) and the real changes that look like it (a changed text template, a text slot off by one,
a number off by one or times 1.1, arrays reversed or shuffled where the primary keeps one order,
a field changed in 2 of 7 requests). The run is judged twice: with the secondary (the baseline
method) and without it (volatile detection). The ``diverged`` outcome is scored against the
planted truth (``backends.planted_for``): recall 100% in both modes, precision ≥ 99% with the
secondary and ≥ 95% without.
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
NOISE_REQUESTS = {
    "/api/metrics/{id}": 1500,
    "/api/quotes/{id}": 300,
    "/api/prices/{id}": 300,
    "/api/invoices/{id}": 400,
    "/api/tickets/{id}": 80,
    "/api/admin/{id}": 6,  # low volume: noise only
    "/api/exports/{id}": 7,  # low volume: a field changes in 2 of the 7
    "/api/ping": 1,  # once
}
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


def kinds(run_dir: Path) -> dict[tuple[str, str, str], str]:
    """(endpoint, pattern, kind) → verdict."""
    con = shadowdiff.open(run_dir)
    return {
        (endpoint, pattern, kind): verdict
        for endpoint, pattern, kind, verdict in con.sql(
            "SELECT endpoint, pattern, kind, verdict FROM noise"
        ).fetchall()
    }


def real_rows(run_dir: Path, pattern: str) -> set[str]:
    """The request ids whose diffs row at ``pattern`` is real."""
    con = shadowdiff.open(run_dir)
    found = con.sql(
        "SELECT DISTINCT request_id FROM diffs WHERE pattern = ? AND NOT noise", params=[pattern]
    )
    return {request_id for (request_id,) in found.fetchall()}


def planted_ids(run: LabRun, plant: str) -> set[str]:
    return {
        s.request_id for s in run.sent if plant in {p.id for p in backends.planted_for(s.request)}
    }


INVOICES, TICKETS = "GET /api/invoices/{id}", "GET /api/tickets/{id}"
LOOK_ALIKES = [
    (TICKETS, "$.sequence", "changed"),  # off by one: a relative change of 2e-7
    (TICKETS, "$.eta_s", "changed"),  # times 1.1
    (TICKETS, "$.summary", "changed"),  # a count inside text, off by one
    (TICKETS, "$.steps", "order"),  # the primary's order is stable, the mirror shuffles
    (TICKETS, "$.watchers", "order"),  # reversed
    (INVOICES, "$.approvers", "order"),  # reversed, for 10% of invoices
]
REALISTIC_NOISE = [
    (INVOICES, "$.note", "changed"),  # 'receipt <n> issued'
    (INVOICES, "$.unread", "changed"),  # 'you have <n> unread messages'
    (INVOICES, "$.handled", "changed"),  # 'request <uuid> handled in <n> ms'
    (INVOICES, "$.reminder", "changed"),  # 'reminder <n> for invoice <id>'
    (INVOICES, "$.weight_kg", "changed"),  # a float32 round trip on some responses
    (INVOICES, "$.labels", "order"),  # a set in random order
    (TICKETS, "$.labels", "order"),
    (TICKETS, "$.weight_kg", "changed"),
]


@pytest.mark.parametrize("mode", ["with", "without"])
def test_look_alike_real_changes_are_real(noise_run: LabRun, mode: str) -> None:
    run_dir = noise_run.with_secondary if mode == "with" else noise_run.without_secondary
    found = kinds(run_dir)
    for key in LOOK_ALIKES:
        assert found[key] == "real", key
    # Inside patterns that are noise, the planted pairs stay real, row by row.
    for plant, pattern in (
        ("invoices-note-voided", "$.note"),  # another template
        ("invoices-reminder-slot", "$.reminder"),  # the invoice number off by one
    ):
        assert planted_ids(noise_run, plant) == real_rows(run_dir, pattern), plant
    # 2 of 7 requests: real against a secondary that never differs; without one, too few.
    expected = "real" if mode == "with" else "insufficient data"
    assert found[("GET /api/exports/{id}", "$.format", "changed")] == expected


@pytest.mark.parametrize("mode", ["with", "without"])
def test_the_noise_real_services_make_is_noise(noise_run: LabRun, mode: str) -> None:
    run_dir = noise_run.with_secondary if mode == "with" else noise_run.without_secondary
    found = kinds(run_dir)
    for key in REALISTIC_NOISE:
        assert found[key] == "noise", key
    con = shadowdiff.open(run_dir)
    # Floating-point jitter in the 12th digit is no difference at all (the default tolerance).
    [(jitter,)] = con.sql(
        "SELECT count(*) FROM diffs WHERE pattern IN ('$.lines_total', '$.fx_total')"
    ).fetchall()
    assert jitter == 0
    # The etag follows the body: noise wherever the body differs only in noise.
    real_etags = real_rows(run_dir, "etag")
    real_bodies = {
        request_id
        for (request_id,) in con.sql(
            "SELECT DISTINCT request_id FROM diffs WHERE part = 'body' AND NOT noise"
        ).fetchall()
    }
    assert real_etags and real_etags <= real_bodies
    # Endpoints requested 6 times and once: noise, by the small-sample rule or pooled evidence.
    for endpoint in ("GET /api/admin/{id}", "GET /api/ping"):
        verdicts_here = {v for (e, _, _), v in found.items() if e == endpoint}
        assert verdicts_here == {"noise"}, endpoint


def test_the_evidence_names_what_varied(noise_run: LabRun) -> None:
    con = shadowdiff.open(noise_run.without_secondary)
    evidence = dict(
        con.sql(
            "SELECT pattern, evidence FROM noise WHERE endpoint = ? AND kind = 'changed'",
            params=[INVOICES],
        ).fetchall()
    )
    assert "'receipt {n} issued'" in evidence["$.note"]
    assert "slot 1 ({n}) varies like noise" in evidence["$.note"]
    assert "the template changes in" in evidence["$.note"]
    assert "slot 2 ({n}) changes systematically" in evidence["$.reminder"]
    assert "slot 1 ({uuid}) varies like noise" in evidence["$.handled"]
    assert "track the primary's within a relative" in evidence["$.weight_kg"]
    [(ping,)] = con.sql(
        "SELECT evidence FROM noise WHERE endpoint = 'GET /api/ping' AND pattern = '$.served_at'"
    ).fetchall()
    assert "pooled: noise on every other endpoint where it was judged" in ping
    shown = CliRunner().invoke(main, ["noise", str(noise_run.with_secondary)])
    text = " ".join(shown.output.split())
    assert "exact small-sample rule" in text and "never between primary and secondary" in text
