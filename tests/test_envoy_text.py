from __future__ import annotations

import gzip
import json
import os
from datetime import datetime
from pathlib import Path

import pytest
import zstandard
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from shadowdiff import schema
from shadowdiff.collect import envoy_format, envoy_text
from shadowdiff.collect.base import Batch, Input, Options
from shadowdiff.collect.lines import compression
from shadowdiff.errors import InputError

FIXTURES = Path(__file__).parent / "fixtures" / "envoy_text"
# Rewrite the *.expected.json goldens from the current output (then review the diff).
UPDATE = os.environ.get("SHADOWDIFF_UPDATE_GOLDENS") == "1"

# input file, file holding its format string (None: detected), format it is detected as
GOLDEN = [
    ("envoy_default.log", None, "Envoy default"),
    ("istio_default.log", None, "Istio default"),
    ("istio_pre_1_9.log", None, "Istio pre-1.9"),
    ("custom.log", "custom.format", "custom"),
    ("mixed.log", None, "Istio default"),
]

ISTIO_LINES = (FIXTURES / "istio_default.log").read_text().splitlines()


def read(
    path: Path, log_format: str | None = None, side: str | None = None, **options: object
) -> list[Batch]:
    opts = Options(log_format=log_format, **options)  # type: ignore[arg-type]
    return list(envoy_text.COLLECTOR.read(Input(path, side), opts))


