"""Arrays with the same elements on both sides in another order (``order`` rows): a set that
the service returns in any order, on every version (noise), or a reordering (real)?

A pattern's sampled rows (each row: the primary's array and the mirror's) are read in turn:

1. **The primary against itself.** The same elements recur across an endpoint's responses
   (the same labels, the same steps). For every two elements seen together in several primary
   arrays, which comes first? When the primary puts them now one way, now the other, its order
   is volatile: the array is a set and the mirror's order is noise, however rarely it differs.
   When it always keeps their relative order, the order is stable and a mirror that changes it
   changes something real.
2. **One consistent transformation.** Without enough recurring elements: the mirror's
   permutation of the primary's array is the same in nearly every pair (reversed, rotated,
   two elements swapped), or one side's arrays are nearly all sorted by a key (the values, or a
   field of the elements), a deliberate order that the other side does not keep: real.
3. **Varied permutations.** Otherwise, when no permutation dominates, the order is random:
   ``same`` (without a secondary it must still differ in ``volatile_rate`` of the pairs, as any
   random-looking field must).

Only the first :data:`MAX_ELEMENTS` elements of an array are looked at.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

import orjson

from shadowdiff.noise.sample import Finding, Sample
from shadowdiff.noise.thresholds import Thresholds

MAX_ELEMENTS = 12
MIN_REPEATS = 10  # repeated observations before the primary's own order is judged
VOLATILE_SHARE = 0.2  # minority order share at which the primary's order is volatile
STABLE_SHARE = 0.02  # at most this minority share: the primary's order is stable
CONSISTENT = 0.9  # share of pairs with one transformation for it to be systematic
VARIED = 0.5  # the commonest permutation below this share: the order is random
LABEL = "array order"

Array = list[Any]


def judge(sample: Sample, t: Thresholds) -> Finding:
    """Is the order of the arrays in ``sample`` (``order`` rows) noise? See the module
    docstring."""
    arrays = _arrays(sample)
    if len(arrays) < t.min_rows:
        return Finding("unknown", f"only {len(arrays)} arrays to compare", LABEL)
    own = _primary_order(arrays)
    if own is not None:
        return own
    consistent = _consistent(arrays)
    if consistent is not None:
        return consistent
    labels = Counter(_permutation_label(p, m) for p, m in arrays)
    top, count = labels.most_common(1)[0]
    share = count / len(arrays)
    if share < VARIED:
        return Finding(
            "same",
            f"the same elements in {len(labels)} different orders over {len(arrays)} pairs, "
            f"none in more than {share:.0%} of them, and no side sorted by a key: a set "
            "returned in random order",
            "arrays in random order",
        )
    return Finding(
        "unknown",
        f"one permutation ({top}) in {share:.0%} of pairs: neither random nor consistent",
        LABEL,
    )


def _arrays(sample: Sample) -> list[tuple[Array, Array]]:
    found = []
    for p_raw, o_raw in zip(sample.p_raw, sample.o_raw, strict=True):
        try:
            primary, mirror = orjson.loads(p_raw or "null"), orjson.loads(o_raw or "null")
        except orjson.JSONDecodeError:
            continue
        if isinstance(primary, list) and isinstance(mirror, list) and len(primary) > 1:
            found.append((primary[:MAX_ELEMENTS], mirror[:MAX_ELEMENTS]))
    return found


def _key(element: Any) -> bytes:
    return orjson.dumps(element, option=orjson.OPT_SORT_KEYS)


def _primary_order(arrays: Sequence[tuple[Array, Array]]) -> Finding | None:
    """The primary's own evidence: do elements seen together keep their relative order?"""
    before: Counter[tuple[bytes, bytes]] = Counter()
    for primary, _ in arrays:
        keys = [_key(x) for x in primary]
        for i, a in enumerate(keys):
            for b in keys[i + 1 :]:
                if a != b:
                    before[(a, b)] += 1
    repeats = minority = observed = 0
    for (a, b), forward in before.items():
        if a > b and (b, a) in before:
            continue  # counted from the other side
        backward = before.get((b, a), 0)
        together = forward + backward
        if together >= 2:
            repeats += together - 1
            minority += min(forward, backward)
            observed += together
    if repeats < MIN_REPEATS:
        return None
    share = minority / observed
    if share >= VOLATILE_SHARE:
        return Finding(
            "same",
            f"the primary itself returns these elements in varying orders: of {observed} "
            f"times two elements came together in its responses, {share:.0%} were in the less "
            "usual order; a set, whose order is noise",
            "sets in random order",
            row_wise=True,
        )
    if share <= STABLE_SHARE:
        return Finding(
            "different",
            f"the primary keeps one order: of {observed} times two elements came together in "
            f"its responses, {1 - share:.1%} were in their usual order; the mirror's order "
            "differs, a real reorder",
            LABEL,
        )
    return None


