"""The ``envoy-text`` collector: Envoy and Istio text access logs, read with a format string.

The format is the user's (``--log-format``) or the built-in one that matches the file's first
lines. DuckDB does the per-line work in two passes:

1. every line is cut at its quotes and spaces with string functions, following the format's
   ``SplitPlan``. Measured on 1M Istio-format lines (2 cores): regexp_extract with 24 groups
   takes 6-8 s, regexp_full_match alone 1.5 s, the cut about 1.5 s for everything;
2. the few lines that do not have the expected shape (a quote inside a quoted value, a format
   that cannot be cut that way, diagnostics, garbage) go through the format's regular expression.

Both passes share one SQL stage that turns the raw values into typed EXCHANGES columns, so a
value that does not convert (``%DURATION%`` of ``abc``) rejects its line with a reason naming it.
"""

from __future__ import annotations

import bisect
import dataclasses
import functools
import re
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from shadowdiff import db, schema
from shadowdiff.collect import envoy_format, lines
from shadowdiff.collect.base import (
    Batch,
    Input,
    Options,
    Unstreamable,
    reject,
    unreadable_compressed,
)
from shadowdiff.collect.envoy_format import Field, Format, Piece, SplitPlan
from shadowdiff.errors import InputError

NAME = "envoy-text"
DIAGNOSTIC_REASON = "Envoy/istio-proxy diagnostic line, not an access-log entry"
TRUNCATED_REASON = "truncated last line (no newline at end of file)"
# Lines the first pass could not cut; never shown to users.
_UNMATCHED = "\x00unmatched"
# Rejects per file that get the "expected … at character N" hint (it costs Python time per line).
DETAILED_REASONS = 10_000
# Lines that format detection and sniffing look at.
SAMPLE_LINES = 50
SAMPLE_BYTES = 8 * 1024 * 1024

# What an Envoy sidecar's container log holds besides access-log entries (`kubectl logs -c
# istio-proxy`): pilot-agent's and Envoy's own log lines under Istio's log format
# (`2026-11-28T10:00:00.123456Z<TAB>info<TAB>…`), and Envoy's default log format
# (`[2026-11-28 10:00:00.123][14][warning][config] [source/…] …`). RE2 and Python syntax alike.
DIAGNOSTIC_PATTERN = (
    r"(?:\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z\t"
    r"(?:trace|debug|info|warn|warning|error|critical|fatal|none)\t.*"
    r"|\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+\]\[\d+\]"
    r"\[(?:trace|debug|info|warning|error|critical|off)\].*)"
)
_DIAGNOSTIC = re.compile(DIAGNOSTIC_PATTERN)

_HEADER_PREFIX = "_hdr_"
# SQL types for the typed columns of each kind.
_CASTS = {"int32": "INTEGER", "int64": "BIGINT", "float64": "DOUBLE"}


