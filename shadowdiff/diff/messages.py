"""Header and body differences for every pair, over the DuckDB tables ``pairs_base`` and
``exchanges``: the pairs' two responses go to the diff engine as columns, and its rows and
notes come back as the tables ``message_diffs`` and ``notes``."""

from __future__ import annotations

from concurrent.futures import Executor

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from shadowdiff import schema
from shadowdiff.diff.engine import NOTES, diff_table_parallel
from shadowdiff.diff.headers import ALWAYS_DIFFERENT
from shadowdiff.diff.rules import Rules

RESPONSES = """
SELECT b.request_id, b.endpoint,
       p.response_headers AS primary_response_headers,
       m.response_headers AS mirror_response_headers,
       p.response_body AS primary_response_body,
       m.response_body AS mirror_response_body,
       coalesce(p.response_body_truncated, p.body_truncated) AS primary_truncated,
       coalesce(m.response_body_truncated, m.body_truncated) AS mirror_truncated
FROM pairs_base b
JOIN exchanges p ON p.request_id = b.request_id AND p.side = 'primary'
JOIN exchanges m ON m.request_id = b.request_id AND m.side = 'mirror'
WHERE b.orphan IS NULL
"""


def message_diffs(
    con: duckdb.DuckDBPyConnection,
    compared: bool,
    rules: Rules,
    pool: Executor | None = None,
    workers: int = 1,
) -> None:
    """Create ``message_diffs`` (``schema.DIFFS`` rows) and ``notes`` (request_id, note) for the
    pairs of ``con`` (its ``pairs_base`` and view ``exchanges``); ``compared``: whether the
    run's exchanges hold anything to compare (:func:`captured`). With a ``pool`` of ``workers``
    processes, many pairs are diffed in them."""
    if compared:
        responses = con.sql(RESPONSES).to_arrow_table()
        diffs, notes = diff_table_parallel(responses, rules, pool, workers)
    else:  # access logs: no headers or bodies to compare
        diffs, notes = schema.empty(schema.DIFFS), NOTES.empty_table()
    con.register("message_diffs_arrow", diffs)
    con.register("notes_arrow", notes)
    con.execute("CREATE OR REPLACE TEMP TABLE message_diffs AS SELECT * FROM message_diffs_arrow")
    con.execute("CREATE OR REPLACE TEMP TABLE notes AS SELECT * FROM notes_arrow")


def captured(exchanges: pa.Table, rules: Rules) -> bool:
    """Whether ``exchanges`` hold anything the message diff compares under ``rules``."""
    skipped = frozenset(ALWAYS_DIFFERENT) if rules.default_headers else frozenset()
    return _captured(exchanges, skipped)


def _captured(exchanges: pa.Table, skipped: frozenset[str]) -> bool:
    """Whether there is anything to compare: a response body, or a header the engine would
    look at (access logs often hold only x-envoy-upstream-service-time, never compared). Over
    the Arrow columns, the distinct header names only (a DuckDB scan of the lists costs ten
    times more). Every side counts; a body on a side not compared only makes the (empty)
    comparison run."""
    if exchanges.column("response_body").null_count < exchanges.num_rows:
        return True
    headers = exchanges.column("response_headers")
    if headers.null_count == exchanges.num_rows:
        return False
    names = pc.unique(pc.utf8_lower(pc.struct_field(pc.list_flatten(headers), "name")))
    return any(name is not None and name not in skipped for name in names.to_pylist())