def _consistent(arrays: Sequence[tuple[Array, Array]]) -> Finding | None:
    """One transformation in nearly every pair, or one side sorted by a key: systematic."""
    labels = Counter(_permutation_label(p, m) for p, m in arrays)
    top, count = labels.most_common(1)[0]
    if count >= MIN_REPEATS and count >= CONSISTENT * len(arrays):
        return Finding(
            "different",
            f"the mirror applies one permutation to the primary's array in {count} of "
            f"{len(arrays)} pairs ({top}): a consistent reorder, not noise",
            LABEL,
        )
    longer = [(p, m) for p, m in arrays if len(p) >= 3]
    if len(longer) < MIN_REPEATS:
        return None
    primary = _sorted_by([p for p, _ in longer])
    mirror = _sorted_by([m for _, m in longer])
    if primary is None and mirror is None:
        return None
    return Finding(
        "different",
        f"the primary's arrays are sorted by {_by(primary)}, the mirror's by {_by(mirror)}, "
        f"over {len(longer)} pairs: a deliberate order that changed, not noise",
        LABEL,
    )


def _by(found: tuple[str, float] | None) -> str:
    if found is None:
        return "no key"
    key, share = found
    return f"{key} (in {share:.0%})"


def _permutation_label(primary: Array, mirror: Array) -> str:
    """Where each mirror element sits in the primary's array, named when it is a familiar
    transformation (``reversed``, ``rotated by k``)."""
    keys = [_key(x) for x in primary]
    used = [False] * len(keys)
    positions = []
    for element in mirror:
        key = _key(element)
        found = next((i for i, k in enumerate(keys) if k == key and not used[i]), None)
        if found is None:
            return "not a permutation"
        used[found] = True
        positions.append(found)
    n = len(positions)
    if positions == list(range(n - 1, -1, -1)):
        return "reversed"
    shift = positions[0]
    if positions == [(shift + i) % n for i in range(n)]:
        return f"rotated by {shift}"
    return "positions " + ",".join(map(str, positions))


def _sorted_by(arrays: Sequence[Array]) -> tuple[str, float] | None:
    """The key (the values, or a field of object elements) and direction by which nearly all
    ``arrays`` are sorted, with the share of them that are."""
    best: tuple[str, float] | None = None
    for name, values in _candidate_keys(arrays).items():
        for direction, ascending in (("ascending", True), ("descending", False)):
            hits = sum(1 for v in values if v is not None and _monotone(v, ascending))
            share = hits / len(arrays)
            if share >= CONSISTENT and (best is None or share > best[1]):
                best = (f"{name}, {direction}", share)
    return best


def _candidate_keys(arrays: Sequence[Array]) -> dict[str, list[list[Any] | None]]:
    """Per candidate key, each array's sequence of key values (``None`` where it has none)."""
    keys: dict[str, list[list[Any] | None]] = {"the values": []}
    fields: Counter[str] = Counter()
    for array in arrays:
        keys["the values"].append(_comparable(array))
        if _objects(array):
            fields.update(set.intersection(*(set(x) for x in array)))
    for name, count in fields.items():
        if count >= CONSISTENT * len(arrays):
            keys[f"field {name!r}"] = [
                _comparable([x.get(name) for x in a]) if _objects(a) else None for a in arrays
            ]
    return keys


def _objects(array: Array) -> bool:
    return all(isinstance(x, dict) for x in array)


def _comparable(values: Array) -> list[Any] | None:
    """``values`` if they are numbers only or strings only (so they can be ordered)."""
    if all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
        return values
    if all(isinstance(v, str) for v in values):
        return values
    return None


def _monotone(values: list[Any], ascending: bool) -> bool:
    pairs = zip(values, values[1:], strict=False)
    return all(a <= b for a, b in pairs) if ascending else all(a >= b for a, b in pairs)
