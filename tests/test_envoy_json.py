"""Tests for the envoy-json collector (shadowdiff/collect/envoy_json.py)."""

from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
import zstandard
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shadowdiff import schema
from shadowdiff.collect import envoy_json, lines, registry
from shadowdiff.collect.base import Batch, Input, Options
from shadowdiff.collect.envoy_json import COLLECTOR
from shadowdiff.errors import ConfigError, InputError

FIXTURES = Path(__file__).parent / "fixtures" / "envoy_json"

# The json_format dictionary that wrote custom_format.jsonl, as a user copies it from Envoy.
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

# --- helpers ---------------------------------------------------------------------------------


def read(path: Path, side: str | None = None, **options: Any) -> list[Batch]:
    return list(COLLECTOR.read(Input(path, side), Options(**options)))


def exchanges(batches: list[Batch]) -> pa.Table:
    tables = [b.exchanges for b in batches]
    return pa.concat_tables(tables) if tables else pa.table({})


def rejects(batches: list[Batch]) -> list[dict[str, object]]:
    return [row for b in batches for row in b.rejects]


def rows(batches: list[Batch]) -> list[dict[str, Any]]:
    return exchanges(batches).to_pylist()


def write(path: Path, text: str | bytes) -> Path:
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return path


def jsonl(*objects: object) -> str:
    return "".join(json.dumps(o) + "\n" for o in objects)


def gzipped(src: Path, dst: Path) -> Path:
    dst.write_bytes(gzip.compress(src.read_bytes()))
    return dst


def zstd_compressed(src: Path, dst: Path) -> Path:
    dst.write_bytes(zstandard.ZstdCompressor().compress(src.read_bytes()))
    return dst


def without_provenance(table: pa.Table) -> pa.Table:
    return table.drop_columns(
        [c for c in ("location", "source", "side") if c in table.schema.names]
    )


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


# --- the three dialects ----------------------------------------------------------------------


def test_envoy_string_json_format() -> None:
    path = FIXTURES / "envoy_string.jsonl"
    batches = read(path)
    table = exchanges(batches)
    assert table.num_rows == 3 and rejects(batches) == []
    first, second, third = table.to_pylist()
    assert first["request_id"] == "3f1c2a9e-0001"
    assert first["source"] == "envoy-json"
    assert first["location"] == f"{path}:1"
    assert first["start_time"] == utc(2026, 11, 28, 10, 0, 0, 123000)
    assert (first["method"], first["path"], first["protocol"]) == (
        "GET",
        "/api/v1/users/7",
        "HTTP/1.1",
    )
    assert (first["status"], first["duration_ms"]) == (200, 12.0)
    assert (first["bytes_received"], first["bytes_sent"]) == (0, 512)
    assert (first["authority"], first["upstream_cluster"]) == ("app:8080", "app_v1")
    assert first["upstream_host"] == "10.0.3.7:8080"
    assert first["client_addr"] == "10.0.1.9:53000"
    assert (first["server_addr"], first["server_port"]) == ("10.0.3.7", 18081)
    assert first["response_flags"] is None  # "-"
    assert first["user_agent"] == "curl/8.5.0"  # an extra column, by its snake_case key
    assert first["upstream_service_time"] == "10"
    assert (second["status"], second["response_flags"]) == (503, "UF,URX")
    assert second["upstream_host"] is None and second["upstream_service_time"] is None
    assert third["request_id"] is None and third["status"] == 0
    assert (third["server_addr"], third["server_port"]) == ("::1", 18081)


def test_exchange_columns_have_the_schema_types() -> None:
    table = exchanges(read(FIXTURES / "envoy_string.jsonl"))
    for name in envoy_json.CORE_COLUMNS + ("source", "location"):
        assert table.schema.field(name).type == schema.EXCHANGES.field(name).type, name
    extras = [n for n in table.schema.names if n not in schema.EXCHANGE_COLUMNS]
    assert extras == ["upstream_service_time", "x_forwarded_for", "user_agent"]
    assert all(table.schema.field(n).type == pa.string() for n in extras)
    conformed = schema.conform(table)
    assert conformed.schema.names[: len(schema.EXCHANGES)] == schema.EXCHANGES.names


