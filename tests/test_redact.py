"""Secrets in URLs: credential query parameters and userinfo, redacted with a keyed hash before
anything is written."""

from __future__ import annotations

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
