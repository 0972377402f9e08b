"""The poll schedules of one task: probing (capped exponential, for a task resumed from an
earlier run) and the learned one (a ladder from a model's distribution of durations)."""

from __future__ import annotations

import dataclasses
import json
import random

import pytest

from orchestrator.backoff import (
    AIM,
    JITTER,
    MULTIPLIER,
    DurationModel,
    end_spans,
    learned_poll_delay,
    next_poll_delay,
    nominal_gap,
    task_rng,
)
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


# --- the learned schedule ----------------------------------------------------------------


def _model(brackets: list[tuple[float, float]], **changes: float | int | bool) -> DurationModel:
    return DurationModel(brackets, aim=dataclasses.replace(AIM, **changes))


@pytest.mark.parametrize(
    ("brackets", "spans"),
    [
        ([(4.0, 6.0)], [(4.8, 6.0, 1.0)]),  # a wide bracket counts over its last fifth
        ([(5.5, 6.0)], [(5.5, 6.0, 1.0)]),  # a narrow one over all of it
        ([(0.0, 10.0)], [(8.0, 10.0, 1.0)]),  # found ended at the first poll: last fifth
        ([(9.0, 10.0), (0.0, 10.0)], [(8.0, 9.0, 0.25), (9.0, 10.0, 0.75)]),
        ([(1.0, 2.0), (3.0, 4.0)], [(1.6, 2.0, 0.5), (3.2, 4.0, 0.5)]),
    ],
)
def test_end_spans_spread_each_bracket_evenly_over_its_last_part(
    brackets: list[tuple[float, float]], spans: list[tuple[float, float, float]]
) -> None:
    """Each bracket's equal chance is spread evenly over (max(L, head U), U], summed."""
    got = end_spans(brackets)
    assert len(got) == len(spans)
    for (low, high, chance), expected in zip(got, spans, strict=True):
        assert (low, high, chance) == pytest.approx(expected)


def test_fixed_durations_get_one_poll_just_past_them() -> None:
    """Tasks that all end within 5.0 +- 0.01 s are polled once, at the latest end seen."""
    model = DurationModel([(4.99, 5.01)] * 20)
    assert model.ladder() == (5.01,)


def test_spread_durations_get_rungs_across_the_spread_at_least_a_floor_apart() -> None:
    """Durations spread over 50 to 100 s get several polls inside that range, increasing,
    each at least `floor` of its age after the one before."""
    model = DurationModel([(50.0 + k, 51.0 + k) for k in range(0, 50, 2)])
    ladder = model.ladder()
    assert len(ladder) >= 3
    assert ladder[0] >= 50.0 and ladder[-1] <= 100.0
    assert all(b >= a * (1 + AIM.floor) - 1e-9 for a, b in zip(ladder, ladder[1:], strict=False))


def test_a_cheaper_poll_buys_more_rungs() -> None:
    """The lower the price of a poll (in delay share), the more rungs the ladder has."""
    brackets = [(50.0 + k, 51.0 + k) for k in range(0, 50, 2)]
    cheap = _model(brackets, price=0.002).ladder()
    dear = _model(brackets, price=0.05).ladder()
    assert len(cheap) > len(dear) >= 1


def test_the_window_keeps_the_latest_brackets_only() -> None:
    """Past `window` brackets the oldest are dropped: the model follows a change of pace."""
    model = DurationModel()
    for _ in range(AIM.window):
        model.observe(9.9, 10.0)
    for _ in range(AIM.window):
        model.observe(19.9, 20.0)
    assert len(model) == AIM.window
    assert model.quantile(0.5) == pytest.approx(19.95)
    assert model.ladder() == (20.0,)


@pytest.mark.parametrize(
    ("pending", "ended"),
    [
        (-1.0, 5.0),
        (1.0, 0.0),
        (1.0, -2.0),
        (float("nan"), 5.0),
        (1.0, float("inf")),
        (True, 5.0),
        ("1", 5.0),
    ],
)
def test_impossible_times_are_refused(pending: object, ended: object) -> None:
    """A negative, zero, infinite, NaN or non-numeric time is a ValueError, not a bracket."""
    model = DurationModel()
    with pytest.raises(ValueError):
        model.observe(pending, ended)  # type: ignore[arg-type]
    assert len(model) == 0


