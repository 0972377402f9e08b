"""The poll schedule of one task: capped exponential, jittered, bounded by the deadline."""

from __future__ import annotations

import random

import pytest

from orchestrator.backoff import JITTER, MULTIPLIER, next_poll_delay, nominal_gap, task_rng
from orchestrator.manifest import PollSpec

SPEC = PollSpec(initial=3.0, max=60.0, timeout=1800.0)


class Fixed:
    """An RNG that always answers the same number."""

    def __init__(self, value: float) -> None:
        self.value = value

    def random(self) -> float:
        return self.value


def test_gaps_grow_geometrically_to_the_cap() -> None:
    """Gaps start at `initial`, grow by MULTIPLIER, and never exceed `max`."""
    gaps = [nominal_gap(n, SPEC) for n in range(15)]
    assert gaps[0] == 3.0
    assert gaps[1] == pytest.approx(3.0 * MULTIPLIER)
    assert all(b >= a for a, b in zip(gaps, gaps[1:], strict=False))
    assert max(gaps) == 60.0 and gaps[-1] == 60.0


def test_jitter_only_shortens_within_bounds() -> None:
    """Jitter takes at most JITTER off a gap, and none when the RNG says 0."""
    assert next_poll_delay(2, 10.0, SPEC, rng=Fixed(0.0)) == pytest.approx(nominal_gap(2, SPEC))
    low = next_poll_delay(2, 10.0, SPEC, rng=Fixed(0.999999))
    assert low == pytest.approx(nominal_gap(2, SPEC) * (1 - JITTER), rel=1e-4)


def test_never_past_the_deadline() -> None:
    """A gap ends at the deadline at the latest; past it, poll now (0)."""
    assert next_poll_delay(20, 1790.0, SPEC, rng=Fixed(0.0)) == pytest.approx(10.0)
    assert next_poll_delay(20, 1800.0, SPEC, rng=Fixed(0.0)) == 0.0
    assert next_poll_delay(20, 1900.0, SPEC, rng=Fixed(0.0)) == 0.0


def test_expected_duration_aims_at_the_expected_finish() -> None:
    """With a learned duration, a young task is next polled at its expected end (capped)."""
    assert next_poll_delay(0, 0.0, SPEC, expected=40.0, rng=Fixed(0.0)) == pytest.approx(40.0)
    assert next_poll_delay(0, 0.0, SPEC, expected=400.0, rng=Fixed(0.0)) == 60.0
    assert next_poll_delay(1, 39.0, SPEC, expected=40.0, rng=Fixed(0.0)) == 3.0


def test_late_tasks_are_polled_more_sparsely_as_they_get_later() -> None:
    """Past the expected end, gaps grow with the lateness, from `initial` up to `max`."""
    just_late = next_poll_delay(3, 41.0, SPEC, expected=40.0, rng=Fixed(0.0))
    very_late = next_poll_delay(9, 240.0, SPEC, expected=40.0, rng=Fixed(0.0))
    assert just_late == 3.0
    assert 3.0 < very_late <= 60.0


def test_same_task_same_jitter() -> None:
    """A task's RNG depends only on the seed and the task id: reproducible schedules."""
    a = [next_poll_delay(n, n, SPEC, rng=task_rng(1, "tsk_a")) for n in range(5)]
    b = [next_poll_delay(n, n, SPEC, rng=task_rng(1, "tsk_a")) for n in range(5)]
    c = [next_poll_delay(n, n, SPEC, rng=task_rng(1, "tsk_b")) for n in range(5)]
    assert a == b != c


def test_polls_of_a_ten_minute_task_are_few() -> None:
    """A task of Youka's typical 10 minutes is polled about a dozen times, not hundreds."""
    rng = random.Random(0)
    elapsed, polls = 0.0, 0
    while elapsed < 600.0:
        elapsed += next_poll_delay(polls, elapsed, SPEC, rng=rng)
        polls += 1
    assert 8 <= polls <= 25
