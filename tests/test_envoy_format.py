from __future__ import annotations

import re

import duckdb
import pytest

from shadowdiff.collect import envoy_format
from shadowdiff.collect.envoy_format import Operator, Text, parse
from shadowdiff.errors import ConfigError

# One real line per built-in format (from tests/fixtures/envoy_text, written by Envoy 1.40).
ISTIO_LINE = (
    '[2026-11-28T10:39:51.369Z] "GET /api/items HTTP/1.1" 200 - via_upstream - "-" 0 34 1 0 '
    '"192.0.2.2" "curl/7.88.1" "0b9c5f3e-0000-4000-8000-000000000001" "127.0.0.1-shadow:18480" '
    '"127.0.0.1:18490" app_v1 127.0.0.1:46506 127.0.0.1:18481 192.0.2.2:0 - mirror_default'
)
ENVOY_LINE = (
    '[2026-11-28T10:39:51.362Z] "GET /api/items HTTP/1.1" 200 - 0 34 6 1 "-" "curl/7.88.1" '
    '"0b9c5f3e-0000-4000-8000-000000000001" "127.0.0.1:18480" "127.0.0.1:18490"'
)
PRE_1_9_LINE = (
    '[2026-11-28T10:39:51.362Z] "GET /api/items HTTP/1.1" 200 - "-" "-" 0 34 6 0 "-" '
    '"curl/7.88.1" "0b9c5f3e-0000-4000-8000-000000000001" "127.0.0.1:18480" "127.0.0.1:18490" '
    "app_v1 127.0.0.1:46494 127.0.0.1:18480 127.0.0.1:33716 - primary_default"
)


def columns(fmt: envoy_format.Format) -> list[tuple[str, str, str | None]]:
    return [(f.operator.source, f.column, f.header) for f in fmt.fields]


def test_istio_default_columns() -> None:
    fmt = parse(envoy_format.ISTIO_DEFAULT_FORMAT, "Istio default")
    assert columns(fmt) == [
        ("%START_TIME%", "start_time", None),
        ("%REQ(:METHOD)%", "method", None),
        ("%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%", "path", None),
        ("%PROTOCOL%", "protocol", None),
        ("%RESPONSE_CODE%", "status", None),
        ("%RESPONSE_FLAGS%", "response_flags", None),
        ("%RESPONSE_CODE_DETAILS%", "response_code_details", None),
        ("%CONNECTION_TERMINATION_DETAILS%", "connection_termination_details", None),
        ("%UPSTREAM_TRANSPORT_FAILURE_REASON%", "upstream_transport_failure_reason", None),
        ("%BYTES_RECEIVED%", "bytes_received", None),
        ("%BYTES_SENT%", "bytes_sent", None),
        ("%DURATION%", "duration_ms", None),
        (
            "%RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)%",
            "response_headers",
            "x-envoy-upstream-service-time",
        ),
        ("%REQ(X-FORWARDED-FOR)%", "request_headers", "x-forwarded-for"),
        ("%REQ(USER-AGENT)%", "request_headers", "user-agent"),
        ("%REQ(X-REQUEST-ID)%", "request_id", None),
        ("%REQ(:AUTHORITY)%", "authority", None),
        ("%UPSTREAM_HOST%", "upstream_host", None),
        ("%UPSTREAM_CLUSTER_RAW%", "upstream_cluster", None),
        ("%UPSTREAM_LOCAL_ADDRESS%", "upstream_local_address", None),
        ("%DOWNSTREAM_LOCAL_ADDRESS%", "server_addr", None),
        ("%DOWNSTREAM_REMOTE_ADDRESS%", "client_addr", None),
        ("%REQUESTED_SERVER_NAME%", "requested_server_name", None),
        ("%ROUTE_NAME%", "route_name", None),
    ]
    kinds = {f.column: f.kind for f in fmt.fields}
    assert kinds["status"] == "int32"
    assert kinds["bytes_sent"] == "int64"
    assert kinds["duration_ms"] == "float64"
    assert kinds["server_addr"] == "address"
    assert kinds["start_time"] == "timestamp"


def test_envoy_default_columns() -> None:
    fmt = parse(envoy_format.ENVOY_DEFAULT_FORMAT)
    assert [c for _, c, _ in columns(fmt)] == [
        "start_time", "method", "path", "protocol", "status", "response_flags",
        "bytes_received", "bytes_sent", "duration_ms", "response_headers", "request_headers",
        "request_headers", "request_id", "authority", "upstream_host",
    ]  # fmt: skip


def test_pre_1_9_has_mixer_status_column() -> None:
    fmt = parse(envoy_format.ISTIO_PRE_1_9_FORMAT)
    names = [c for _, c, _ in columns(fmt)]
    assert "dynamic_metadata_istio_mixer_status" in names
    assert names.count("upstream_cluster") == 1
    assert len(fmt.fields) == 23