def test_pending_at_or_after_the_end_counts_as_found_ended_at_the_first_poll() -> None:
    """A bracket whose L is not below U says only "before U": it counts over U's last fifth."""
    model = DurationModel([(10.0, 10.0)])
    assert model.spans() == ((8.0, 10.0, pytest.approx(1.0)),)


def test_a_model_survives_plain_data_both_ways() -> None:
    """`from_dict(to_dict())` gives the same brackets, hence the same ladder, via JSON."""
    model = DurationModel([(4.0, 6.0), (0.0, 5.5), (5.0, 5.2)])
    again = DurationModel.from_dict(json.loads(json.dumps(model.to_dict())))
    assert again.to_dict() == model.to_dict()
    assert again.ladder() == model.ladder()


@pytest.mark.parametrize(
    "data",
    [
        None,
        [],
        {},
        {"brackets": 3},
        {"brackets": [[1.0]]},
        {"brackets": [[1.0, "x"]]},
        {"brackets": [[-1.0, 2.0]]},
    ],
)
def test_a_damaged_model_is_refused_with_a_value_error(data: object) -> None:
    """Anything but `{"brackets": [[pending, ended], ...]}` of valid times: ValueError."""
    with pytest.raises(ValueError):
        DurationModel.from_dict(data)


def test_quantiles_read_the_spread_chance() -> None:
    """Quantiles interpolate within the spans; nothing known yet is a ValueError."""
    model = DurationModel([(9.0, 10.0), (19.0, 20.0)])
    assert model.quantile(0.25) == pytest.approx(9.5)
    assert model.quantile(0.75) == pytest.approx(19.5)
    with pytest.raises(ValueError):
        DurationModel().quantile(0.5)


def test_with_nothing_learned_tasks_are_probed_from_initial() -> None:
    """An empty model probes: gaps from `poll.initial`, each `probe` times the one before,
    at most `poll.max`; jitter only shortens them."""
    empty = DurationModel()
    gaps = [learned_poll_delay(n, 0.0, SPEC, empty, rng=Fixed(0.0)) for n in range(40)]
    assert gaps[0] == SPEC.initial
    assert gaps[1] == pytest.approx(SPEC.initial * AIM.probe)
    assert max(gaps) == SPEC.max == gaps[-1]
    low = learned_poll_delay(0, 0.0, SPEC, empty, rng=Fixed(0.999999))
    assert low == pytest.approx(SPEC.initial * (1 - JITTER), rel=1e-4)


def test_with_nothing_learned_a_task_waits_for_an_older_sibling_still_pending() -> None:
    """While no task of the model has ended, a task is not polled before `kin` of the age
    at which an older one was seen pending (it most likely runs as long), and is probed
    from there by its own age, not from `poll.initial` again; a task alone is probed as
    before, and once a task has ended its bracket decides."""
    model = DurationModel()
    model.seen_pending(40.0)  # an older task of the model, still pending at 40 s
    assert learned_poll_delay(0, 0.0, SPEC, model, rng=Fixed(0.0)) == AIM.kin * 40.0
    after = learned_poll_delay(1, 20.0, SPEC, model, rng=Fixed(0.0))
    assert after == pytest.approx((AIM.probe - 1.0) * 20.0) and after > SPEC.initial * AIM.probe
    alone = DurationModel()
    alone.seen_pending(5.0)  # its own last answer
    probed = learned_poll_delay(3, 5.0, SPEC, alone, rng=Fixed(0.0))
    assert probed == pytest.approx(SPEC.initial * AIM.probe**3)
    model.observe(30.0, 31.0)
    assert learned_poll_delay(0, 0.0, SPEC, model, rng=Fixed(0.0)) == model.ladder()[0]


THREE_RUNGS = [(99.9, 100.0)] * 10 + [(119.9, 120.0)] * 10 + [(129.9, 130.0)] * 10


