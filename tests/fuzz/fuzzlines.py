"""Envoy access-log format strings and the lines Envoy writes with them, as Hypothesis strategies.

``formats()`` builds format strings from real command operators joined by literal text, so that
a line rendered from one (``rendered()``) has exactly one reading: every value is drawn from an
alphabet without the characters of the format's literal text, as Envoy's own values never hold
the separators a sane format uses. ``render_time`` writes ``%START_TIME(…)%`` values with Envoy's
specifiers (``%f`` is nanoseconds, ``%3f`` milliseconds, ``%s`` seconds since the epoch).
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from hypothesis import strategies as st

from shadowdiff.collect.envoy_format import Field, Format, Operator, Text

# Operators whose value is text: any word of the value alphabet fits them.
TEXT_OPERATORS = (
    "%REQ(:METHOD)%",
    "%REQ(:PATH)%",
    "%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%",
    "%REQ(:AUTHORITY)%",
    "%REQ(X-REQUEST-ID)%",
    "%REQ(USER-AGENT)%",
    "%REQ(X-FORWARDED-FOR)%",
    "%REQ(USER-AGENT):12%",
    "%REQ_WITHOUT_QUERY(:PATH)%",
    "%RESP(CONTENT-TYPE)%",
    "%RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)%",
    "%TRAILER(GRPC-STATUS)%",
    "%PROTOCOL%",
    "%RESPONSE_FLAGS%",
    "%RESPONSE_CODE_DETAILS%",
    "%CONNECTION_TERMINATION_DETAILS%",
    "%UPSTREAM_TRANSPORT_FAILURE_REASON%",
    "%UPSTREAM_HOST%",
    "%UPSTREAM_CLUSTER%",
    "%UPSTREAM_CLUSTER_RAW%",
    "%UPSTREAM_LOCAL_ADDRESS%",
    "%DOWNSTREAM_REMOTE_ADDRESS%",
    "%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%",
    "%DOWNSTREAM_LOCAL_ADDRESS_WITHOUT_PORT%",
    "%REQUESTED_SERVER_NAME%",
    "%ROUTE_NAME%",
    "%DYNAMIC_METADATA(istio.mixer:status)%",
    "%FILTER_STATE(app.tier:PLAIN)%",
    "%GRPC_STATUS(NUMBER)%",
)
# Operators with a typed value (a number, an address, a time).
TYPED_OPERATORS = (
    "%RESPONSE_CODE%",
    "%BYTES_RECEIVED%",
    "%BYTES_SENT%",
    "%DURATION%",
    "%DOWNSTREAM_LOCAL_ADDRESS%",
    "%DOWNSTREAM_LOCAL_PORT%",
)
# START_TIME formats Envoy users write (None: Envoy's default, ISO 8601 with milliseconds).
TIME_FORMATS = (
    None,
    "%s",
    "%s.%3f",
    "%s.%6f",
    "%s.%9f",
    "%Y-%m-%dT%H:%M:%S.%3fZ",
    "%Y-%m-%dT%H:%M:%S%z",
    "%Y/%m/%d %H:%M:%S.%3f",
    "%d/%b/%Y:%H:%M:%S %z",
    "%F %T",
    "%Y-%m-%dT%H:%M:%E3S%Ez",
    "%b %e %T %Y",
    "%a, %d %b %Y %H:%M:%S %Z",
    "%Y%m%d%H%M%S",
    "%D %R",
)
# Literal text between operators: punctuation no value of a typed operator holds (times and
# addresses use digits, letters, ". : - / + [ ]" and spaces), so a rendered line has one reading.
SEPARATORS = (" ", "  ", "\t", ",", ";", "|", " | ", "=", " id=", "#", "!", "~", "*", "?", "^")
SEPARATORS += ("$", "&", "'", "\\", "`", "<", ">", "(", ")", "{", "}", "@", '" "', "] [", ", ")
WRAPPERS = (("", ""), ('"', '"'), ("[", "]"), ("'", "'"), ("<", ">"), ("(", ")"), ("{", "}"))
VALUE_ALPHABET = string.ascii_letters + string.digits + "._/-:"
# Up to 2068: a two-digit year (%y, %D) of 69 and above reads as 19xx, as POSIX strptime does.
MOMENTS = st.datetimes(
    min_value=datetime(2001, 1, 1), max_value=datetime(2068, 12, 31), timezones=st.just(UTC)
)
_SPECIFIER = re.compile(r"%(E[369]S|Ez|[1-9]?f|.)", re.DOTALL)


def render_time(fmt: str | None, moment: datetime) -> str:
    """``moment`` as Envoy writes ``%START_TIME(fmt)%`` (``fmt`` None: ``%START_TIME%``)."""
    if fmt is None:
        return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
    nanos = f"{moment.microsecond * 1000:09d}"
    out: list[str] = []
    pos = 0
    for match in _SPECIFIER.finditer(fmt):
        out.append(fmt[pos : match.start()])
        pos = match.end()
        spec = match.group(1)
        if spec.endswith("f"):
            out.append(nanos[: int(spec[:-1] or 9)])
        elif spec.startswith("E") and spec.endswith("S"):
            out.append(f"{moment.second:02d}.{nanos[: int(spec[1])]}")
        elif spec == "Ez":
            out.append("+00:00")
        elif spec == "s":
            out.append(str(int(moment.timestamp())))
        elif spec == "e":
            out.append(f"{moment.day:2d}")
        elif spec == "h":
            out.append(moment.strftime("%b"))
        else:
            out.append(moment.strftime("%" + spec))
    out.append(fmt[pos:])
    return "".join(out)


def start_time(fmt: str | None) -> str:
    return "%START_TIME%" if fmt is None else f"%START_TIME({fmt})%"


@st.composite
def formats(draw: st.DrawFn) -> str:
    """A format string of real operators, each wrapped or not, with a separator between every
    two of them (and perhaps around them all), as a user's ``log_format`` looks."""
    operators = st.one_of(
        st.sampled_from(TEXT_OPERATORS),
        st.sampled_from(TYPED_OPERATORS),
        st.sampled_from(TIME_FORMATS).map(start_time),
    )
    chosen = draw(st.lists(operators, min_size=1, max_size=8))
    parts = []
    for operator in chosen:
        before, after = draw(st.sampled_from(WRAPPERS))
        parts.append(before + operator + after)
    separators = draw(st.lists(st.sampled_from(SEPARATORS), min_size=len(parts) - 1))
    text = parts[0]
    for separator, part in zip(separators, parts[1:], strict=False):
        text += separator + part
    head = draw(st.sampled_from(("", "", "[", "access: ", "> ")))
    tail = draw(st.sampled_from(("", "", " 100%%", " ;", "\n")))
    return head + text + tail


