"""Templated text: strings that differ only in the values of their slots.

Services write ids, counters and clocks into text (``"invoice 5521 paid"``, ``"you have 3 unread
messages"``, ``"request <uuid> handled in 41 ms"``). Each string's template and slots come from
DuckDB (:data:`~shadowdiff.noise.sample.MACROS`): runs of digits, UUIDs, hex ids, tokens and
timestamps become slots (:func:`~shadowdiff.noise.sample.with_templates`). A pattern is judged
template by template:

- rows whose template differs between the sides (``"invoice {} paid"`` → ``"invoice {}
  pending"``) are a real change; they stay real, whatever the rest of the pattern is;
- for each template seen in at least ``min_rows`` pairs, each slot that differs is judged as a
  field of its own, by the value tests (:func:`~shadowdiff.noise.values.compare`, handed in as
  ``compare``): a slot whose values vary like noise (random per response, two clocks, numbers
  within a tiny relative error; without a secondary also in at least ``volatile_rate`` of the
  template's pairs) is *volatile*; one that changes systematically (off by one, another id, a
  constant) is not, and nor is one seen too rarely to judge.

A pair is noise when its template is the same on both sides and only volatile slots differ: the
:class:`~shadowdiff.noise.sample.RowCheck` ``template`` lists each judged template with the slot
masks it allows. The pattern is ``same`` when most of its sampled pairs pass that check (the
others stay real, each for a reason the evidence names), else ``different``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from itertools import product
from typing import TypeVar

from shadowdiff.noise.sample import (
    KEY_SEPARATOR,
    Finding,
    RowCheck,
    Sample,
    shown_template,
    slot_kind,
    with_templates,
)
from shadowdiff.noise.thresholds import Thresholds

T = TypeVar("T")
Compare = Callable[[Sample, Sample | None, Thresholds], Finding]
MAX_VOLATILE_SLOTS = 6  # the check lists 2^n masks per template
LABEL = "templated text"


@dataclass
class _Template:
    """One template of a pattern and what its slots did."""

    template: str
    slots: int
    rows: list[int]  # sample rows with this template on both sides
    volatile: list[int] = field(default_factory=list)  # slots that vary like noise
    notes: list[str] = field(default_factory=list)  # per slot that differs, in words
    findings: list[Finding] = field(default_factory=list)  # of the volatile slots
    p_values: list[float] = field(default_factory=list)

    def allows(self, mask: str) -> bool:
        return all(c == "=" or k in self.volatile for k, c in enumerate(mask))

    def keys(self) -> list[str]:
        """The template with every slot mask it allows (see RowCheck ``template``)."""
        choices = [("=", "*") if k in self.volatile else ("=",) for k in range(self.slots)]
        return [self.template + KEY_SEPARATOR + "".join(mask) for mask in product(*choices)]


def judge(
    mirror: Sample, secondary: Sample | None, t: Thresholds, compare: Compare
) -> Finding | None:
    """The finding for a pattern of strings that hold slots, ``None`` when most hold none."""
    n = len(mirror)
    mirror = with_templates(mirror)
    if secondary is not None:
        secondary = with_templates(secondary)
    if sum(1 for slots in _all(mirror.p_slots) if slots) * 2 < n:
        return None
    by_template: dict[str, list[int]] = defaultdict(list)
    changed = []
    p_templates, o_templates = _all(mirror.p_template), _all(mirror.o_template)
    for i in range(n):
        template = p_templates[i]
        if template is not None and template == o_templates[i]:
            by_template[template].append(i)
        else:
            changed.append(i)
    judged = [
        _template(template, rows, mirror, secondary, t, compare)
        for template, rows in sorted(by_template.items(), key=lambda kv: (-len(kv[1]), kv[0]))
        if len(rows) >= t.min_rows and len(_slots(mirror, rows[0])) > 0
    ]
    usable = [j for j in judged if len(j.volatile) <= MAX_VOLATILE_SLOTS]
    for j in judged:
        if j not in usable:
            j.notes.append(
                f"{len(j.volatile)} slots vary, more than the {MAX_VOLATILE_SLOTS} a check can "
                "list: its pairs stay real"
            )
    passing = sum(1 for j in usable if j.volatile for i in j.rows if j.allows(_mask(mirror, i)))
    words = _words(mirror, judged, changed, n, t)
    p_values = [p for j in judged for p in j.p_values]
    p_value = min(p_values) if p_values else None
    if passing * 2 > n:
        keys = tuple(k for j in usable if j.volatile for k in j.keys())
        return Finding(
            "same",
            words,
            LABEL,
            p_value=p_value,
            check=RowCheck("template", signatures=keys),
            row_wise=all(f.row_wise for j in usable for f in j.findings),
        )
    if judged or changed:
        return Finding("different", words, LABEL, p_value=p_value)
    return None


def _template(
    template: str,
    rows: list[int],
    mirror: Sample,
    secondary: Sample | None,
    t: Thresholds,
    compare: Compare,
) -> _Template:
    found = _Template(template, len(_slots(mirror, rows[0])), rows)
    for slot in range(found.slots):
        differ = [i for i in rows if _slots(mirror, i)[slot] != _other_slots(mirror, i)[slot]]
        if not differ:
            continue
        name = f"slot {slot + 1} ({{{slot_kind(_slots(mirror, differ[0])[slot])}}})"
        share = len(differ) / len(rows)
        if len(differ) < t.min_rows:
            found.notes.append(
                f"{name} differs in {len(differ)} pairs, too few to judge (min_rows): those "
                "stay real"
            )
            continue
        reference = None
        if secondary is not None:
            theirs_p, theirs_o = _all(secondary.p_template), _all(secondary.o_template)
            theirs = [
                i
                for i in range(len(secondary))
                if theirs_p[i] == template == theirs_o[i]
                and _slots(secondary, i)[slot] != _other_slots(secondary, i)[slot]
            ]
            if len(theirs) < t.min_rows:
                found.notes.append(
                    f"{name} differs in {len(differ)} primary/mirror pairs but in only "
                    f"{len(theirs)} primary/secondary pairs: not noise, those stay real"
                )
                continue
            reference = _slot_sample(secondary, theirs, slot)
        finding = compare(_slot_sample(mirror, differ, slot), reference, t)
        if finding.p_value is not None:
            found.p_values.append(finding.p_value)
        frequent = finding.row_wise or secondary is not None or share >= t.volatile_rate
        if finding.opinion == "same" and frequent:
            found.volatile.append(slot)
            found.findings.append(finding)
            found.notes.append(f"{name} varies like noise ({share:.0%}): {finding.evidence}")
        elif finding.opinion == "same":
            found.notes.append(
                f"{name} looks random but differs in only {share:.0%} of the template's pairs "
                f"(a volatile slot differs in ≥ {t.volatile_rate:.0%}, volatile_rate): those "
                "stay real"
            )
        elif finding.opinion == "different":
            found.notes.append(
                f"{name} changes systematically in {len(differ)} pairs: {finding.evidence}"
            )
        else:
            found.notes.append(f"{name} cannot be judged ({finding.evidence}): those stay real")
    return found


def _words(
    mirror: Sample, judged: Sequence[_Template], changed: list[int], n: int, t: Thresholds
) -> str:
    parts = []
    for j in judged[:3]:
        example = _slots(mirror, j.rows[0])
        shown = shown_template(j.template, example)
        parts.append(
            f"{shown!r} on both sides in {len(j.rows)} of {n} pairs: " + "; ".join(j.notes)
            if j.notes
            else f"{shown!r} on both sides in {len(j.rows)} of {n} pairs"
        )
    if len(judged) > 3:
        parts.append(f"{len(judged) - 3} more templates")
    small = n - len(changed) - sum(len(j.rows) for j in judged)
    if small:
        parts.append(
            f"{small} pairs of templates seen in fewer than {t.min_rows} pairs (min_rows): "
            "those stay real"
        )
    if changed:
        i = changed[0]
        parts.append(
            f"the template changes in {len(changed)} of {n} pairs (e.g. "
            f"{_quote(mirror.p_text[i])} → {_quote(mirror.o_text[i])}): those stay real"
        )
    return "templated text: " + "; ".join(parts)


def _all(values: list[T] | None) -> list[T]:
    if values is None:
        raise ValueError("the sample has no templates: see with_templates()")
    return values


def _slots(sample: Sample, row: int) -> list[str]:
    return _all(sample.p_slots)[row] or []


def _other_slots(sample: Sample, row: int) -> list[str]:
    return _all(sample.o_slots)[row] or []


def _mask(sample: Sample, row: int) -> str:
    return "".join(
        "=" if a == b else "*"
        for a, b in zip(_slots(sample, row), _other_slots(sample, row), strict=False)
    )


def _slot_sample(sample: Sample, rows: list[int], slot: int) -> Sample:
    return Sample.of_strings(
        [(sample.request_id[i], sample.path[i], sample.target[i]) for i in rows],
        [_slots(sample, i)[slot] for i in rows],
        [_other_slots(sample, i)[slot] for i in rows],
    )


def _quote(text: str | None, width: int = 40) -> str:
    text = text or ""
    return repr(text if len(text) <= width else text[: width - 1] + "…")
