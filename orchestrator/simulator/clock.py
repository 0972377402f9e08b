"""The simulator's one clock: real monotonic seconds, and simulated seconds that run faster.

Simulated time is real time since the world began multiplied by `time_scale`, so at
`time_scale=100` a 60 s separation takes 0.6 s. Nothing ticks in the background: task states
are worked out from the clock whenever a request asks.

A world kept in a state folder resumes its clock: `resume` starts from the simulated and real
seconds saved last, plus the wall time that passed while the simulator was down (scaled by
the new time scale), so a task keeps running while its simulator is stopped, as a real API's
would. A wall clock set back meanwhile never moves the world's time backwards.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class ClockMark:
    """Where a clock stood at one wall-clock instant: what a state folder saves."""

    simulated: float
    real: float
    wall: float


class SimClock:
    """Real and simulated seconds since the world began."""

    def __init__(
        self,
        time_scale: float = 1.0,
        source: Callable[[], float] = time.monotonic,
        *,
        start_simulated: float = 0.0,
        start_real: float = 0.0,
        wall: Callable[[], float] = time.time,
    ):
        if not time_scale > 0:
            raise ValueError(f"time_scale must be positive, got {time_scale!r}")
        self.time_scale = time_scale
        self._source = source
        self._wall = wall
        self._start = source()
        self._simulated0 = start_simulated
        self._real0 = start_real

    @classmethod
    def resume(
        cls,
        mark: ClockMark,
        time_scale: float,
        source: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> SimClock:
        """A clock that continues from `mark`, counting the wall time since it as elapsed."""
        down = max(0.0, wall() - mark.wall)
        return cls(
            time_scale,
            source,
            start_simulated=mark.simulated + down * time_scale,
            start_real=mark.real + down,
            wall=wall,
        )

    def real(self) -> float:
        """Real seconds since the world began."""
        return self._real0 + (self._source() - self._start)

    def now(self) -> float:
        """Simulated seconds since the world began."""
        return self._simulated0 + (self._source() - self._start) * self.time_scale

    def mark(self) -> ClockMark:
        """Where the clock stands now, for a state folder."""
        return ClockMark(simulated=self.now(), real=self.real(), wall=self._wall())
