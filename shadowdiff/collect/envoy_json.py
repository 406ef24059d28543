"""The ``envoy-json`` collector: Envoy and Istio JSON access logs, one JSON object per line.

Three dialects arrive here and are read the same way:

- Envoy ``json_format``: every value is a string (``"response_code":"200"``), ``"-"`` when unset;
- typed JSON (``typed_json_format``, newer Envoy): numbers are numbers, unset values ``null``;
- Istio ``meshConfig.accessLogEncoding: JSON``: the keys listed in ``ISTIO_KEYS``.

``"-"``, ``null`` and a missing key all mean "not set"; key order never matters.

Keys become ``EXCHANGES`` columns by name, through the alias table ``ALIASES`` (names are compared
after ``snake_case``: ``x-request-id``, ``requestId`` and ``request_id`` are one name). When the
user passes their ``json_format`` dictionary as ``Options.log_format`` (JSON text such as
``{"rid": "%REQ(X-REQUEST-ID)%", "code": "%RESPONSE_CODE%"}``), each key is mapped by its Envoy
operator instead (``OPERATORS``). Keys that map to no column are kept as extra string columns,
named in ``snake_case`` (``log_`` is put in front of a name that ``EXCHANGES`` already uses).
Nested objects and arrays are kept as their JSON text; only top-level keys are mapped.

Two ways through a file, which give the same exchanges:

- fast: learn the keys from a sample of lines, let DuckDB's ``read_json`` read every key as text
  and check that it returned one row per line of the file (so line ``n`` is row ``n``);
- exact: when ``read_json`` fails or the counts differ (bad lines, blank lines, non-objects,
  non-UTF-8), read line by line with ``lines.scan`` and reject each bad line with its reason.

Both paths read the keys found in a sample of lines: the head of the file and, when it is not
compressed, windows spread over it. Limits: a key first seen after the sample is read only when
it names a core column that no sampled key covers (every alias of such a column is read, in the
file's spelling), so a late key is not lost to the core columns but is not kept as an extra.
Keys that are empty, hold control characters, or differ from an earlier key only in case are
not read; a file keeps at most ``MAX_EXTRA_COLUMNS`` extras.
"""

from __future__ import annotations

import bisect
import functools
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import duckdb
import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from shadowdiff import db, schema
from shadowdiff.collect import lines
from shadowdiff.collect.base import Batch, Input, Options, Unstreamable, reject
from shadowdiff.errors import ConfigError, InputError

NAME = "envoy-json"

# The Istio default (``EnvoyJSONLogFormatIstio`` in istio/pilot), for Istio 1.9 and later.
ISTIO_KEYS = (
    "start_time",
    "method",
    "path",
    "protocol",
    "response_code",
    "response_flags",
    "response_code_details",
    "connection_termination_details",
    "upstream_transport_failure_reason",
    "bytes_received",
    "bytes_sent",
    "duration",
    "upstream_service_time",
    "x_forwarded_for",
    "user_agent",
    "request_id",
    "authority",
    "upstream_host",
    "upstream_cluster",
    "upstream_local_address",
    "downstream_local_address",
    "downstream_remote_address",
    "requested_server_name",
    "route_name",
)

# Where each core column may come from, by key name (after ``snake``), first spelling first.
# When a file has several of them, the first one that is set in a line wins for that line.
# ``server_address`` is split into ``server_addr`` and ``server_port`` ("10.0.0.1:80",
# "[::1]:80"). The request id spellings follow ``Options.request_id_header`` (see ``_aliases``).
ALIASES: dict[str, tuple[str, ...]] = {
    "request_id": ("request_id", "x_request_id"),
    "start_time": ("start_time", "timestamp", "time", "request_start_time"),
    "method": ("method", "request_method", "http_method"),
    "path": ("path", "request_path", "uri", "url_path", "request_uri"),
    "authority": ("authority", "host", "http_host", "request_authority", "request_host"),
    "protocol": ("protocol", "http_protocol", "request_protocol", "http_version"),
    "status": (
        "response_code",
        "status",
        "status_code",
        "http_status",
        "response_status",
        "http_status_code",
    ),
    "response_flags": ("response_flags",),
    "duration_ms": ("duration", "duration_ms", "latency_ms", "elapsed_ms", "response_time_ms"),
    "bytes_received": ("bytes_received", "bytes_in", "request_bytes", "request_size"),
    "bytes_sent": ("bytes_sent", "bytes_out", "response_bytes", "response_size"),
    "upstream_cluster": ("upstream_cluster", "cluster", "upstream_cluster_raw", "cluster_name"),
    "upstream_host": ("upstream_host", "upstream_address", "upstream_remote_address"),
    "client_addr": (
        "downstream_remote_address",
        "client_addr",
        "client_address",
        "remote_addr",
        "remote_address",
    ),
    "server_address": (
        "downstream_local_address",
        "server_addr",
        "server_address",
        "local_addr",
        "local_address",
    ),
    "server_port": ("server_port", "downstream_local_port", "local_port"),
}

