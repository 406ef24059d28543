"""Collectors by name. Built-ins register here; third-party collectors plug in through the
``shadowdiff.collectors`` entry-point group (the entry point loads a collector instance)."""

from __future__ import annotations

import difflib
from importlib.metadata import entry_points

from shadowdiff.collect.base import Collector, Input
from shadowdiff.collect.lines import read_head
from shadowdiff.errors import ConfigError, InputError

_BUILTIN = {
    "envoy-text": "shadowdiff.collect.envoy_text:COLLECTOR",
    "envoy-json": "shadowdiff.collect.envoy_json:COLLECTOR",
    "envoy-tap": "shadowdiff.collect.envoy_tap:COLLECTOR",
}
_loaded: dict[str, Collector] = {}
SNIFF_THRESHOLD = 0.5


def _load(ref: str) -> Collector:
    import importlib

    module_name, attr = ref.split(":")
    return getattr(importlib.import_module(module_name), attr)


def names() -> list[str]:
    found = dict(_BUILTIN)
    for ep in entry_points(group="shadowdiff.collectors"):
        found.setdefault(ep.name, ep.value)
    return sorted(found)


def get(name: str) -> Collector:
    """The collector called ``name``; unknown names fail with a suggestion."""
    if name in _loaded:
        return _loaded[name]
    if name in _BUILTIN:
        collector = _load(_BUILTIN[name])
    else:
        matches = [ep for ep in entry_points(group="shadowdiff.collectors") if ep.name == name]
        if not matches:
            close = difflib.get_close_matches(name, names(), n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ConfigError(
                f"Unknown source {name!r}.{hint} Known sources: {', '.join(names())}, auto."
            )
        collector = matches[0].load()
    _loaded[name] = collector
    return collector


def sniff(source: Input) -> Collector:
    """Pick the collector for ``source`` from its first bytes (``--source auto``)."""
    head = read_head(source)
    if not head.strip():
        raise InputError(f"{source.name}: the file is empty; there is nothing to read.")
    scores = sorted(((get(n).sniff(head), n) for n in names()), reverse=True)
    best_score, best = scores[0]
    if best_score < SNIFF_THRESHOLD:
        tried = ", ".join(f"{n} ({s:.0%})" for s, n in scores)
        raise InputError(
            f"{source.name}: not a format shadowdiff reads (tried {tried}). "
            "Name the format with --source, or pass your Envoy format string with --log-format."
        )
    return get(best)
