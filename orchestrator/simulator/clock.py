"""The simulator's one clock: real monotonic seconds, and simulated seconds that run faster.

Simulated time is real time since the simulator started multiplied by `time_scale`, so at
`time_scale=100` a 60 s separation takes 0.6 s. Nothing ticks in the background: task states
are worked out from the clock whenever a request asks.
"""

from __future__ import annotations

import time
from collections.abc import Callable


class SimClock:
    """Real and simulated seconds since the simulator started."""

    def __init__(self, time_scale: float = 1.0, source: Callable[[], float] = time.monotonic):
        if not time_scale > 0:
            raise ValueError(f"time_scale must be positive, got {time_scale!r}")
        self.time_scale = time_scale
        self._source = source
        self._start = source()

    def real(self) -> float:
        """Real seconds since the start."""
        return self._source() - self._start

    def now(self) -> float:
        """Simulated seconds since the start."""
        return self.real() * self.time_scale