@dataclass(frozen=True)
class Rendered:
    """A line and, per field of its format, the text written for it (``None``: logged as unset,
    ``-``) and the moment of a time."""

    line: str
    values: tuple[str | None, ...]
    moments: tuple[datetime | None, ...]


def literal_chars(fmt: Format) -> set[str]:
    return {c for token in fmt.tokens if isinstance(token, Text) for c in token.text}


def has_one_reading(fmt: Format) -> bool:
    """Whether every two operators of ``fmt`` have literal text between them (else a line of
    it can be cut in several ways, and no reader can know which one Envoy meant)."""
    previous_was_operator = False
    for token in fmt.tokens:
        is_operator = isinstance(token, Operator)
        if is_operator and previous_was_operator:
            return False
        previous_was_operator = is_operator
    return True


def _value(draw: st.DrawFn, field: Field, alphabet: str, fmt: Format) -> tuple[str, Any]:
    brackets = not ({"[", "]"} & literal_chars(fmt))
    if field.kind == "int32":
        top = 65535 if field.column == "server_port" else 999
        return str(draw(st.integers(0, top))), None
    if field.kind == "int64":
        return str(draw(st.integers(0, 2**40))), None
    if field.kind == "float64":
        return str(draw(st.integers(0, 10**7))), None
    if field.kind == "timestamp":
        moment = draw(MOMENTS)
        return render_time(field.operator.arg, moment), moment
    if field.kind == "address":
        hosts = ["10.0.0.1", "127.0.0.1", "app.default.svc"] + (["[::1]"] if brackets else [])
        host = draw(st.sampled_from(hosts))
        return f"{host}:{draw(st.integers(0, 65535))}", None
    word = draw(st.text(alphabet, min_size=1, max_size=12).filter(lambda w: w != "-"))
    if field.operator.max_length is not None:
        word = word[: field.operator.max_length] or word[:1]
    return word, None


