"""The path syntax of ``diffs.path``/``diffs.pattern`` and of rules files.

A path starts at ``$`` (the whole document) and adds one step per level:

==================  =============================================================
``.name``           object key (letters, digits, ``_``; anything else: brackets)
``['a.b']``         object key in brackets (``\\'`` and ``\\\\`` escape), also ``["a.b"]``
``[3]``             array index
``[*]``             any array index
``.*``              any object key
``..name``          ``name`` at any depth below (also ``..*``, ``..[*]``, ``..['a b']``)
==================  =============================================================

A ``path`` (instance) names one place: ``$.entries[3].likes``; its ``pattern`` (schema) puts
``[*]`` for every index: ``$.entries[*].likes``. Both are built here from the segments a diff
walk keeps (``str`` for a key, ``int`` for an index), so the pattern an analyst reads in the
``diffs`` table can be pasted into a rules file as it is.

>>> render(("entries", 3, "likes")), render_pattern(("entries", 3, "likes"))
('$.entries[3].likes', '$.entries[*].likes')
>>> parse("$..trace_id").matches(("spans", 0, "trace_id"))
True
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

Segment = str | int

KEY, ANY_KEY, INDEX, ANY_INDEX, DESCEND = range(5)
Step = tuple[int, str | int | None]

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
# Dot keys are read leniently (``$.content-type`` works); they are always written strictly.
_DOT_KEY = re.compile(r"[^.\[\]'\"\s*]+")
_INDEX = re.compile(r"\[\s*(\d+)\s*\]")
_ANY_INDEX = re.compile(r"\[\s*\*\s*\]")


class PathError(ValueError):
    """A path or pattern that does not follow the syntax; the message says where."""


@lru_cache(maxsize=4096)
def key_step(key: str) -> str:
    """How an object key is written in a path: ``.name`` or ``['a.b']``."""
    if _IDENTIFIER.match(key):
        return "." + key
    escaped = key.replace("\\", "\\\\").replace("'", "\\'")
    return f"['{escaped}']"


@lru_cache(maxsize=65536)
def render(segments: tuple[Segment, ...]) -> str:
    """The instance path of ``segments``: ``$.entries[3].likes``."""
    parts = ["$"]
    for seg in segments:
        parts.append(f"[{seg}]" if isinstance(seg, int) else key_step(seg))
    return "".join(parts)


@lru_cache(maxsize=65536)
def render_pattern(segments: tuple[Segment, ...]) -> str:
    """The schema pattern of ``segments``: ``$.entries[*].likes``."""
    parts = ["$"]
    for seg in segments:
        parts.append("[*]" if isinstance(seg, int) else key_step(seg))
    return "".join(parts)


@dataclass(frozen=True)
class Pattern:
    """A parsed path pattern; ``text`` is the pattern as written."""

    text: str
    steps: tuple[Step, ...]

    def __str__(self) -> str:
        return self.text

    @property
    def keys(self) -> tuple[str, ...]:
        """The literal object keys the pattern names (for cheap pre-filters on raw bytes)."""
        return tuple(v for k, v in self.steps if k == KEY and isinstance(v, str))

    def matches(self, segments: Sequence[Segment], prefix: bool = True) -> bool:
        """Whether the pattern names ``segments`` (with ``prefix``: or a place above them, so a
        rule on ``$.debug`` covers ``$.debug.sql``)."""
        states = self.start()
        for seg in segments:
            if prefix and self.done(states):
                return True
            states = self.step(states, seg)
            if not states:
                return False
        return self.done(states)

    # A pattern is a small NFA over segments: a state is the index of the next step to match.
    # Walks that go down a document carry the states along, so they can stop descending as
    # soon as no pattern can match below.

    def start(self) -> frozenset[int]:
        return _closure(self.steps, {0})

    def done(self, states: frozenset[int]) -> bool:
        return len(self.steps) in states

    def step(self, states: frozenset[int], seg: Segment) -> frozenset[int]:
        steps = self.steps
        end = len(steps)
        moved: set[int] = set()
        for s in states:
            if s == end:
                continue
            kind, value = steps[s]
            if kind == DESCEND:
                moved.add(s)
            elif _step_matches(kind, value, seg):
                moved.add(s + 1)
        return _closure(steps, moved) if moved else frozenset()


def _closure(steps: tuple[Step, ...], states: set[int]) -> frozenset[int]:
    # A ``..`` may match zero segments: being at it also means being at the step after it.
    return frozenset(states | {s + 1 for s in states if s < len(steps) and steps[s][0] == DESCEND})


def _step_matches(kind: int, value: str | int | None, seg: Segment) -> bool:
    if isinstance(seg, int):
        return kind == ANY_INDEX or (kind == INDEX and value == seg)
    return kind == ANY_KEY or (kind == KEY and value == seg)


@lru_cache(maxsize=1024)
def parse(text: str) -> Pattern:
    """Parse a path or pattern; raise :class:`PathError` naming the position of a mistake."""
    if not text.startswith("$"):
        raise PathError(f"path {text!r} must start with '$'")
    steps: list[Step] = []
    i = 1
    n = len(text)
    while i < n:
        if text.startswith("..", i):
            i += 2
            steps.append((DESCEND, None))
            if i >= n:
                raise PathError(f"path {text!r} ends with '..'; name what to find below")
            if text[i] == "[":
                step, i = _bracket(text, i)
            else:
                step, i = _dot(text, i)
            steps.append(step)
        elif text[i] == ".":
            step, i = _dot(text, i + 1)
            steps.append(step)
        elif text[i] == "[":
            step, i = _bracket(text, i)
            steps.append(step)
        else:
            raise PathError(
                f"path {text!r}: unexpected {text[i]!r} at position {i}; "
                "expected '.key', '[index]', '[*]' or \"['key']\""
            )
    return Pattern(text, tuple(steps))


def _dot(text: str, i: int) -> tuple[Step, int]:
    if text.startswith("*", i):
        return (ANY_KEY, None), i + 1
    found = _DOT_KEY.match(text, i)
    if not found:
        raise PathError(
            f"path {text!r}: expected a key at position {i}; "
            "write keys with special characters as ['a.b']"
        )
    return (KEY, found.group()), found.end()


def _bracket(text: str, i: int) -> tuple[Step, int]:
    if found := _ANY_INDEX.match(text, i):
        return (ANY_INDEX, None), found.end()
    if found := _INDEX.match(text, i):
        return (INDEX, int(found.group(1))), found.end()
    j = i + 1
    if j < len(text) and text[j] in "'\"":
        quote = text[j]
        j += 1
        chars: list[str] = []
        while j < len(text):
            c = text[j]
            if c == "\\" and j + 1 < len(text):
                chars.append(text[j + 1])
                j += 2
            elif c == quote:
                if not text.startswith("]", j + 1):
                    break
                return (KEY, "".join(chars)), j + 2
            else:
                chars.append(c)
                j += 1
    raise PathError(
        f"path {text!r}: bad bracket at position {i}; expected [3], [*], ['key'] or [\"key\"]"
    )
