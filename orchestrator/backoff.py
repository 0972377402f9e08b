"""When to poll a separation task next (pure: no clock, no I/O).

Every poll is one paced API request, and every second between a task's end and the poll
that sees it is a second its slot stays taken. The schedule spends polls where tasks end:

Probing, while the run knows nothing of the model yet (its first separations):

1. The first poll comes `poll.initial` seconds after submission; every later gap is the
   previous nominal gap times `MULTIPLIER` (1.5), capped at `poll.max`: with the defaults
   (3 s, 60 s) the gaps are 3, 4.5, 6.75, 10.1, ... 60, 60, ... A task is seen at most
   half its age late; a ten-minute task takes about fifteen polls.

Aiming, once the run has seen separations of the model end: `expected` is their mean
duration E, `spread` their mean absolute deviation S from it (see `scheduling.Poller`).
Most of them end in the window [E - S, E + S]:

2. Before the window: one poll when it opens, at E - S (never more than `poll.max` away:
   the ceiling holds however long the model takes).
3. In the window: a gap of S, the spacing of the ends it waits for, but at most `PACE`
   (15%) of the task's age: a task is seen at most 15% of its duration late.
4. Past the window: the gap grows with the lateness (S plus half of it), still at most
   15% of the task's age: a task later than any so far costs a few polls, not dozens.

With fixed durations (S near 0) that is one poll at the expected end and one
`poll.initial` later; with durations spread +-25%, one to four polls from E - S. (Opening
the window at E - 2S was measured too, with `bench/polling.py`: 6.5 polls per separation
instead of 5.0, for a mean delay of 6.5% of the duration instead of 7.0%.)

Everywhere: no gap is shorter than `poll.initial` or longer than `poll.max`, and none ends
past the task's deadline (`poll.timeout` after submission), so a task that never finishes
is seen at its deadline. Each gap is shortened at random by up to `JITTER` (a tenth) of
itself when probing, and of the window's step (S) when aiming, drawn from the task's own
RNG: tasks submitted together drift apart instead of polling in lock step, the wait for a
window is not cut short by a tenth of a long task, and a seeded RNG makes the schedule
reproducible in tests.

`next_poll_delay` is the whole schedule; `scheduling.Poller` keeps the due times and
learns E and S from the separations it sees end.
"""

from __future__ import annotations

import random
from typing import Protocol

from orchestrator.spec import PollSpec

MULTIPLIER = 1.5
JITTER = 0.1
PACE = 0.15  # when aiming, a gap is at most this share of the task's age


class Uniform(Protocol):
    """The part of `random.Random` the schedule uses."""

    def random(self) -> float: ...


def nominal_gap(polls_so_far: int, spec: PollSpec) -> float:
    """The un-jittered gap of the probing schedule before poll number `polls_so_far + 1`."""
    if polls_so_far < 0:
        raise ValueError("polls_so_far must be >= 0")
    gap = spec.initial
    for _ in range(polls_so_far):
        gap *= MULTIPLIER
        if gap >= spec.max:
            return spec.max
    return min(gap, spec.max)


def window_step(elapsed: float, spec: PollSpec, spread: float) -> float:
    """The gap between polls inside the window, for a task `elapsed` seconds old."""
    return max(spec.initial, min(spread, PACE * elapsed))


def next_poll_delay(
    polls_so_far: int,
    elapsed: float,
    spec: PollSpec,
    *,
    expected: float | None = None,
    spread: float | None = None,
    rng: Uniform,
) -> float:
    """Seconds from now until the next poll of a task.

    `polls_so_far` polls were made since the task was submitted `elapsed` seconds ago;
    `expected` and `spread` are the learned mean duration of a separation with this model
    and the mean deviation from it, when known (no spread: 0). The result is > 0 unless
    the deadline has passed (then 0: poll now, for the last time).
    """
    remaining = spec.timeout - elapsed
    if remaining <= 0:
        return 0.0
    if expected is None:
        gap = nominal_gap(polls_so_far, spec)
        gap *= 1.0 - JITTER * rng.random()
    else:
        s = spread or 0.0
        opens, closes = expected - s, expected + s
        if elapsed < opens:
            # Never less than a step: a poll that jitter brought a little before the window
            # is the window's first, not one more on the way to it.
            gap = max(opens - elapsed, window_step(elapsed, spec, s))
        elif elapsed <= closes:
            gap = window_step(elapsed, spec, s)
        else:
            late = elapsed - closes
            gap = max(spec.initial, min(PACE * elapsed, s + (MULTIPLIER - 1.0) * late))
        gap = min(gap, spec.max)
        gap -= JITTER * rng.random() * min(gap, max(spec.initial, s))
    return min(gap, remaining)


def task_rng(seed: int, task_id: str) -> random.Random:
    """A reproducible RNG for one task: the same seed and task id give the same jitter."""
    return random.Random(f"{seed}:{task_id}")