def test_typed_json_reads_like_string_json() -> None:
    string = exchanges(read(FIXTURES / "envoy_string.jsonl"))
    typed = exchanges(read(FIXTURES / "envoy_typed.jsonl"))
    assert without_provenance(typed).equals(without_provenance(string))


def test_istio_json() -> None:
    table = exchanges(read(FIXTURES / "istio.jsonl"))
    first, second = table.to_pylist()
    assert first["request_id"] == "b5a8c1d0-7c3e-9a1b-8f44-0c2d5e6f7a81"
    assert (first["status"], first["duration_ms"], first["bytes_sent"]) == (200, 4.0, 358)
    assert first["start_time"] == utc(2026, 11, 28, 10, 0, 0, 512000)
    assert (first["server_addr"], first["server_port"]) == ("10.244.0.12", 9080)
    assert first["client_addr"] == "10.244.0.9:54742"
    assert first["upstream_cluster"] == "inbound|9080||"
    assert first["response_code_details"] == "via_upstream"
    assert second["upstream_transport_failure_reason"] == "delayed connect error: 111"
    assert second["response_flags"] == "UF"
    # Every Istio key is either a core column or kept as an extra.
    unmapped = {
        "response_code_details", "connection_termination_details",
        "upstream_transport_failure_reason", "upstream_service_time", "x_forwarded_for",
        "user_agent", "upstream_local_address", "requested_server_name", "route_name",
    }  # fmt: skip
    assert unmapped <= set(table.schema.names)
    assert not set(envoy_json.ISTIO_KEYS) - unmapped - {
        "start_time", "method", "path", "protocol", "response_code", "response_flags",
        "bytes_received", "bytes_sent", "duration", "request_id", "authority", "upstream_host",
        "upstream_cluster", "downstream_local_address", "downstream_remote_address",
    }  # fmt: skip


def test_user_json_format_maps_keys_by_operator() -> None:
    path = FIXTURES / "custom_format.jsonl"
    batches = read(path, log_format=json.dumps(CUSTOM_FORMAT))
    assert rejects(batches) == []
    first, second = rows(batches)
    assert first["request_id"] == "c-1" and first["method"] == "GET"
    assert first["path"] == "/items/1" and first["status"] == 200
    assert first["duration_ms"] == 5.5
    assert (first["bytes_received"], first["bytes_sent"]) == (10, 2048)
    assert first["start_time"] == utc(2026, 11, 28, 10, 0, 0)  # +01:00
    assert second["start_time"] == utc(2026, 11, 28, 10, 0, 1, 250000)
    assert first["upstream_cluster"] == "items_v2"
    assert (first["client_addr"], first["server_addr"], first["server_port"]) == (
        "10.1.0.4:51000",
        "10.1.0.9",
        8081,
    )
    # "status" holds a header here, not the response code: an extra, renamed off the schema's.
    assert (first["log_status"], second["log_status"]) == ("gold", "silver")
    assert (first["extra_info"], second["extra_info"]) == (None, "a note")


def test_user_json_format_changes_the_meaning_of_a_key() -> None:
    path = FIXTURES / "custom_format.jsonl"
    by_name = read(path)  # without the format, "status" is read as the status code
    assert [r["reason"] for r in rejects(by_name)] == [
        "bad value for status: 'gold' (expected an HTTP status code)",
        "bad value for status: 'silver' (expected an HTTP status code)",
    ]


def test_log_format_wrapped_as_in_envoy_config(tmp_path: Path) -> None:
    path = write(tmp_path / "a.jsonl", jsonl({"c": "201", "id": "x"}))
    wrapped = json.dumps({"json_format": {"c": "%RESPONSE_CODE%", "id": "%REQ(X-REQUEST-ID)%"}})
    (row,) = rows(read(path, log_format=wrapped))
    assert (row["status"], row["request_id"]) == (201, "x")


