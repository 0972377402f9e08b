"""The two gates every API request passes, shared by all the callers of one client.

    pause gate   closed until a deadline after a 429 (Retry-After, or an exponential backoff)
    limiter      one aiolimiter leaky bucket of `requests_per_second`

A request waits for the gate, then for the limiter, then for the gate again (a 429 may
have arrived while it waited for the limiter). After a 429 every caller pauses: for the
server's `Retry-After` when it sent one, else for `backoff_after_429` of the 429s in a
row; never longer than `max_pause`. The time is read and slept through the `Clock` seam.
Requests to other hosts than the API's (the storage host) pass neither gate.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextvars import ContextVar

from aiolimiter import AsyncLimiter

from orchestrator.clock import Clock
from orchestrator.wire import parse_retry_after

_ADMITTED: ContextVar[float] = ContextVar("stemsweep_admitted", default=0.0)


def admitted_at() -> float:
    """When the calling task's latest API request passed the gates (its clock's time): when
    it was sent, give or take the connection's own wait. The poll loop dates what a poll
    saw by it, not by when its answer came back."""
    return _ADMITTED.get()


def backoff_after_429(consecutive: int, *, initial: float, maximum: float) -> float:
    """The pause for every caller after the `consecutive`-th 429 in a row without Retry-After."""
    try:
        return float(min(maximum, initial * 2 ** max(0, consecutive - 1)))
    except OverflowError:
        return maximum


class PauseGate:
    """A deadline shared by every caller: nobody sends an API request before it has passed."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._until = 0.0

    def pause(self, seconds: float) -> None:
        """Keep the gate closed for at least `seconds` from now (never shortens a pause)."""
        self._until = max(self._until, self._clock.now() + max(0.0, seconds))

    def remaining(self) -> float:
        return max(0.0, self._until - self._clock.now())

    async def wait_open(self) -> None:
        # A loop, because another 429 may push the deadline while we sleep.
        while (remaining := self.remaining()) > 0:
            await self._clock.sleep(remaining)


class Pacer:
    """The pause gate and the limiter of one client; see the module docstring.

    `initial` and `maximum` shape the pause after 429s without `Retry-After`.
    """

    def __init__(
        self,
        requests_per_second: float,
        clock: Clock,
        *,
        initial: float,
        maximum: float,
        max_pause: float,
    ) -> None:
        if requests_per_second <= 0:
            raise ValueError("requests_per_second must be positive")
        # A leaky bucket: pacing at `requests_per_second`, bursts of at most ~1 s worth.
        if requests_per_second >= 1:
            self._limiter = AsyncLimiter(requests_per_second, 1.0)
        else:
            self._limiter = AsyncLimiter(1, 1.0 / requests_per_second)
        self._gate = PauseGate(clock)
        self._clock = clock
        self._initial = initial
        self._maximum = maximum
        self._max_pause = max_pause
        self._consecutive_429 = 0

    async def admit(self) -> None:
        """Wait until an API request may go: the pause gate, then the limiter, then the gate."""
        await self._gate.wait_open()
        await self._limiter.acquire()
        # A 429 may have arrived while this request waited for the limiter.
        await self._gate.wait_open()
        _ADMITTED.set(self._clock.now())

    def note_reply(self, status: int, retry_after: float | None) -> None:
        """Record a reply from the API host: after a 429, pause every caller."""
        if status != 429:
            self._consecutive_429 = 0
            return
        self._consecutive_429 += 1
        pause = retry_after
        if pause is None:
            pause = backoff_after_429(
                self._consecutive_429, initial=self._initial, maximum=self._maximum
            )
        self._gate.pause(min(pause, self._max_pause))

    def retry_after(self, headers: Mapping[str, str]) -> float | None:
        """A reply's `Retry-After` in seconds (an HTTP date read against its `Date`), at most
        `max_pause`; None when it sent none."""
        seconds = parse_retry_after(headers.get("Retry-After"), date=headers.get("Date"))
        return None if seconds is None else min(seconds, self._max_pause)

    def pause(self, seconds: float) -> None:
        """Hold back every API request of every caller for `seconds` from now."""
        self._gate.pause(seconds)

    def paused_for(self) -> float:
        """Seconds until API requests may be sent again (0 when not paused)."""
        return self._gate.remaining()
