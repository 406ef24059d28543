"""``shadowdiff noise DIR``: the ``noise`` table of a run as text, with the thresholds that
decided it.

>>> summary = shadowdiff.api.noise("out/run1")   # Summary.from_table(the run's noise table)
>>> print(summary.text())                         # per endpoint, one block per pattern
>>> print(summary.rules())                        # an [ignore] block
"""

from __future__ import annotations

import textwrap
from collections import Counter
from dataclasses import dataclass, field

import pyarrow as pa

from shadowdiff.noise.suggest import NoiseRow, ignore_block
from shadowdiff.noise.thresholds import DEFAULT, Thresholds
from shadowdiff.noise.verdicts import VERDICTS

WIDTH = 100


@dataclass(frozen=True)
class Summary:
    """A run's noise verdicts; ``secondary``: they rest on a secondary side (else on the values
    alone)."""

    rows: tuple[NoiseRow, ...]
    secondary: bool
    thresholds: Thresholds = field(default=DEFAULT)

    @classmethod
    def from_table(
        cls, table: pa.Table, secondary: bool, thresholds: Thresholds = DEFAULT
    ) -> Summary:
        rows = tuple(NoiseRow.from_record(r) for r in table.to_pylist())
        return cls(rows, secondary, thresholds)

    @property
    def counts(self) -> dict[str, int]:
        found = Counter(r.verdict for r in self.rows)
        return {v: found.get(v, 0) for v in VERDICTS}

    def text(self) -> str:
        """The verdicts per endpoint (pattern, kind, counts, p-value, evidence) and the
        thresholds."""
        method = (
            "against the secondary: raw = pairs where primary and mirror differ, base = where "
            "primary and secondary differ, of total requests answered by all three sides"
            if self.secondary
            else "from the values (no secondary): raw = pairs where primary and mirror differ, "
            "of total pairs of the endpoint with the same primary statuses"
        )
        counts = ", ".join(f"{n} {v}" for v, n in self.counts.items())
        out = [f"Noise verdicts {method}.", f"{len(self.rows)} patterns: {counts}."]
        if not self.rows:
            out.append("No differences to judge (or the run was made before noise detection).")
        endpoint: object = object()
        for row in self.rows:
            if row.endpoint != endpoint:
                endpoint = row.endpoint
                out += ["", f"{row.endpoint or '(no endpoint)'}"]
                out.append(
                    f"  {'verdict':<17} {'kind':<12} {'raw':>6} {'base':>6} {'total':>6} "
                    f"{'p':>8}  pattern"
                )
            base = "-" if row.baseline_count is None else str(row.baseline_count)
            p = "-" if row.p_value is None else f"{row.p_value:.2g}"
            out.append(
                f"  {row.verdict:<17} {row.kind:<12} {row.raw_count:>6} {base:>6} "
                f"{row.total:>6} {p:>8}  {row.pattern}"
            )
            out += textwrap.wrap(
                row.evidence, WIDTH, initial_indent=" " * 6, subsequent_indent=" " * 6
            )
        out += ["", "Thresholds of this run (set them in a [noise] section):"]
        for line in self.thresholds.lines():
            out += textwrap.wrap(line, WIDTH, initial_indent="  ", subsequent_indent="      ")
        return "\n".join(out)

    def rules(self) -> str:
        """An ``[ignore]`` block for a rules file (see :mod:`shadowdiff.noise.suggest`)."""
        return ignore_block(self.rows)
