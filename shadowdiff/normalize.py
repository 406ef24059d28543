"""Normalisation: decide each exchange's side, group paths into endpoints, redact secrets.

DuckDB queries over the collected Arrow table do the work (the endpoints over its distinct
requests). Records whose side cannot be told or that carry no request id leave here as
``rejects`` rows, so they are still accounted for.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from shadowdiff import db, fingerprint, schema
from shadowdiff.config import Config
from shadowdiff.errors import ConfigError
from shadowdiff.redact import Redactor

HEADER_COLUMNS = ("request_headers", "response_headers")
URL_COLUMNS = ("path", "authority")
_LOCATION_SUFFIX = re.compile(r"(:\d+|#\d+)$")  # file:line, file#document

# One path segment that is an identifier rather than part of the route.
NUMERIC = r"[0-9]+"
UUID = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
LONG_HEX = r"[0-9a-fA-F]{16,}"
TOKEN = r"[A-Za-z0-9_~.=-]{20,}"  # opaque tokens: long, and (checked apart) holding a digit
ID_SEGMENT = f"{NUMERIC}|{UUID}|{LONG_HEX}"
SHADOW_AUTHORITY = r"^[^:\[/]*-shadow(:[0-9]+)?$"


@dataclass(frozen=True)
class Normalized:
    exchanges: pa.Table
    rejects: list[dict[str, object]]


def normalize(
    exchanges: pa.Table,
    config: Config,
    redactor: Redactor | None = None,
    assign_ids: bool = True,
) -> Normalized:
    """Assign ``side`` (flag, then ``[sides]`` rules, else the ``-shadow`` authority suffix),
    ``endpoint`` and redaction; split off records that cannot be paired.

    DuckDB computes only the new columns (it reads just the columns they need); they replace
    the old ones in the Arrow table, so the other columns are never copied. Secrets in paths
    and authorities (``redactor``, by default one with a fresh key) go first, before anything
    is derived from them. Pairing by fingerprint, the ids are assigned here unless
    ``assign_ids`` is false (a run's buckets assign them, each over every record of its
    fingerprints).
    """
    redacted = [c for c in HEADER_COLUMNS if _holds(exchanges.column(c), config.redact_headers)]
    con = db.cursor()
    try:
        con.register("collected", exchanges)
        estimate = con.sql("SELECT approx_count_distinct(path) FROM collected").fetchall()[0][0]
        # Traffic repeats its paths: then they are encoded once, for the redaction (which looks
        # at each distinct path) and for the endpoints (computed once per distinct request).
        paths = None
        if estimate < DISTINCT_PATHS_SHARE * exchanges.num_rows:
            paths = _encode(exchanges.column("path"))
        redactor = redactor or Redactor(config.redact_query)
        before = exchanges
        exchanges, paths = _redact_urls(exchanges, paths, redactor)
        if exchanges is not before:
            con.unregister("collected")
            con.register("collected", exchanges)
        _check_side_rules(con, config)
        by_fingerprint = config.pair_by == "fingerprint"
        computed = _arrow(con.sql(_query(config, redacted, redactor, not by_fingerprint)))
        endpoint = _endpoints(con, exchanges, config, paths)
    finally:
        con.close()
    table = exchanges
    if by_fingerprint and assign_ids:  # before the pairing: ids from the requests, not a header
        ids = fingerprint.assign(exchanges, computed.column("side"), config.max_skew_ms)
        table = table.set_column(table.schema.get_field_index("request_id"), "request_id", ids)
    new = {"endpoint": endpoint, **{name: computed.column(name) for name in ("side", *redacted)}}
    for name, column in new.items():
        table = table.set_column(table.schema.get_field_index(name), name, column)
    problem = computed.column("_problem")
    if problem.null_count == len(problem):
        return Normalized(table, [])
    bad = table.filter(pc.is_valid(problem))
    reasons = problem.filter(pc.is_valid(problem)).to_pylist()
    rejects = [
        {
            "source": _LOCATION_SUFFIX.sub("", row["location"] or ""),
            "side": row["side"],
            "location": row["location"],
            "reason": reason,
            "excerpt": schema.excerpt(
                " ".join(str(row[k]) for k in ("method", "path", "status") if row[k] is not None)
            ),
        }
        for row, reason in zip(
            bad.select(["location", "side", "method", "path", "status"]).to_pylist(),
            reasons,
            strict=True,
        )
    ]
    return Normalized(table.filter(pc.is_null(problem)), rejects)


def _holds(headers: pa.ChunkedArray, names: tuple[str, ...]) -> bool:
    """Whether any header list in the column has one of ``names`` (case-insensitively)."""
    if headers.null_count == len(headers) or not names:
        return False
    # The few distinct names are lower-cased, not the name of every header of every record.
    names_seen = pc.unique(pc.struct_field(pc.list_flatten(headers), "name"))
    present = pc.utf8_lower(names_seen).to_pylist()
    return not {n.lower() for n in names}.isdisjoint(present)


def _arrow(relation: duckdb.DuckDBPyRelation) -> pa.Table:
    return relation.to_arrow_table()


def _check_side_rules(con: duckdb.DuckDBPyConnection, config: Config) -> None:
    for side, expression in config.sides.items():
        try:
            con.sql(f"SELECT ({expression})::BOOLEAN FROM collected LIMIT 0").fetchall()
        except duckdb.Error as e:
            raise ConfigError(
                f"[sides] {side} = {expression!r} is not a valid DuckDB expression over the "
                f"exchange columns ({str(e).splitlines()[0]}). Columns: "
                f"{', '.join(schema.EXCHANGE_COLUMNS)}."
            ) from e


def _side_sql(config: Config) -> tuple[str, str]:
    """The side expression, and the problem text when no side can be told."""
    rules = config.sides.items()
    if rules:
        flags = [f"coalesce(({expr})::BOOLEAN, false)" for _, expr in rules]
        count = " + ".join(f"{f}::INT" for f in flags)
        by_rule = " ".join(
            f"WHEN {f} AND ({count}) = 1 THEN '{side}'"
            for (side, _), f in zip(rules, flags, strict=True)
        )
        side = f"coalesce(side, CASE {by_rule} END)"
        names = ", ".join(s for s, _ in rules)
        none = db.literal(f"side unknown: matches none of the [sides] rules ({names})")
        problem = (
            f"CASE WHEN ({count}) > 1 THEN 'side unknown: matches several [sides] rules' "
            f"ELSE {none} END"
        )
        return side, problem
    side = (
        "coalesce(side, CASE WHEN authority IS NULL THEN NULL "
        f"WHEN regexp_full_match(authority, '{SHADOW_AUTHORITY}') THEN 'mirror' "
        "ELSE 'primary' END)"
    )
    problem = (
        "'side unknown: no authority to look for the -shadow suffix; "
        "give the file with --primary/--mirror or add [sides] rules'"
    )
    return side, problem


# Column names of the intermediate steps of the normalize query (dropped at the end).
BARE = "_bare"  # the path without query string and fragment
REPLACED = "_replaced"  # BARE with id segments replaced, plus a trailing '/'


def _replaced_sql() -> str:
    """Numbers, UUIDs and long hex segments replaced by ``{id}`` with two vectorised regex
    passes (two, because adjacent id segments share a slash)."""

    def replace(text: str) -> str:
        return f"regexp_replace({text}, '/(?:{ID_SEGMENT})/', '/{{id}}/', 'g')"

    return replace(replace(f"({BARE} || '/')"))


def _auto_route_sql() -> str:
    """The route: REPLACED without its trailing slash. Only paths holding a long token-like
    segment take the slower per-segment walk that also checks the token holds a digit."""
    segment = (
        f"CASE WHEN regexp_full_match(s, '{ID_SEGMENT}') "
        f"OR (regexp_full_match(s, '{TOKEN}') AND regexp_matches(s, '[0-9]')) "
        "THEN '{id}' ELSE s END"
    )
    walk = f"array_to_string(list_transform(string_split({BARE}, '/'), lambda s: {segment}), '/')"
    return (
        f"CASE WHEN regexp_matches({BARE}, '{TOKEN}') THEN {walk} "
        f"ELSE array_slice({REPLACED}, 1, -2) END"
    )


def _endpoint_sql(config: Config) -> str:
    route = _auto_route_sql() if config.auto_endpoints else BARE
    cases = []
    for template in config.endpoint_templates:
        method, pattern, label = _template(template)
        condition = f"regexp_full_match({BARE}, {db.literal(pattern)})"
        if method:
            condition = f"upper(method) = {db.literal(method)} AND {condition}"
            cases.append(f"WHEN {condition} THEN {db.literal(label)}")
        else:
            label_sql = f"coalesce(upper(method) || ' ', '') || {db.literal(label)}"
            cases.append(f"WHEN {condition} THEN {label_sql}")
    automatic = f"coalesce(upper(method) || ' ', '') || {route}"
    return f"CASE WHEN path IS NULL THEN NULL {' '.join(cases)} ELSE {automatic} END"


_PLACEHOLDER = re.compile(r"\{[^}/]*\}")


def _template(template: str) -> tuple[str | None, str, str]:
    """``"GET /users/{id}"`` → method, an RE2 pattern for the path, and the endpoint label."""
    parts = template.strip().split(None, 1)
    if len(parts) == 2 and not parts[0].startswith("/"):
        method, route = parts[0].upper(), parts[1]
    else:
        method, route = None, template.strip()
    if not route.startswith("/"):
        raise ConfigError(
            f"[endpoints] template {template!r}: the path must start with '/', "
            "e.g. 'GET /users/{id}'."
        )
    pieces = _PLACEHOLDER.split(route)
    pattern = "[^/]+".join(re.escape(p) for p in pieces)
    label = f"{method} {route}" if method else route
    return method, pattern, label


def _redact_urls(
    exchanges: pa.Table, paths: pa.DictionaryArray | None, redactor: Redactor
) -> tuple[pa.Table, pa.DictionaryArray | None]:
    """Credential query parameters and userinfo redacted in ``path`` and ``authority``; a
    column that holds none is left as it is. ``paths``: the path column encoded, if it is."""
    if paths is not None:
        fixed = redactor.dictionary(paths)
        if fixed is not None:
            paths = fixed
            exchanges = _replaced(exchanges, "path", fixed.cast(pa.string()))
    else:
        column = redactor.column(exchanges.column("path"))
        if column is not None:
            exchanges = _replaced(exchanges, "path", column)
    authorities = redactor.dictionary(_encode(exchanges.column("authority")))  # few distinct
    if authorities is not None:
        exchanges = _replaced(exchanges, "authority", authorities.cast(pa.string()))
    return exchanges, paths


def _replaced(table: pa.Table, name: str, column: pa.Array | pa.ChunkedArray) -> pa.Table:
    return table.set_column(table.schema.get_field_index(name), name, column)


def _redact_sql(column: str, headers: tuple[str, ...], redactor: Redactor) -> str:
    """``column`` (a header list) with the value of each header named in ``headers`` replaced
    by its keyed tag."""
    if not headers:
        return column
    names = ", ".join(db.literal(h.lower()) for h in headers)
    tag = redactor.tag_sql("coalesce(h.value, '')")
    return (
        f"list_transform({column}, lambda h: CASE WHEN lower(h.name) IN ({names}) "
        f"THEN {{'name': h.name, 'value': {tag}}} ELSE h END)"
    )


def _query(config: Config, redacted: list[str], redactor: Redactor, need_id: bool = True) -> str:
    """The new columns but the endpoint: side, the redacted header columns, and ``_problem``
    (why a record cannot be paired, else null; without ``need_id``, a missing request id is
    not one: fingerprint pairing gives every record an id)."""
    side, side_problem = _side_sql(config)
    key = config.pairing_key
    columns = [f"{side} AS side"]
    columns += [f"{_redact_sql(c, config.redact_headers, redactor)} AS {c}" for c in redacted]
    no_id = db.literal(f"no request id ({key})")
    missing_id = f"WHEN request_id IS NULL OR request_id = '' THEN {no_id} " if need_id else ""
    problem = f"CASE WHEN ({side}) IS NULL THEN {side_problem} {missing_id}END"
    return f"SELECT {', '.join(columns)}, {problem} AS _problem FROM collected"


def _endpoint_query(config: Config, table: str) -> str:
    """The endpoint of each row of ``table`` (method and path columns), in its order."""
    bare = f"split_part(split_part(path, '?', 1), '#', 1) AS {BARE}"
    replaced = f"{_replaced_sql() if config.auto_endpoints else 'NULL'} AS {REPLACED}"
    steps = f"WITH b AS (SELECT *, {bare} FROM {table}), r AS (SELECT *, {replaced} FROM b) "
    return f"{steps}SELECT {_endpoint_sql(config)} AS endpoint FROM r"


# Past about one distinct path in five records, encoding the paths costs more than the regular
# expressions it saves (measured on 2M records).
DISTINCT_PATHS_SHARE = 0.2


def _endpoints(
    con: duckdb.DuckDBPyConnection,
    exchanges: pa.Table,
    config: Config,
    paths: pa.DictionaryArray | None,
) -> pa.ChunkedArray:
    """Every row's endpoint, in row order. Where traffic repeats its paths (``paths``, the path
    column encoded), the regular expressions run once per distinct (method, path) and each
    row takes its endpoint by index; else once per row."""
    if paths is None:
        return _arrow(con.sql(_endpoint_query(config, "collected"))).column("endpoint")
    methods = _encode(exchanges.column("method"))
    width = len(methods.dictionary)
    # Each row's (method, path) as one number, path index * width + method index, encoded in turn.
    number = pc.add(pc.multiply(paths.indices.cast(pa.int64()), width), methods.indices)
    requests = _encode(number)
    path_index = pc.divide(requests.dictionary, width)
    method_index = pc.subtract(requests.dictionary, pc.multiply(path_index, width))
    distinct = pa.table(
        {"method": methods.dictionary.take(method_index), "path": paths.dictionary.take(path_index)}
    )
    con.register("requests", distinct)
    endpoints = _arrow(con.sql(_endpoint_query(config, "requests"))).column("endpoint")
    return endpoints.take(requests.indices)


def _encode(values: pa.ChunkedArray | pa.Array) -> pa.DictionaryArray:
    """``values`` as one dictionary array; a null is a dictionary entry like any other value."""
    encoded = pc.dictionary_encode(values, null_encoding="encode")
    return encoded.combine_chunks() if isinstance(encoded, pa.ChunkedArray) else encoded
