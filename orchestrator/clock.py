"""The one seam for time: everything that measures time or sleeps goes through a `Clock`.

Tests and benchmarks substitute their own clock; production code uses `RealClock`. Calendar
time is read from the wall clock where it is recorded, not measured: the timestamps in the
state and the summary (`state.utc_now`), and the `{date}` of a key scope, resolved once when
a run (or `plan`) starts so that a run going past midnight keeps its keys.
"""

from __future__ import annotations

import time
from typing import Protocol

import anyio


class Clock(Protocol):
    def now(self) -> float:
        """Monotonic seconds."""

    async def sleep(self, seconds: float) -> None:
        """Sleep for `seconds` (no-op when <= 0)."""


class RealClock:
    """Monotonic wall time and anyio's sleep."""

    def now(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        if seconds > 0:
            await anyio.sleep(seconds)


REAL_CLOCK = RealClock()