@pytest.mark.parametrize("log_format", ["[%START_TIME%] %RESPONSE_CODE%", "[1, 2]", "{"])
def test_a_log_format_that_is_not_a_json_object_is_a_config_error(
    tmp_path: Path, log_format: str
) -> None:
    path = write(tmp_path / "a.jsonl", jsonl({"response_code": "200"}))
    with pytest.raises(ConfigError, match="envoy-json"):
        read(path, log_format=log_format)


@pytest.mark.parametrize(
    ("envoy_format", "value", "expected"),
    [
        ("%Y/%m/%d %H:%M:%S.%3f", "2026/11/28 10:00:00.250", utc(2026, 11, 28, 10, 0, 0, 250000)),
        ("%d.%m.%Y %H:%M:%S.%6f", "28.11.2026 10:00:00.000250", utc(2026, 11, 28, 10, 0, 0, 250)),
        ("%s", str(int(utc(2026, 11, 28, 10).timestamp())), utc(2026, 11, 28, 10)),
        ("%Q is not a format", "2026-11-28T10:00:00Z", utc(2026, 11, 28, 10)),
    ],
)
def test_start_time_with_a_custom_format(
    tmp_path: Path, envoy_format: str, value: str, expected: datetime
) -> None:
    path = write(tmp_path / "a.jsonl", jsonl({"t": value}))
    fmt = json.dumps({"t": f"%START_TIME({envoy_format})%"})
    (row,) = rows(read(path, log_format=fmt))
    assert row["start_time"] == expected


# --- values ----------------------------------------------------------------------------------


def test_dash_null_and_missing_keys_are_not_set(tmp_path: Path) -> None:
    path = write(
        tmp_path / "a.jsonl",
        jsonl(
            {"request_id": "-", "response_code": "-", "method": "-", "user_agent": "-"},
            {"request_id": None, "response_code": None, "method": None, "user_agent": None},
            {"path": "/only-a-path"},
        ),
    )
    batches = read(path)
    assert rejects(batches) == []
    for row in rows(batches):
        assert row["request_id"] is None and row["status"] is None
        assert row["method"] is None and row["user_agent"] is None


def test_key_order_does_not_matter(tmp_path: Path) -> None:
    record = {"request_id": "r", "response_code": "200", "method": "GET", "path": "/", "x": "1"}
    reordered = dict(reversed(list(record.items())))
    path = write(tmp_path / "a.jsonl", jsonl(record, reordered))
    first, second = (without_provenance(exchanges([b])) for b in read(path, batch_lines=1))
    assert first.equals(second)


def test_alias_spellings(tmp_path: Path) -> None:
    path = write(
        tmp_path / "a.jsonl",
        jsonl(
            {
                "x-request-id": "r1",
                "status": 404,
                "duration_ms": 1.5,
                "timestamp": "2026-11-28T10:00:00Z",
                "requestMethod": "PUT",
                "host": "svc:80",
                "bytesSent": "7",
                "remote_addr": "10.0.0.2:1234",
                "server_port": "8443",
            }
        ),
    )
    (row,) = rows(read(path))
    assert (row["request_id"], row["status"], row["duration_ms"]) == ("r1", 404, 1.5)
    assert row["start_time"] == utc(2026, 11, 28, 10, 0, 0)
    assert (row["method"], row["authority"], row["bytes_sent"]) == ("PUT", "svc:80", 7)
    assert (row["client_addr"], row["server_port"]) == ("10.0.0.2:1234", 8443)


