"""Secrets in URLs: credential query parameters and userinfo, redacted with a keyed hash before
anything is written."""

from __future__ import annotations

import base64
import gzip
import json
from pathlib import Path

import duckdb
import pyarrow as pa

import shadowdiff
from shadowdiff import api
from shadowdiff.redact import DEFAULT_QUERY_SECRETS, Redactor

SECRETS = ("tok-7f3a9c", "key-51bd02", "hunter2-pw", "sig-00aa11", "rejected-tok-99")


def test_credential_parameters_and_userinfo_are_redacted() -> None:
    r = Redactor(DEFAULT_QUERY_SECRETS, key=b"k")
    text = r.url("https://bob:pw@api.example.com/a?page=2&Access_Token=t1&keyword=x&sig=s#frag")
    assert "pw" not in text and "t1" not in text and "=s#" not in text
    assert "page=2" in text and "keyword=x" in text and text.endswith("#frag")
    assert text.startswith("https://[redacted:") and "@api.example.com/a?" in text


def test_equal_secrets_compare_equal_and_a_changed_one_is_seen() -> None:
    r = Redactor(("token",))
    assert r.url("/a?token=x") == r.url("/a?token=x")
    assert r.url("/a?token=x") != r.url("/a?token=y")
    assert Redactor(("token",)).url("/a?token=x") != r.url("/a?token=x")  # a key per run


def test_a_column_without_secrets_is_left_alone() -> None:
    r = Redactor(DEFAULT_QUERY_SECRETS)
    assert r.column(pa.chunked_array([["/a?page=1", "/b", None]])) is None
    fixed = r.column(pa.chunked_array([["/a?token=1", "/b", None, "/a?token=1"]]))
    assert fixed is not None
    values = fixed.to_pylist()
    assert values[1:3] == ["/b", None] and values[0] == values[3] != "/a?token=1"


def line(request_id: str, path: str, authority: str = "app:8080") -> str:
    return json.dumps(
        {
            "start_time": "2026-11-28T10:00:00.000Z",
            "method": "GET",
            "path": path,
            "response_code": 200,
            "duration": 5,
            "request_id": request_id,
            "authority": authority,
        }
    )


def test_no_secret_reaches_any_output_file(tmp_path: Path) -> None:
    a, k, pw, sig, rejected = SECRETS
    primary = [
        line("r1", f"/api/users/7?access_token={a}&page=1"),
        line("r2", f"/api/files?api_key={k}&X-Amz-Signature={sig}"),
        line("r3", "/api/ping", authority=f"admin:{pw}@app:8080"),
        line("r4", f"https://svc:{pw}@app:8080/api/users/8?ticket={a}"),
        f'{{"request_id": "broken", "path": "/x?password={rejected}"',  # a rejected line
    ]
    mirror = [
        line("r1", f"/api/users/7?access_token={a}&page=1"),
        line("r2", f"/api/files?api_key=changed&X-Amz-Signature={sig}"),
        line("r3", "/api/ping", authority=f"admin:{pw}@app:8080"),
        line("r4", f"https://svc:{pw}@app:8080/api/users/8?ticket={a}"),
    ]
    (tmp_path / "p.log").write_text("\n".join(primary) + "\n")
    (tmp_path / "m.log").write_text("\n".join(mirror) + "\n")
    rules = tmp_path / "rules.toml"
    rules.write_text('[redact]\nquery = ["ticket"]\n')
    out = tmp_path / "out"
    shadowdiff.run(
        primary=[str(tmp_path / "p.log")],
        mirror=[str(tmp_path / "m.log")],
        rules=str(rules),
        out=out,
    )
    api.report(out)
    for path in out.rglob("*"):
        if not path.is_file():
            continue
        # Parquet is compressed: search its values, not its bytes.
        if path.suffix == ".parquet":
            text = str(duckdb.sql(f"SELECT * FROM '{path}'").fetchall())
        else:
            text = path.read_text(errors="replace")
        for secret in SECRETS:
            assert secret not in text, (secret, path.name)
    paths = dict(
        duckdb.sql(f"SELECT side || request_id, path FROM '{out / 'exchanges.parquet'}'").fetchall()
    )
    assert paths["primaryr1"] == paths["mirrorr1"]  # the same token: the same tag
    assert paths["primaryr2"] != paths["mirrorr2"]  # a changed key is still a change
    assert "[redacted:" in paths["primaryr4"] and "/api/users/8" in paths["primaryr4"]


