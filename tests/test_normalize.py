from __future__ import annotations

import pytest

from shadowdiff import normalize as normalize_module
from shadowdiff.config import Config, SideRules
from shadowdiff.errors import ConfigError
from shadowdiff.normalize import normalize
from shadowdiff.redact import Redactor
from shadowdiff.testing.factories import texchange, ttable


def endpoints(paths: list[str], **config: object) -> list[str | None]:
    rows = [texchange(request_id=f"r{i}", path=p) for i, p in enumerate(paths)]
    result = normalize(ttable(rows), Config(**config))  # type: ignore[arg-type]
    return result.exchanges.column("endpoint").to_pylist()


@pytest.mark.parametrize(
    ("path", "endpoint"),
    [
        ("/api/users/12", "GET /api/users/{id}"),
        ("/api/users/12?expand=1#top", "GET /api/users/{id}"),
        ("/a/1/2/3", "GET /a/{id}/{id}/{id}"),
        ("/u/7f1c0b0e-1234-4abc-9def-0123456789ab/x", "GET /u/{id}/x"),
        ("/blobs/0123456789abcdef0123", "GET /blobs/{id}"),
        ("/s/aZ3kQ9xLm2Pq8RtV5wYb/view", "GET /s/{id}/view"),
        ("/v2/items", "GET /v2/items"),
        ("/catalog/electronics-and-computers", "GET /catalog/electronics-and-computers"),
        ("/", "GET /"),
    ],
)
def test_automatic_endpoint_templates(path: str, endpoint: str) -> None:
    assert endpoints([path]) == [endpoint]


def test_configured_templates_win_over_automatic_ones() -> None:
    got = endpoints(
        ["/orders/abc/items/9", "/api/users/5", "/files/report.pdf"],
        endpoint_templates=("GET /orders/{order}/items/{item}", "/files/{name}"),
    )
    assert got == ["GET /orders/{order}/items/{item}", "GET /api/users/{id}", "GET /files/{name}"]


def test_template_must_start_with_a_slash() -> None:
    with pytest.raises(ConfigError, match="must start with '/'"):
        endpoints(["/x"], endpoint_templates=("GET orders/{id}",))


def test_side_from_shadow_suffix_when_inputs_are_mixed() -> None:
    rows = [
        texchange(request_id="a", side=None, authority="app:8080"),
        texchange(request_id="a", side=None, authority="app-shadow:8080"),
        texchange(request_id="b", side=None, authority="app-shadow"),
        texchange(request_id="c", side=None, authority="app.ns.svc:80"),
        texchange(request_id="d", side=None, authority=None),
    ]
    result = normalize(ttable(rows), Config())
    assert result.exchanges.column("side").to_pylist() == ["primary", "mirror", "mirror", "primary"]
    assert len(result.rejects) == 1
    assert result.rejects[0]["reason"].startswith("side unknown")
    assert result.rejects[0]["location"] == "test.log:1"


def test_flag_side_is_kept_even_with_shadow_authority() -> None:
    rows = [texchange(side="secondary", authority="app-shadow:1")]
    assert normalize(ttable(rows), Config()).exchanges.column("side").to_pylist() == ["secondary"]


def test_side_rules() -> None:
    rows = [
        texchange(request_id="a", side=None, server_port=18081),
        texchange(request_id="a", side=None, server_port=18082),
        texchange(request_id="a", side=None, server_port=18083),
        texchange(request_id="a", side=None, server_port=9),
    ]
    rules = SideRules(
        primary="server_port = 18081", mirror="server_port = 18082", secondary="server_port > 18082"
    )
    result = normalize(ttable(rows), Config(sides=rules))
    assert result.exchanges.column("side").to_pylist() == ["primary", "mirror", "secondary"]
    assert "matches none of the [sides] rules" in str(result.rejects[0]["reason"])