# Envoy command operators (the part between ``%`` and ``(``) and the column they fill.
# ``REQ(...)`` is handled apart (``_operator_target``): its column depends on the header.
OPERATORS: dict[str, str] = {
    "START_TIME": "start_time",
    "PROTOCOL": "protocol",
    "RESPONSE_CODE": "status",
    "RESPONSE_FLAGS": "response_flags",
    "RESPONSE_FLAGS_LONG": "response_flags",
    "DURATION": "duration_ms",
    "BYTES_RECEIVED": "bytes_received",
    "BYTES_SENT": "bytes_sent",
    "UPSTREAM_CLUSTER": "upstream_cluster",
    "UPSTREAM_CLUSTER_RAW": "upstream_cluster",
    "UPSTREAM_HOST": "upstream_host",
    "UPSTREAM_REMOTE_ADDRESS": "upstream_host",
    "DOWNSTREAM_REMOTE_ADDRESS": "client_addr",
    "DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT": "client_addr",
    "DOWNSTREAM_LOCAL_ADDRESS": "server_address",
    "DOWNSTREAM_LOCAL_ADDRESS_WITHOUT_PORT": "server_address",
    "DOWNSTREAM_LOCAL_PORT": "server_port",
    "PATH": "path",
    "REQ_WITHOUT_QUERY": "path",
}
REQUEST_HEADERS = {
    ":method": "method",
    ":path": "path",
    "x-envoy-original-path": "path",
    ":authority": "authority",
    "host": "authority",
}

# Output: these columns are always present (null when the log lacks them), in this order.
TEXT_COLUMNS = (
    "request_id",
    "method",
    "authority",
    "path",
    "protocol",
    "response_flags",
    "upstream_cluster",
    "upstream_host",
    "client_addr",
)
CORE_COLUMNS = (
    "request_id",
    "start_time",
    "duration_ms",
    "method",
    "authority",
    "path",
    "protocol",
    "status",
    "response_flags",
    "upstream_cluster",
    "upstream_host",
    "client_addr",
    "server_addr",
    "server_port",
    "bytes_received",
    "bytes_sent",
)

MISSING = "-"
MAX_EXTRA_COLUMNS = 256
SAMPLE_BYTES = 256 * 1024  # from the start of the (decompressed) file
SAMPLE_WINDOWS = 16  # further samples spread over an uncompressed file
WINDOW_BYTES = 32 * 1024
SNIFF_LINES = 50
BAD_VALUE_CHARS = 60

REASON_NOT_JSON = "not JSON"
REASON_NOT_OBJECT = "JSON but not an object"
REASON_TRUNCATED = "truncated last line (no newline at end of file)"
REASON_DIAGNOSTIC = "Envoy/istio-proxy diagnostic line, not an access-log entry"

# ``kubectl logs -c istio-proxy`` mixes the proxy's own log with the access log: pilot-agent
# lines ("2026-11-28T10:00:00.123456Z<TAB>info<TAB>ads<TAB>...") and Envoy's
# ("[2026-11-28 10:00:00.123][14][warning][config] ...").
_LEVELS = "trace|debug|info|warn|warning|error|err|critical|fatal"
DIAGNOSTIC_PATTERNS = (
    r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:?\d{2})?"
    rf"[\t ]+({_LEVELS})[\t ]",
    rf"^\[\d{{4}}-\d{{2}}-\d{{2}}[ T]\d{{2}}:\d{{2}}:\d{{2}}(\.\d+)?\]\[\d+\]\[({_LEVELS})\]",
)
_DIAGNOSTIC_RE = re.compile("|".join(f"(?:{p})" for p in DIAGNOSTIC_PATTERNS).encode())

_OPERATOR_RE = re.compile(r"^%([A-Z0-9_]+)(?:\((.*)\))?(?::\d+)?%$", re.DOTALL)
_CAMEL_RE = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_NON_WORD_RE = re.compile(r"[^\w]+")
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")
# Envoy's ``%START_TIME(...)%`` fractional-second specifiers and DuckDB's ``strptime`` ones.
_FRACTION_FORMATS = {"%3f": "%g", "%6f": "%f", "%9f": "%n", "%f": "%n"}


def snake(key: str) -> str:
    """``x-request-id``, ``requestId`` and ``Request ID`` all become ``x_request_id`` /
    ``request_id``: the one spelling names are compared in."""
    return _NON_WORD_RE.sub("_", _CAMEL_RE.sub("_", key)).strip("_").lower()


# ---------------------------------------------------------------------------------------------
# Layout: which key fills which column


@dataclass(frozen=True)
class Field:
    """One JSON key read from the log, and where its value goes."""

    key: str  # as written in the log
    target: str  # a ``CORE_COLUMNS`` name, ``server_address``, or the extra column's name
    extra: bool = False
    time_format: str | None = None  # a DuckDB strptime format from ``%START_TIME(...)%``


@dataclass(frozen=True)
class Layout:
    """How the keys of one file become columns. ``fields`` keeps the first key of any spelling
    that differs only in case (DuckDB names are not case-sensitive)."""

    fields: tuple[Field, ...]

    def raw_name(self, index: int) -> str:
        return f"c{index}"

    def keys(self) -> list[str]:
        return [f.key for f in self.fields]


def _aliases(request_id_header: str) -> dict[str, str]:
    """Key name (snake) → column, honouring the configured request-id header."""
    table: dict[str, str] = {}
    for column, names in ALIASES.items():
        if column == "request_id":
            header = snake(request_id_header)
            names = (header, header.removeprefix("x_"))
            if header == "x_request_id":
                names = ALIASES["request_id"]
        for name in names:
            table.setdefault(name, column)
    return table


def _styles(keys: Iterable[str]) -> set[str]:
    """How the keys of a file are written: ``snake`` (``bytes_sent``), ``kebab``
    (``bytes-sent``), ``camel`` (``bytesSent``). Keys of one word say nothing."""
    styles = set()
    for key in keys:
        if "_" in key:
            styles.add("snake")
        if "-" in key:
            styles.add("kebab")
        if key[:1].islower() and any(c.isupper() for c in key):
            styles.add("camel")
    return styles or {"snake"}