@pytest.mark.parametrize(
    ("polls", "elapsed", "expected"),
    [
        (0, 0.0, 100.0),  # the first aimed poll: the first rung, however far
        (1, 100.0, 20.0),  # then the next rung
        (2, 119.0, 11.0),  # a rung closer than `floor` of the age is skipped
        (3, 130.0, 130.0 * AIM.floor),  # past the ladder: `floor` of the age first...
        (4, 170.0, 20.0),  # ... then half the lateness...
        (5, 300.0, 300.0 * AIM.tail_pace),  # ... at most `tail_pace` of the age...
        (6, 1000.0, SPEC.max),  # ... and `poll.max`
    ],
)
def test_aimed_polls_follow_the_ladder_then_the_tail(
    polls: int, elapsed: float, expected: float
) -> None:
    """With tasks ending at 100, 120 and 130 s: a poll at each in turn, then gaps that grow
    with the lateness."""
    model = DurationModel(THREE_RUNGS)
    assert model.ladder() == pytest.approx((100.0, 120.0, 130.0))
    delay = learned_poll_delay(polls, elapsed, SPEC, model, rng=Fixed(0.5))
    assert delay == pytest.approx(expected)


def test_the_wait_for_an_aimed_poll_is_capped_by_poll_max_only_when_asked() -> None:
    """A first rung 200 s away is waited for; with `ceiling`, no wait exceeds `poll.max`."""
    free = DurationModel([(199.0, 200.0)])
    capped = _model([(199.0, 200.0)], ceiling=True)
    assert learned_poll_delay(0, 0.0, SPEC, free, rng=Fixed(0.0)) == 200.0
    assert learned_poll_delay(0, 0.0, SPEC, capped, rng=Fixed(0.0)) == SPEC.max


def test_the_learned_schedule_never_passes_the_deadline() -> None:
    """A gap ends at the deadline at the latest; past it, poll now (0)."""
    model = DurationModel([(1799.0, 3000.0)])
    assert learned_poll_delay(1, 1790.0, SPEC, model, rng=Fixed(0.0)) == pytest.approx(10.0)
    assert learned_poll_delay(1, 1800.0, SPEC, model, rng=Fixed(0.0)) == 0.0
    assert learned_poll_delay(0, 0.0, SPEC, DurationModel(), rng=Fixed(0.0)) <= SPEC.timeout


def _run_tasks(
    model: DurationModel, durations: list[float], *, learn: bool = True
) -> tuple[float, float]:
    """Poll tasks of `durations` one after another (learning, unless told not to); the
    mean polls and delay share of the second half (the first half is for learning)."""
    rng = random.Random(7)
    polls_seen, shares = [], []
    for index, duration in enumerate(durations):
        elapsed, polls, pending = 0.0, 0, 0.0
        while elapsed < duration:
            pending = elapsed
            elapsed += learned_poll_delay(polls, elapsed, SPEC, model, rng=rng)
            polls += 1
        if learn:
            model.observe(pending, elapsed)
        if index >= len(durations) // 2:
            polls_seen.append(polls)
            shares.append((elapsed - duration) / duration)
    return sum(polls_seen) / len(polls_seen), sum(shares) / len(shares)


def test_tasks_of_one_duration_are_seen_within_two_percent_in_two_polls_or_fewer() -> None:
    """Once learned, 60 s tasks are noticed within 2% of their duration, in <= 2 polls."""
    polls, share = _run_tasks(DurationModel(), [60.0] * 80)
    assert polls <= 2.0 and share <= 0.02


def test_spread_durations_once_learned_cost_fewer_polls_and_less_delay_than_probing() -> None:
    """Durations of 45 to 75 s, once learned, take at most 4.5 polls and are seen within
    7% of their duration on average: fewer polls and less delay than probing alone."""
    rng = random.Random(3)
    durations = [rng.uniform(45.0, 75.0) for _ in range(200)]
    polls, share = _run_tasks(DurationModel(), durations)
    probed_polls, probed_share = _run_tasks(DurationModel(), durations, learn=False)
    assert polls <= 4.5 and share <= 0.07
    assert polls < probed_polls and share < probed_share
