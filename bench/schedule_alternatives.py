"""Schedules measured against the chosen one, for `bench/schedule_sim.py`: estimates of a
model's durations each a `DurationModel` whose `spans` says otherwise, and `Current`, the
schedule the Poller ran before the learned one (kept here to be measured against it)."""

from __future__ import annotations

import bisect
import random

from orchestrator import backoff
from orchestrator.spec import PollSpec

PACE = 0.15  # when aiming, a gap is at most this share of the task's age


class Current:
    """The Poller's schedule before the learned one: probing (`backoff.next_poll_delay`)
    until a model's first task ends, then aimed at a window learned from moving averages
    of the mean E and mean deviation S of the brackets' midpoints: first poll at E - S,
    then every S (at most `PACE` of the age), thinning out past E + S, each gap within
    [`poll.initial`, `poll.max`]."""

    def __init__(self, spec: PollSpec) -> None:
        self.spec = spec
        self.expected: float | None = None
        self.spread: float | None = None

    def _step(self, elapsed: float, spread: float) -> float:
        return max(self.spec.initial, min(spread, PACE * elapsed))

    def delay(self, polls: int, age: float, rng: random.Random) -> float:
        spec, expected = self.spec, self.expected
        remaining = spec.timeout - age
        if remaining <= 0:
            return 0.0
        if expected is None:
            return backoff.next_poll_delay(polls, age, spec, rng=rng)
        s = self.spread or 0.0
        opens, closes = expected - s, expected + s
        if age < opens:
            gap = max(opens - age, self._step(age, s))
        elif age <= closes:
            gap = self._step(age, s)
        else:
            late = age - closes
            gap = max(spec.initial, min(PACE * age, s + 0.5 * late))
        gap = min(gap, spec.max)
        gap -= backoff.JITTER * rng.random() * min(gap, max(spec.initial, s))
        return min(gap, remaining)

    def seen(self, pending: float) -> None:
        """Nothing: the window learns from ends only."""

    def learn(self, pending: float, ended: float) -> None:
        """Moving averages (memory 0.7; the first spread a quarter of the first duration)."""
        if pending > 0:
            seconds = (pending + ended) / 2
        else:
            step = self._step(ended, self.spread or 0.0)
            seconds = max(ended / 2, ended - step / 2)
        if self.expected is None or self.spread is None:
            self.expected, self.spread = seconds, 0.25 * seconds
            return
        old = self.expected
        self.expected = 0.7 * old + 0.3 * seconds
        self.spread = 0.7 * self.spread + 0.3 * abs(seconds - old)


class MidpointModel(backoff.DurationModel):
    """Alternative: each bracket's midpoint is a duration (0.9 U when found ended at the
    first poll); the n durations, sorted, bound n spans of equal chance: one up to the
    shortest (as wide as the gap after it) and one between each two."""

    def spans(self) -> tuple[backoff.Span, ...]:
        brackets = self.to_dict()["brackets"]
        x = sorted((low + high) / 2 if low > 0 else 0.9 * high for low, high in brackets)
        if len(x) < 2:
            return tuple((v, v, 1.0) for v in x)
        chance = 1.0 / len(x)
        first = (max(x[0] - (x[1] - x[0]), x[0] / 2), x[0], chance)
        return (first, *((a, b, chance) for a, b in zip(x, x[1:], strict=False)))


class TurnbullModel(backoff.DurationModel):
    """Alternative: Turnbull's self-consistent estimate. Its chance lies in the innermost
    intervals (a bracket's left end followed by another's right end, all ends sorted),
    each bracket's shared among those it holds in proportion to theirs, until settled."""

    rounds = 20

    def spans(self) -> tuple[backoff.Span, ...]:
        brackets = [(low, high) for low, high in self.to_dict()["brackets"]]
        ends = sorted([(high, 0) for _, high in brackets] + [(low, 1) for low, _ in brackets])
        innermost: list[tuple[float, float]] = []
        left: float | None = None
        for value, is_left in ends:
            if is_left:
                left = value
            elif left is not None:
                innermost.append((left, value))
                left = None
        lows = [low for low, _ in innermost]
        highs = [high for _, high in innermost]
        ranges = [
            (bisect.bisect_left(lows, low), bisect.bisect_right(highs, high))
            for low, high in brackets
        ]
        chance = [1.0 / len(innermost)] * len(innermost)
        for _ in range(self.rounds):
            prefix = [0.0]
            for c in chance:
                prefix.append(prefix[-1] + c)
            share = [0.0] * (len(chance) + 1)
            for first, stop in ranges:
                held = prefix[stop] - prefix[first]
                if held > 0:
                    share[first] += 1.0 / held
                    share[stop] -= 1.0 / held
            running = 0.0
            for j in range(len(chance)):
                running += share[j]
                chance[j] *= running / len(brackets)
        return tuple((a, b, c) for (a, b), c in zip(innermost, chance, strict=True) if c > 1e-9)