class EnvoyTextCollector:
    """Reads Envoy/Istio text access logs (see the module docstring)."""

    name = NAME
    # Reads access-log lines: a wrapped file (CRI, Docker, pretty JSON) is unwrapped first.
    reads_lines = True

    def sniff(self, head: bytes) -> float:
        """High when the first non-blank lines are access-log entries in a built-in format,
        diagnostics lines aside; low for JSON and anything else."""
        sample = _head_lines(head)
        if not sample:
            return 0.0
        if sample[0].lstrip().startswith("{"):
            return 0.05
        formats = envoy_format.builtin()
        entries = [line for line in sample if not _DIAGNOSTIC.fullmatch(line)]
        if not entries:
            return 0.1  # only the proxy's own logging: access logging is probably off
        matched = max(sum(_matches(f, line) for line in entries) for f in formats)
        share = matched / len(entries)
        return 0.5 + 0.5 * share if share >= 0.5 else 0.4 * share

    # A carriage return is a line end to DuckDB's line reader: such a file is read exactly.
    streams_carriage_returns = False

    def read(self, source: Input, options: Options) -> Iterator[Batch]:
        """Yield batches of exchanges and rejects for one access-log file."""
        fmt = choose_format(source, options)
        scanned = lines.scan(source, _first_pass(fmt))
        yield from _parsed(source, fmt, scanned, _Hints(fmt), options.batch_lines)

    def stream(self, source: Input, options: Options, batch_rows: int) -> Iterator[Batch]:
        """Yield the exchanges and rejects of a plain access log ``batch_rows`` lines at a
        time, as DuckDB reads them (see ``StreamingCollector``). A log that ends without a
        newline (its last line perhaps cut short, which only the whole reading tells) is not
        streamed."""
        if not lines.ends_with_newline(source):
            raise Unstreamable(f"{source.name}: the last line has no newline")
        fmt = choose_format(source, options)
        hints = _Hints(fmt)
        for scanned in lines.stream_scan(source, _first_pass(fmt), batch_rows):
            yield from _parsed(source, fmt, scanned, hints, batch_rows)
            del scanned  # not held while the next is read


def _parsed(
    source: Input, fmt: Format, scanned: lines.Lines, hints: _Hints, batch_lines: int
) -> Iterator[Batch]:
    """The batches of scanned lines: parsed (the lines the first pass could not cut, with the
    regular expression), their rejects with a reason each (``hints``: the detailed ones left)."""
    parsed = _Parsed.start(scanned.table)
    if parsed.unmatched is not None:
        parsed.add(_second_pass(fmt, parsed.unmatched))
    rejects, reject_lines = _rejects(source, fmt, parsed, scanned, hints)
    ok = parsed.ok_table()
    line_no = np.asarray(ok.column("line_no").to_numpy(), dtype=np.int64)
    exchanges = _exchanges(source, fmt, ok)
    yield from _batches(exchanges, line_no, rejects, reject_lines, scanned.blank, batch_lines)


COLLECTOR = EnvoyTextCollector()


# --- format choice ---------------------------------------------------------------------------


def choose_format(source: Input, options: Options) -> Format:
    """The format to read ``source`` with: the user's, or the built-in that matches the first
    lines best. Raises ``InputError`` when none does."""
    if options.log_format:
        return envoy_format.parse(options.log_format, "custom", options.request_id_header)
    formats = envoy_format.builtin(options.request_id_header)
    sample, diagnostics = _sample(source)
    if not sample:
        if diagnostics:
            raise InputError(
                f"{source.name}: holds only Envoy/istio-proxy diagnostics lines, no access-log "
                "entries. Is access logging on (meshConfig.accessLogFile, or an access_log in "
                "the Envoy config)?"
            )
        return formats[0]  # nothing but blank lines: any format reads them
    scores = [sum(_matches(f, line) for line in sample) for f in formats]
    best = max(range(len(formats)), key=lambda i: scores[i])  # first wins a tie
    if scores[best] == 0:
        tried = ", ".join(f.name for f in formats)
        raise InputError(
            f"{source.name}: the first lines match none of the built-in access-log formats "
            f"(tried {tried}). Pass your format string with --log-format (the format or "
            "accessLogFormat from your Envoy or Istio config)."
        )
    return formats[best]


def _matches(fmt: Format, line: str) -> bool:
    return _compiled(fmt).fullmatch(line) is not None


@functools.lru_cache(maxsize=32)
def _compiled(fmt: Format) -> re.Pattern[str]:
    return re.compile(fmt.regex())


def _head_lines(head: bytes, limit: int = SAMPLE_LINES * 4) -> list[str]:
    """The non-blank lines of ``head``, without a last line the sample may have cut."""
    text = head.decode("utf-8", errors="replace")
    found = text.split("\n")
    if len(found) > 1:
        found = found[:-1]  # after the last newline: empty, or possibly cut short
    return [line.rstrip("\r") for line in found[:limit] if line.strip()]