# --- every source, every field ----------------------------------------------------------------

PLANTED = {
    "query": "q-tok-5b1e77",
    "userinfo": "ui-pw-0c9d44",
    "authorization": "auth-bearer-7e2a10",
    "cookie": "cookie-sid-3f8b21",
    "set_cookie": "setcookie-sid-9a0c55",
    "json_field": "body-password-61d2ee",
    "nested_field": "nested-token-a4f0b3",
    "numeric_field": 918273645546372819,
    "gzip_field": "gzip-secret-2d7c90",
    "form_field": "form-password-5e6f18",
    "cut_body": "cut-apikey-77b1c2",
    "text_log": "textlog-sig-41aa0e",
    "rejected_text": "rejected-code-0f3e8d",
}


def _tap(request_id: str, side_secret: str) -> dict[str, object]:
    """A tap trace carrying a planted secret in every place a tap has one: the URL, headers on
    both messages, JSON body fields at several depths, a gzip body, a form body."""
    p = PLANTED

    def headers(*pairs: tuple[str, str]) -> list[dict[str, str]]:
        return [{"key": k, "value": v} for k, v in pairs]

    response = {
        "user": {"id": 7, "Password": p["json_field"]},
        "sessions": [{"token": p["nested_field"], "n": 1}],
        "api_key": p["numeric_field"],
        "changed": side_secret,
    }
    body = json.dumps(response).encode()
    if request_id.endswith("gz"):
        body = gzip.compress(json.dumps({"secret": p["gzip_field"]}).encode())
    encoding = [("content-encoding", "gzip")] if request_id.endswith("gz") else []
    form = f"user=ann&password={p['form_field']}&remember=1".encode()
    return {
        "http_buffered_trace": {
            "request": {
                "headers": headers(
                    (":authority", "app:8080"),
                    (":path", f"/api/me?access_token={p['query']}"),
                    (":method", "POST"),
                    ("x-request-id", request_id),
                    ("authorization", f"Bearer {p['authorization']}"),
                    ("cookie", f"sid={p['cookie']}"),
                    ("content-type", "application/x-www-form-urlencoded"),
                ),
                "body": {"as_bytes": base64.b64encode(form).decode(), "truncated": False},
                "headers_received_time": "2026-11-28T10:00:00.000Z",
            },
            "response": {
                "headers": headers(
                    (":status", "200"),
                    ("content-type", "application/json"),
                    ("set-cookie", f"sid={p['set_cookie']}; HttpOnly"),
                    *encoding,
                ),
                "body": {"as_bytes": base64.b64encode(body).decode(), "truncated": False},
                "headers_received_time": "2026-11-28T10:00:00.012Z",
            },
        }
    }


def _cut_tap(request_id: str) -> dict[str, object]:
    """A tap whose JSON body the capture cut short, just after a secret."""
    trace = _tap(request_id, "same")
    cut = f'{{"items": [1, 2], "apikey": "{PLANTED["cut_body"]}", "more'.encode()
    response = trace["http_buffered_trace"]["response"]  # type: ignore[index]
    response["body"] = {"as_bytes": base64.b64encode(cut).decode(), "truncated": True}
    return trace


def _text_line(request_id: str, path: str, authority: str = "app:8080") -> str:
    return (
        f'[2026-11-28T10:00:00.000Z] "GET {path} HTTP/1.1" 200 - 0 12 5 4 "-" "curl/8" '
        f'"{request_id}" "{authority}" "10.0.0.2:8080"'
    )