@pytest.mark.parametrize(
    ("name", "line"),
    [("Istio default", ISTIO_LINE), ("Envoy default", ENVOY_LINE), ("Istio pre-1.9", PRE_1_9_LINE)],
)
def test_each_builtin_matches_only_its_own_lines(name: str, line: str) -> None:
    matching = [f.name for f in envoy_format.builtin() if re.fullmatch(f.regex(), line)]
    assert matching == [name]


def test_builtin_strings_are_envoys_and_istios() -> None:
    # Guard against an accidental edit: these are copied from Envoy's docs and Istio's sources.
    assert envoy_format.ENVOY_DEFAULT_FORMAT.startswith('[%START_TIME%] "%REQ(:METHOD)% ')
    assert envoy_format.ENVOY_DEFAULT_FORMAT.endswith('"%REQ(:AUTHORITY)%" "%UPSTREAM_HOST%"\n')
    assert "%UPSTREAM_CLUSTER_RAW%" in envoy_format.ISTIO_DEFAULT_FORMAT
    assert '"%DYNAMIC_METADATA(istio.mixer:status)%"' in envoy_format.ISTIO_PRE_1_9_FORMAT
    for text in envoy_format.BUILTIN_FORMATS.values():
        assert text.endswith("%\n") or text.endswith('"\n')
        assert "  " not in text


def test_tokens_of_every_operator_kind() -> None:
    tokens = envoy_format.tokenize(
        "%START_TIME(%s.%3f)% 100%% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH):40% "
        "%DYNAMIC_METADATA(istio.mixer:status)% %PROTOCOL%"
    )
    assert tokens == (
        Operator("START_TIME", "%s.%3f", None, "%START_TIME(%s.%3f)%"),
        Text(" 100% "),
        Operator(
            "REQ",
            "X-ENVOY-ORIGINAL-PATH?:PATH",
            40,
            "%REQ(X-ENVOY-ORIGINAL-PATH?:PATH):40%",
        ),
        Text(" "),
        Operator(
            "DYNAMIC_METADATA", "istio.mixer:status", None, "%DYNAMIC_METADATA(istio.mixer:status)%"
        ),
        Text(" "),
        Operator("PROTOCOL", None, None, "%PROTOCOL%"),
    )


@pytest.mark.parametrize(
    "pasted",
    [
        '[%START_TIME%] "%REQ(:METHOD)%"\n',  # YAML block scalar: a real newline
        '[%START_TIME%] "%REQ(:METHOD)%"\\n',  # copied from a quoted string: backslash-n
        '[%START_TIME%] \\"%REQ(:METHOD)%\\"\\n',  # copied with its escapes
        '[%START_TIME%] "%REQ(:METHOD)%"',
    ],
)
def test_pasted_variants_normalize_alike(pasted: str) -> None:
    assert envoy_format.normalize(pasted) == '[%START_TIME%] "%REQ(:METHOD)%"'


def test_escaped_tab_becomes_a_tab() -> None:
    assert envoy_format.normalize("%START_TIME%\\t%DURATION%\\n") == "%START_TIME%\t%DURATION%"


def test_wrapped_documentation_lines_are_joined() -> None:
    wrapped = '[%START_TIME%] "%REQ(:METHOD)% %PROTOCOL%"\n  %RESPONSE_CODE% %DURATION%\n'
    assert envoy_format.normalize(wrapped) == (
        '[%START_TIME%] "%REQ(:METHOD)% %PROTOCOL%" %RESPONSE_CODE% %DURATION%'
    )


def test_user_format_columns() -> None:
    fmt = parse(
        "%START_TIME(%Y-%m-%dT%H:%M:%S%z)% %REQ(:method)% %REQ(:PATH)% %REQ(X-B3-TRACEID)% "
        "%REQ(X-REQUEST-ID?X-B3-TRACEID):36% %RESP(CONTENT-TYPE)% %TRAILER(GRPC-STATUS)% "
        "%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT% %UPSTREAM_CLUSTER% %GRPC_STATUS(NUMBER)%",
        request_id_header="X-B3-TraceId",
    )
    assert [(f.column, f.header) for f in fmt.fields] == [
        ("start_time", None),
        ("method", None),
        ("path", None),
        ("request_id", None),  # the configured request-id header
        ("request_headers", "x-request-id"),  # X?Y: named after X
        ("response_headers", "content-type"),
        ("trailer_grpc_status", None),
        ("client_addr", None),
        ("upstream_cluster", None),
        ("grpc_status_number", None),
    ]
    time = fmt.fields[0].time
    assert time is not None and time.pattern == "%Y-%m-%dT%H:%M:%S%z"