def jsonable(value: object) -> object:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, list):
        return [jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    return value


def summary(batches: list[Batch], base: Path) -> dict[str, object]:
    """What a golden file holds: every exchange and reject, paths relative to ``base``."""

    def relative(row: dict[str, object]) -> dict[str, object]:
        for key in ("location", "source"):
            if key in row and isinstance(row[key], str):
                row[key] = str(row[key]).replace(f"{base}/", "")
        return row

    return {
        "exchanges": [relative(jsonable(r)) for b in batches for r in b.exchanges.to_pylist()],  # type: ignore[arg-type]
        "rejects": [relative(dict(r)) for b in batches for r in b.rejects],
        "blank": sum(b.blank for b in batches),
    }


def format_of(format_file: str | None) -> str | None:
    return (FIXTURES / format_file).read_text() if format_file else None


def line_count(data: bytes) -> int:
    return data.count(b"\n") + (1 if data and not data.endswith(b"\n") else 0)


@pytest.mark.parametrize(("name", "format_file", "_"), GOLDEN)
def test_golden(name: str, format_file: str | None, _: str) -> None:
    got = summary(read(FIXTURES / name, format_of(format_file)), FIXTURES)
    expected = FIXTURES / f"{Path(name).stem}.expected.json"
    if UPDATE:
        expected.write_text(json.dumps(got, indent=1, ensure_ascii=False) + "\n")
    assert got == json.loads(expected.read_text())


@pytest.mark.parametrize(("name", "format_file", "format_name"), GOLDEN)
def test_detects_the_format(name: str, format_file: str | None, format_name: str) -> None:
    fmt = envoy_text.choose_format(
        Input(FIXTURES / name), Options(log_format=format_of(format_file))
    )
    assert fmt.name == format_name


@pytest.mark.parametrize(("name", "format_file", "_"), GOLDEN)
def test_every_line_is_accounted_for(name: str, format_file: str | None, _: str) -> None:
    batches = read(FIXTURES / name, format_of(format_file))
    for batch in batches:
        assert batch.records == batch.exchanges.num_rows + len(batch.rejects)
    total = sum(b.records + b.blank for b in batches)
    assert total == line_count((FIXTURES / name).read_bytes())


@pytest.mark.parametrize(("name", "format_file", "_"), GOLDEN)
def test_columns_have_the_schema_types(name: str, format_file: str | None, _: str) -> None:
    for batch in read(FIXTURES / name, format_of(format_file), side="mirror"):
        table = batch.exchanges
        for field in table.schema:
            if field.name in schema.EXCHANGES.names:
                assert field.type == schema.EXCHANGES.field(field.name).type, field.name
            else:
                assert field.type == "string", field.name  # extra operator columns
        assert set(table.column("source").to_pylist()) <= {"envoy-text"}
        assert set(table.column("side").to_pylist()) <= {"mirror"}
        assert schema.conform(table).schema.names[: len(schema.EXCHANGES)] == schema.EXCHANGES.names


def test_mixed_container_log_reasons() -> None:
    # The fixture, line by line: 4 diagnostics lines (istio-proxy, Envoy's own log format, Envoy
    # under Istio's log format), a blank line, a good entry, an entry whose User-Agent holds
    # quotes (good: the regular expression takes it), garbage, an entry in Envoy's default
    # format, a bad %DURATION%, bytes that are not UTF-8, an impossible time, a cut last line.
    batches = read(FIXTURES / "mixed.log")
    assert sum(b.blank for b in batches) == 1
    exchanges = [row for b in batches for row in b.exchanges.to_pylist()]
    prefix = f"{FIXTURES}/"
    assert [e["location"] for e in exchanges] == [f"{prefix}mixed.log:6", f"{prefix}mixed.log:7"]
    assert exchanges[1]["request_headers"][1] == {
        "name": "user-agent",
        "value": 'Mozilla/5.0 "quoted" bot',
    }
    rejects = [r for b in batches for r in b.rejects]
    reasons = {str(r["location"]).removeprefix(prefix): str(r["reason"]) for r in rejects}
    diagnostic = "Envoy/istio-proxy diagnostic line, not an access-log entry"
    assert [reasons[f"mixed.log:{n}"] for n in (1, 2, 3, 4)] == [diagnostic] * 4
    assert reasons["mixed.log:8"] == (
        "does not match the access-log format (Istio default): expected '[' at character 1, "
        "found 'hello world, this is'"
    )
    assert reasons["mixed.log:9"].startswith(
        "does not match the access-log format (Istio default): expected ' \"' at character 64"
    )
    assert reasons["mixed.log:10"] == "%DURATION% is not a number: 12x"
    assert reasons["mixed.log:11"].startswith("not UTF-8")
    assert reasons["mixed.log:12"] == (
        "%START_TIME% is not a time like 2026-11-28T10:00:00.123Z: 2026-13-45T99:00:00.000Z"
    )
    assert reasons["mixed.log:13"] == "truncated last line (no newline at end of file)"
    assert len(reasons) == 10


def test_complete_last_line_without_newline_is_kept(tmp_path: Path) -> None:
    path = tmp_path / "access.log"
    path.write_text("\n".join(ISTIO_LINES))
    batches = read(path)
    assert sum(b.exchanges.num_rows for b in batches) == len(ISTIO_LINES)
    assert not any(b.rejects for b in batches)


@pytest.mark.parametrize("compress", ["gzip", "zstd"])
def test_compressed_inputs_read_alike(tmp_path: Path, compress: str) -> None:
    for name in ("istio_default.log", "mixed.log"):
        data = (FIXTURES / name).read_bytes()
        data += b"" if data.endswith(b"\n") else b"\n"  # rotated logs are complete
        plain = tmp_path / name
        plain.write_bytes(data)
        packed = tmp_path / f"{name}.{'gz' if compress == 'gzip' else 'zst'}"
        if compress == "gzip":
            packed.write_bytes(gzip.compress(data))
        else:
            packed.write_bytes(zstandard.ZstdCompressor().compress(data))
        expected = summary(read(plain), tmp_path)
        got = summary(read(packed), tmp_path)
        assert json.dumps(got).replace(packed.name, plain.name) == json.dumps(expected)
        assert got["exchanges"]


def test_no_builtin_format_matches(tmp_path: Path) -> None:
    path = tmp_path / "app.log"
    path.write_text("GET /index.html 200\nPOST /login 302\n")
    with pytest.raises(InputError) as error:
        read(path)
    message = str(error.value)
    assert str(path) in message
    for name in envoy_format.BUILTIN_FORMATS:
        assert name in message
    assert "--log-format" in message


def test_only_diagnostics_is_an_input_error(tmp_path: Path) -> None:
    path = tmp_path / "istio-proxy.log"
    path.write_text("2026-11-28T10:00:00.123456Z\tinfo\tads\tADS: new connection\n" * 3)
    with pytest.raises(InputError, match="only Envoy/istio-proxy diagnostics"):
        read(path)


def test_detection_reads_past_long_startup_logging(tmp_path: Path) -> None:
    path = tmp_path / "istio-proxy.log"
    noise = "2026-11-28T10:00:00.123456Z\tinfo\tFLAG: --" + "x" * 200 + "\n"
    path.write_text(noise * 2000 + "\n".join(ISTIO_LINES) + "\n")
    batches = read(path)
    assert sum(b.exchanges.num_rows for b in batches) == len(ISTIO_LINES)
    assert sum(len(b.rejects) for b in batches) == 2000


def test_empty_and_blank_files(tmp_path: Path) -> None:
    empty = tmp_path / "empty.log"
    empty.write_bytes(b"")
    blank = tmp_path / "blank.log"
    blank.write_bytes(b"\n  \n\n")
    for path, blanks in ((empty, 0), (blank, 3)):
        batches = read(path)
        assert sum(b.records for b in batches) == 0
        assert sum(b.blank for b in batches) == blanks


def test_batches_keep_line_order_and_counts() -> None:
    batches = read(FIXTURES / "mixed.log", batch_lines=3)
    assert len(batches) == 4
    assert [b.records for b in batches] == [3, 3, 3, 3]
    lines = [
        int(str(loc).rsplit(":", 1)[1])
        for b in batches
        for loc in [
            *b.exchanges.column("location").to_pylist(),
            *(r["location"] for r in b.rejects),
        ]
    ]
    assert sorted(lines) == [n for n in range(1, 14) if n != 5]
    assert sum(b.blank for b in batches) == 1


def test_request_id_header_option(tmp_path: Path) -> None:
    path = tmp_path / "custom.log"
    path.write_text('"abc" "def"\n')
    fmt = '"%REQ(X-REQUEST-ID)%" "%REQ(X-B3-TRACEID)%"\n'
    (batch,) = read(path, fmt, request_id_header="x-b3-traceid")
    row = batch.exchanges.to_pylist()[0]
    assert row["request_id"] == "def"
    assert row["request_headers"] == [{"name": "x-request-id", "value": "abc"}]


def one_row(tmp_path: Path, log_format: str, line: str) -> dict[str, object]:
    path = tmp_path / "access.log"
    path.write_text(line + "\n")
    (batch,) = read(path, log_format)
    assert batch.rejects == []
    (row,) = batch.exchanges.to_pylist()
    return row


def test_user_format_with_epoch_time_metadata_and_ipv6(tmp_path: Path) -> None:
    row = one_row(
        tmp_path,
        "%START_TIME(%s.%3f)% %DOWNSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_REMOTE_ADDRESS% "
        '"%DYNAMIC_METADATA(istio.mixer:status)%" %RESPONSE_CODE% %UPSTREAM_CLUSTER%\n',
        '1764324000.123 [::1]:8080 [2001:db8::7]:51234 "policy ok" 201 -',
    )
    assert str(row["start_time"]) == "2025-11-28 10:00:00.123000+00:00"
    assert (row["server_addr"], row["server_port"]) == ("::1", 8080)
    assert row["client_addr"] == "[2001:db8::7]:51234"
    assert row["dynamic_metadata_istio_mixer_status"] == "policy ok"
    assert row["status"] == 201
    assert row["upstream_cluster"] is None  # "-": not set


def test_user_format_with_zone_offset_and_truncated_path(tmp_path: Path) -> None:
    row = one_row(
        tmp_path,
        "%START_TIME(%d/%b/%Y:%H:%M:%S %z)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH):10% "
        "%DOWNSTREAM_LOCAL_ADDRESS%",
        "28/Nov/2026:11:00:00 +0100 /api/items /var/run/envoy.sock",
    )
    assert str(row["start_time"]) == "2026-11-28 10:00:00+00:00"
    assert row["path"] == "/api/items"
    assert (row["server_addr"], row["server_port"]) == ("/var/run/envoy.sock", None)


def test_format_without_split_plan_uses_the_regular_expression(tmp_path: Path) -> None:
    # Two values in one word: no split plan, every line goes through the regular expression.
    assert envoy_format.parse("%REQ(:METHOD)%:%RESPONSE_CODE% %DURATION%").split_plan() is None
    row = one_row(tmp_path, "%REQ(:METHOD)%:%RESPONSE_CODE% %DURATION%", "GET:200 5")
    assert (row["method"], row["status"], row["duration_ms"]) == ("GET", 200, 5.0)


def test_bad_number_in_a_user_format_names_the_field(tmp_path: Path) -> None:
    path = tmp_path / "access.log"
    path.write_text("a 99999999999999999999\nb 12\n")
    (batch,) = read(path, "%REQ(:METHOD)% %BYTES_SENT%")
    assert batch.exchanges.column("bytes_sent").to_pylist() == [12]
    (reject,) = batch.rejects
    assert reject["location"] == f"{path}:1"
    assert reject["reason"] == "%BYTES_SENT% is not an integer: 99999999999999999999"


def test_sniff() -> None:
    collector = envoy_text.COLLECTOR
    for name in ("envoy_default.log", "istio_default.log", "istio_pre_1_9.log"):
        assert collector.sniff((FIXTURES / name).read_bytes()) >= 0.9, name
    assert collector.sniff((FIXTURES / "mixed.log").read_bytes()) >= 0.5  # half of it is broken
    diagnostics = b"2026-11-28T10:00:00.123456Z\tinfo\tads\tADS: connected\n" * 30
    assert collector.sniff(diagnostics + (FIXTURES / "istio_default.log").read_bytes()) >= 0.9
    assert collector.sniff(diagnostics) < 0.5
    assert collector.sniff(b'{"start_time": "2026-11-28T10:00:00.123Z"}\n') < 0.1
    assert collector.sniff(b"GET /index.html 200\n" * 5) < 0.5
    assert collector.sniff((FIXTURES / "custom.log").read_bytes()) < 0.5
    assert collector.sniff(b"") == 0.0


# --- arbitrary input ---------------------------------------------------------------------------

GOOD = [line.encode() for line in ISTIO_LINES]
LINES = st.one_of(
    st.sampled_from(GOOD),
    st.sampled_from(GOOD).flatmap(lambda g: st.integers(0, len(g)).map(lambda n: g[:n])),
    st.binary(max_size=80).filter(lambda b: b"\n" not in b and b"\r" not in b),
    st.just(b"2026-11-28T10:00:00.123Z\twarn\tenvoy main\tsomething\tthread=1"),
    st.just(b""),
)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.binary(max_size=600), detect=st.booleans())
def test_arbitrary_bytes_raise_nothing_but_input_error(
    tmp_path: Path, data: bytes, detect: bool
) -> None:
    path = tmp_path / "fuzz.log"
    path.write_bytes(data)
    try:
        batches = read(path, None if detect else envoy_format.ISTIO_DEFAULT_FORMAT)
    except InputError:
        return
    for batch in batches:
        assert batch.records == batch.exchanges.num_rows + len(batch.rejects)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(lines=st.lists(LINES, min_size=1, max_size=12), end=st.booleans())