def test_request_id_header_is_configurable(tmp_path: Path) -> None:
    path = write(
        tmp_path / "a.jsonl",
        jsonl({"request_id": "envoy-id", "x_correlation_id": "corr-1", "response_code": "200"}),
    )
    (row,) = rows(read(path, request_id_header="x-correlation-id"))
    assert row["request_id"] == "corr-1"
    assert row["log_request_id"] == "envoy-id"  # still kept, as an extra
    fmt = json.dumps({"rid": "%REQ(X-Correlation-ID)%", "envoy_rid": "%REQ(X-REQUEST-ID)%"})
    path = write(tmp_path / "b.jsonl", jsonl({"rid": "corr-2", "envoy_rid": "envoy-2"}))
    (row,) = rows(read(path, log_format=fmt, request_id_header="x-correlation-id"))
    assert (row["request_id"], row["envoy_rid"]) == ("corr-2", "envoy-2")


EPOCH = int(utc(2026, 11, 28, 10, 0, 0).timestamp())


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-11-28T10:00:00Z", utc(2026, 11, 28, 10, 0, 0)),
        ("2026-11-28T10:00:00.123456Z", utc(2026, 11, 28, 10, 0, 0, 123456)),
        ("2026-11-28T12:30:00.5+02:30", utc(2026, 11, 28, 10, 0, 0, 500000)),
        ("2026-11-28T05:00:00-05:00", utc(2026, 11, 28, 10, 0, 0)),
        ("2026-11-28 10:00:00", utc(2026, 11, 28, 10, 0, 0)),
        ("2026-11-28T12:00:00+02", utc(2026, 11, 28, 10, 0, 0)),
        ("2026-11-28T11:00+0100", utc(2026, 11, 28, 10, 0, 0)),
        ("2026-11-28", utc(2026, 11, 28)),
        (EPOCH, utc(2026, 11, 28, 10, 0, 0)),  # seconds
        (f"{EPOCH}.25", utc(2026, 11, 28, 10, 0, 0, 250000)),
        (EPOCH * 1000 + 250, utc(2026, 11, 28, 10, 0, 0, 250000)),  # milliseconds
        (EPOCH * 10**6 + 250001, utc(2026, 11, 28, 10, 0, 0, 250001)),  # microseconds
        (EPOCH * 10**9 + 250001000, utc(2026, 11, 28, 10, 0, 0, 250001)),  # nanoseconds
    ],
)
def test_start_time_formats(tmp_path: Path, value: object, expected: datetime) -> None:
    path = write(tmp_path / "a.jsonl", jsonl({"start_time": value, "response_code": 200}))
    (row,) = rows(read(path))
    assert row["start_time"] == expected


@pytest.mark.parametrize(
    ("address", "host", "port"),
    [
        ("10.0.0.1:80", "10.0.0.1", 80),
        ("[::1]:8080", "::1", 8080),
        ("[2001:db8::7]:443", "2001:db8::7", 443),
        ("2001:db8::7", "2001:db8::7", None),  # %DOWNSTREAM_LOCAL_ADDRESS_WITHOUT_PORT%
        ("10.0.0.1", "10.0.0.1", None),
        ("/var/run/envoy.sock", "/var/run/envoy.sock", None),
    ],
)
def test_server_address_split(tmp_path: Path, address: str, host: str, port: int | None) -> None:
    path = write(tmp_path / "a.jsonl", jsonl({"downstream_local_address": address}))
    (row,) = rows(read(path))
    assert (row["server_addr"], row["server_port"]) == (host, port)


def test_typed_json_whole_numbers_written_as_floats(tmp_path: Path) -> None:
    path = write(tmp_path / "a.jsonl", '{"response_code": 2e2, "bytes_sent": 1.0e3}\n')
    (row,) = rows(read(path))
    assert (row["status"], row["bytes_sent"]) == (200, 1000)


def test_extra_column_names(tmp_path: Path) -> None:
    path = write(
        tmp_path / "a.jsonl",
        jsonl({"User-Agent": "ua", "endpoint": "e", "x-b3-traceId": "t", "nested": {"a": [1]}}),
    )
    (row,) = rows(read(path))
    assert row["user_agent"] == "ua"
    assert row["log_endpoint"] == "e"  # the schema's own column stays the normaliser's
    assert row["x_b3_trace_id"] == "t"
    assert row["nested"] == '{"a":[1]}'  # nested values keep their JSON text


