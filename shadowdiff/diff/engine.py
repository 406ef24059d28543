"""The diff engine's entry points: one pair (:func:`diff_pair`), a table of pairs
(:func:`diff_table`, the pipeline's hot path) and redaction (:func:`redact_message`,
:func:`redact_table`).

``diff_table`` works on columns first: header sets are reduced to one comparable string per side
(without the headers that are never compared) and bodies are compared as bytes, both in Arrow.
Pairs with equal bytes and equal header sets leave there; only the others are diffed one by one.

>>> primary = Message(200, (("content-type", "application/json"),), b'{"likes": 1}')
>>> mirror = Message(200, (("content-type", "application/json"),), b'{"likes": 2}')
>>> [(d.path, d.kind, d.primary_value, d.mirror_value) for d in diff_pair(primary, mirror).diffs]
[('$.likes', 'changed', '1', '2')]
"""

from __future__ import annotations

import gc
import re
from collections.abc import Iterator, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from shadowdiff import schema
from shadowdiff.diff import body, headers
from shadowdiff.diff.model import REDACTED, TAG_PREFIX, Diff, Message, PairResult, Row
from shadowdiff.diff.rules import DEFAULT, Rules
from shadowdiff.redact import Redactor, alternatives

_SLICE = 4096  # pairs diffed per slice of the table

NOTES = pa.schema([("request_id", pa.string()), ("note", pa.string())])

INPUT_COLUMNS = (
    "request_id",
    "endpoint",
    "primary_response_headers",
    "mirror_response_headers",
    "primary_response_body",
    "mirror_response_body",
    "primary_truncated",
    "mirror_truncated",
)


def diff_pair(primary: Message, mirror: Message, rules: Rules = DEFAULT) -> PairResult:
    """Every header and body difference between a primary and a mirror response (the status is
    compared over columns, in SQL, by :mod:`shadowdiff.diff.status`)."""
    result = body.compare(_side(primary), _side(mirror), rules)
    rows = headers.diff(primary.headers, mirror.headers, rules, result.settled) + result.rows
    return PairResult(tuple(Diff(*row) for row in rows), _note(result.notes))


def diff_table(table: pa.Table, rules: Rules = DEFAULT) -> tuple[pa.Table, pa.Table]:
    """The ``diffs`` rows (header and body parts) and per-pair notes for a table of pairs.

    ``table`` has the columns of :data:`INPUT_COLUMNS` (headers as ``schema.HEADERS``, bodies as
    binary with null for "not captured", truncation flags as bool); a missing column is read as
    nulls. Returns ``(diffs, notes)``: ``diffs`` in ``schema.DIFFS`` shape, ``notes`` with
    ``request_id, note`` for the pairs that could not be compared in full.
    """
    if table.num_rows == 0:
        return schema.empty(schema.DIFFS), NOTES.empty_table()
    column = _columns(table)
    p_body, m_body = column("primary_response_body"), column("mirror_response_body")
    p_cut = pc.fill_null(column("primary_truncated"), False)
    m_cut = pc.fill_null(column("mirror_truncated"), False)
    p = _Digest(column("primary_response_headers"), rules)
    m = _Digest(column("mirror_response_headers"), rules)

    same_body = _equal(p_body, m_body)
    same_headers = _equal(p.main, m.main)
    same_framing = _equal(p.framing, m.framing)
    one_side_headers = pc.xor(p.missing, m.missing)
    cut = pc.or_(p_cut, m_cut)
    # Equal captured bodies settle the framing headers; without bodies they still count.
    settled = pc.or_(same_framing, p_body.is_valid())
    quiet = pc.and_(
        pc.and_(pc.and_(same_body, same_headers), settled),
        pc.invert(pc.or_(cut, one_side_headers)),
    )
    rest_rows = np.flatnonzero(~quiet.to_numpy(zero_copy_only=False))
    rest = pa.array(rest_rows, pa.int64())
    picked = pa.table(
        {
            "id": column("request_id"),
            "endpoint": column("endpoint"),
            "body_a": p_body,
            "cut_a": p_cut,
            "type_a": p.content_type,
            "coding_a": p.content_encoding,
            "missing_a": p.missing,
            "body_b": m_body,
            "cut_b": m_cut,
            "type_b": m.content_type,
            "coding_b": m.content_encoding,
            "missing_b": m.missing,
            "headers_quiet": pc.and_(same_headers, same_framing),
            "headers_main": same_headers,
        }
    ).take(rest)

    rows: list[tuple[Any, ...]] = []
    notes: list[tuple[str, str]] = []
    # Parsed bodies are acyclic and die young: reference counting frees them, while the cyclic
    # collector would rescan every live object again and again (it doubled the time).
    collecting = gc.isenabled()
    gc.disable()
    try:
        for pairs in _slices(picked, rest_rows, p.lists, m.lists):
            _diff_pairs(pairs, rules, rows, notes)
    finally:
        if collecting:
            gc.enable()
    columns: list[Sequence[Any]] = [()] * len(schema.DIFFS.names)
    if rows:
        columns = list(zip(*rows, strict=True))
    diffs = pa.Table.from_arrays(
        [pa.array(c, f.type) for c, f in zip(columns, schema.DIFFS, strict=True)],
        schema=schema.DIFFS,
    )
    notes_table = pa.table(
        {"request_id": [i for i, _ in notes], "note": [n for _, n in notes]}, schema=NOTES
    )
    return diffs, notes_table