def test_arbitrary_lines_are_all_accounted_for(
    tmp_path: Path, lines: list[bytes], end: bool
) -> None:
    data = b"\n".join(lines) + (b"\n" if end else b"")
    assume(compression(data[:4]) is None)  # a gzip/zstd magic makes it a (broken) archive
    path = tmp_path / "fuzz.log"
    path.write_bytes(data)
    batches = read(path, envoy_format.ISTIO_DEFAULT_FORMAT)
    assert sum(b.records + b.blank for b in batches) == line_count(data)
    good = sum(1 for n, line in enumerate(lines) if line in GOOD and (end or n < len(lines) - 1))
    assert sum(b.exchanges.num_rows for b in batches) >= good


def test_crlf_line_endings_keep_line_numbers(tmp_path: Path) -> None:
    path = tmp_path / "access.log"
    path.write_bytes(("\r\n".join(ISTIO_LINES) + "\r\n\r\ngarbage\r\n").encode())
    batches = read(path)
    assert sum(b.exchanges.num_rows for b in batches) == len(ISTIO_LINES)
    rejects = [r for b in batches for r in b.rejects]
    assert [r["location"] for r in rejects] == [f"{path}:{len(ISTIO_LINES) + 2}"]
    assert sum(b.blank for b in batches) == 1