def _spell(name: str, style: str) -> str:
    """A snake name written in ``style``."""
    if style == "kebab":
        return name.replace("_", "-")
    if style == "camel":
        first, *rest = name.split("_")
        return first + "".join(part.capitalize() for part in rest)
    return name


def _usable(key: str) -> bool:
    return bool(key) and not _CONTROL_RE.search(key)


def _extra_name(key: str, taken: set[str]) -> str:
    name = snake(key) or "field"
    if name in schema.EXCHANGE_COLUMNS or name in taken:
        name = f"log_{name}"
    base, n = name, 2
    while name in taken or name in schema.EXCHANGE_COLUMNS:
        name, n = f"{base}_{n}", n + 1
    return name


def _operator_target(value: object, request_id_header: str) -> tuple[str, str | None] | None:
    """The column an Envoy operator value (``"%RESPONSE_CODE%"``) fills, and a time format."""
    if not isinstance(value, str):
        return None
    match = _OPERATOR_RE.match(value.strip())
    if match is None:
        return None
    operator, argument = match.group(1), match.group(2)
    if operator == "REQ":
        headers = [h.strip().lower() for h in (argument or "").split("?")]
        if request_id_header.lower() in headers:
            return "request_id", None
        for header in headers:
            if header in REQUEST_HEADERS:
                return REQUEST_HEADERS[header], None
        return None
    if operator not in OPERATORS:
        return None
    column = OPERATORS[operator]
    if column == "start_time" and argument:
        return column, _strptime_format(argument)
    return column, None


def _strptime_format(envoy_format: str) -> str | None:
    """DuckDB's strptime spelling of an Envoy ``%START_TIME(...)%`` format, or None when it has
    none (then the generic parser, RFC 3339 or epoch numbers, is all there is)."""
    if "%s" in envoy_format:
        return None  # epoch seconds: the generic parser reads them
    unsupported = False

    def fraction(match: re.Match[str]) -> str:
        nonlocal unsupported
        duck = _FRACTION_FORMATS.get(match.group(0))
        unsupported = unsupported or duck is None
        return duck or ""

    result = re.sub(r"%[1-9]?f", fraction, envoy_format)
    if unsupported or not _strptime_accepts(result):
        return None
    return result


def _strptime_accepts(time_format: str) -> bool:
    with _connect() as con:
        try:
            con.execute("SELECT try_strptime('', ?)", [time_format])
        except duckdb.Error:
            return False
    return True


def layout_for(
    keys: Sequence[str], log_format: Mapping[str, object] | None, request_id_header: str
) -> Layout:
    """The layout for a file whose objects hold ``keys`` (in order of first appearance).

    With ``log_format`` (a json_format dictionary) its keys are mapped by operator and come
    first; otherwise keys are mapped by name. Core columns no key covers are still looked for
    under every alias (in the file's spelling), so such a key seen late is not lost."""
    fields: list[Field] = []
    seen: set[str] = set()
    taken: set[str] = set()
    extras = 0

    def add(key: str, target: str | None, time_format: str | None = None) -> None:
        nonlocal extras
        if not _usable(key) or key.lower() in seen:
            return
        if target is None:
            if extras >= MAX_EXTRA_COLUMNS:
                return
            extras += 1
            name = _extra_name(key, taken)
            taken.add(name)
            fields.append(Field(key, name, extra=True))
        else:
            fields.append(Field(key, target, time_format=time_format))
        seen.add(key.lower())

    aliases = _aliases(request_id_header)
    if log_format is not None:
        for key, value in log_format.items():
            mapped = _operator_target(value, request_id_header)
            add(key, *(mapped if mapped else (None, None)))
        for key in keys:
            add(key, None)
        return Layout(tuple(fields))
    for key in keys:
        add(key, aliases.get(snake(key)))
    # A key that is set only in some lines (Envoy's omit_empty_values) may be missing from the
    # sample: the fast path reads every alias of a column no key covers, in the file's style.
    covered = {f.target for f in fields if not f.extra}
    styles = sorted(_styles(keys))
    for name, column in aliases.items():
        if column not in covered:
            for style in styles:
                add(_spell(name, style), column)
    return Layout(tuple(fields))


def parse_log_format(value: object) -> dict[str, object] | None:
    """The json_format dictionary in ``Options.log_format`` (JSON text or a mapping), or None.

    A wrapper as copied from Envoy config (``{"json_format": {...}}``) is unwrapped."""
    if value is None:
        return None
    parsed: object = value
    if isinstance(value, str | bytes):
        try:
            parsed = orjson.loads(value)
        except orjson.JSONDecodeError as e:
            raise ConfigError(
                f"envoy-json: the log format is not JSON ({e}). Pass your Envoy json_format "
                'dictionary as JSON, e.g. {"request_id": "%REQ(X-REQUEST-ID)%"}, or leave it '
                "out to map keys by name."
            ) from e
    if not isinstance(parsed, Mapping):
        raise ConfigError(
            "envoy-json: the log format must be a JSON object (your Envoy json_format "
            "dictionary), not " + type(parsed).__name__ + "."
        )
    for wrapper in ("json_format", "typed_json_format"):
        inner = parsed.get(wrapper)
        if len(parsed) == 1 and isinstance(inner, Mapping):
            parsed = inner
    return {str(k): v for k, v in parsed.items()}