def _sample(source: Input) -> tuple[list[str], int]:
    """The first access-log candidates of ``source`` (non-blank, not diagnostics) and how many
    diagnostics lines came before them. Reads past a long run of start-up logging."""
    sample: list[str] = []
    diagnostics = 0
    pending = b""
    with lines.open_input(source) as stream:
        for _ in range(SAMPLE_BYTES // lines.HEAD_BYTES):
            try:
                block = stream.read(lines.HEAD_BYTES)
            except (OSError, EOFError, zlib.error, ValueError) as e:
                raise unreadable_compressed(source, e) from e
            *complete, pending = (pending + block).split(b"\n")
            if not block:
                complete.append(pending)  # the last line, without its newline
            for raw in complete:
                line = raw.decode("utf-8", errors="replace").rstrip("\r")
                if not line.strip():
                    continue
                if _DIAGNOSTIC.fullmatch(line):
                    diagnostics += 1
                else:
                    sample.append(line)
            if not block or len(sample) >= SAMPLE_LINES:
                break
    return sample[:SAMPLE_LINES], diagnostics


# --- SQL -------------------------------------------------------------------------------------


def _first_pass(fmt: Format) -> str:
    """The ``lines.scan`` SELECT: cut lines by the split plan, or hand them all to the second
    pass when the format has none."""
    plan = fmt.split_plan()
    if plan is None:
        return "SELECT line, _blank, false AS _ok, NULL AS _reason FROM lines"
    # Reasons are left to the second pass, which sees every line this one does not accept:
    # computing them here for all lines costs more than redoing the few that fail.
    return _typed(fmt, _split_fields(fmt, plan), keep=["line", "_blank"], reasons=False)


def _split_fields(fmt: Format, plan: SplitPlan) -> str:
    """SELECT line, _blank, _match and the raw values f0… by cutting at quotes and spaces."""
    quotes = "SELECT line, _blank, string_split(line, '\"') AS _q FROM lines"
    words = ", ".join(
        f"string_split(_q[{s.index}], ' ') AS _w{s.index}" for s in plan.segments if s.split
    )
    cut = f"SELECT line, _blank, _q{', ' + words if words else ''} FROM ({quotes})"
    checks = [f"len(_q) = {len(plan.segments)}"]
    values: dict[int, str] = {}
    for segment in plan.segments:
        if not segment.split:
            piece = segment.pieces[0]
            checks.append(_piece_check(f"_q[{segment.index}]", piece))
            if piece.field is not None:
                values[piece.field] = _piece_value(f"_q[{segment.index}]", piece)
            continue
        word_list = f"_w{segment.index}"
        checks.append(f"len({word_list}) = {sum(p.words for p in segment.pieces)}")
        at = 1
        for piece in segment.pieces:
            if piece.words == 1:
                text = f"{word_list}[{at}]"
            else:
                text = f"array_to_string({word_list}[{at}:{at + piece.words - 1}], ' ')"
            checks.append(_piece_check(text, piece))
            if piece.field is not None:
                values[piece.field] = _piece_value(text, piece)
            at += piece.words
    raw = ", ".join(
        f"nullif({values[n]}, '-') AS {field.group}" for n, field in enumerate(fmt.fields)
    )
    match = " AND ".join(c for c in checks if c)
    return f"SELECT line, _blank, coalesce({match}, false) AS _match, {raw} FROM ({cut})"


def _piece_check(text: str, piece: Piece) -> str:
    if piece.field is None:
        return f"{text} = {db.literal(piece.prefix)}"
    checks = []
    if piece.prefix:
        checks.append(f"starts_with({text}, {db.literal(piece.prefix)})")
    if piece.suffix:
        checks.append(f"ends_with({text}, {db.literal(piece.suffix)})")
    if piece.prefix and piece.suffix:
        fixed = len(piece.prefix.encode()) + len(piece.suffix.encode())
        checks.append(f"strlen({text}) >= {fixed}")
    return " AND ".join(checks)


def _piece_value(text: str, piece: Piece) -> str:
    if not piece.prefix and not piece.suffix:
        return text
    # String slices count characters, both ends inclusive; -1 is the last character.
    return f"{text}[{len(piece.prefix) + 1}:{-len(piece.suffix) - 1}]"


def _regex_fields(fmt: Format) -> str:
    """SELECT line_no, line, _diag, _match and the raw values f0… of the lines in ``_failed``,
    with the format's (lenient) regular expression."""
    pattern = db.literal(fmt.regex(lenient=True))
    names = "[" + ", ".join(db.literal(f.group) for f in fmt.fields) + "]"
    matched = (
        "SELECT line_no, line, "
        f"regexp_full_match(line, {db.literal(DIAGNOSTIC_PATTERN)}) AS _diag, "
        f"regexp_full_match(line, {pattern}) AS _match FROM _failed"
    )
    extracted = (
        "SELECT line_no, line, _diag, _match, "
        f"CASE WHEN _match THEN regexp_extract(line, {pattern}, {names}) END AS _m "
        f"FROM ({matched})"
    )
    raw = ", ".join(f"nullif(_m.{f.group}, '-') AS {f.group}" for f in fmt.fields)
    return (
        f"SELECT line_no, line, _diag, coalesce(_match, false) AS _match, {raw} FROM ({extracted})"
    )


def _typed(fmt: Format, raw: str, keep: Sequence[str], reasons: bool = True) -> str:
    """Turn raw values into typed columns, ``_ok`` and ``_reason`` (NULL unless ``reasons``);
    ``keep`` passes through."""
    kept = ", ".join(keep)
    groups = ", ".join(f.group for f in fmt.fields)
    converted = [f"{_convert(f)} AS c_{f.group}" for f in fmt.fields if _convert(f)]
    cast = f"SELECT {kept}, _match, {groups}{''.join(', ' + c for c in converted)} FROM ({raw})"
    bad = [(check, _bad_reason(f)) for f in fmt.fields if (check := _bad(f)) is not None]
    failed = " OR ".join(b for b, _ in bad) or "false"
    reason = " ".join(f"WHEN {b} THEN {r}" for b, r in bad)
    why = f"CASE WHEN NOT _match THEN {db.literal(_UNMATCHED)} {reason} END" if reasons else "NULL"
    columns = ", ".join(f'{expr} AS "{name}"' for name, expr in _columns(fmt))
    return (
        f"SELECT {kept}, _match AND NOT ({failed}) AS _ok, "
        f"{why} AS _reason, {columns} "
        f"FROM ({cast})"
    )


def _convert(field: Field) -> str | None:
    """SQL converting raw value ``f`` of a field to its type (None: it stays text)."""
    f = field.group
    if field.kind in _CASTS:
        return f"TRY_CAST({f} AS {_CASTS[field.kind]})"
    if field.kind == "address":
        return f"TRY_CAST({_port(f)} AS INTEGER)"
    if field.kind == "timestamp" and field.time is not None:
        time = field.time
        if time.kind == "iso":
            # Envoy's default is UTC with a Z; a cast would silently ignore any other offset.
            return f"CASE WHEN ends_with({f}, 'Z') THEN TRY_CAST({f} AS TIMESTAMP) END"
        if time.kind == "epoch":
            seconds = f"TRY_CAST({f} AS DECIMAL(38, 9))"
            micros = f"CAST(round({seconds} * 1000000) AS BIGINT)"
            # make_timestamp fails (not NULL) out of range: keep to years 1653..2286.
            return f"CASE WHEN abs({seconds}) < 10000000000 THEN make_timestamp({micros}) END"
        parsed = f"try_strptime({f}, {db.literal(time.pattern or '')})"
        if "%z" in (time.pattern or "") or "%Z" in (time.pattern or ""):
            return f"make_timestamp(epoch_us({parsed}))"  # the instant, as UTC
        return f"CAST({parsed} AS TIMESTAMP)"
    return None


def _port(f: str) -> str:
    # host:port or [v6 address]:port; anything else (a pipe, envoy://internal/) has no port.
    return f"CASE WHEN contains({f}, ':') THEN split_part({f}, ':', -1) END"


def _host(f: str, port: str) -> str:
    # Everything before the last ':'. String functions only: rtrim/trim with a character set
    # cost ten times more, and string_split/array_to_string twice as much (measured).
    host = f"left({f}, -(length(split_part({f}, ':', -1)) + 1))"
    return (
        f"CASE WHEN {port} IS NULL THEN {f} "
        f"WHEN starts_with({f}, '[') THEN {host}[2:-2] ELSE {host} END"
    )


def _bad(field: Field) -> str | None:
    if field.kind in _CASTS or field.kind == "timestamp":
        return f"({field.group} IS NOT NULL AND c_{field.group} IS NULL)"
    return None


def _bad_reason(field: Field) -> str:
    source = field.operator.source
    if field.kind == "timestamp":
        example = field.time.example if field.time else ""
        what = f"{source} is not a time like {example}"
    else:
        what = f"{source} is not {'an integer' if field.kind != 'float64' else 'a number'}"
    return f"{db.literal(what + ': ')} || left({field.group}, 60)"


def _columns(fmt: Format) -> list[tuple[str, str]]:
    """(column, SQL) for every output column, in the order of their first field. Header values
    come out as ``_hdr_<group>`` columns: Arrow builds the header lists faster (measured)."""
    contributions: dict[str, list[str]] = {}
    for field in fmt.fields:
        f = field.group
        if field.kind == "header":
            contributions[f"{_HEADER_PREFIX}{f}"] = [f]
        elif field.kind == "address":
            contributions.setdefault("server_addr", []).append(_host(f, f"c_{f}"))
            contributions.setdefault("server_port", []).append(f"c_{f}")
        elif field.kind == "text":
            contributions.setdefault(field.column, []).append(f)
        else:
            contributions.setdefault(field.column, []).append(f"c_{f}")
    return [
        (column, exprs[0] if len(exprs) == 1 else f"coalesce({', '.join(exprs)})")
        for column, exprs in contributions.items()
    ]


def _second_pass(fmt: Format, failed: pa.Table) -> pa.Table:
    """Parse the lines the first pass could not cut with the regular expression."""
    query = _typed(fmt, _regex_fields(fmt), keep=["line_no", "line", "_diag"])
    con = db.connect()
    try:
        con.register("_failed", failed)
        return con.sql(query).to_arrow_table()
    finally:
        con.close()


# --- results ---------------------------------------------------------------------------------


@dataclass
class _Parsed:
    """Parsed lines of one file: ``parts`` of typed rows (each with line_no, line, _ok,
    _reason), and the lines still to be tried with the regular expression."""

    parts: list[pa.Table]
    unmatched: pa.Table | None
    diagnostic: dict[int, bool] = dataclasses.field(default_factory=dict)

    @classmethod
    def start(cls, table: pa.Table) -> _Parsed:
        unmatched_mask = pc.invert(pc.fill_null(table.column("_ok"), False))
        if not pc.any(unmatched_mask).as_py():
            return cls([table], None)
        unmatched = table.filter(unmatched_mask).select(["line_no", "line"])
        return cls([table.filter(pc.invert(unmatched_mask))], unmatched)

    def add(self, table: pa.Table) -> None:
        """Add the second pass's rows (they carry ``_diag``: the line is a diagnostics line)."""
        numbers = table.column("line_no").to_pylist()
        self.diagnostic.update(zip(numbers, table.column("_diag").to_pylist(), strict=True))
        self.parts.append(table.drop_columns(["_diag"]))

    def ok_table(self) -> pa.Table:
        tables = []
        for part in self.parts:
            ok = pc.fill_null(part.column("_ok"), False)
            tables.append(part if pc.all(ok).as_py() else part.filter(ok))
        filled = [t for t in tables if t.num_rows]
        if len(filled) <= 1:
            # The last part has every column (a first pass without split plan has none).
            return filled[0] if filled else tables[-1]
        combined = pa.concat_tables(filled, promote_options="default")
        return combined.take(pc.sort_indices(combined.column("line_no")))

    def failed(self) -> Iterator[tuple[int, str, str, bool]]:
        """(line_no, line, reason, is_diagnostic) of every line that did not parse."""
        for part in self.parts:
            bad = pc.invert(pc.fill_null(part.column("_ok"), False))
            if not pc.any(bad).as_py():
                continue
            rows = part.filter(bad).select(["line_no", "line", "_reason"])
            for line_no, line, reason in zip(
                *(rows.column(i).to_pylist() for i in range(3)), strict=True
            ):
                yield line_no, line or "", reason or _UNMATCHED, bool(self.diagnostic.get(line_no))


def _rejects(
    source: Input, fmt: Format, parsed: _Parsed, scanned: lines.Lines, hints: _Hints
) -> tuple[list[dict[str, object]], list[int]]:
    """Reject rows for every line that did not parse, in line order, and their line numbers."""
    found: list[tuple[int, dict[str, object]]] = []
    for row in scanned.rejects:
        location = str(row["location"])
        found.append((int(location.rsplit(":", 1)[1]), row))
    for line_no, line, reason, diagnostic in parsed.failed():
        if line_no == scanned.unterminated:
            reason = TRUNCATED_REASON
        elif diagnostic:
            reason = DIAGNOSTIC_REASON
        elif reason == _UNMATCHED:
            reason = f"does not match the access-log format ({fmt.name}): {hints.hint(line)}"
        found.append((line_no, reject(source, line_no, reason, line)))
    found.sort(key=lambda item: item[0])
    return [row for _, row in found], [n for n, _ in found]


class _Hints:
    """Where a line stops matching its format, for a reject reason a user can act on."""

    def __init__(self, fmt: Format) -> None:
        self.fmt = fmt
        self.prefixes = [re.compile(fmt.prefix_regex(n)) for n in range(len(fmt.tokens) + 1)]
        self.left = DETAILED_REASONS

    def hint(self, line: str) -> str:
        if self.left <= 0:
            return "the line does not have the shape the format describes"
        self.left -= 1
        low, high = 0, len(self.fmt.tokens)  # the longest matching prefix, by bisection
        while low < high:
            middle = (low + high + 1) // 2
            if self.prefixes[middle].match(line):
                low = middle
            else:
                high = middle - 1
        match = self.prefixes[low].match(line)
        at = match.end() if match else 0
        found = line[at : at + 20]
        if low == len(self.fmt.tokens):
            return f"unexpected text after the last field at character {at + 1}: {found!r}"
        expected = self.fmt.describe(low)
        if not found:
            return f"expected {expected} at character {at + 1}, but the line ends there"
        return f"expected {expected} at character {at + 1}, found {found!r}"


def _exchanges(source: Input, fmt: Format, table: pa.Table) -> pa.Table:
    """The exchanges columns: EXCHANGES names with their schema types, then extra columns."""
    n = table.num_rows
    location = pc.binary_join_element_wise(
        pa.scalar(f"{source.name}:"), pc.cast(table.column("line_no"), pa.string()), ""
    )
    columns: dict[str, pa.ChunkedArray | pa.Array] = {
        "source": _repeat(NAME, n),
        "side": pa.nulls(n, pa.string()) if source.side is None else _repeat(source.side, n),
        "location": location,
    }
    for name in table.column_names:
        if name in ("line_no", "line", "_ok", "_reason") or name.startswith(_HEADER_PREFIX):
            continue
        columns[name] = table.column(name)
    for list_column in ("request_headers", "response_headers"):
        entries = [
            (f.header or "", f"{_HEADER_PREFIX}{f.group}")
            for f in fmt.fields
            if f.kind == "header" and f.column == list_column
        ]
        if entries:
            columns[list_column] = _header_list(table, entries)
    for name, column in columns.items():
        if name in schema.EXCHANGES.names:
            columns[name] = _cast(column, schema.EXCHANGES.field(name).type)
    order = [c for c in schema.EXCHANGES.names if c in columns]
    order += [c for c in columns if c not in schema.EXCHANGES.names]
    return pa.table({name: columns[name] for name in order})


def _cast(column: pa.ChunkedArray | pa.Array, target: pa.DataType) -> pa.ChunkedArray | pa.Array:
    if column.type.equals(target):
        return column
    if isinstance(target, pa.TimestampType) and getattr(column.type, "tz", None) is None:
        # DuckDB gives naive TIMESTAMPs that hold UTC: label them so.
        column = column.cast(pa.timestamp("us"))
    return column.cast(target)


def _header_list(table: pa.Table, entries: list[tuple[str, str]]) -> pa.Array:
    """A HEADERS list per row from (header name, value column) pairs, in format order; entries
    whose value Envoy logged as not set are left out."""
    n, k = table.num_rows, len(entries)
    stacked = pa.concat_arrays([table.column(c).combine_chunks() for _, c in entries])
    # stacked holds entry i of row r at i*n + r; lists want the set ones in (r, i) order. Taking
    # only those (not every entry, then filtering) halves the copying when most are unset.
    valid = np.asarray(stacked.is_valid().to_numpy(zero_copy_only=False)).reshape(k, n)
    rows, slots = np.nonzero(valid.T)  # row-major: (r, i) pairs in list order
    taken = slots.astype(np.int64) * n + rows
    values = stacked if k == 1 and len(taken) == n else stacked.take(taken)
    names = pa.array([name for name, _ in entries], pa.string()).take(slots.astype(np.int32))
    offsets = np.zeros(n + 1, dtype=np.int32)
    np.cumsum(valid.sum(axis=0), out=offsets[1:])
    struct = pa.StructArray.from_arrays([names, values], fields=list(schema.HEADER))
    return pa.ListArray.from_arrays(pa.array(offsets), struct, type=schema.HEADERS)


def _repeat(value: str, n: int) -> pa.Array:
    return pa.array([value], pa.string()).take(np.zeros(n, dtype=np.int32))


def _batches(
    exchanges: pa.Table,
    ex_lines: np.ndarray,
    rejects: list[dict[str, object]],
    reject_lines: list[int],
    blank: int,
    batch_lines: int,
) -> Iterator[Batch]:
    """Cut one file's results into batches of about ``batch_lines`` records, in line order.
    ``ex_lines`` and ``reject_lines`` are the (ascending) line numbers of both."""
    batch_lines = max(batch_lines, 1)
    records = np.sort(np.concatenate([ex_lines, np.asarray(reject_lines, dtype=np.int64)]))
    if len(records) == 0:
        yield Batch(exchanges, [], blank)
        return
    ends = list(records[batch_lines - 1 :: batch_lines])
    if not ends or ends[-1] != records[-1]:
        ends.append(records[-1])
    lo_ex = lo_rej = 0
    for n, end in enumerate(ends):
        hi_ex = int(np.searchsorted(ex_lines, end, side="right"))
        hi_rej = bisect.bisect_right(reject_lines, int(end))
        yield Batch(
            exchanges.slice(lo_ex, hi_ex - lo_ex),
            rejects[lo_rej:hi_rej],
            blank if n == 0 else 0,
        )
        lo_ex, lo_rej = hi_ex, hi_rej