PARALLEL_SLICE = 1024  # fewest pairs per task when the pairs are diffed in worker processes


def diff_table_parallel(
    table: pa.Table, rules: Rules, pool: Executor | None, workers: int
) -> tuple[pa.Table, pa.Table]:
    """``diff_table`` over slices of ``table`` in ``pool``'s worker processes: the per-pair work
    is Python, so threads would run it one at a time. Pairs are compared one by one, so the
    slices' rows, put back in order, are exactly ``diff_table``'s."""
    if pool is None or workers < 2 or table.num_rows < 2 * PARALLEL_SLICE:
        return diff_table(table, rules)
    size = max(PARALLEL_SLICE, -(-table.num_rows // (4 * workers)))
    parts = [
        pool.submit(_diff_stream, _stream(table.slice(start, size)), rules)
        for start in range(0, table.num_rows, size)
    ]
    done = [part.result() for part in parts]
    return (
        pa.concat_tables([diffs for diffs, _ in done]),
        pa.concat_tables([notes for _, notes in done]),
    )


def _stream(table: pa.Table) -> pa.Buffer:
    """``table`` as Arrow IPC: a pickled slice would carry the whole table's buffers."""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue()


def _diff_stream(data: pa.Buffer, rules: Rules) -> tuple[pa.Table, pa.Table]:
    return diff_table(pa.ipc.open_stream(data).read_all(), rules)


@dataclass
class _Pairs:
    """The pairs ``diff_table`` compares one by one, as Python lists."""

    ids: list[str]
    endpoints: list[str]
    primary: list[tuple[bytes | None, bool, str | None, str | None]]
    mirror: list[tuple[bytes | None, bool, str | None, str | None]]
    headers_quiet: list[bool]
    headers_main: list[bool]
    missing_primary: list[bool]
    missing_mirror: list[bool]
    lists: dict[int, tuple[Any, Any]] = field(default_factory=dict)


def _slices(
    picked: pa.Table, rows: np.ndarray, lists_a: pa.Array, lists_b: pa.Array
) -> Iterator[_Pairs]:
    """``picked`` (the pairs that need per-pair work, at ``rows`` of the input) as Python lists,
    a slice at a time, so the Python copies of the bodies stay few (and in cache)."""
    for start in range(0, picked.num_rows, _SLICE):
        part = picked.slice(start, _SLICE)

        def values(name: str, part: pa.Table = part) -> list[Any]:
            return part.column(name).to_pylist()

        quiet_headers = values("headers_quiet")
        # Header lists only for the pairs whose compared headers may differ.
        wanted = np.flatnonzero(~np.array(quiet_headers, dtype=bool))
        wanted_rows = pa.array(rows[start + wanted], pa.int64())
        headers_a = lists_a.take(wanted_rows).to_pylist()
        headers_b = lists_b.take(wanted_rows).to_pylist()
        yield _Pairs(
            ids=values("id"),
            endpoints=values("endpoint"),
            primary=list(
                zip(
                    values("body_a"),
                    values("cut_a"),
                    values("type_a"),
                    values("coding_a"),
                    strict=True,
                )
            ),
            mirror=list(
                zip(
                    values("body_b"),
                    values("cut_b"),
                    values("type_b"),
                    values("coding_b"),
                    strict=True,
                )
            ),
            headers_quiet=quiet_headers,
            headers_main=values("headers_main"),
            missing_primary=values("missing_a"),
            missing_mirror=values("missing_b"),
            lists=dict(zip(wanted.tolist(), zip(headers_a, headers_b, strict=True), strict=True)),
        )


def _diff_pairs(
    pairs: _Pairs, rules: Rules, out: list[tuple[Any, ...]], notes: list[tuple[str, str]]
) -> None:
    """Diff ``pairs`` one by one, appending ``diffs`` rows to ``out`` and notes to ``notes``."""
    compare = body.compare
    for k, request_id in enumerate(pairs.ids):
        try:
            result = compare(pairs.primary[k], pairs.mirror[k], rules)
            found = result.notes
            rows: list[Row] = result.rows
            if pairs.missing_primary[k] != pairs.missing_mirror[k]:
                side = "primary" if pairs.missing_primary[k] else "mirror"
                found = [*found, f"{side} headers not captured; headers not compared"]
            elif not (pairs.headers_quiet[k] or (pairs.headers_main[k] and result.settled)):
                lists = pairs.lists[k]
                rows = headers.diff(_pairs(lists[0]), _pairs(lists[1]), rules, result.settled)
                rows += result.rows
        except Exception as e:  # a bug must not cost the rest of the run; the note says so
            rows, found = [], [f"not diffed: internal error {type(e).__name__}: {e}"]
        if rows:
            key = (request_id, pairs.endpoints[k])
            out.extend(key + row for row in rows)
        if found:
            notes.append((request_id, "; ".join(found)))


# --- redaction -----------------------------------------------------------------------------


def redact_message(message: Message, rules: Rules = DEFAULT) -> Message:
    """``message`` with secret header values and ``[redact] body`` paths replaced by
    ``"[redacted]"`` (see :func:`shadowdiff.diff.body.redact`)."""
    return Message(
        status=message.status,
        headers=headers.redact(message.headers, rules),
        body=body.redact(
            message.body,
            message.header("content-type"),
            message.header("content-encoding"),
            rules,
        ),
        truncated=message.truncated,
    )


def redact_table(
    table: pa.Table,
    rules: Rules = DEFAULT,
    columns: Sequence[tuple[str, str]] = (
        ("request_headers", "request_body"),
        ("response_headers", "response_body"),
    ),
    redactor: Redactor | None = None,
) -> pa.Table:
    """``table`` with each ``(headers, body)`` column pair of ``columns`` redacted (pairs whose
    columns are absent are skipped): the secret headers over columns (a value a run has tagged
    stays as it is), and the bodies as :func:`redact_bodies` does."""
    table = redact_bodies(table, rules, columns, redactor)
    for headers_name, _ in columns:
        if headers_name in table.column_names:
            lists = table.column(headers_name).combine_chunks()
            index = table.column_names.index(headers_name)
            table = table.set_column(index, headers_name, _redact_lists(lists, rules))
    return table


def redact_bodies(
    table: pa.Table,
    rules: Rules,
    columns: Sequence[tuple[str, str]],
    redactor: Redactor | None,
) -> pa.Table:
    """``table`` with the secrets in its body columns hidden (:func:`body.redact`: the
    ``[redact] body`` paths and, with a run's ``redactor``, fields with credential names). Only
    the bodies that may hold one reach Python: a test over the whole column in Arrow picks them
    (a body with a content-encoding always, since its bytes say nothing until decoded)."""
    if not (rules.redact_body or redactor):
        return table
    for headers_name, body_name in columns:
        if body_name not in table.column_names or headers_name not in table.column_names:
            continue
        bodies = table.column(body_name)
        if bodies.null_count == len(bodies):  # access logs: no bodies at all
            continue
        bodies = bodies.combine_chunks()
        content_type, content_encoding = _content_headers(
            table.column(headers_name).combine_chunks()
        )
        suspect = pc.or_(pc.is_valid(content_encoding), _may_hold_secret(bodies, rules, redactor))
        if redactor is not None:
            forms = pc.match_substring(content_type, "x-www-form-urlencoded", ignore_case=True)
            suspect = pc.or_(suspect, pc.fill_null(forms, False))
        rows = pc.indices_nonzero(pc.and_(pc.fill_null(suspect, False), pc.is_valid(bodies)))
        if len(rows) == 0:
            continue
        fixed = [
            body.redact(b, t, c, rules, redactor)
            for b, t, c in zip(
                bodies.take(rows).to_pylist(),
                content_type.take(rows).to_pylist(),
                content_encoding.take(rows).to_pylist(),
                strict=True,
            )
        ]
        mask = np.zeros(len(bodies), dtype=bool)
        mask[rows.to_numpy()] = True
        replaced = pc.replace_with_mask(bodies, pa.array(mask), pa.array(fixed, bodies.type))
        table = table.set_column(table.column_names.index(body_name), body_name, replaced)
    return table


def _may_hold_secret(bodies: pa.Array, rules: Rules, redactor: Redactor | None) -> pa.Array:
    """Which raw bodies may hold a secret: a key that a ``[redact] body`` pattern names or a
    credential field name (quoted, then a colon), or a ``\\u`` escape that could spell one."""
    keys = {k for p in rules.redact_body for k in p.keys}
    if any(not p.keys for p in rules.redact_body):
        return pc.is_valid(bodies)  # a pattern of wildcards only: any JSON body
    names = {*keys, *(redactor.fields if redactor is not None else ())}
    if not names:
        return pc.is_valid(bodies)
    return pc.match_substring_regex(bodies, rf'(?i)"(?:{alternatives(names)})"\s*:|\\u')


def _content_headers(lists: pa.Array) -> tuple[pa.Array, pa.Array]:
    """Each row's content-type and content-encoding (the last of each, as in Message.header)."""
    flat = lists.flatten()
    parents = pc.list_parent_indices(lists).to_numpy()
    names = pc.fill_null(pc.utf8_lower(flat.field("name")), "")
    values = pc.fill_null(flat.field("value"), "")
    n = len(lists)
    return (
        _last(names, values, parents, "content-type", n),
        _last(names, values, parents, "content-encoding", n),
    )


# --- helpers -----------------------------------------------------------------------------------


def _side(message: Message) -> body.Side:
    return body.Side(
        message.body,
        message.truncated,
        message.header("content-type"),
        message.header("content-encoding"),
    )


def _note(notes: list[str]) -> str | None:
    return "; ".join(notes) if notes else None


def _pairs(items: list[dict[str, str | None]] | None) -> list[tuple[str, str]]:
    return [(h["name"] or "", h["value"] or "") for h in items or ()]


def _columns(table: pa.Table) -> Any:
    types = {
        "request_id": pa.string(),
        "endpoint": pa.string(),
        "primary_response_headers": schema.HEADERS,
        "mirror_response_headers": schema.HEADERS,
        "primary_response_body": pa.binary(),
        "mirror_response_body": pa.binary(),
        "primary_truncated": pa.bool_(),
        "mirror_truncated": pa.bool_(),
    }

    def column(name: str) -> pa.Array | pa.ChunkedArray:
        if name not in table.column_names:
            return pa.nulls(table.num_rows, types[name])
        array = table.column(name)
        if not array.type.equals(types[name]):
            array = array.cast(types[name])
        # Bodies stay in their chunks (combining them copies every byte); the header lists are
        # taken apart over their buffers, which wants one array.
        return array if name.endswith("_body") else array.combine_chunks()

    return column


def _equal(a: pa.Array | pa.ChunkedArray, b: pa.Array | pa.ChunkedArray) -> Any:
    return pc.fill_null(pc.equal(a, b), pc.and_(a.is_null(), b.is_null()))


def _name_mask(names: pa.Array, patterns: Sequence[str] | frozenset[str]) -> pa.Array:
    """Which lowercase header ``names`` match any of ``patterns`` (names or globs)."""
    exact = [p for p in patterns if not any(c in p for c in "*?")]
    mask = pc.is_in(names, value_set=pa.array(exact, pa.string()))
    for glob in (p for p in patterns if p not in exact):
        mask = pc.or_(mask, pc.match_substring_regex(names, _glob_regex(glob)))
    return pc.fill_null(mask, False)


def _untagged_secret(names: pa.Array, values: pa.Array, rules: Rules) -> pa.Array:
    """Which headers (lowercase ``names``) are secret and not yet tagged by a run's key."""
    tagged = pc.fill_null(pc.starts_with(values, TAG_PREFIX), False)
    return pc.and_(_name_mask(names, rules.redact_headers), pc.invert(tagged))


def _glob_regex(glob: str) -> str:
    """An anchored RE2 regex for a ``*``/``?`` glob (Arrow's regexes are RE2)."""
    parts = (".*" if c == "*" else "." if c == "?" else re.escape(c) for c in glob)
    return "^" + "".join(parts) + "$"


class _Digest:
    """One side's headers reduced over columns: a comparable string of the compared headers
    (``main``), of the framing headers, and the content type and encoding of each row."""

    def __init__(self, lists: pa.Array, rules: Rules) -> None:
        n = len(lists)
        self.lists = lists
        self.missing = lists.is_null()
        flat = lists.flatten()
        parents = pc.list_parent_indices(lists).to_numpy()
        names = pc.fill_null(pc.utf8_lower(flat.field("name")), "")
        values = pc.fill_null(flat.field("value"), "")
        shown = pc.if_else(_untagged_secret(names, values, rules), REDACTED, values)
        entries = pc.binary_join_element_wise(names, shown, "\x00")
        framing = pc.is_in(names, value_set=pa.array(sorted(headers.FRAMING))).to_numpy(
            zero_copy_only=False
        )
        skipped = framing.copy()
        if rules.default_headers:
            skipped |= pc.is_in(
                names, value_set=pa.array(sorted(headers.ALWAYS_DIFFERENT))
            ).to_numpy(zero_copy_only=False)
        self.main = _joined(entries, parents, ~skipped, n)
        self.framing = _joined(entries, parents, framing, n)
        self.content_type = _last(names, values, parents, "content-type", n)
        self.content_encoding = _last(names, values, parents, "content-encoding", n)


def _joined(entries: pa.Array, parents: np.ndarray, keep: np.ndarray, n: int) -> pa.Array:
    kept = entries.filter(pa.array(keep))
    counts = np.bincount(parents[keep], minlength=n)
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int32)
    return pc.binary_join(pa.ListArray.from_arrays(pa.array(offsets), kept), "\x01")


def _last(names: pa.Array, values: pa.Array, parents: np.ndarray, name: str, n: int) -> pa.Array:
    hits = np.flatnonzero(pc.equal(names, name).to_numpy(zero_copy_only=False))
    where = np.full(n, -1, dtype=np.int64)
    where[parents[hits]] = hits  # a repeated header: the last one wins, as in Message.header
    return values.take(pa.array(where, mask=where < 0))


def _redact_lists(lists: pa.Array, rules: Rules) -> pa.Array:
    if len(lists) == 0:
        return lists
    flat = lists.flatten()
    names = flat.field("name")
    lower = pc.fill_null(pc.utf8_lower(names), "")
    values = flat.field("value")
    values = pc.if_else(_untagged_secret(lower, values, rules), REDACTED, values)
    items = pa.StructArray.from_arrays([names, values], fields=list(schema.HEADER))
    offsets = np.concatenate([[0], np.cumsum(lists.value_lengths().fill_null(0).to_numpy())])
    return pa.ListArray.from_arrays(
        pa.array(offsets.astype(np.int32)), items, type=lists.type, mask=lists.is_null()
    )