# ---------------------------------------------------------------------------------------------
# SQL: from raw text columns (``c0``, ``c1``, … in layout order) to typed exchange columns


@dataclass(frozen=True)
class _Numeric:
    low: float
    high: float
    sql_type: str  # DOUBLE keeps fractions; the others must be whole numbers
    expected: str


NUMERIC: dict[str, _Numeric] = {
    "status": _Numeric(0, 999, "INTEGER", "expected an HTTP status code"),
    "duration_ms": _Numeric(0, 1e15, "DOUBLE", "expected milliseconds"),
    "bytes_received": _Numeric(0, 9.2e18, "BIGINT", "expected a byte count"),
    "bytes_sent": _Numeric(0, 9.2e18, "BIGINT", "expected a byte count"),
    "server_port": _Numeric(0, 65535, "INTEGER", "expected a port number"),
    # the port part of ``server_address``
    "address_port": _Numeric(0, 65535, "INTEGER", "expected host:port"),
}
NULL_TEXT = "CAST(NULL AS VARCHAR)"


def _ident(text: str) -> str:
    return '"' + text.replace('"', '""') + '"'


@dataclass(frozen=True)
class _Target:
    """The SQL value of one target (first set key wins) and the keys it may come from."""

    keys: tuple[str, ...]
    sources: tuple[str, ...]  # per key: its raw column with "-" as NULL

    @property
    def value(self) -> str:
        if len(self.sources) == 1:
            return self.sources[0]
        return f"coalesce({', '.join(self.sources)})"

    def key_name(self) -> str:
        """SQL naming the key a value came from, for the reject reason."""
        if len(self.keys) == 1:
            return db.literal(self.keys[0])
        cases = " ".join(
            f"WHEN {sql} IS NOT NULL THEN {db.literal(key)}"
            for key, sql in zip(self.keys, self.sources, strict=True)
        )
        return f"CASE {cases} END"


def _targets(layout: Layout) -> dict[str, _Target]:
    grouped: dict[str, list[tuple[str, str]]] = {}
    for index, field in enumerate(layout.fields):
        if not field.extra:
            raw = f"nullif({layout.raw_name(index)}, '{MISSING}')"
            grouped.setdefault(field.target, []).append((field.key, raw))
    return {
        target: _Target(tuple(k for k, _ in parts), tuple(s for _, s in parts))
        for target, parts in grouped.items()
    }


def _typed_number(number: str, spec: _Numeric) -> str:
    # Through DOUBLE so that typed JSON's "1000.0" (written for 1e3) is a whole number while
    # "200.5" is a bad status rather than a rounded one.
    whole = "" if spec.sql_type == "DOUBLE" else f"{number} = trunc({number}) AND "
    return (
        f"CASE WHEN {whole}{number} BETWEEN {spec.low} AND {spec.high} "
        f"THEN CAST({number} AS {spec.sql_type}) END"
    )


def _epoch(number: str) -> str:
    """Epoch seconds, milliseconds, microseconds or nanoseconds (told by magnitude) as UTC."""
    micros = (
        f"CASE WHEN {number} < 1e11 THEN {number} * 1e6 WHEN {number} < 1e14 THEN {number} * 1e3 "
        f"WHEN {number} < 1e17 THEN {number} ELSE {number} / 1e3 END"
    )
    return (
        f"CASE WHEN {number} >= 0 AND {number} < 1e20 "
        f"THEN make_timestamp(CAST(round({micros}) AS BIGINT)) END"
    )


def _utc_time(value: str, time_format: str | None) -> str:
    """SQL for a time text as a UTC TIMESTAMP, whatever the session's time zone (lines.scan's
    connection keeps the machine's): a time without an offset is UTC."""
    # An offset must be applied: a TIMESTAMP cast would drop it. "Z" (Envoy's %START_TIME%)
    # needs no time zone work, the cheapest way through.
    # (after the time of day, so that a date's "-28" is not taken for one)
    offset = f"regexp_matches({value}, ':[0-9]{{2}}(\\.[0-9]+)?[+-][0-9]{{2}}(:?[0-9]{{2}})?$')"
    parsed = (
        f"CASE WHEN ends_with({value}, 'Z') THEN TRY_CAST({value} AS TIMESTAMP) "
        f"WHEN {offset} THEN timezone('UTC', TRY_CAST({value} AS TIMESTAMPTZ)) "
        f"ELSE TRY_CAST({value} AS TIMESTAMP) END"
    )
    if time_format is None:
        return parsed
    strptime = f"try_strptime({value}, {db.literal(time_format)})"
    if "%z" in time_format or "%Z" in time_format:
        strptime = f"timezone('UTC', {strptime})"
    return f"coalesce({strptime}, {parsed})"


def _address_parts(address: str, colon: str) -> tuple[str, str]:
    """Host and port text of "10.0.0.1:80" / "[::1]:80", given the first colon's position. A
    bare host, a unix socket path or an IPv6 address without brackets has no port.

    strpos/LIKE/left cost a fraction of split_part, which only the rare bracketed form uses."""
    one_colon = f"({colon} > 0 AND {address} NOT LIKE '%:%:%')"
    bracketed = f"(starts_with({address}, '[') AND contains({address}, ']'))"
    host = (
        f"CASE WHEN {one_colon} THEN left({address}, {colon} - 1) "
        f"WHEN {bracketed} THEN split_part(substr({address}, 2), ']', 1) ELSE {address} END"
    )
    port = (
        f"CASE WHEN {one_colon} THEN substr({address}, {colon} + 1) "
        f"WHEN {bracketed} THEN nullif(split_part({address}, ']:', 2), '') END"
    )
    return host, port


