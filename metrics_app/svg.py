"""Latency distributions as a small standalone SVG: one cumulative curve per group."""

from __future__ import annotations

import math
from html import escape

COLOURS = ["#0969da", "#cf222e", "#1a7f37", "#8250df", "#9a6700", "#bf3989", "#1b7c83", "#57606a"]
WIDTH, HEIGHT, LEFT, RIGHT, TOP, BOTTOM = 720, 420, 60, 200, 40, 50


def _nice(value: float) -> float:
    """`value` rounded down to its leading digit (4,537 -> 4,000)."""
    if value <= 0:
        return 0.0
    power = 10 ** math.floor(math.log10(value))
    return math.floor(value / power) * power


def latency_axis(values: list[float]) -> tuple[float, float]:
    """Where the latency axis starts and ends: at 0 unless every value lies far from it (then at a
    round number below the fastest), so a cluster of slow calls is not squeezed against the right."""
    if not values:
        return 0.0, 1.0
    low, high = min(values), max(values)
    start = _nice(low * 0.9) if low > 0.3 * high else 0.0
    return start, high if high > start else start + 1.0


def cdf_chart(series: dict[str, list[float]], *, title: str) -> str:
    """Share of calls (y) done within a latency (x, ms), one line per series, legend on the right."""
    values = [v for vs in series.values() for v in vs]
    start, top = latency_axis(values)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x(ms: float) -> float:
        return LEFT + plot_w * (max(ms, start) - start) / (top - start)

    def y(share: float) -> float:
        return TOP + plot_h * (1 - share)

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
        'font-family="sans-serif" font-size="12">',
        f'<rect width="{WIDTH}" height="{HEIGHT}" fill="white"/>',
        f'<text x="{LEFT}" y="22" font-size="14">{escape(title)}</text>',
        f'<line x1="{LEFT}" y1="{y(0)}" x2="{LEFT + plot_w}" y2="{y(0)}" stroke="#888"/>',
        f'<line x1="{LEFT}" y1="{y(0)}" x2="{LEFT}" y2="{y(1)}" stroke="#888"/>',
    ]
    for tick in range(5):
        share, ms = tick / 4, start + (top - start) * tick / 4
        parts.append(f'<text x="{LEFT - 8}" y="{y(share) + 4:.1f}" text-anchor="end">{share:.0%}</text>')
        parts.append(f'<text x="{x(ms):.1f}" y="{y(0) + 18}" text-anchor="middle">{ms:.0f}</text>')
    parts.append(f'<text x="{LEFT + plot_w / 2}" y="{HEIGHT - 8}" text-anchor="middle">latency, ms</text>')
    for index, (label, data) in enumerate(series.items()):
        colour = COLOURS[index % len(COLOURS)]
        ordered = sorted(data)
        points = f"{x(start):.1f},{y(0):.1f} " + " ".join(
            f"{x(v):.1f},{y((i + 1) / len(ordered)):.1f}" for i, v in enumerate(ordered)
        )
        if ordered:
            parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{points}"/>')
        legend_y = TOP + 18 * index
        parts.append(f'<rect x="{WIDTH - RIGHT + 15}" y="{legend_y}" width="12" height="12" fill="{colour}"/>')
        parts.append(f'<text x="{WIDTH - RIGHT + 32}" y="{legend_y + 10}">{escape(label)} (n={len(ordered)})</text>')
    parts.append("</svg>")
    return "\n".join(parts)
