"""What the value tests read: a pattern's sampled ``diffs`` rows (:class:`Sample`), parsed the
same way in DuckDB (:data:`MACROS`, for the sample and the per-row checks) and in Python (for the
slots of templated text), and what they conclude (:class:`Finding`, with its :class:`RowCheck`).

Templated text: runs of digits, UUIDs, hex ids, long tokens and timestamps inside a string are
*slots* (:data:`SLOT`); the string with every slot replaced by ``{}`` is its *template*
(``"invoice 5521 paid"`` → ``"invoice {} paid"``). DuckDB and Python find the same slots: the
regex uses only what RE2 and Python's ``re`` (ASCII) read alike, and both take the leftmost
match, trying the alternatives in order.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Any, Literal

import duckdb
import numpy as np
import pyarrow as pa

Opinion = Literal["same", "different", "unknown"]

ISO_TIME = (
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}([T ][0-9]{2}:[0-9]{2}(:[0-9]{2}([.,][0-9]{1,9})?)?)?"
    r"(Z|z|[+-][0-9]{2}(:?[0-9]{2})?| ?UTC)?"
)
HTTP_TIME = (
    r"(Mon|Tue|Wed|Thu|Fri|Sat|Sun), [0-9]{2} "
    r"(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) [0-9]{4} [0-9]{2}:[0-9]{2}:[0-9]{2} GMT"
)

# The slots of templated text, by kind, in the order they are tried (the first that matches
# at a place wins): timestamps, times of day, UUIDs, hex ids (8+ hex digits), tokens (20+
# word characters), numbers.
SLOT_KINDS: tuple[tuple[str, str], ...] = (
    (
        "time",
        r"[0-9]{4}-[0-9]{2}-[0-9]{2}(?:[T ][0-9]{2}:[0-9]{2}(?::[0-9]{2}(?:[.,][0-9]{1,9})?)?)?"
        r"(?:Z|[+-][0-9]{2}:?[0-9]{2})?",
    ),
    ("time", r"[0-9]{2}:[0-9]{2}:[0-9]{2}(?:[.,][0-9]{1,9})?"),
    ("uuid", r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"),
    ("hex", r"\b[0-9a-fA-F]{8,}\b"),
    ("token", r"\b[A-Za-z0-9_-]{20,}\b"),
    ("n", r"[0-9]+(?:\.[0-9]+)?"),
)
SLOT = "|".join(regex for _, regex in SLOT_KINDS)
MARK = "{}"  # a slot in a template
KEY_SEPARATOR = "\x1f"  # between a template and its slot mask in a RowCheck signature

# Parsing in DuckDB, so the per-row checks and the sample read values the same way. ``v`` is a
# diffs value (JSON text or NULL), ``s`` a string.
MACROS = f"""
CREATE OR REPLACE TEMP MACRO sd_type(v) AS CASE WHEN json_valid(v) THEN json_type(v) END;
CREATE OR REPLACE TEMP MACRO sd_text(v) AS
    CASE WHEN sd_type(v) = 'VARCHAR' THEN json_extract_string(v, '$') END;
CREATE OR REPLACE TEMP MACRO sd_number(v) AS
    CASE WHEN sd_type(v) IN ('BIGINT', 'UBIGINT', 'DOUBLE', 'HUGEINT')
         THEN TRY_CAST(v AS DOUBLE) END;
CREATE OR REPLACE TEMP MACRO sd_signature(s) AS regexp_replace(s, '[0-9]', '9', 'g');
CREATE OR REPLACE TEMP MACRO sd_time(s) AS
    CASE WHEN regexp_full_match(s, '{ISO_TIME}')
              THEN epoch(TRY_CAST(replace(replace(s, ',', '.'), ' UTC', 'Z') AS TIMESTAMPTZ))
         WHEN regexp_full_match(s, '{HTTP_TIME}')
              THEN epoch(try_strptime(s, '%a, %d %b %Y %H:%M:%S GMT')) END;
CREATE OR REPLACE TEMP MACRO sd_template(s) AS regexp_replace(s, '{SLOT}', '{MARK}', 'g');
CREATE OR REPLACE TEMP MACRO sd_slots(s) AS regexp_extract_all(s, '{SLOT}');
CREATE OR REPLACE TEMP MACRO sd_slot_mask(a, b) AS array_to_string(
    list_transform(list_zip(sd_slots(a), sd_slots(b)),
                   lambda x: CASE WHEN x[1] IS NOT DISTINCT FROM x[2] THEN '=' ELSE '*' END), '');
