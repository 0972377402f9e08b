"""The poll schedule of one task: capped exponential, jittered, bounded by the deadline."""

from __future__ import annotations

import random

import pytest

from orchestrator.backoff import JITTER, MULTIPLIER, PACE, next_poll_delay, nominal_gap, task_rng
from orchestrator.spec import PollSpec

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


def test_with_a_spread_the_first_poll_is_when_the_window_opens() -> None:
    """A young task with a learned mean E and spread S is first polled at E - S."""
    assert next_poll_delay(0, 0.0, SPEC, expected=50.0, spread=10.0, rng=Fixed(0.0)) == 40.0
    assert next_poll_delay(1, 30.0, SPEC, expected=50.0, spread=10.0, rng=Fixed(0.0)) == 10.0


def test_in_the_window_polls_are_a_spread_apart_and_at_most_pace_of_the_age() -> None:
    """Inside [E - S, E + S] the gap is S, but never above PACE of the task's age."""
    assert next_poll_delay(2, 45.0, SPEC, expected=50.0, spread=5.0, rng=Fixed(0.0)) == 5.0
    wide = next_poll_delay(2, 45.0, SPEC, expected=50.0, spread=20.0, rng=Fixed(0.0))
    assert wide == pytest.approx(PACE * 45.0)


def test_past_the_window_gaps_grow_but_stay_within_pace_of_the_age() -> None:
    """A task later than the window is polled more sparsely as it gets later, within PACE."""
    gaps = [
        next_poll_delay(5, age, SPEC, expected=100.0, spread=10.0, rng=Fixed(0.0))
        for age in (111.0, 130.0, 200.0)
    ]
    assert gaps == sorted(gaps) and gaps[0] < gaps[-1]
    assert all(g <= PACE * age + 1e-9 for g, age in zip(gaps, (111.0, 130.0, 200.0), strict=True))


def test_aiming_jitter_is_a_share_of_the_step_not_of_the_long_wait() -> None:
    """Jitter cuts at most JITTER of the window step off the wait for a distant window."""
    calm = next_poll_delay(0, 0.0, SPEC, expected=55.0, spread=5.0, rng=Fixed(0.0))
    jittery = next_poll_delay(0, 0.0, SPEC, expected=55.0, spread=5.0, rng=Fixed(0.999999))
    assert calm == 50.0 and calm - jittery == pytest.approx(JITTER * 5.0, rel=1e-4)


def test_polls_of_a_known_model_are_few_and_notice_ends_promptly() -> None:
    """Tasks of a model whose spread is known take a few polls and are seen soon after."""
    rng = random.Random(1)
    for duration in (80.0, 95.0, 100.0, 105.0, 110.0):
        elapsed, polls = 0.0, 0
        while elapsed < duration:
            elapsed += next_poll_delay(polls, elapsed, SPEC, expected=100.0, spread=10.0, rng=rng)
            polls += 1
        assert polls <= 5
        assert elapsed - duration <= max(SPEC.initial, PACE * duration)
