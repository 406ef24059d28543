"""Collectors by name. Built-ins register here; third-party collectors plug in through the
``shadowdiff.collectors`` entry-point group (the entry point loads a collector instance).

The entry points are read once per process: ``importlib.metadata.entry_points()`` scans every
installed distribution (milliseconds in a venv of 80 packages, more in a data scientist's
environment of hundreds), so nothing per file or per record may call it.
"""

from __future__ import annotations

import functools
from importlib.metadata import EntryPoint, entry_points

from shadowdiff.collect import unwrap
from shadowdiff.collect.base import Collector, Input, reads_lines
from shadowdiff.collect.lines import read_head
from shadowdiff.errors import ConfigError, InputError
from shadowdiff.settings import suggest

GROUP = "shadowdiff.collectors"
_BUILTIN = {
    "envoy-text": "shadowdiff.collect.envoy_text:COLLECTOR",
    "envoy-json": "shadowdiff.collect.envoy_json:COLLECTOR",
    "envoy-tap": "shadowdiff.collect.envoy_tap:COLLECTOR",
    "pcap": "shadowdiff.collect.pcap:COLLECTOR",
    "goreplay": "shadowdiff.collect.goreplay:COLLECTOR",
    "har": "shadowdiff.collect.har:COLLECTOR",
}
_loaded: dict[str, Collector] = {}
SNIFF_THRESHOLD = 0.5


@functools.cache
def _plugins() -> dict[str, EntryPoint]:
    """Third-party collectors by name (a built-in name wins), read from the environment once."""
    found: dict[str, EntryPoint] = {}
    for ep in entry_points(group=GROUP):
        if ep.name not in _BUILTIN:
            found.setdefault(ep.name, ep)
    return found


def _load(ref: str) -> Collector:
    import importlib

    module_name, attr = ref.split(":")
    return getattr(importlib.import_module(module_name), attr)


def names() -> list[str]:
    return sorted({*_BUILTIN, *_plugins()})


def get(name: str) -> Collector:
    """The collector called ``name``; unknown names fail with a suggestion."""
    if name in _loaded:
        return _loaded[name]
    if name in _BUILTIN:
        collector = _load(_BUILTIN[name])
    else:
        plugin = _plugins().get(name)
        if plugin is None:
            raise ConfigError(
                f"Unknown source {name!r}.{suggest(name, names())} "
                f"Known sources: {', '.join(names())}, auto."
            )
        collector = plugin.load()
    _loaded[name] = collector
    return collector


def scores(head: bytes) -> list[tuple[float, str]]:
    """Every collector's sniff score for a file starting with ``head``, best first."""
    return sorted(((get(n).sniff(head), n) for n in names()), reverse=True)


def recognise(head: bytes) -> Collector | None:
    """The collector whose format ``head`` is, or ``None`` when no collector is sure enough.
    A file no collector knows as it is may be access-log lines in a wrapper (CRI, Docker's
    json-file, pretty-printed JSON; ``collect.unwrap``): then the line readers sniff the
    lines inside."""
    best_score, best = scores(head)[0]
    if best_score >= SNIFF_THRESHOLD:
        return get(best)
    inner = unwrap.inner_head(head)
    if inner is None:
        return None
    readers = [get(n) for n in names() if reads_lines(get(n))]
    score, found = max(((c.sniff(inner), c) for c in readers), key=lambda item: item[0])
    return found if score >= SNIFF_THRESHOLD else None


def sniff(source: Input) -> Collector:
    """Pick the collector for ``source`` from its first bytes (``--source auto``)."""
    head = read_head(source)
    if not head.strip():
        raise InputError(f"{source.name}: the file is empty; there is nothing to read.")
    found = recognise(head)
    if found is None:
        raise InputError(f"{source.name}: {unrecognised(head)}")
    return found


def unrecognised(head: bytes) -> str:
    """Why a file starting with ``head`` is read by no collector, what it looks like, and
    what to do."""
    tried = ", ".join(f"{n} ({s:.0%})" for s, n in scores(head))
    return f"not a format shadowdiff reads (tried {tried}). {_looks_like(head)}"


def _looks_like(head: bytes) -> str:
    kind = unwrap.detect(head)
    if kind in (unwrap.PRETTY, unwrap.ARRAY):
        return (
            f"It looks like {kind}, but its records are not access-log entries (keys such as "
            "start_time, method, path, response_code, request_id): if they are, name the "
            "format with --source envoy-json; one object per line is `jq -c '.[]?' FILE`."
        )
    return "Name the format with --source, or pass your Envoy format string with --log-format."