def test_side_is_kept(tmp_path: Path) -> None:
    path = write(tmp_path / "a.jsonl", jsonl({"response_code": "200"}))
    (row,) = rows(read(path, side="mirror"))
    assert row["side"] == "mirror"
    assert rejects(read(write(tmp_path / "b.jsonl", "x\n"), side="mirror"))[0]["side"] == "mirror"


# --- compressed input ------------------------------------------------------------------------


@pytest.mark.parametrize("compress", [gzipped, zstd_compressed])
def test_compressed_input(tmp_path: Path, compress: Any) -> None:
    plain = FIXTURES / "istio.jsonl"
    packed = compress(plain, tmp_path / "istio.jsonl.log")
    expected = without_provenance(exchanges(read(plain)))
    table = exchanges(read(packed))
    assert without_provenance(table).equals(expected)
    assert table.column("location").to_pylist() == [f"{packed}:1", f"{packed}:2"]


@pytest.mark.parametrize("compress", [gzipped, zstd_compressed])
def test_compressed_input_with_bad_lines(tmp_path: Path, compress: Any) -> None:
    plain = FIXTURES / "bad_lines.jsonl"
    packed = compress(plain, tmp_path / "bad.jsonl.gz")
    expected = [(r["location"], r["reason"]) for r in rejects(read(plain))]
    got = [(r["location"], r["reason"]) for r in rejects(read(packed))]
    assert got == [(loc.replace(str(plain), str(packed)), reason) for loc, reason in expected]


# --- bad input -------------------------------------------------------------------------------


def test_bad_lines_each_give_a_reject_with_location_and_reason() -> None:
    path = FIXTURES / "bad_lines.jsonl"
    batches = read(path)
    got = [(r["location"], r["reason"]) for r in rejects(batches)]
    assert got == [
        (f"{path}:2", "not JSON"),
        (f"{path}:4", "JSON but not an object"),
        (f"{path}:5", "JSON but not an object"),
        (f"{path}:6", "Envoy/istio-proxy diagnostic line, not an access-log entry"),
        (f"{path}:7", "Envoy/istio-proxy diagnostic line, not an access-log entry"),
        (f"{path}:8", "bad value for response_code: 'abc' (expected an HTTP status code)"),
        (f"{path}:10", "bad value for start_time: 'yesterday' (expected a time)"),
        (f"{path}:11", "bad value for bytes_sent: '12.5' (expected a byte count)"),
        (f"{path}:12",
         "bad value for downstream_local_address: '10.0.0.1:http' (expected host:port)"),
        (f"{path}:13", "truncated last line (no newline at end of file)"),
    ]  # fmt: skip
    assert all(r["source"] == str(path) and r["side"] is None for r in rejects(batches))
    assert rejects(batches)[0]["excerpt"] == "this is not json"
    table = exchanges(batches)
    assert table.column("request_id").to_pylist() == ["ok-1", "ok-2"]
    assert table.column("location").to_pylist() == [f"{path}:1", f"{path}:9"]
    assert sum(b.blank for b in batches) == 1
    assert sum(b.records for b in batches) == 12  # 13 lines, one of them blank


def test_records_are_exchanges_plus_rejects() -> None:
    for name in ("bad_lines.jsonl", "kubectl_istio_proxy.log", "envoy_string.jsonl"):
        for batch in read(FIXTURES / name, batch_lines=2):
            assert batch.records == batch.exchanges.num_rows + len(batch.rejects)


def test_kubectl_logs_of_istio_proxy() -> None:
    path = FIXTURES / "kubectl_istio_proxy.log"
    batches = read(path)
    assert exchanges(batches).column("request_id").to_pylist() == ["k-1", "k-2"]
    reasons = {r["reason"] for r in rejects(batches)}
    assert reasons == {"Envoy/istio-proxy diagnostic line, not an access-log entry"}
    assert len(rejects(batches)) == 6


