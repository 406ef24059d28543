"""BENCHMARKS.md: each benchmark owns one ``## `` section, replaced in place on every run."""

from __future__ import annotations

import os
import platform
from pathlib import Path

PATH = Path(__file__).resolve().parent.parent / "BENCHMARKS.md"
PREAMBLE = (
    "# Benchmarks\n\n"
    "Written by `make bench`: every figure below was measured in the run that wrote its section, "
    "side by side with its baseline, on the machine named there.\n"
)


def write_section(section: str) -> None:
    """Replace the section with the same ``## `` heading, or append it."""
    heading = section.splitlines()[0]
    text = PATH.read_text() if PATH.exists() else PREAMBLE
    if heading in text:
        start = text.index(heading)
        end = text.find("\n## ", start + 1)
        text = text[:start] + section.rstrip("\n") + "\n" + (text[end:] if end >= 0 else "")
    else:
        text = text.rstrip("\n") + "\n\n" + section.rstrip("\n") + "\n"
    PATH.write_text(text)


def machine() -> str:
    """The machine, for the record: cores, CPU model, memory, OS, Python."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return (
        f"{os.cpu_count()} cores ({cpu}), {memory:.0f} GiB RAM, {platform.system()} "
        f"{platform.release()}, Python {platform.python_version()}"
    )
