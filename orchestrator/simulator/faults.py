"""Seeded randomness and fault decisions.

Every random choice the simulator makes is drawn from a stream named by its purpose
(`task_failure`, `queue_time`, `drop_connection`, ...), each stream seeded from the
simulator's seed and the purpose alone. The n-th draw of a purpose is therefore the same in
every run with the same seed, and a run that makes the same requests in the same order meets
the same faults.

A world resumed from a state folder draws from streams of its own generation (how many times
the world was started before): the same seed and the same history of restarts meet the same
faults, and ids drawn after a restart do not repeat the ids drawn before it.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import TypeVar

from orchestrator.simulator.record import Record

T = TypeVar("T")


class Dice:
    """Independent, reproducible random streams, one per purpose."""

    def __init__(self, seed: int, generation: int = 0) -> None:
        self._seed = seed
        # Generation 0 keeps the streams a world without a state folder has always had.
        self._prefix = f"{seed}:" if generation == 0 else f"{seed}:g{generation}:"
        self._streams: dict[str, random.Random] = {}

    def _stream(self, purpose: str) -> random.Random:
        stream = self._streams.get(purpose)
        if stream is None:
            stream = self._streams[purpose] = random.Random(self._prefix + purpose)
        return stream

    def random(self, purpose: str) -> float:
        """The next draw in [0, 1) of `purpose`."""
        return self._stream(purpose).random()

    def uniform(self, purpose: str, low: float, high: float) -> float:
        """The next draw in [low, high] of `purpose`."""
        return self._stream(purpose).uniform(low, high)

    def choice(self, purpose: str, options: Sequence[T]) -> T:
        """The next pick among `options` of `purpose`."""
        return self._stream(purpose).choice(options)

    def token(self, purpose: str, n_hex: int = 16) -> str:
        """The next random hex string of `purpose` (ids, secrets)."""
        return f"{self._stream(purpose).getrandbits(4 * n_hex):0{n_hex}x}"


class FaultRoller:
    """Decides each fault opportunity at its configured rate and records the outcome."""

    def __init__(self, dice: Dice, record: Record) -> None:
        self._dice = dice
        self._record = record

    def roll(self, kind: str, rate: float) -> bool:
        """True when this opportunity for fault `kind` gets the fault (never when `rate` is 0)."""
        if rate <= 0:
            return False
        hit = self._dice.random(kind) < rate
        self._record.fault_opportunity(kind, hit)
        return hit


class TokenBucket:
    """A requests-per-second limit: `rate` tokens a second, at most `burst` saved up.

    Time is passed in (real seconds), so the bucket is a pure state machine.
    """

    def __init__(self, rate: float, burst: float | None = None) -> None:
        self.rate = rate
        self.burst = burst if burst is not None else max(1.0, rate)
        self._tokens = self.burst
        self._last: float | None = None

    def take(self, now: float) -> bool:
        """Spend one token at real time `now`; False when the bucket is empty."""
        if self._last is not None:
            self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
        self._last = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False

    def wait_time(self) -> float:
        """Real seconds until the next token, as of the last `take`."""
        return max(0.0, (1.0 - self._tokens) / self.rate)