def test_header_lists_keep_set_entries_in_format_order(tmp_path: Path) -> None:
    path = tmp_path / "access.log"
    path.write_text('"a" "b" "c"\n"-" "b2" "-"\n"-" "-" "-"\n"a4" "-" "c4"\n')
    (batch,) = read(path, '"%REQ(X-A)%" "%REQ(X-B)%" "%RESP(X-C)%"\n')
    rows = batch.exchanges.to_pylist()
    assert [r["request_headers"] for r in rows] == [
        [{"name": "x-a", "value": "a"}, {"name": "x-b", "value": "b"}],
        [{"name": "x-b", "value": "b2"}],
        [],
        [{"name": "x-a", "value": "a4"}],
    ]
    assert [r["response_headers"] for r in rows] == [
        [{"name": "x-c", "value": "c"}],
        [],
        [],
        [{"name": "x-c", "value": "c4"}],
    ]


@pytest.mark.parametrize(
    ("address", "host", "port"),
    [
        ("10.0.0.5:8080", "10.0.0.5", 8080),
        ("[2001:db8::1]:443", "2001:db8::1", 443),
        ("héte:80", "héte", 80),
        ("envoy://internal_client_address/", "envoy://internal_client_address/", None),
        ("/var/run/envoy.sock", "/var/run/envoy.sock", None),
    ],
)
def test_local_address_splits_into_host_and_port(
    tmp_path: Path, address: str, host: str, port: int | None
) -> None:
    row = one_row(tmp_path, "%REQ(:METHOD)% %DOWNSTREAM_LOCAL_ADDRESS%", f"GET {address}")
    assert (row["server_addr"], row["server_port"]) == (host, port)


def test_special_characters_in_quoted_values(tmp_path: Path) -> None:
    # Characters a CSV reader would treat specially: delimiters, quotes, escapes, tabs.
    agent = 'a,b;c\'d\\e\tf "g" h'
    line = ISTIO_LINES[0].replace('"curl/7.88.1"', f'"{agent}"')
    assert line != ISTIO_LINES[0]
    row = one_row(tmp_path, envoy_format.ISTIO_DEFAULT_FORMAT, line)
    assert {"name": "user-agent", "value": agent} in row["request_headers"]  # type: ignore[operator]