def test_crlf_line_endings_on_the_fast_path(tmp_path: Path) -> None:
    path = write(tmp_path / "a.jsonl", '{"request_id":"a"}\r\n{"request_id":"b"}\r\n')
    table = exchanges(read(path))
    assert table.column("location").to_pylist() == [f"{path}:1", f"{path}:2"]


def test_crlf_line_endings_on_the_exact_path(tmp_path: Path) -> None:
    path = write(tmp_path / "a.jsonl", '{"request_id":"a"}\r\nnot json\r\n{"request_id":"b"}\r\n')
    batches = read(path)
    assert exchanges(batches).column("location").to_pylist() == [f"{path}:1", f"{path}:3"]
    assert [r["location"] for r in rejects(batches)] == [f"{path}:2"]
    assert sum(b.blank for b in batches) == 0


def test_non_utf8_line(tmp_path: Path) -> None:
    path = write(tmp_path / "a.jsonl", b'{"request_id":"a"}\n{"request_id":"\xff\xfe"}\n')
    batches = read(path)
    assert exchanges(batches).column("request_id").to_pylist() == ["a"]
    (bad,) = rejects(batches)
    assert bad["location"] == f"{path}:2" and "UTF-8" in str(bad["reason"])


def test_bad_value_on_an_otherwise_clean_file(tmp_path: Path) -> None:
    lines_ = [{"request_id": str(i), "response_code": "200"} for i in range(50)]
    lines_[17]["response_code"] = "2OO"
    path = write(tmp_path / "a.jsonl", jsonl(*lines_))
    batches = read(path)
    (bad,) = rejects(batches)
    assert bad["location"] == f"{path}:18"
    assert bad["reason"] == "bad value for response_code: '2OO' (expected an HTTP status code)"
    assert bad["excerpt"] == '{"request_id": "17", "response_code": "2OO"}'
    assert exchanges(batches).num_rows == 49


@pytest.mark.parametrize(
    ("record", "reason"),
    [
        ({"response_code": "200.5"}, "bad value for response_code: '200.5'"),
        ({"response_code": 1000}, "bad value for response_code: '1000'"),
        ({"duration": "-3"}, "bad value for duration: '-3'"),
        ({"duration": "fast"}, "bad value for duration: 'fast'"),
        ({"bytes_received": "1e30"}, "bad value for bytes_received: '1e30'"),
        ({"server_port": "70000"}, "bad value for server_port: '70000'"),
        ({"status": "x", "response_code": "-"}, "bad value for status: 'x'"),
    ],
)
def test_bad_values_are_rejected_not_nulled(
    tmp_path: Path, record: dict[str, object], reason: str
) -> None:
    path = write(tmp_path / "a.jsonl", jsonl(record))
    batches = read(path)
    assert exchanges(batches).num_rows == 0
    (bad,) = rejects(batches)
    assert str(bad["reason"]).startswith(reason)


def test_blank_numbers_are_not_set(tmp_path: Path) -> None:
    path = write(tmp_path / "a.jsonl", jsonl({"response_code": "", "duration": " "}))
    (row,) = rows(read(path))
    assert row["status"] is None and row["duration_ms"] is None


def test_empty_file_yields_nothing(tmp_path: Path) -> None:
    assert read(write(tmp_path / "empty.jsonl", b"")) == []
    assert read(gzipped(write(tmp_path / "e", b""), tmp_path / "empty.jsonl.gz")) == []


def test_blank_only_file_counts_blank_lines(tmp_path: Path) -> None:
    batches = read(write(tmp_path / "blank.jsonl", "\n  \n\n"))
    assert sum(b.blank for b in batches) == 3
    assert sum(b.records for b in batches) == 0


def test_missing_file_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="cannot open"):
        read(tmp_path / "nope.jsonl")


# --- fast path and exact path ----------------------------------------------------------------


