"""Latency CDF plots as inline SVG geometry: numbers only, drawn by the HTML template.

An empirical CDF per side (primary, mirror) on one linear millisecond axis that ends just past
the larger of the two p99.5s, so one slow outlier does not squash the rest of the curve. Curves
with many distinct values are drawn through 200 quantiles, which keeps the report small.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

WIDTH = 360
HEIGHT = 210
LEFT, RIGHT, TOP, BOTTOM = 44, 12, 10, 34
MAX_POINTS = 200
CLIP_QUANTILE = 0.995


@dataclass(frozen=True)
class Tick:
    position: float  # pixels along the axis
    label: str


@dataclass(frozen=True)
class CdfPlot:
    width: int
    height: int
    left: int
    top: int
    plot_width: int
    plot_height: int
    primary: str  # SVG polyline points: "x,y x,y …"
    mirror: str
    x_ticks: tuple[Tick, ...]
    y_ticks: tuple[Tick, ...]
    x_max_ms: float
    clipped: bool  # some requests are slower than the axis shows


def cdf_plot(primary: np.ndarray, mirror: np.ndarray) -> CdfPlot | None:
    """The plot of two latency samples (ms); ``None`` when either is empty."""
    p = np.sort(primary[~np.isnan(primary)])
    m = np.sort(mirror[~np.isnan(mirror)])
    if not p.size or not m.size:
        return None
    top_value = max(float(p[-1]), float(m[-1]))
    clip = max(float(np.quantile(p, CLIP_QUANTILE)), float(np.quantile(m, CLIP_QUANTILE)))
    x_max = _nice_ceiling(max(clip * 1.05, 1.0))
    plot_width = WIDTH - LEFT - RIGHT
    plot_height = HEIGHT - TOP - BOTTOM

    def x(ms: float) -> float:
        return LEFT + min(ms, x_max) / x_max * plot_width

    def y(fraction: float) -> float:
        return TOP + (1.0 - fraction) * plot_height

    def points(values: np.ndarray) -> str:
        xs, fs = _steps(values)
        return " ".join(f"{x(a):.1f},{y(b):.1f}" for a, b in zip(xs, fs, strict=True))

    step = _nice_step(x_max / 4)
    x_ticks = tuple(
        Tick(x(v), _ms_label(v)) for v in np.arange(0.0, x_max + step / 2, step) if v <= x_max
    )
    y_ticks = tuple(Tick(y(f), f"{f:.2g}") for f in (0.0, 0.25, 0.5, 0.75, 1.0))
    return CdfPlot(
        width=WIDTH,
        height=HEIGHT,
        left=LEFT,
        top=TOP,
        plot_width=plot_width,
        plot_height=plot_height,
        primary=points(p),
        mirror=points(m),
        x_ticks=x_ticks,
        y_ticks=y_ticks,
        x_max_ms=x_max,
        clipped=top_value > x_max,
    )


def _steps(values: np.ndarray) -> tuple[list[float], list[float]]:
    """Corner points of the empirical CDF of sorted ``values`` (a staircase)."""
    n = values.size
    distinct, counts = np.unique(values, return_counts=True)
    if distinct.size > MAX_POINTS:
        levels = np.linspace(0.0, 1.0, MAX_POINTS + 1)
        return np.quantile(values, levels).tolist(), levels.tolist()
    fractions = np.cumsum(counts) / n
    xs: list[float] = [float(distinct[0])]
    fs: list[float] = [0.0]
    previous = 0.0
    for value, fraction in zip(distinct.tolist(), fractions.tolist(), strict=True):
        xs += [value, value]
        fs += [previous, fraction]
        previous = fraction
    return xs, fs


def _nice_step(raw: float) -> float:
    if raw <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(raw))
    for factor in (1, 2, 5, 10):
        if raw <= factor * power:
            return float(factor * power)
    return float(10 * power)


def _nice_ceiling(value: float) -> float:
    step = _nice_step(value / 4)
    return math.ceil(value / step) * step


def _ms_label(value: float) -> str:
    return f"{value:g}"
