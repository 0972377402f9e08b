"""Small pieces of the report's HTML: escaping, numbers, colours, names that wrap.

Every string that comes from the trees (model, project and file names, error messages) goes
through `esc` or `name`, and every link through `href`.
"""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from typing import Any, Final
from urllib.parse import quote

SPAN_DB: Final = 10.0  # colours run from red (this far behind the best) to green (the best)
DASH: Final = "–"


def esc(text: object) -> str:
    """`text` escaped for HTML text and attribute values."""
    return html.escape(str(text), quote=True)


def name(text: str) -> str:
    """A model or project name, escaped, free to wrap after each `_`, `-` or `.`: a long
    name stays whole and readable in a narrow column instead of running into the next."""
    escaped = esc(text)
    for mark in ("_", "-", "."):
        escaped = escaped.replace(mark, mark + "<wbr>")
    return escaped


def href(link: str) -> str:
    """A relative file link as an escaped URL (spaces, #, ? and the like encoded)."""
    return esc(quote(link, safe="/"))


def spoken(kind: str) -> str:
    """A stem type for headings: "backing_vocals" reads "backing vocals"."""
    return kind.replace("_", " ")


def number(value: float | None, digits: int = 1, unit: str = "") -> str:
    """A rounded number with a real minus sign, or a dash when unknown."""
    if value is None:
        return DASH
    text = f"{value:.{digits}f}".replace("-", "−")
    return f"{text}{unit}"


def spread(interval: Sequence[float] | None, digits: int = 1) -> str:
    """An interquartile range as "q1–q3", or a dash."""
    if not interval:
        return DASH
    return f"{number(interval[0], digits)}–{number(interval[1], digits)}"


def percent(share: float | None) -> str:
    """A 0..1 share as a percentage, showing small non-zero shares as such."""
    if share is None:
        return DASH
    if 0 < share < 0.001:
        return "<0.1%"
    return f"{share * 100:.1f}%"


def duration(seconds: float | None) -> str:
    """Seconds as "42 s" or "3 min 05 s"."""
    if seconds is None:
        return DASH
    if seconds < 60:
        return f"{seconds:.0f} s" if seconds >= 10 else f"{seconds:.1f} s"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest:02d} s"


def hue(value: float, best: float, span: float = SPAN_DB) -> float:
    """0 (red) when `span` or more below `best`, 125 (green) at `best`."""
    t = min(1.0, max(0.0, (value - (best - span)) / span))
    return 4.0 + 121.0 * t


def heat(value: float | None, best: float | None, span: float = SPAN_DB) -> str:
    """An inline style colouring a cell by how close `value` is to `best`."""
    if value is None or best is None:
        return ""
    return f' style="background:hsl({hue(value, best, span):.0f} 62% 90%)"'


def residual_hue(residual_db: float) -> float:
    """Green at -30 dB or below (the stems add up to the mix), red at -6 dB or above."""
    return hue(-residual_db, 30.0, 24.0)


def residual_style(residual_db: float | None) -> str:
    """An inline style colouring a residual cell."""
    if residual_db is None:
        return ""
    return f' style="background:hsl({residual_hue(residual_db):.0f} 62% 90%)"'


def models_text(names: Sequence[str]) -> str:
    """Model names in bold, comma separated."""
    return ", ".join(f"<b>{name(n)}</b>" for n in names)


def json_script(element_id: str, data: Any) -> str:
    """`data` as a JSON <script> block that no string in it can end early."""
    text = json.dumps(data, separators=(",", ":"))
    text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return f'<script type="application/json" id="{esc(element_id)}">{text}</script>'
