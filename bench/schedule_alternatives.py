"""Estimates of a model's durations measured against `backoff.end_spans`, for
`bench/schedule_sim.py`: each a `DurationModel` whose `spans` says otherwise."""

from __future__ import annotations

import bisect

from orchestrator import backoff


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
