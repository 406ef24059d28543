"""Arrow schemas: the one definition of every table shadowdiff writes.

The table and column names are a contract (see DESIGN.md): scripts and notebooks depend on them.
Bump ``SCHEMA_VERSION`` whenever a column is renamed, removed or changes type.
"""

from __future__ import annotations

import pyarrow as pa

SCHEMA_VERSION = "1"

SIDES = ("primary", "mirror", "secondary")
OUTCOMES = ("match", "noise_only", "diverged", "primary_only", "mirror_only")

# A header list keeps order and repeated names: tap output and captures have both.
HEADER = pa.struct([("name", pa.string()), ("value", pa.string())])
HEADERS = pa.list_(HEADER)
TIMESTAMP = pa.timestamp("us", tz="UTC")

EXCHANGES = pa.schema(
    [
        ("request_id", pa.string()),
        ("side", pa.string()),
        ("source", pa.string()),  # collector name: envoy-text, envoy-json, envoy-tap, pcap
        ("location", pa.string()),  # file:line or file#packet, for evidence
        ("start_time", TIMESTAMP),
        ("duration_ms", pa.float64()),
        ("method", pa.string()),
        ("authority", pa.string()),
        ("path", pa.string()),
        ("endpoint", pa.string()),
        ("protocol", pa.string()),
        ("status", pa.int32()),
        ("response_flags", pa.string()),
        ("upstream_cluster", pa.string()),
        ("upstream_host", pa.string()),
        ("client_addr", pa.string()),
        ("server_addr", pa.string()),
        ("server_port", pa.int32()),
        ("bytes_received", pa.int64()),
        ("bytes_sent", pa.int64()),
        ("request_headers", HEADERS),
        ("response_headers", HEADERS),
        ("request_body", pa.binary()),  # None: not captured; b"": captured and empty
        ("response_body", pa.binary()),
        ("request_body_truncated", pa.bool_()),
        ("response_body_truncated", pa.bool_()),
        ("body_truncated", pa.bool_()),
    ]
)
EXCHANGE_COLUMNS = tuple(EXCHANGES.names)

PAIRS = pa.schema(
    [
        ("request_id", pa.string()),
        ("endpoint", pa.string()),
        ("method", pa.string()),
        ("path", pa.string()),
        ("outcome", pa.string()),
        ("primary_status", pa.int32()),
        ("mirror_status", pa.int32()),
        ("primary_duration_ms", pa.float64()),
        ("mirror_duration_ms", pa.float64()),
        ("latency_delta_ms", pa.float64()),
        ("status_diverged", pa.bool_()),
        ("headers_diverged", pa.bool_()),
        ("body_diverged", pa.bool_()),
        ("n_diffs", pa.int32()),
        ("signature", pa.string()),
        ("note", pa.string()),  # why a pair could not be compared in full (truncated body, …)
    ]
)

DIFFS = pa.schema(
    [
        ("request_id", pa.string()),
        ("endpoint", pa.string()),
        ("part", pa.string()),
        ("path", pa.string()),
        ("pattern", pa.string()),
        ("kind", pa.string()),
        ("primary_value", pa.string()),  # JSON text
        ("mirror_value", pa.string()),
        ("noise", pa.bool_()),
        ("noise_reason", pa.string()),
    ]
)

LATENCY = pa.schema(
    [
        ("endpoint", pa.string()),
        ("side", pa.string()),
        ("count", pa.int64()),
        ("p50", pa.float64()),
        ("p90", pa.float64()),
        ("p99", pa.float64()),
        ("p999", pa.float64()),
        ("mean", pa.float64()),
        ("max", pa.float64()),
    ]
)

NOISE = pa.schema(
    [
        ("endpoint", pa.string()),
        ("pattern", pa.string()),
        ("kind", pa.string()),
        ("raw_count", pa.int64()),
        ("baseline_count", pa.int64()),
        ("total", pa.int64()),
        ("p_value", pa.float64()),
        ("verdict", pa.string()),
        ("evidence", pa.string()),
    ]
)

REJECTS = pa.schema(
    [
        ("source", pa.string()),  # the input file (or collector, for a whole-input problem)
        ("side", pa.string()),  # None when the side could not be told
        ("location", pa.string()),  # file:line / file#packet
        ("reason", pa.string()),
        ("excerpt", pa.string()),
    ]
)

TABLES: dict[str, pa.Schema] = {
    "exchanges": EXCHANGES,
    "pairs": PAIRS,
    "diffs": DIFFS,
    "latency": LATENCY,
    "noise": NOISE,
    "rejects": REJECTS,
}

EXCERPT_CHARS = 200


def excerpt(text: str | bytes) -> str:
    """A short, printable excerpt of a bad input record for the ``rejects`` table."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="backslashreplace")
    text = text.rstrip("\r\n")
    if len(text) > EXCERPT_CHARS:
        return text[:EXCERPT_CHARS] + "…"
    return text


def conform(table: pa.Table, schema: pa.Schema = EXCHANGES) -> pa.Table:
    """Return ``table`` with exactly ``schema``'s columns first (missing ones as nulls), cast to
    the schema's types, followed by any extra columns (kept as they are, for exchanges only)."""
    n = table.num_rows
    columns: list[pa.Array | pa.ChunkedArray] = []
    for field in schema:
        if field.name in table.column_names:
            column = table.column(field.name)
            if not column.type.equals(field.type):
                column = column.cast(field.type)
            columns.append(column)
        else:
            columns.append(pa.nulls(n, field.type))
    names = list(schema.names)
    if schema is EXCHANGES:
        for name in table.column_names:
            if name not in schema.names:
                columns.append(table.column(name))
                names.append(name)
    return pa.Table.from_arrays(columns, names=names)


def empty(schema: pa.Schema) -> pa.Table:
    return schema.empty_table()
