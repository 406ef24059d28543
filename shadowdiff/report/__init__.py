"""Reports of a run directory: HTML (self-contained, for reading), Markdown (short, for a PR
comment or chat) and JSON (machine-readable; its keys are documented in
:mod:`shadowdiff.report.document`), optionally compared with an earlier run.

>>> written = shadowdiff.report.write("out/run2", baseline="out/run1")
>>> written.html
PosixPath('out/run2/report.html')
"""

from __future__ import annotations

import json as json_module
import math
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shadowdiff import query, stats, store
from shadowdiff.errors import InputError
from shadowdiff.report import baseline as baseline_module
from shadowdiff.report import document, html, markdown

DEFAULT_HTML = "report.html"
DEFAULT_MARKDOWN = "report.md"
DEFAULT_JSON = "report.json"


@dataclass(frozen=True)
class Written:
    """The report files written."""

    html: Path
    markdown: Path
    json: Path

    def paths(self) -> list[Path]:
        return [self.html, self.markdown, self.json]


def build(
    run_dir: str | Path,
    *,
    baseline: str | Path | None = None,
    resamples: int = stats.RESAMPLES,
    seed: int = 0,
) -> dict[str, Any]:
    """The report as a dict (the content of ``report.json``)."""
    directory = Path(run_dir)
    store.read_manifest(directory)
    con = query.open(directory)
    try:
        latency = stats.endpoint_latency(con, resamples=resamples, seed=seed)
    finally:
        con.close()
    result = document.build(directory, latency)
    if baseline is not None:
        baseline_dir = Path(baseline)
        if baseline_dir.resolve() == directory.resolve():
            raise InputError(
                f"{baseline_dir}: the baseline is the run itself; pick an earlier run."
            )
        result["baseline"] = baseline_module.compare(
            directory, baseline_dir, latency, resamples=resamples, seed=seed
        )
    return result


def write(
    run_dir: str | Path,
    *,
    html_path: str | Path | None = None,
    markdown_path: str | Path | None = None,
    json_path: str | Path | None = None,
    baseline: str | Path | None = None,
) -> Written:
    """Write the three reports; by default ``report.html``, ``report.md`` and ``report.json``
    in ``run_dir``."""
    directory = Path(run_dir)
    result = build(directory, baseline=baseline)
    written = Written(
        html=Path(html_path) if html_path else directory / DEFAULT_HTML,
        markdown=Path(markdown_path) if markdown_path else directory / DEFAULT_MARKDOWN,
        json=Path(json_path) if json_path else directory / DEFAULT_JSON,
    )
    _write_text(written.html, html.render(result, directory))
    _write_text(written.markdown, markdown.render(result))
    _write_text(written.json, to_json(result))
    return written


def to_json(result: dict[str, Any]) -> str:
    """``result`` as JSON text; NaN and infinities (not JSON) become ``null``."""
    return json_module.dumps(_finite(result), indent=2, default=str, allow_nan=False) + "\n"


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def _write_text(target: Path, text: str) -> None:
    """Write atomically, so a reader never sees half a report."""
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(text)
            os.replace(temp, target)
        except BaseException:
            Path(temp).unlink(missing_ok=True)
            raise
    except OSError as e:
        raise InputError(f"{target}: cannot write the report ({e}).") from e