@st.composite
def rendered(draw: st.DrawFn, fmt: Format) -> Rendered:
    """A line Envoy could have written with ``fmt``."""
    alphabet = "".join(c for c in VALUE_ALPHABET if c not in literal_chars(fmt))
    values: list[str | None] = []
    moments: list[datetime | None] = []
    written: dict[int, str] = {}
    for field in fmt.fields:
        # Envoy logs "-" for a value it does not have; a request always has a start time.
        if field.kind != "timestamp" and draw(st.integers(0, 9)) == 0:
            values.append(None)
            moments.append(None)
            written[id(field.operator)] = "-"
            continue
        text, moment = _value(draw, field, alphabet, fmt)
        values.append(text)
        moments.append(moment)
        written[id(field.operator)] = text
    line = "".join(
        token.text if isinstance(token, Text) else written[id(token)] for token in fmt.tokens
    )
    return Rendered(line, tuple(values), tuple(moments))


def expected_columns(fmt: Format, line: Rendered) -> dict[str, Any]:
    """The exchange values a reader must give for ``line``: only for columns that one field
    fills (two fields of one column are coalesced) and whose value round-trips exactly."""
    filled: dict[str, int] = {}
    for field in fmt.fields:
        # An address fills the port column too (DOWNSTREAM_LOCAL_ADDRESS: host and port).
        for column in ("server_addr", "server_port") if field.kind == "address" else ():
            filled[column] = filled.get(column, 0) + 1
        if field.kind != "address":
            filled[field.column] = filled.get(field.column, 0) + 1
    expected: dict[str, Any] = {}
    for field, value in zip(fmt.fields, line.values, strict=True):
        if filled[field.column] > 1 or field.kind in ("timestamp", "header"):
            continue
        if field.kind in ("int32", "int64"):
            expected[field.column] = None if value is None else int(value)
        elif field.kind == "float64":
            expected[field.column] = None if value is None else float(value)
        elif field.kind == "address":
            if filled["server_port"] > 1 or filled["server_addr"] > 1:
                continue
            if value is None:
                expected["server_addr"] = expected["server_port"] = None
                continue
            host, _, port = value.rpartition(":")
            expected["server_addr"] = host.strip("[]")
            expected["server_port"] = int(port)
        else:
            expected[field.column] = value
    return expected


def expected_headers(fmt: Format, line: Rendered) -> dict[str, list[dict[str, str]]]:
    """The header lists a reader must give for ``line``, entries in format order."""
    lists: dict[str, list[dict[str, str]]] = {}
    for field, value in zip(fmt.fields, line.values, strict=True):
        if field.kind != "header":
            continue
        entries = lists.setdefault(field.column, [])
        if value is not None:
            entries.append({"name": field.header or "", "value": value})
    return lists


def time_resolution(fmt: str | None) -> int:
    """The microseconds a ``%START_TIME(fmt)%`` value keeps (1 for nanosecond formats: a
    timestamp holds microseconds)."""
    if fmt is None or re.search(r"%3f|%E3S", fmt):
        return 1000
    if re.search(r"%[6-9]?f|%E[69]S", fmt):
        return 1
    if re.search(r"%[1-5]f", fmt):
        digits = int(re.search(r"%([1-5])f", fmt).group(1))  # type: ignore[union-attr]
        return 10 ** (6 - digits)
    if re.search(r"%[STsE]", fmt):
        return 1_000_000
    return 60_000_000


def truncated(moment: datetime, resolution_us: int) -> datetime:
    micros = int(moment.timestamp()) * 1_000_000 + moment.microsecond
    micros -= micros % resolution_us
    return datetime.fromtimestamp(micros // 1_000_000, UTC).replace(microsecond=micros % 1_000_000)