def _bad(
    value: str, typed: str, target: _Target, expected: str, shown: str = ""
) -> tuple[str, str]:
    """A cheap test for a value that did not parse, and the reject reason for it (a blank
    number or time is "not set", not bad, so the reason is NULL then)."""
    flag = f"({value} IS NOT NULL AND {typed} IS NULL)"
    message = (
        f"'bad value for ' || {target.key_name()} || ': ''' || "
        f"left({shown or value}, {BAD_VALUE_CHARS}) || ''' ({expected})'"
    )
    return flag, f"CASE WHEN {flag} AND trim({value}) <> '' THEN {message} END"


def typed_select(layout: Layout, relation: str, carry: Sequence[str] = ()) -> str:
    """A SELECT over ``relation`` (raw text columns ``c0``, ``c1``, … named by
    ``Layout.raw_name``) giving ``CORE_COLUMNS``, the extra columns, ``_reason`` (why a value
    is bad, else NULL), ``_empty`` (no key of the layout set: ``null`` or ``{}``) and ``carry``.

    Both paths run this same SQL, so they cannot disagree on a value."""
    targets = _targets(layout)
    extras = [(layout.raw_name(i), f.target) for i, f in enumerate(layout.fields) if f.extra]
    outputs = [*_core_outputs(), *(f"x{i} AS {_ident(name)}" for i, (_, name) in enumerate(extras))]
    outputs += [f"{_reason(targets)} AS _reason", "_empty", *carry]
    # Nested subqueries, not a WITH: DuckDB may materialise a CTE.
    query = relation
    for stage in _stages(layout, targets, [column for column, _ in extras]):
        query = f"(SELECT *, {', '.join(stage)} FROM {query})"
    return f"SELECT {', '.join(outputs)} FROM {query}"


_NUMBERS = tuple(n for n in NUMERIC if n != "address_port")  # numbers read from a key


def _stages(layout: Layout, targets: dict[str, _Target], extras: list[str]) -> list[list[str]]:
    """The projections, in order; each expensive step (a parse, a string search) runs once."""

    def value(name: str) -> str:
        return targets[name].value if name in targets else NULL_TEXT

    raw = [layout.raw_name(i) for i in range(len(layout.fields))]
    time_format = next((f.time_format for f in layout.fields if f.time_format), None)
    # 1: values ("-" is NULL), numbers parsed once; COALESCE stops at the first key set,
    # cheaper than testing every key for NULL.
    values = [f"{value(n)} AS v_{n}" for n in (*TEXT_COLUMNS, "server_address", "start_time")]
    values += [f"{value(n)} AS v_{n}" for n in _NUMBERS]
    values += [f"TRY_CAST({value(n)} AS DOUBLE) AS n_{n}" for n in _NUMBERS]
    values += [f"nullif({c}, '{MISSING}') AS x{i}" for i, c in enumerate(extras)]
    values.append(f"coalesce({', '.join(raw)}) IS NULL AS _empty" if raw else "true AS _empty")
    # 2: typed numbers, the time, where the address splits
    typed = [f"{_typed_number('n_' + n, NUMERIC[n])} AS t_{n}" for n in _NUMBERS]
    typed += [f"{_utc_time('v_start_time', time_format)} AS t_time"]
    typed += ["strpos(v_server_address, ':') AS _colon"]
    # 3: an epoch number only where the time did not parse (a failed parse is not free);
    # host and port
    host, port = _address_parts("v_server_address", "_colon")
    split = [
        "CASE WHEN t_time IS NULL THEN TRY_CAST(v_start_time AS DOUBLE) END AS n_epoch",
        f"{host} AS v_server_addr",
        f"{port} AS v_address_port",
    ]
    # 4: the rest
    address_port = _typed_number("TRY_CAST(v_address_port AS DOUBLE)", NUMERIC["address_port"])
    rest = [
        f"coalesce(t_time, {_epoch('n_epoch')}) AS t_start_time",
        f"{address_port} AS t_address_port",
    ]
    return [values, typed, split, rest]


def _core_outputs() -> list[str]:
    outputs = []
    for name in CORE_COLUMNS:
        if name in TEXT_COLUMNS or name == "server_addr":
            outputs.append(f"v_{name} AS {name}")
        elif name == "server_port":
            outputs.append("coalesce(t_server_port, t_address_port) AS server_port")
        else:
            outputs.append(f"t_{name} AS {name}")
    return outputs


def _reason(targets: dict[str, _Target]) -> str:
    """The bad-value reason of a row, or NULL. CASE evaluates its branches lazily: the text is
    built only for the rows that need one."""
    checks = []
    if "start_time" in targets:
        checks.append(
            _bad("v_start_time", "t_start_time", targets["start_time"], "expected a time")
        )
    for name in _NUMBERS:
        if name in targets:
            checks.append(_bad(f"v_{name}", f"t_{name}", targets[name], NUMERIC[name].expected))
    if "server_address" in targets:
        expected = NUMERIC["address_port"].expected
        target = targets["server_address"]
        checks.append(
            _bad("v_address_port", "t_address_port", target, expected, "v_server_address")
        )
    if not checks:
        return "CAST(NULL AS VARCHAR)"
    flags = " OR ".join(flag for flag, _ in checks)
    return f"CASE WHEN {flags} THEN coalesce({', '.join(m for _, m in checks)}) END"