def test_record_matching_two_side_rules_is_rejected() -> None:
    rules = SideRules(primary="status = 200", mirror="method = 'GET'")
    result = normalize(ttable([texchange(side=None)]), Config(sides=rules))
    assert result.exchanges.num_rows == 0
    assert "several" in str(result.rejects[0]["reason"])


def test_bad_side_rule_is_a_config_error_naming_the_rule() -> None:
    with pytest.raises(ConfigError, match=r"\[sides\] mirror"):
        normalize(ttable([texchange()]), Config(sides=SideRules(mirror="no_such_column = 1")))


def test_missing_request_id_is_rejected_with_the_key_name() -> None:
    rows = [texchange(request_id=None), texchange(request_id="")]
    result = normalize(ttable(rows), Config(pairing_key="x-correlation-id"))
    assert result.exchanges.num_rows == 0
    assert [r["reason"] for r in result.rejects] == ["no request id (x-correlation-id)"] * 2
    assert result.rejects[0]["side"] == "primary"


def test_secret_headers_are_redacted_and_others_kept() -> None:
    headers = [
        {"name": "Authorization", "value": "Bearer abc"},
        {"name": "x-trace", "value": "t1"},
        {"name": "cookie", "value": "s=1"},
    ]
    redactor = Redactor((), key=b"run key")
    result = normalize(ttable([texchange(request_headers=headers)]), Config(), redactor)
    got = result.exchanges.column("request_headers").to_pylist()[0]
    assert got == [
        {"name": "Authorization", "value": redactor.tag("Bearer abc")},
        {"name": "x-trace", "value": "t1"},
        {"name": "cookie", "value": redactor.tag("s=1")},
    ]
    assert redactor.tag("Bearer abc") != redactor.tag("s=1")
    assert redactor.tag("s=1") != Redactor((), key=b"another key").tag("s=1")


def test_extra_columns_survive() -> None:
    result = normalize(ttable([texchange(route_name="r1")]), Config())
    assert result.exchanges.column("route_name").to_pylist() == ["r1"]


@pytest.mark.parametrize("share", [0.0, float("inf")], ids=["per-row", "per-distinct-request"])
def test_endpoints_of_repeated_paths_keep_row_order(
    share: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both ways to compute endpoints (over every row, or once per distinct method and path and
    taken back by index) give every row its own endpoint, in row order."""
    monkeypatch.setattr(normalize_module, "DISTINCT_PATHS_SHARE", share)
    requests = [
        ("GET", "/api/users/12"),
        ("post", "/api/users/12"),
        (None, "/api/users/12"),
        ("GET", "/orders/abc/items/9?x=1"),
        ("DELETE", "/orders/abc/items/9"),
        ("GET", None),
        ("PUT", "/files/a.pdf"),
        ("GET", "/s/aZ3kQ9xLm2Pq8RtV5wYb/view"),
    ]
    order = [requests[(i * 5) % len(requests)] for i in range(40)]  # each 5 times, interleaved
    rows = [texchange(request_id=f"r{i}", method=m, path=p) for i, (m, p) in enumerate(order)]
    config = Config(endpoint_templates=("GET /orders/{order}/items/{item}", "/files/{name}"))
    got = normalize(ttable(rows), config).exchanges.column("endpoint").to_pylist()
    expected = {
        ("GET", "/api/users/12"): "GET /api/users/{id}",
        ("post", "/api/users/12"): "POST /api/users/{id}",
        (None, "/api/users/12"): "/api/users/{id}",
        ("GET", "/orders/abc/items/9?x=1"): "GET /orders/{order}/items/{item}",
        ("DELETE", "/orders/abc/items/9"): "DELETE /orders/abc/items/{id}",
        ("GET", None): None,
        ("PUT", "/files/a.pdf"): "PUT /files/{name}",
        ("GET", "/s/aZ3kQ9xLm2Pq8RtV5wYb/view"): "GET /s/{id}/view",
    }
    assert got == [expected[(row["method"], row["path"])] for row in rows]