def both_paths(path: Path, options: Options | None = None) -> tuple[pa.Table, pa.Table]:
    options = options or Options()
    source = Input(path)
    kind = lines.compression_of(source)
    log_format = envoy_json.parse_log_format(options.log_format)
    head = lines.read_head(source, envoy_json.SAMPLE_BYTES)
    keys = envoy_json._keys_of(envoy_json._sample_lines(source, kind, head))
    layout = envoy_json.layout_for(keys, log_format, options.request_id_header)
    fast = envoy_json._read_fast(source, kind, layout)
    assert fast is not None, "a clean file takes the fast path"
    exact = envoy_json._read_exact(source, kind, layout)
    assert fast.rejects == exact.rejects and fast.blank == exact.blank
    return fast.table, exact.table


@pytest.mark.parametrize(
    ("name", "log_format"),
    [
        ("envoy_string.jsonl", None),
        ("envoy_typed.jsonl", None),
        ("istio.jsonl", None),
        ("custom_format.jsonl", json.dumps(CUSTOM_FORMAT)),
    ],
)
def test_fast_path_equals_exact_path(name: str, log_format: str | None) -> None:
    fast, exact = both_paths(FIXTURES / name, Options(log_format=log_format))
    assert fast.equals(exact)


def test_fast_path_equals_exact_path_on_generated_log(tmp_path: Path) -> None:
    records = [generated_record(i) for i in range(3000)]
    records[1234]["response_code"] = "teapot"  # a bad value: a reject on both paths
    fast, exact = both_paths(write(tmp_path / "gen.jsonl", jsonl(*records)))
    assert fast.num_rows == 2999
    assert fast.equals(exact)


def generated_record(i: int) -> dict[str, object]:
    return {
        "start_time": f"2026-11-28T10:{i // 60 % 60:02d}:{i % 60:02d}.{i % 1000:03d}Z",
        "method": ("GET", "POST", "PUT")[i % 3],
        "path": f"/api/v1/items/{i}?q={i * 7}",
        "protocol": "HTTP/1.1",
        "response_code": (200, "200", "503", 0)[i % 4],
        "response_flags": ("-", "UF", None)[i % 3],
        "bytes_received": str(i % 97),
        "bytes_sent": i * 13,
        "duration": f"{i % 1000}",
        "x_forwarded_for": "-" if i % 2 else "203.0.113.9",
        "user_agent": "curl/8.5.0",
        "request_id": f"req-{i:06d}",
        "authority": "app:8080",
        "upstream_host": "10.0.3.7:8080",
        "upstream_cluster": "outbound|8080||app",
        "downstream_local_address": "10.0.3.7:8080" if i % 5 else "[fd00::7]:8080",
        "downstream_remote_address": "10.0.1.9:53000",
    }


def test_clean_file_takes_the_fast_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def exact(*args: object) -> None:
        raise AssertionError("the exact path was taken")

    monkeypatch.setattr(envoy_json, "_read_exact", exact)
    assert exchanges(read(FIXTURES / "istio.jsonl")).num_rows == 2


@pytest.mark.parametrize(
    "text",
    [
        '{"request_id":"a"}\n\n{"request_id":"b"}\n',  # a blank line would shift line numbers
        '{"request_id":"a"}\nnull\n{"request_id":"b"}\n',  # read_json reads null as a row
        '{"request_id":"a"}\n{}\n{"request_id":"b"}\n',  # so is an empty object
    ],
)
def test_line_numbers_stay_right(tmp_path: Path, text: str) -> None:
    path = write(tmp_path / "a.jsonl", text)
    table = exchanges(read(path))
    by_id = dict(
        zip(
            table.column("request_id").to_pylist(),
            table.column("location").to_pylist(),
            strict=True,
        )
    )
    assert (by_id["a"], by_id["b"]) == (f"{path}:1", f"{path}:3")


def test_core_key_first_seen_after_the_sample_is_not_lost(tmp_path: Path) -> None:
    # Envoy's omit_empty_values drops a key where it is empty: response_flags here appears
    # only far past the head that is sampled (a compressed file has no further samples).
    records = [{"request_id": f"r{i}", "response_code": 200} for i in range(20_000)]
    records[-1]["response_flags"] = "UF"
    plain = write(tmp_path / "a.jsonl", jsonl(*records))
    assert len(plain.read_bytes()) > envoy_json.SAMPLE_BYTES
    table = exchanges(read(gzipped(plain, tmp_path / "a.jsonl.gz")))
    assert table.column("response_flags").to_pylist()[-2:] == [None, "UF"]


