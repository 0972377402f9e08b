"""Durations as YAML writes them: the one grammar of the manifest and the simulator's profiles.

    duration  := number | part+          surrounding spaces allowed, none inside
    part      := number unit              units h, m, s, ms: each at most once, largest first
    number    := digits [. digits] | . digits
    bare number: seconds

So `3s`, `0.5s`, `.5s`, `250ms`, `10m`, `1.5m`, `1h`, `1m30s`, `1s500ms`, `90`, and zero
(`0`, `0s`): a duration is never negative, infinite or NaN, and a boolean is not one. A
number in YAML (`90`, `2.5`) is seconds too. Whether zero is allowed is the field's own
rule, not the grammar's: the manifest's poll durations must be positive, a profile's
`created_time` may be `0s`.

Pure: no I/O; imports nothing of the package, so the simulator reads it too.
"""

from __future__ import annotations

import math
import re

HELP = "must be a duration like 3s, 0.5s, 250ms, 10m, 1h, 1m30s, or a number of seconds"

_UNIT_SECONDS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
_UNIT_ORDER = tuple(_UNIT_SECONDS)  # largest first
_PART = re.compile(r"(\d+(?:\.\d+)?|\.\d+)(ms|h|m|s)")
_PLAIN_NUMBER = re.compile(r"\d+(?:\.\d+)?|\.\d+")


def parse_duration(value: object) -> float:
    """Seconds (a finite float >= 0) from a duration written as the module docstring says.

    Raises `ValueError` (with `HELP` as its message) for anything else.
    """
    if isinstance(value, bool):
        raise ValueError(HELP)
    if isinstance(value, int | float):
        try:
            seconds = float(value)
        except OverflowError:  # an integer too large for a float
            raise ValueError(HELP) from None
    elif isinstance(value, str):
        seconds = _parse_text(value.strip())
    else:
        raise ValueError(HELP)
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(HELP)
    return seconds


def format_duration(seconds: float) -> str:
    """A duration as a manifest would spell it: `250ms`, `3s`, `10m`, `1m30s`, `1h`."""
    if seconds < 1:
        return f"{seconds * 1000:g}ms"
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{hours:g}h" if hours else "", f"{minutes:g}m" if minutes else ""]
    parts.append(f"{secs:g}s" if secs or not (hours or minutes) else "")
    return "".join(parts)


def _parse_text(text: str) -> float:
    if _PLAIN_NUMBER.fullmatch(text):
        return float(text)
    total, position, used = 0.0, 0, list[str]()
    for match in _PART.finditer(text):
        number, unit = match.groups()
        # Units must be contiguous, distinct and largest first: `1m30s`, not `30s1m`.
        if match.start() != position or (
            used and _UNIT_ORDER.index(unit) <= _UNIT_ORDER.index(used[-1])
        ):
            raise ValueError(HELP)
        total += float(number) * _UNIT_SECONDS[unit]
        position = match.end()
        used.append(unit)
    if not used or position != len(text):
        raise ValueError(HELP)
    return total
