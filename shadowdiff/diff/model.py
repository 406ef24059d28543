"""The diff engine's data model: what goes in (a :class:`Message` per side) and what comes out
(a :class:`PairResult` of :class:`Diff` rows). It imports nothing else from shadowdiff.

``None`` and ``b""`` mean different things, as in the ``exchanges`` table: a ``None`` body was not
captured, ``b""`` was captured and empty.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Part = Literal["header", "body"]
Kind = Literal["changed", "added", "removed", "type_changed", "order", "binary"]

# What a redacted value becomes, in stored headers, bodies and diff values alike, where no run
# key tagged it; a run tags each with a keyed hash, ``[redacted:<hash>]`` (shadowdiff.redact).
REDACTED = "[redacted]"
TAG_PREFIX = "[redacted:"


def redacted(value: str) -> str:
    """What a secret ``value`` is compared and shown as: a run's tag as it is (equal secrets
    stay equal, a changed one is a change), anything else as ``[redacted]``."""
    return value if value.startswith(TAG_PREFIX) else REDACTED


# A Diff as a plain tuple, in field order: the engine's hot path builds these (a frozen
# dataclass costs microseconds to construct) and ``Diff(*row)`` turns one into the public type.
Row = tuple[Part, str, str, Kind, str | None, str | None, bool, str | None]


@dataclass(frozen=True)
class Message:
    """One side's response, as captured.

    ``headers`` keep their order and repeated names; ``body`` is the raw (possibly
    content-encoded) payload; ``truncated`` says the capture cut the body short.
    """

    status: int | None = None
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes | None = None
    truncated: bool = False

    def header(self, name: str) -> str | None:
        """The last value of header ``name`` (case-insensitive), or ``None``."""
        wanted = name.lower()
        found = None
        for key, value in self.headers:
            if key.lower() == wanted:
                found = value
        return found


@dataclass(frozen=True)
class Diff:
    """One difference between the primary and the mirror response: a ``diffs`` row without the
    pair's ``request_id``/``endpoint``.

    ``path`` locates the instance (``$.entries[3].likes``, a header name, a unified-diff hunk
    header for text), ``pattern`` its schema (``$.entries[*].likes``), which rules files use.
    The values are JSON text; ``None`` means the value is absent on that side.
    """

    part: Part
    path: str
    pattern: str
    kind: Kind
    primary_value: str | None
    mirror_value: str | None
    noise: bool = False
    noise_reason: str | None = None


@dataclass(frozen=True)
class PairResult:
    """Every difference of one pair, and a note when something kept part of the pair from being
    compared (a truncated body, a body that does not decode, …)."""

    diffs: tuple[Diff, ...] = ()
    note: str | None = None

    @property
    def diverged(self) -> bool:
        """True when at least one difference is not noise."""
        return any(not d.noise for d in self.diffs)