def test_batches_split_exchanges_and_keep_rejects_in_line_order() -> None:
    path = FIXTURES / "bad_lines.jsonl"
    whole = read(path)
    split = read(path, batch_lines=1)
    assert len(split) == 2
    assert exchanges(split).equals(exchanges(whole))
    assert rejects(split) == rejects(whole)
    # A batch carries the rejects up to its last exchange's line; the last one, the rest.
    assert split[0].exchanges.column("location").to_pylist() == [f"{path}:1"]
    assert (split[0].rejects, len(split[1].rejects)) == ([], 10)
    assert (split[0].blank, split[1].blank) == (1, 0)
    assert sum(b.records for b in split) == sum(b.records for b in whole)


# --- sniffing --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["envoy_string.jsonl", "envoy_typed.jsonl", "istio.jsonl", "kubectl_istio_proxy.log"]
)
def test_sniff_recognises_json_access_logs(name: str) -> None:
    head = (FIXTURES / name).read_bytes()
    assert COLLECTOR.sniff(head) >= 0.8


@pytest.mark.parametrize(
    "head",
    [
        b'[2016-04-15T20:17:00.310Z] "POST /api/v1/locations HTTP/2" 204 - 154 0 226 100 '
        b'"10.0.35.28" "nsq2http" "cc21d9b0-cf5c-432b-8c7e-98aeb7988cd2" "locations" '
        b'"tcp://10.0.2.1:80"\n',
        b'{"http_buffered_trace": {"request": {"headers": []}, "response": {}}}\n',
        b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR",
        b"",
        b"   \n\n",
    ],
)
def test_sniff_rejects_other_formats(head: bytes) -> None:
    assert COLLECTOR.sniff(head) < registry.SNIFF_THRESHOLD


def test_registered_under_its_name() -> None:
    assert registry.get("envoy-json") is COLLECTOR
    assert COLLECTOR.name == "envoy-json"


# --- robustness ------------------------------------------------------------------------------


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    data=st.one_of(
        st.binary(max_size=400),
        st.lists(
            st.one_of(
                st.binary(max_size=40),
                st.dictionaries(st.text(max_size=8), st.one_of(st.none(), st.text(max_size=8),
                                st.integers(), st.floats(allow_nan=False), st.booleans()),
                                max_size=5).map(lambda d: json.dumps(d).encode()),
                st.sampled_from([b"", b"null", b"[]", b'{"response_code":"x"}', b"\xff",
                                 b'{"start_time":1e300}', b'{"":1}', b'{"a\\u0000":1}']),
            ),
            max_size=8,
        ).map(b"\n".join),
    )
)  # fmt: skip
def test_arbitrary_bytes_raise_only_input_error(
    tmp_path_factory: pytest.TempPathFactory, data: bytes
) -> None:
    path = tmp_path_factory.mktemp("fuzz") / "input.jsonl"
    path.write_bytes(data)
    try:
        batches = read(path)
    except InputError:
        return
    for batch in batches:
        assert batch.records == batch.exchanges.num_rows + len(batch.rejects)
    total = sum(b.records + b.blank for b in batches)
    assert total <= data.count(b"\n") + 1


def test_compressed_garbage_is_an_input_error(tmp_path: Path) -> None:
    data = gzip.compress(jsonl({"request_id": "a"}).encode() * 100)
    path = write(tmp_path / "cut.jsonl.gz", data[: len(data) // 2])
    with pytest.raises(InputError):
        read(path)


def test_bad_lines_fixture_ends_without_a_newline() -> None:
    assert not (FIXTURES / "bad_lines.jsonl").read_bytes().endswith(b"\n")
