"""When to poll a separation task next (pure: no clock, no I/O).

The schedule of one task, from its submission:

1. The first poll comes `poll.initial` seconds after submission; every later gap is the
   previous nominal gap times `MULTIPLIER` (1.5), capped at `poll.max`: with the defaults
   (3 s, 60 s) the gaps are 3, 4.5, 6.75, 10.1, ... 60, 60, ...
2. Each gap is shortened by up to `JITTER` (a quarter) at random, drawn from the task's own
   RNG: tasks submitted together drift apart instead of polling in lock step, and a seeded
   RNG makes the schedule reproducible in tests.
3. No gap ends past the task's deadline (`poll.timeout` after submission), so a task that
   never finishes is seen at its deadline, not up to `poll.max` later.
4. With `expected` (how long a separation with this model has taken so far in the run),
   the schedule aims at the expected finish instead of probing from the start: while the
   task is younger than `expected`, the next poll is at the expected finish (never sooner
   than `poll.initial`, never later than `poll.max` away); once it is late, the gap is half
   its lateness (at least `poll.initial`, at most `poll.max`): polls come quickly just
   after the expected finish and thin out as the task gets later.

`next_poll_delay` is the whole schedule; the poll loop in `runner` only keeps due times.
"""

from __future__ import annotations

import random
from typing import Protocol

from orchestrator.manifest import PollSpec

MULTIPLIER = 1.5
JITTER = 0.25


class Uniform(Protocol):
    """The part of `random.Random` the schedule uses."""

    def random(self) -> float: ...


def nominal_gap(polls_so_far: int, spec: PollSpec) -> float:
    """The un-jittered gap before poll number `polls_so_far + 1`, in seconds."""
    if polls_so_far < 0:
        raise ValueError("polls_so_far must be >= 0")
    gap = spec.initial
    for _ in range(polls_so_far):
        gap *= MULTIPLIER
        if gap >= spec.max:
            return spec.max
    return min(gap, spec.max)


def next_poll_delay(
    polls_so_far: int,
    elapsed: float,
    spec: PollSpec,
    *,
    expected: float | None = None,
    rng: Uniform,
) -> float:
    """Seconds from now until the next poll of a task.

    `polls_so_far` polls were made since the task was submitted `elapsed` seconds ago;
    `expected` is the learned duration of a separation with this model, when known. The
    result is > 0 unless the deadline has passed (then 0: poll now, for the last time).
    """
    remaining = spec.timeout - elapsed
    if remaining <= 0:
        return 0.0
    if expected is not None and elapsed < expected:
        gap = min(max(expected - elapsed, spec.initial), spec.max)
    elif expected is not None:
        # Late: the gap grows with the lateness (geometric in time, like the plain schedule),
        # starting again from `poll.initial` at the expected finish.
        late = elapsed - expected
        gap = min(max(spec.initial, late * (MULTIPLIER - 1.0)), spec.max)
    else:
        gap = nominal_gap(polls_so_far, spec)
    gap *= 1.0 - JITTER * rng.random()
    return min(gap, remaining)


def task_rng(seed: int, task_id: str) -> random.Random:
    """A reproducible RNG for one task: the same seed and task id give the same jitter."""
    return random.Random(f"{seed}:{task_id}")
