"""Horizontal bar charts as inline SVG: one bar per model, best first.

A bar may carry a whisker over its interquartile range across songs. Labels are never cut:
a model name longer than `LINE_CHARS` wraps after a `_`, `-` or `.` onto further lines,
and the row grows to hold them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from orchestrator.report.html_kit import esc, hue, residual_hue

# Characters of a label per line: the twelve models' names fit on one line (the longest
# has 43); longer names wrap.
LINE_CHARS: Final = 44
WIDTH: Final = 680
ROW: Final = 26  # height of a one-line row
LINE: Final = 15  # each further line of a label


@dataclass(frozen=True)
class Bar:
    """One bar: its label, value, the text after it, and an optional whisker (low, high)."""

    label: str
    value: float
    text: str
    low: float | None = None
    high: float | None = None


def label_lines(label: str, width: int = LINE_CHARS) -> list[str]:
    """`label` in lines of at most `width` characters, broken after `_`, `-` or `.` where
    possible (a longer run without one is cut at `width`)."""
    pieces: list[str] = []
    current = ""
    for char in label:
        current += char
        if char in "_-.":
            pieces.append(current)
            current = ""
    if current:
        pieces.append(current)
    lines: list[str] = []
    line = ""
    for piece in pieces:
        while len(piece) > width:  # no break point: cut
            if line:
                lines.append(line)
                line = ""
            lines.append(piece[:width])
            piece = piece[width:]
        if len(line) + len(piece) > width and line:
            lines.append(line)
            line = ""
        line += piece
    if line:
        lines.append(line)
    return lines or [""]


def bar_chart(bars: Sequence[Bar], *, residual: bool = False) -> str:
    """The chart of `bars` (best first). Bars grow with the value; for residuals (lower is
    better) with the value's magnitude, coloured by `residual_hue`."""
    lines = [label_lines(b.label) for b in bars]
    longest = max(len(line) for ls in lines for line in ls)
    label_w = min(16 + round(7.4 * LINE_CHARS), 16 + round(7.4 * longest))
    area = WIDTH - label_w - 190  # room for the value text after the bar
    sign = -1.0 if residual else 1.0
    values = [sign * b.value for b in bars]
    ends = values + [sign * v for b in bars for v in (b.low, b.high) if v is not None]
    best = max(values)
    top = max(ends)
    low = min(0.0, min(ends))
    scale = area / (top - low) if top > low else 0.0
    heights = [ROW + LINE * (len(ls) - 1) for ls in lines]
    out = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {sum(heights) + 8}" width="{WIDTH}"'
        f' height="{sum(heights) + 8}" role="img" xmlns="http://www.w3.org/2000/svg">'
    ]
    y = 4
    for bar, value, ls, height in zip(bars, values, lines, heights, strict=True):
        middle = y + height / 2
        length = max(2.0, (value - low) * scale)
        tone = residual_hue(bar.value) if residual else hue(value, best)
        first = middle + 4.5 - LINE * (len(ls) - 1) / 2
        text = "".join(
            f'<tspan x="{label_w - 10}" y="{first + LINE * i:.1f}">{esc(line)}</tspan>'
            for i, line in enumerate(ls)
        )
        whisker = ""
        end = label_w + length
        if bar.low is not None and bar.high is not None:
            x1 = label_w + (sign * bar.low - low) * scale
            x2 = label_w + (sign * bar.high - low) * scale
            x1, x2 = min(x1, x2), max(x1, x2)
            end = max(end, x2)
            whisker = (
                f'<path class="iqr" d="M{x1:.1f} {middle:.1f}H{x2:.1f}'
                f"M{x1:.1f} {middle - 5:.1f}V{middle + 5:.1f}"
                f'M{x2:.1f} {middle - 5:.1f}V{middle + 5:.1f}"/>'
            )
        out.append(
            f"<g><title>{esc(bar.label)}: {esc(bar.text)}</title>"
            f'<text text-anchor="end" class="label">{text}</text>'
            f'<rect x="{label_w}" y="{middle - (ROW - 8) / 2:.1f}" width="{length:.1f}"'
            f' height="{ROW - 8}" rx="3" fill="hsl({tone:.0f} 55% 47%)"/>{whisker}'
            f'<text x="{end + 8:.1f}" y="{middle + 4.5:.1f}" class="value">{esc(bar.text)}</text>'
            "</g>"
        )
        y += height
    out.append("</svg>")
    return "".join(out)