def _grep_outputs(out: Path, planted: list[str]) -> list[tuple[str, str]]:
    """Every (secret, file) where a planted secret shows in any output file's values."""
    found = []
    for path in out.rglob("*"):
        if not path.is_file():
            continue
        if path.suffix == ".parquet":  # compressed: search its values, not its bytes
            text = str(duckdb.sql(f"SELECT * FROM '{path}'").fetchall())
        else:
            text = path.read_text(errors="replace")
        found += [(secret, path.name) for secret in planted if secret in text]
    return found


def test_no_planted_secret_reaches_any_output_from_any_source(tmp_path: Path) -> None:
    from shadowdiff.testing.factories import write_taps

    p = PLANTED
    primary = [_tap("t1", "a"), _tap("t2gz", "a"), _cut_tap("t3")]
    mirror = [_tap("t1", "b"), _tap("t2gz", "a"), _cut_tap("t3")]
    write_taps(tmp_path / "taps-p", primary)
    write_taps(tmp_path / "taps-m", mirror)
    text_lines = [
        _text_line("x1", f"/api/files?sig={p['text_log']}", authority=f"u:{p['userinfo']}@app"),
        f'[2026-11-28T10:00:00.000Z] "GET /x?code={p["rejected_text"]} HTTP/1.1" broken',
    ]
    (tmp_path / "p.log").write_text("\n".join(text_lines) + "\n")
    (tmp_path / "m.log").write_text(text_lines[0] + "\n")
    out_taps, out_logs = tmp_path / "out-taps", tmp_path / "out-logs"
    shadowdiff.run(
        primary=[str(tmp_path / "taps-p")], mirror=[str(tmp_path / "taps-m")], out=out_taps
    )
    shadowdiff.run(
        primary=[str(tmp_path / "p.log")], mirror=[str(tmp_path / "m.log")], out=out_logs
    )
    for out in (out_taps, out_logs):
        api.report(out)
    planted = [str(v) for v in p.values()]
    bodies = [
        base64.b64decode(message["body"]["as_bytes"]).decode("latin-1")
        for trace in primary
        for message in trace["http_buffered_trace"].values()  # type: ignore[attr-defined]
    ]
    inputs = "".join([*bodies, *map(json.dumps, primary), *text_lines])
    assert [s for s in planted if s not in inputs] == [p["gzip_field"]]  # in gzip, base64
    assert _grep_outputs(out_taps, planted) + _grep_outputs(out_logs, planted) == []
    stored = (
        shadowdiff.open(out_taps)
        .sql("SELECT response_body FROM exchanges WHERE request_id = 't2gz'")
        .fetchall()
    )
    assert all(p["gzip_field"] not in gzip.decompress(b).decode() for (b,) in stored)

    con = shadowdiff.open(out_taps)
    rejected = shadowdiff.open(out_logs).sql("SELECT count(*) FROM rejects").fetchall()
    assert rejected == [(1,)]  # the broken line was read, and rejected with its secret hidden
    changed = con.sql(
        "SELECT primary_value, mirror_value FROM diffs WHERE path = '$.changed'"
    ).fetchall()
    assert len(changed) == 1 and changed[0][0] != changed[0][1]  # not a secret: shown as is
    # Secrets tagged alike on both sides compare equal: the pair differs only at $.changed.
    assert con.sql("SELECT DISTINCT path FROM diffs WHERE request_id = 't1'").fetchall() == [
        ("$.changed",)
    ]


def test_json_error_codes_and_keys_stay_readable_by_default() -> None:
    from shadowdiff.config import Config
    from shadowdiff.diff import body
    from shadowdiff.diff.rules import Rules

    redactor = Redactor(Config().redact_query, key=b"k", fields=Config().redact_fields)
    doc = b'{"code": "E_ORDER_LOOKUP", "key": "sku-1", "token": "t0p"}'
    out = body.redact(doc, "application/json", None, Rules(), redactor)
    assert out is not None and b"E_ORDER_LOOKUP" in out and b"sku-1" in out
    assert b"t0p" not in out
    assert "?code=[redacted:" in redactor.url("/cb?code=abc")  # an OAuth code in a URL still is