@functools.cache
def _database() -> duckdb.DuckDBPyConnection:
    # Opening a database costs ~50 ms; a cursor on a shared one, well under 1 ms.
    return db.connect()


def _connect() -> duckdb.DuckDBPyConnection:
    """A connection of its own (safe to use from any thread) on the module's database."""
    return _database().cursor()


def _arrow(con: duckdb.DuckDBPyConnection, query: str) -> pa.Table:
    return con.sql(query).to_arrow_table()


# ---------------------------------------------------------------------------------------------
# Reading a file


@dataclass
class _Result:
    """One file read: exchanges with a ``line_no`` column, rejects by line, blank lines."""

    table: pa.Table
    rejects: list[tuple[int, dict[str, object]]]
    blank: int


def _stream_lines(source: Input) -> Iterator[bytes]:
    """The decompressed lines of ``source`` (without their newline), in order."""
    with lines.open_input(source) as stream:
        rest = b""
        while True:
            try:
                chunk = stream.read(1 << 20)
            except (OSError, EOFError, ValueError) as e:
                raise InputError(f"{source.name}: the compressed data cannot be read ({e}).") from e
            if not chunk:
                break
            pieces = (rest + chunk).split(b"\n")
            rest = pieces.pop()
            yield from pieces
        if rest:
            yield rest


