"""The mirroring lab itself: Envoy mirrors every request, both sides log and tap all of them,
the differences between the sides are exactly the planted ones, and nothing is left running."""

from __future__ import annotations

import base64
import gzip
import json
import socket
import statistics
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
import pytest

from shadowdiff.testing import backends, lab, traffic

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

# --- reading the lab's output (deliberately independent of shadowdiff's collectors) ---------


def json_records(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def text_request_ids(path: Path) -> list[str]:
    # In Istio's format the request id is the 5th quoted field: "method path proto", "failure
    # reason", "x-forwarded-for", "user-agent", "x-request-id".
    return [line.split('"')[9] for line in path.read_text().splitlines()]


def taps_by_request_id(out: lab.SideOutput) -> dict[str, dict[str, Any]]:
    taps: dict[str, dict[str, Any]] = {}
    for path in out.tap_files():
        trace = json.loads(path.read_text())["http_buffered_trace"]
        headers = {h["key"]: h["value"] for h in trace["request"]["headers"]}
        assert headers["x-request-id"] not in taps, f"two taps for one request: {path}"
        taps[headers["x-request-id"]] = trace
    return taps


def headers_of(message: dict[str, Any]) -> dict[str, str]:
    return {h["key"]: h["value"] for h in message["headers"]}


def body_of(message: dict[str, Any]) -> bytes:
    body = message.get("body")
    if body is None:
        return b""
    assert not body.get("truncated"), "tap body truncated"
    if "as_bytes" in body:
        return base64.b64decode(body["as_bytes"])
    return str(body.get("as_string", "")).encode()


# --- comparing the two sides the plain way, to check the planted table -----------------------

Difference = tuple[str, str, str]  # part, kind, path


def json_type(value: Any) -> str:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return "number"
    return type(value).__name__


def canonical(items: list[Any]) -> list[str]:
    return sorted(json.dumps(i, sort_keys=True) for i in items)


def json_differences(a: Any, b: Any, path: str = "$") -> set[Difference]:
    """A plain structural comparison, enough to check the planted table."""
    if json_type(a) != json_type(b):
        return {("body", "type_changed", path)}
    if isinstance(a, dict):
        found: set[Difference] = set()
        for key in a.keys() | b.keys():
            if key not in b:
                found.add(("body", "removed", f"{path}.{key}"))
            elif key not in a:
                found.add(("body", "added", f"{path}.{key}"))
            else:
                found |= json_differences(a[key], b[key], f"{path}.{key}")
        return found
    if isinstance(a, list):
        if a == b:
            return set()
        if canonical(a) == canonical(b):
            return {("body", "order", path)}
        if len(a) == len(b):
            found = set()
            for i, (x, y) in enumerate(zip(a, b, strict=True)):
                found |= json_differences(x, y, f"{path}[{i}]")
            return found
        return {("body", "changed", path)}
    return set() if a == b else {("body", "changed", path)}


def without_volatile(endpoint: str | None, doc: Any) -> Any:
    if isinstance(doc, dict):
        for v in backends.VOLATILE:
            if v.part == "body" and v.endpoint in (endpoint, "*"):
                doc.pop(v.path.removeprefix("$."), None)
    return doc


def observed(
    request: backends.Request, primary: dict[str, Any], mirror: dict[str, Any]
) -> set[Difference]:
    found: set[Difference] = set()
    p_headers, m_headers = headers_of(primary["response"]), headers_of(mirror["response"])
    if p_headers[":status"] != m_headers[":status"]:
        found.add(("status", "changed", ""))
    # content-length follows the body; the volatile headers differ on any two responses.
    ignored = {":status", "content-length"} | {
        v.path for v in backends.VOLATILE if v.part == "header"
    }
    for name in (p_headers.keys() | m_headers.keys()) - ignored:
        if name not in m_headers:
            found.add(("header", "removed", name))
        elif name not in p_headers:
            found.add(("header", "added", name))
        elif p_headers[name] != m_headers[name]:
            found.add(("header", "changed", name))
    if ("status", "changed", "") in found:
        return found  # the bodies are different documents altogether
    p_body, m_body = body_of(primary["response"]), body_of(mirror["response"])
    if p_headers.get("content-encoding") == "gzip":
        p_body = gzip.decompress(p_body)
    if m_headers.get("content-encoding") == "gzip":
        m_body = gzip.decompress(m_body)
    if p_headers.get("content-type") == "application/json":
        endpoint = (backends.endpoint_of(request.method, request.target) or (None,))[0]
        found |= json_differences(
            without_volatile(endpoint, json.loads(p_body)),
            without_volatile(endpoint, json.loads(m_body)),
        )
    elif p_body != m_body:
        found.add(("body", "binary", "$"))
    return found


def expected(request: backends.Request) -> set[Difference]:
    return {(p.part, p.kind, p.path) for p in backends.planted_for(request) if p.part != "latency"}


# --- tests ----------------------------------------------------------------------------------


def test_every_request_logged_once_on_each_side_with_its_id(lab_run: lab.Finished) -> None:
    sent = lab_run.record.ids
    assert len(sent) >= 50 and len(set(sent)) == len(sent)
    assert all(sent), "every request has an id, also those Envoy generated"
    assert any(not s.id_from_client for s in lab_run.record.sent), "some ids come from Envoy"
    for out in (lab_run.primary, lab_run.mirror):
        text_ids = text_request_ids(out.text_log)
        json_ids = [r["request_id"] for r in json_records(out.json_log)]
        assert sorted(text_ids) == sorted(sent), out.text_log
        assert sorted(json_ids) == sorted(sent), out.json_log


def test_logs_carry_method_path_and_status(lab_run: lab.Finished) -> None:
    sent = {s.request_id: s for s in lab_run.record.sent}
    for record in json_records(lab_run.primary.json_log):
        s = sent[record["request_id"]]
        assert (record["method"], record["path"]) == (s.method, s.target)
        assert record["response_code"] == s.status  # the client saw the primary's answer
        assert record["upstream_cluster"] == lab_run.primary.inbound_cluster


def test_json_log_has_istio_keys(lab_run: lab.Finished) -> None:
    for out in (lab_run.primary, lab_run.mirror):
        for record in json_records(out.json_log):
            assert set(record) == set(lab.ISTIO_JSON_FORMAT)


def test_mirror_authority_has_shadow_suffix(lab_run: lab.Finished) -> None:
    host, _, port = traffic.DEFAULT_AUTHORITY.partition(":")
    primary = {r["authority"] for r in json_records(lab_run.primary.json_log)}
    mirror = {r["authority"] for r in json_records(lab_run.mirror.json_log)}
    assert primary == {traffic.DEFAULT_AUTHORITY}
    assert mirror == {f"{host}-shadow:{port}"}
    assert all(a.split(":")[0].endswith("-shadow") for a in mirror)


def test_taps_hold_every_exchange(lab_run: lab.Finished) -> None:
    for out in (lab_run.primary, lab_run.mirror):
        taps = taps_by_request_id(out)
        assert set(taps) == set(lab_run.record.ids)
        for trace in taps.values():
            assert ":status" in headers_of(trace["response"])
            assert "headers_received_time" in trace["request"]


def test_sides_differ_exactly_as_planted(lab_run: lab.Finished) -> None:
    primary, mirror = taps_by_request_id(lab_run.primary), taps_by_request_id(lab_run.mirror)
    seen_planted: set[str] = set()
    for s in lab_run.record.sent:
        request = s.request
        assert observed(request, primary[s.request_id], mirror[s.request_id]) == expected(
            request
        ), f"{s.method} {s.target}"
        seen_planted |= {p.id for p in backends.planted_for(request)}
    assert seen_planted == {p.id for p in backends.PLANTED}, "the traffic reaches every plant"


def test_search_is_slower_on_the_mirror(lab_run: lab.Finished) -> None:
    def durations(out: lab.SideOutput) -> list[int]:
        return [
            r["duration"] for r in json_records(out.json_log) if r["path"].startswith("/api/search")
        ]

    primary, mirror = durations(lab_run.primary), durations(lab_run.mirror)
    assert len(primary) >= 5
    assert statistics.median(mirror) - statistics.median(primary) >= 15


def test_everything_stopped_after_the_run(lab_run: lab.Finished) -> None:
    assert len(lab_run.pids) == 3  # two sidecars and the edge
    for pid in lab_run.pids:
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == "zombie"
    assert not [p for p in psutil.Process().children(recursive=True) if "envoy" in p.name()]
    with (
        pytest.raises(OSError),
        socket.create_connection(("127.0.0.1", lab_run.ingress_port), timeout=2),
    ):
        pass


def test_configs_are_valid_for_this_envoy(lab_run: lab.Finished) -> None:
    configs = sorted((lab_run.workdir / "config").glob("*.json"))
    assert [c.name for c in configs] == [
        "edge.json",
        "sidecar-mirror.json",
        "sidecar-primary.json",
    ]
    for config in configs:
        lab.validate(config)


def test_secondary_side_and_cleanup_on_error(make_lab: Callable[..., lab.Lab]) -> None:
    instance = make_lab(secondary=True, tap_format="JSON_BODY_AS_STRING")
    with pytest.raises(RuntimeError, match="boom"), instance:
        record = instance.drive(12, seed=3)
        ids = sorted(record.ids)
        for out in instance.sides.values():
            assert sorted(r["request_id"] for r in json_records(out.json_log)) == ids
        secondary = {r["authority"] for r in json_records(instance.secondary.json_log)}
        assert secondary == {"app-shadow:8080"}
        pids = list(instance.pids)
        assert len(pids) == 4 and all(psutil.pid_exists(pid) for pid in pids)
        raise RuntimeError("boom")
    for pid in pids:
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == "zombie"


def test_two_labs_run_side_by_side(make_lab: Callable[..., lab.Lab]) -> None:
    with make_lab() as first, make_lab() as second:
        assert first.ingress_port != second.ingress_port
        assert len(first.drive(5, seed=1).ids) == len(second.drive(5, seed=1).ids) == 5


def test_traffic_plan_is_deterministic() -> None:
    assert traffic.plan(60, seed=11) == traffic.plan(60, seed=11)
    assert traffic.plan(60, seed=11) != traffic.plan(60, seed=12)


def test_lab_refuses_a_used_workdir(tmp_path: Path) -> None:
    (tmp_path / "envoy" / "primary").mkdir(parents=True)
    (tmp_path / "envoy" / "primary" / "istio_text.log").write_text("old\n")
    refused = lab.Lab(tmp_path)
    with pytest.raises(lab.LabError, match="already holds output"), refused:
        pass
    assert refused.pids == []