def test_extra_column_never_takes_a_schema_name() -> None:
    assert envoy_format.extra_column(Operator("SIDE", None, None, "%SIDE%")) == "envoy_side"
    assert envoy_format.extra_column(Operator("LINE", None, None, "%LINE%")) == "envoy_line"
    assert envoy_format.extra_column(Operator("F0", None, None, "%F0%")) == "envoy_f0"


@pytest.mark.parametrize(
    ("fmt", "pattern"),
    [
        ("%Y-%m-%dT%H:%M:%S.%3fZ", "%Y-%m-%dT%H:%M:%S.%fZ"),
        ("%Y/%m/%d %T.%6f", "%Y/%m/%d %H:%M:%S.%f"),
        ("%F %H:%M:%E3S", "%Y-%m-%d %H:%M:%S.%g"),
        ("%d/%b/%Y:%H:%M:%S %z", "%d/%b/%Y:%H:%M:%S %z"),
        ("%Y-%m-%dT%H:%M:%S.%fZ", "%Y-%m-%dT%H:%M:%S.%nZ"),  # Envoy's %f is nanoseconds
        ("100%% %Y", "100%% %Y"),
    ],
)
def test_start_time_formats_become_strptime(fmt: str, pattern: str) -> None:
    time = envoy_format.time_format(fmt)
    assert (time.kind, time.pattern) == ("strptime", pattern)


@pytest.mark.parametrize("fmt", ["%s", "%s.%3f", "%s.%6f", "%s.%9f", "%s.%f"])
def test_epoch_start_times(fmt: str) -> None:
    assert envoy_format.time_format(fmt).kind == "epoch"


def test_unsupported_start_time_specifier_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="%Q is not supported"):
        envoy_format.time_format("%Y %Q")


@pytest.mark.parametrize("bad", ["%REQ(X", "50% of %DURATION%", "%lower%", "%"])
def test_stray_percent_is_a_config_error(bad: str) -> None:
    with pytest.raises(ConfigError, match="no command operator at character"):
        parse(bad)


def test_format_without_operators_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="no command operator"):
        parse("just text\n")


def test_regexes_run_in_duckdb_and_python_alike() -> None:
    con = duckdb.connect()
    for fmt in envoy_format.builtin():
        for lenient in (False, True):
            pattern = fmt.regex(lenient)
            names = [f.group for f in fmt.fields]
            struct = con.execute(
                "SELECT regexp_extract(?, ?, ?)", [ISTIO_LINE, pattern, names]
            ).fetchone()
            assert struct is not None
            python = re.fullmatch(pattern, ISTIO_LINE)
            if fmt.name == "Istio default":
                assert python is not None
                assert list(struct[0].values()) == list(python.groups())
            else:
                assert python is None


def test_lenient_regex_allows_quotes_in_a_quoted_value() -> None:
    fmt = parse('"%REQ(USER-AGENT)%" %RESPONSE_CODE%')
    line = '"Mozilla "quoted" bot" 200'
    assert re.fullmatch(fmt.regex(), line) is None
    match = re.fullmatch(fmt.regex(lenient=True), line)
    assert match is not None and match.groups() == ('Mozilla "quoted" bot', "200")


def test_time_with_spaces_spans_words() -> None:
    fmt = parse("%START_TIME(%Y/%m/%d %H:%M:%S)% %RESPONSE_CODE%")
    match = re.fullmatch(fmt.regex(), "2026/11/28 10:00:00 200")
    assert match is not None and match.groups() == ("2026/11/28 10:00:00", "200")
    plan = fmt.split_plan()
    assert plan is not None
    assert [p.words for p in plan.segments[0].pieces] == [2, 1]


def test_split_plan_of_istio_default() -> None:
    plan = parse(envoy_format.ISTIO_DEFAULT_FORMAT).split_plan()
    assert plan is not None
    assert len(plan.segments) == 15  # 14 quotes
    first = plan.segments[0]
    assert not first.split and first.pieces[0].prefix == "[" and first.pieces[0].suffix == "] "
    assert [len(s.pieces) for s in plan.segments if s.split] == [3, 6, 6, 7]


def test_adjacent_operators_have_no_split_plan() -> None:
    fmt = parse("%RESPONSE_CODE%%RESPONSE_FLAGS% %DURATION%")
    assert fmt.split_plan() is None
    assert re.fullmatch(fmt.regex(), "200UH 5") is not None


def test_describe_names_the_token() -> None:
    fmt = parse("[%START_TIME%] %RESPONSE_CODE%")
    assert fmt.describe(0) == "'['"
    assert fmt.describe(1) == "%START_TIME%"
    assert fmt.describe(2) == "'] '"
    assert fmt.describe(3) == "%RESPONSE_CODE%"
    assert fmt.describe(4) == "the end of the line"