def _sample_lines(source: Input, kind: str | None, head: bytes) -> list[bytes]:
    """Lines from the start of the file and, when it is not compressed (so seeking is cheap),
    from windows spread over it: a format that changes half-way is still seen."""
    sample = head.split(b"\n")[:-1] if len(head) >= SAMPLE_BYTES else head.split(b"\n")
    if kind is not None:
        return sample
    try:
        with open(source.path, "rb") as f:
            size = f.seek(0, 2)
            if size <= SAMPLE_BYTES:
                return sample
            for k in range(1, SAMPLE_WINDOWS + 1):
                f.seek(size * k // (SAMPLE_WINDOWS + 1))
                window = f.read(WINDOW_BYTES).split(b"\n")
                sample.extend(window[1:-1])  # the ends are partial lines
    except OSError as e:
        raise InputError(f"{source.name}: cannot be read ({e.strerror}).") from e
    return sample


def _keys_of(sample: Iterable[bytes]) -> list[str]:
    """The keys of the objects among ``sample``, in order of first appearance."""
    keys: dict[str, None] = {}
    for line in sample:
        try:
            obj = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue
        if isinstance(obj, dict):
            keys.update(dict.fromkeys(obj))
    return list(keys)


def _read_fast(source: Input, kind: str | None, layout: Layout) -> _Result | None:
    """Read with ``read_json``; None when the file is not one clean object per line."""
    if not layout.fields:
        return None
    # Counting lines runs beside the query: DuckDB leaves a core idle now and then.
    with ThreadPoolExecutor(max_workers=1) as pool:
        counting = pool.submit(lines.count_lines, source, kind)
        with _connect() as con:
            try:
                table: pa.Table | None = _arrow(con, _fast_query(source, kind, layout))
            except duckdb.Error:
                table = None  # a line that is not an object, not UTF-8, cut short, ...
        counted = counting.result()
    # read_json skips blank lines and reads a `null` line as a row of nulls: either would shift
    # line numbers, so both send the file to the exact path.
    if table is None or counted is None or table.num_rows != counted.lines:
        return None
    return _numbered(source, table, 1)


def _numbered(source: Input, table: pa.Table, first: int) -> _Result | None:
    """The fast path's rows, one per line from line ``first`` on, as a result (its bad values
    moved to rejects); None when a row is a ``null`` line's row of nulls."""
    if pc.any(table.column("_empty")).as_py():
        return None
    numbers = np.arange(first, first + table.num_rows, dtype=np.int64)
    table = table.drop_columns(["_empty"]).append_column("line_no", pa.array(numbers))
    return _split_bad_values(source, table, lambda found: _texts_at(source, found))


def _fast_query(source: Input, kind: str | None, layout: Layout) -> str:
    """The fast path's query: ``read_json`` of the layout's keys, typed (with ``_empty`` and
    ``_reason``), one row per object in file order."""
    path = db.literal(str(source.path))
    columns = ", ".join(f"{db.literal(key)}: 'VARCHAR'" for key in layout.keys())
    renamed = ", ".join(
        f"{_ident(key)} AS {layout.raw_name(i)}" for i, key in enumerate(layout.keys())
    )
    relation = (
        f"(SELECT {renamed} FROM read_json({path}, format='newline_delimited', records=true, "
        f"auto_detect=false, columns={{{columns}}}, compression='{kind or 'none'}'))"
    )
    return typed_select(layout, relation)


def _stream_fast(source: Input, layout: Layout, batch_rows: int) -> Iterator[_Result]:
    """The fast path over a plain log, ``batch_rows`` rows at a time as DuckDB parses them,
    each numbered after the last (so each line must be a row: the caller counts them). Raises
    ``Unstreamable`` where the fast path gives up: no keys to read, a line that is not an
    object (DuckDB's error), a ``null`` line (a row of nulls)."""
    if not layout.fields:
        raise Unstreamable(f"{source.name}: no access-log keys in the sampled lines")
    first = 1
    with _connect() as con:
        try:
            for table in db.batches(con.sql(_fast_query(source, None, layout)), batch_rows):
                result = _numbered(source, table, first)
                if result is None:
                    raise Unstreamable(f"{source.name}: a line holds null, not an object")
                first += table.num_rows
                del table  # not held while DuckDB parses the next batch
                yield result
                del result
        except (duckdb.Error, pa.ArrowException) as e:
            raise Unstreamable(f"{source.name}: {str(e).splitlines()[0]}") from e


def _texts_at(source: Input, numbers: Sequence[int]) -> dict[int, bytes]:
    wanted, found = set(numbers), {}
    last = max(numbers, default=0)
    for line_no, line in enumerate(_stream_lines(source), start=1):
        if line_no in wanted:
            found[line_no] = line
        if line_no >= last:
            break
    return found


def _split_bad_values(
    source: Input,
    table: pa.Table,
    texts: Callable[[Sequence[int]], Mapping[int, str | bytes]],
) -> _Result:
    """Move the rows with a bad value (``_reason`` set) from ``table`` to rejects."""
    reasons = table.column("_reason")
    table = table.drop_columns(["_reason"])
    if reasons.null_count == len(reasons):
        return _Result(table, [], 0)
    bad = pc.is_valid(reasons)
    bad_lines = table.column("line_no").filter(bad).to_pylist()
    bad_reasons = reasons.filter(bad).to_pylist()
    text = texts(bad_lines)
    rejects = [
        (line, reject(source, line, str(reason), text.get(line, b"")))
        for line, reason in zip(bad_lines, bad_reasons, strict=True)
    ]
    return _Result(table.filter(pc.invert(bad)), rejects, 0)


def _scan_select(layout: Layout) -> str:
    """The ``lines.scan`` SELECT of the exact path: one row per line, with its reason when it
    is not an access-log object and the typed columns when it is."""
    diagnostic = " OR ".join(f"regexp_matches(line, {db.literal(p)})" for p in DIAGNOSTIC_PATTERNS)
    # One parse per line: json_transform fails (try: NULL) on text that is not JSON. It gives
    # a struct of NULLs for any other JSON value, so an object is told by its "{". The checks
    # that name a problem run only on the lines that have one (CASE is lazy, AND is not).
    if layout.fields:
        structure = db.literal(orjson.dumps(dict.fromkeys(layout.keys(), "VARCHAR")).decode())
        parsed = f"try(json_transform(line, {structure}))"
    else:
        parsed = "CASE WHEN try(json_type(line)) = 'OBJECT' THEN {'object': true} END"
    is_object = (
        "CASE WHEN _s IS NULL THEN false WHEN starts_with(line, '{') THEN true "
        "ELSE starts_with(ltrim(line, ' \t\r'), '{') END"
    )
    line_reason = (
        f"CASE WHEN _blank OR _object THEN NULL WHEN json_valid(line) THEN '{REASON_NOT_OBJECT}' "
        f"WHEN {diagnostic} THEN '{REASON_DIAGNOSTIC}' ELSE '{REASON_NOT_JSON}' END"
    )
    values = "".join(
        f", _s[{db.literal(key)}] AS {layout.raw_name(i)}" for i, key in enumerate(layout.keys())
    )
    relation = (
        f"(SELECT line, _blank, _object, _line_reason{values} "
        f"FROM (SELECT *, {line_reason} AS _line_reason "
        f"FROM (SELECT *, {is_object} AS _object "
        f"FROM (SELECT line, _blank, CASE WHEN NOT _blank THEN {parsed} END AS _s FROM lines))))"
    )
    typed = typed_select(layout, relation, carry=["line", "_blank", "_object", "_line_reason"])
    return (
        "SELECT line, _blank, _object AND _reason IS NULL AS _ok, "
        "coalesce(_line_reason, _reason) AS _reason, "
        f"* EXCLUDE (line, _blank, _object, _line_reason, _reason, _empty) FROM ({typed})"
    )


def _read_exact(source: Input, kind: str | None, layout: Layout) -> _Result:
    """Read line by line: every bad line becomes a reject with its line number and reason."""
    scanned = lines.scan(source, _scan_select(layout))
    table = scanned.table
    ok = table.column("_ok")
    rejects = [(_line_of(row), row) for row in scanned.rejects]
    failed = table.filter(pc.invert(ok)).select(["line_no", "line", "_reason"]).to_pylist()
    cut_short = _cut_short_line(source, kind, scanned) if failed else None
    for row in failed:
        line_no, reason = row["line_no"], row["_reason"]
        if line_no == cut_short and reason == REASON_NOT_JSON:
            reason = REASON_TRUNCATED
        rejects.append((line_no, reject(source, line_no, reason, row["line"] or "")))
    if failed:  # filtering copies every column
        table = table.filter(ok)
    line_no = table.column("line_no")
    table = table.drop_columns(["line_no", "line", "_ok", "_reason"]).append_column(
        "line_no", line_no
    )
    return _Result(table, sorted(rejects, key=lambda item: item[0]), scanned.blank)


def _line_of(row: Mapping[str, object]) -> int:
    return int(str(row["location"]).rsplit(":", 1)[1])


def _cut_short_line(source: Input, kind: str | None, scanned: lines.Lines) -> int | None:
    """The number of the last line when the file ends without a newline, else None."""
    if kind is None:
        return scanned.unterminated
    # lines.scan cannot tell for a compressed stream: decompress to the end to see.
    last = b"\n"
    with lines.open_input(source) as stream:
        try:
            while chunk := stream.read(lines.COUNT_CHUNK):
                last = chunk[-1:]
        except (OSError, EOFError, ValueError):
            return None
    if last == b"\n":
        return None
    numbers = scanned.table.column("line_no")
    reader_lines = [_line_of(row) for row in scanned.rejects]
    return max([pc.max(numbers).as_py() or 0, *reader_lines])


def _with_provenance(source: Input, table: pa.Table) -> pa.Table:
    """Add ``side`` (when the input has one), ``source`` and ``location`` after ``request_id``."""
    n = table.num_rows
    line_no = table.column("line_no")
    location = pc.binary_join_element_wise(
        pa.scalar(f"{source.name}:"), pc.cast(line_no, pa.string()), ""
    )
    table = table.drop_columns(["line_no"])
    # The SQL gives UTC as a naive TIMESTAMP; saying so costs no copy.
    index = table.schema.get_field_index("start_time")
    table = table.set_column(index, "start_time", table.column(index).cast(schema.TIMESTAMP))
    extra: list[tuple[str, pa.Array | pa.ChunkedArray]] = []
    if source.side is not None:
        extra.append(("side", pa.repeat(pa.scalar(source.side, pa.string()), n)))
    extra += [("source", pa.repeat(pa.scalar(NAME, pa.string()), n)), ("location", location)]
    for offset, (name, column) in enumerate(extra, start=1):
        table = table.add_column(offset, name, column)
    return table


def _batches(source: Input, result: _Result, size: int) -> Iterator[Batch]:
    """Cut a file's result into batches of at most ``size`` exchanges; each batch carries the
    rejects that lie between its lines (blank lines go with the first)."""
    table, rejects = result.table, result.rejects
    if table.num_rows == 0 and not rejects and not result.blank:
        return
    line_no = table.column("line_no").to_numpy()
    table = _with_provenance(source, table)
    reject_lines = [line for line, _ in rejects]
    size = max(1, size)
    start = 0
    for offset in range(0, max(table.num_rows, 1), size):
        is_last = offset + size >= table.num_rows
        end = (
            len(rejects)
            if is_last
            else bisect.bisect_right(reject_lines, line_no[offset + size - 1])
        )
        yield Batch(
            exchanges=table.slice(offset, size),
            rejects=[row for _, row in rejects[start:end]],
            blank=result.blank if offset == 0 else 0,
        )
        start = end


# ---------------------------------------------------------------------------------------------
# The collector


def _layout_of(source: Input, kind: str | None, options: Options) -> Layout | None:
    """The layout of ``source``'s records, from the keys of a sample of its lines; None for a
    file that holds nothing."""
    log_format = parse_log_format(options.log_format)
    head = lines.read_head(source, SAMPLE_BYTES)
    if not head:
        return None
    keys = _keys_of(_sample_lines(source, kind, head))
    return layout_for(keys, log_format, options.request_id_header)


def _looks_like_access_log(obj: Mapping[str, object]) -> bool:
    return sum(1 for key in obj if snake(str(key)) in _DEFAULT_ALIASES) >= 2


_DEFAULT_ALIASES = _aliases(Options.request_id_header)


class EnvoyJsonCollector:
    """Envoy/Istio JSON access logs. See the module docstring."""

    name = NAME
    # Reads access-log lines: a wrapped file (CRI, Docker, pretty JSON) is unwrapped first.
    reads_lines = True

    def sniff(self, head: bytes) -> float:
        """High when most non-blank first lines are JSON objects with access-log keys. The
        proxy's own diagnostic lines (``kubectl logs`` output) are left out of the count."""
        if not lines.is_text(head):
            return 0.0
        candidates = head.split(b"\n")
        if len(head) >= lines.HEAD_BYTES and len(candidates) > 1:
            candidates.pop()  # cut by the size of the head
        considered = objects = loglike = 0
        for line in candidates:
            text = line.strip()
            if not text or _DIAGNOSTIC_RE.match(text):
                continue
            considered += 1
            if considered > SNIFF_LINES:
                considered -= 1
                break
            try:
                obj = orjson.loads(text)
            except orjson.JSONDecodeError:
                continue
            if isinstance(obj, dict):
                objects += 1
                loglike += _looks_like_access_log(obj)
        if considered == 0:
            return 0.0
        # JSON objects without access-log keys (a tap trace, some other JSON) score low.
        return 0.95 * (loglike + 0.3 * (objects - loglike)) / considered

    def read(self, source: Input, options: Options) -> Iterator[Batch]:
        """Yield the exchanges and rejects of one JSON access log (plain, .gz or .zst)."""
        kind = lines.compression_of(source)
        layout = _layout_of(source, kind, options)
        if layout is None:
            return
        result = _read_fast(source, kind, layout)
        if result is None:
            result = _read_exact(source, kind, layout)
        yield from _batches(source, result, options.batch_lines)

    # A carriage return changes nothing here: read_json ends lines at "\n" only.
    streams_carriage_returns = True

    def stream(self, source: Input, options: Options, batch_rows: int) -> Iterator[Batch]:
        """Yield the exchanges and rejects of a plain JSON access log ``batch_rows`` lines at
        a time, as the fast path parses them (see ``StreamingCollector``). A log that ends
        without a newline (a copy of a log being written, its last line perhaps cut short)
        is not streamed: the fast path would fail on its very last line."""
        if not lines.ends_with_newline(source):
            raise Unstreamable(f"{source.name}: the last line has no newline")
        layout = _layout_of(source, None, options)
        if layout is None:
            return
        for result in _stream_fast(source, layout, batch_rows):
            yield from _batches(source, result, batch_rows)
            del result  # not held while the next is parsed


COLLECTOR = EnvoyJsonCollector()
