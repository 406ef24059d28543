"""The sections a pipeline or rules file may hold, and the checks their readers share.

:mod:`shadowdiff.config` reads the run's sections, :mod:`shadowdiff.diff.rules` the diff rules and
:mod:`shadowdiff.noise.thresholds` the ``[noise]`` section; each checks its own settings with the
helpers here, so every unknown name fails with the same message and the same suggestion. This
module imports none of them: the readers depend on it, never the other way round.

>>> check_keys({"header": "x"}, ("key",), "[pairing]", "p.toml")
Traceback (most recent call last):
...
shadowdiff.errors.ConfigError: p.toml: unknown setting 'header' in [pairing]. Known: key.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from typing import Any

from shadowdiff.errors import ConfigError

# Redacted whatever the files say (DESIGN.md): ``[redact] headers`` adds to these.
DEFAULT_REDACT_HEADERS = (
    "authorization",
    "cookie",
    "set-cookie",
    "proxy-authorization",
    "x-api-key",
)

# Every section of a pipeline file and the settings it accepts; ``None``: the section's reader
# checks its contents. A rules file may be a whole pipeline file, so the rules accept them all.
SECTIONS: dict[str, tuple[str, ...] | None] = {
    "inputs": ("primary", "mirror", "secondary", "input", "source", "log_format"),
    "pairing": ("key", "by", "max_skew_ms", "mirror_percent"),
    "window": ("since", "until"),
    "safety": ("writes",),
    "sides": ("primary", "mirror", "secondary"),
    "endpoints": ("templates", "auto"),
    "redact": ("headers", "body", "query", "fields"),
    "output": ("dir",),
    "engine": ("name", "scheduler", "buckets"),
    # Diff rules (shadowdiff.diff.rules checks their contents).
    "ignore": None,
    "tolerance": None,
    "normalize": None,
    "order": None,
    "limits": None,
    "check": None,  # shadowdiff.check checks it
    "report": ("enabled", "baseline"),
    "noise": None,  # shadowdiff.noise.thresholds checks it
}


def check_keys(value: Mapping[str, Any], keys: Sequence[str], where: str, origin: str) -> None:
    """Every key of ``value`` is one of ``keys``; else a ConfigError naming the closest one."""
    for key in value:
        if key not in keys:
            raise ConfigError(
                f"{origin}: unknown setting {key!r} in {where}.{suggest(key, keys)} "
                f"Known: {', '.join(keys)}."
            )


def suggest(name: str, known: Sequence[str] | Mapping[str, Any]) -> str:
    """`` Did you mean 'x'?`` for the known name closest to ``name``, or ``""``."""
    close = difflib.get_close_matches(name, list(known), n=1)
    return f" Did you mean {close[0]!r}?" if close else ""


def text(value: Any, where: str, origin: str, default: str | None = None) -> str | None:
    """A setting that takes one string (``default`` when absent)."""
    if value is None:
        return default
    if not isinstance(value, str):
        raise ConfigError(f"{origin}: {where} must be a string, not {value!r}.")
    return value


def flag(value: Any, where: str, origin: str, default: bool) -> bool:
    """A setting that takes true or false (``default`` when absent): never "no" read as true."""
    if value is None:
        return default
    if not isinstance(value, bool):
        raise ConfigError(f"{origin}: {where} must be true or false, not {value!r}.")
    return value


def strings(value: Any, where: str, origin: str) -> tuple[str, ...]:
    """A setting that takes one string or a list of them, as a tuple."""
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise ConfigError(f"{origin}: {where} must be a string or a list of strings.")