"""

# The columns of a sample, over a relation with ``request_id``, ``path`` (of the value),
# ``target`` (method and request path), ``primary_value`` and ``other_value``.
SAMPLE_COLUMNS = """
    request_id, path, target, primary_value AS p_raw, other_value AS o_raw,
    sd_type(primary_value) AS p_type, sd_type(other_value) AS o_type,
    sd_number(primary_value) AS p_num, sd_number(other_value) AS o_num,
    sd_text(primary_value) AS p_text, sd_text(other_value) AS o_text,
    sd_signature(sd_text(primary_value)) AS p_sig, sd_signature(sd_text(other_value)) AS o_sig,
    sd_time(sd_text(primary_value)) AS p_time, sd_time(sd_text(other_value)) AS o_time
"""
# Templates and slots of a sample's strings, over a relation with ``p_text`` and ``o_text``:
# computed only for the samples that need them (free text), since the regex costs.
TEMPLATE_COLUMNS = """
    sd_template(p_text) AS p_template, sd_template(o_text) AS o_template,
    sd_slots(p_text) AS p_slots, sd_slots(o_text) AS o_slots
"""


@dataclass(frozen=True)
class RowCheck:
    """The per-row form of a ``same`` finding, evaluated in SQL for every row of the pattern
    (see :func:`~shadowdiff.noise.values.row_check_sql`): ``regex`` both values match;
    ``time`` both signatures are in ``signatures`` and the clocks are within ``tolerance_s``;
    ``epoch`` both numbers are epoch times in ``unit_s`` seconds per unit, within
    ``tolerance_s``; ``relative`` both numbers within ``tolerance_s`` (a relative error, here)
    of the larger magnitude; ``template`` both strings have one template, and the template with
    the mask of the slots that differ (``=`` equal, ``*`` differs, after
    :data:`KEY_SEPARATOR`) is in ``signatures``: only slots that vary like noise may differ."""

    kind: Literal["regex", "time", "epoch", "relative", "template"]
    regex: str | None = None
    signatures: tuple[str, ...] = ()
    tolerance_s: float = 0.0
    unit_s: float = 1.0


@dataclass(frozen=True)
class Finding:
    """What the values say. ``label`` names them (``timestamps``, ``uuids``, ``numbers``, …);
    ``clock``: timestamps; ``row_wise``: the finding rests on each pair's two values (two clocks
    reading one moment, a number within a tiny relative error of the primary's, a set whose
    order the primary itself varies), so it holds however rarely the field differs and whether
    or not the primary repeats itself; ``p_value``: the smallest p-value of the tests run,
    Bonferroni-adjusted (``None`` when no test ran)."""

    opinion: Opinion
    evidence: str
    label: str
    p_value: float | None = None
    check: RowCheck | None = None
    clock: bool = False
    row_wise: bool = False


@dataclass(frozen=True)
class Sample:
    """Sampled rows of one pattern: the primary's value and the other side's (mirror or
    secondary) as parsed by :data:`MACROS`."""

    request_id: list[str]
    path: list[str]
    target: list[str | None]  # method and request path: repeated requests share it
    p_raw: list[str | None]  # the JSON text
    o_raw: list[str | None]
    p_type: list[str | None]
    o_type: list[str | None]
    p_num: np.ndarray
    o_num: np.ndarray
    p_text: list[str | None]
    o_text: list[str | None]
    p_sig: list[str | None]
    o_sig: list[str | None]
    p_time: np.ndarray
    o_time: np.ndarray
    # Filled by with_templates(), for the samples that need them.
    p_template: list[str | None] | None = None
    o_template: list[str | None] | None = None
    p_slots: list[list[str] | None] | None = None
    o_slots: list[list[str] | None] | None = None

    @classmethod
    def from_arrow(cls, table: pa.Table) -> Sample:
        def floats(name: str) -> np.ndarray:
            return np.array(
                [math.nan if v is None else float(v) for v in table.column(name).to_pylist()],
                dtype=float,
            )

        def values(name: str) -> list[Any]:
            return table.column(name).to_pylist()

        return cls(
            request_id=values("request_id"),
            path=values("path"),
            target=values("target"),
            p_raw=values("p_raw"),
            o_raw=values("o_raw"),
            p_type=values("p_type"),
            o_type=values("o_type"),
            p_num=floats("p_num"),
            o_num=floats("o_num"),
            p_text=values("p_text"),
            o_text=values("o_text"),
            p_sig=values("p_sig"),
            o_sig=values("o_sig"),
            p_time=floats("p_time"),
            o_time=floats("o_time"),
        )

    @classmethod
    def of_strings(
        cls,
        rows: Sequence[tuple[str, str, str | None]],
        primary: Sequence[str],
        other: Sequence[str],
    ) -> Sample:
        """A sample of plain strings (the slots of templated text), for ``rows`` of
        (request id, path, target): parsed in Python as :data:`MACROS` parse JSON strings, a
        string of digits also as a number."""
        return cls(
            request_id=[r[0] for r in rows],
            path=[r[1] for r in rows],
            target=[r[2] for r in rows],
            p_raw=[json.dumps(v) for v in primary],
            o_raw=[json.dumps(v) for v in other],
            p_type=["VARCHAR"] * len(primary),
            o_type=["VARCHAR"] * len(other),
            p_num=np.array([_number(v) for v in primary], dtype=float),
            o_num=np.array([_number(v) for v in other], dtype=float),
            p_text=list(primary),
            o_text=list(other),
            p_sig=[re.sub("[0-9]", "9", v) for v in primary],
            o_sig=[re.sub("[0-9]", "9", v) for v in other],
            p_time=np.array([_time(v) for v in primary], dtype=float),
            o_time=np.array([_time(v) for v in other], dtype=float),
        )

    def __len__(self) -> int:
        return len(self.request_id)


def with_templates(sample: Sample) -> Sample:
    """``sample`` with the templates and slots of its strings, found by DuckDB (the regex
    engine of the per-row check, so both read every string alike)."""
    if sample.p_template is not None:
        return sample
    con = duckdb.connect()
    try:
        con.execute(MACROS)
        con.register(
            "texts_arrow",
            pa.table(
                {
                    "p_text": pa.array(sample.p_text, pa.string()),
                    "o_text": pa.array(sample.o_text, pa.string()),
                }
            ),
        )
        found = con.sql(f"SELECT {TEMPLATE_COLUMNS} FROM texts_arrow").to_arrow_table()
    finally:
        con.close()
    return replace(
        sample,
        p_template=found.column("p_template").to_pylist(),
        o_template=found.column("o_template").to_pylist(),
        p_slots=found.column("p_slots").to_pylist(),
        o_slots=found.column("o_slots").to_pylist(),
    )


_DIGITS = re.compile(r"[0-9]+(?:\.[0-9]+)?")
_ISO = re.compile(ISO_TIME)
_HTTP = re.compile(HTTP_TIME)
_TIME_OF_DAY = re.compile(r"([0-9]{2}):([0-9]{2}):([0-9]{2}(?:[.,][0-9]{1,9})?)")
_SLOT_KINDS = tuple((kind, re.compile(regex, re.ASCII)) for kind, regex in SLOT_KINDS)


def _number(text: str) -> float:
    return float(text) if _DIGITS.fullmatch(text) else math.nan


def _time(text: str) -> float:
    """Epoch seconds of an ISO or HTTP timestamp, seconds since midnight of a time of day."""
    try:
        if _ISO.fullmatch(text):
            return datetime.fromisoformat(text.replace(",", ".").replace(" UTC", "Z")).timestamp()
        if _HTTP.fullmatch(text):
            return parsedate_to_datetime(text).timestamp()
    except ValueError:
        return math.nan
    found = _TIME_OF_DAY.fullmatch(text)
    if found:
        hours, minutes, seconds = found.groups()
        return int(hours) * 3600 + int(minutes) * 60 + float(seconds.replace(",", "."))
    return math.nan


def slot_kind(value: str) -> str:
    """The kind of a slot's value (``time``, ``uuid``, ``hex``, ``token``, ``n``), as
    :data:`SLOT` found it; a hex id of digits only reads as a number."""
    for kind, regex in _SLOT_KINDS:
        if regex.fullmatch(value):
            return "n" if kind == "hex" and value.isdigit() else kind
    return "text"


def shown_template(template: str, slots: Sequence[str]) -> str:
    """``template`` with each slot named by the kind of its value: ``'invoice {n} paid'``."""
    parts = template.split(MARK)
    if len(parts) != len(slots) + 1:
        return template
    out = [parts[0]]
    for value, part in zip(slots, parts[1:], strict=True):
        out += [f"{{{slot_kind(value)}}}", part]
    return "".join(out)
