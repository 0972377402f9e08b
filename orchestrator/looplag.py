"""Event-loop lag, sampled while a run goes (for benchmarks and diagnosis).

With `STEMSWEEP_LOOP_LAG=PATH` in the environment, `run` and `retry` run one more task in
their task group: it sleeps `INTERVAL` seconds again and again and records by how much each
sleep overshot. The overshoot is the time the loop spent on other work before it could
wake the sampler: the lag every other task (a poll answer, a download chunk) suffers too.
At the end of the run, the samples are written to PATH as JSON.
"""

from __future__ import annotations

from array import array
from collections.abc import Callable
from pathlib import Path
from typing import Any

from orchestrator.clock import Clock
from orchestrator.files import write_json_atomic

ENV_LOOP_LAG = "STEMSWEEP_LOOP_LAG"
INTERVAL = 0.010


class LagSampler:
    """Samples the loop's lag every `interval` seconds, with a load figure per sample."""

    def __init__(
        self, clock: Clock, *, load: Callable[[], int], interval: float = INTERVAL
    ) -> None:
        self._clock = clock
        self._load = load
        self.interval = interval
        self._start = clock.now()
        # Flat arrays: a long run takes tens of thousands of samples.
        self.at = array("d")
        self.lag = array("d")
        self.load = array("l")

    async def run(self) -> None:
        """Sample until cancelled."""
        while True:
            before = self._clock.now()
            await self._clock.sleep(self.interval)
            after = self._clock.now()
            self.at.append(after - self._start)
            self.lag.append(max(0.0, after - before - self.interval))
            self.load.append(self._load())

    def document(self) -> dict[str, Any]:
        """The samples as plain data: seconds since start, lag in seconds, jobs in flight."""
        return {
            "interval": self.interval,
            "at": [round(t, 4) for t in self.at],
            "lag": [round(x, 6) for x in self.lag],
            "in_flight": list(self.load),
        }

    def write(self, path: Path) -> None:
        """Write the samples to `path` (atomically)."""
        write_json_atomic(path, self.document())
