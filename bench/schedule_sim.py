"""Poll schedules, simulated offline: polls per separation and the delay to notice an end.

    python -m bench.schedule_sim [--seeds N] [--json PATH]

No network, no event loop: task durations are drawn from the benchmark workloads'
distributions, and each schedule of `orchestrator.backoff` is run against them as the
`Poller` runs it, learning as it goes. A model's tasks arrive `concurrent` at a time (the
next one is submitted when one is seen ended), so its first tasks are scheduled knowing
nothing, the later ones knowing the earlier ones. Each poll is made a little late (up to
`lag` seconds, the event loop's lag) and the client measures a task's age from its own
clock, a little after the simulator's submission (up to `lag` too). Per separation: the
polls it took, and (seen ended - ended) / (ended - submitted), the share of its duration
it waited to be noticed, as `bench/polling.py` measures it from the simulator.

Workloads:
- **fixed**: every task 5 s, 84 tasks per model, 8 in flight per model (the `versus`
  benchmark's 1,008 jobs at 100 in flight), `poll: {initial: 1s, max: 5s}`.
- **varied**: `bench/workloads.py`'s realistic durations (1 s created, 2 to 20 s queued,
  each model's time +-25%), 100 tasks per model, 2 in flight per model (the `polling`
  benchmark's 1,200 jobs at 24 in flight), the default `poll: {initial: 3s, max: 60s}`.
- **drift**: the varied workload whose durations all grow by half after the 40th task of
  each model, then shrink back after the 70th: how fast a schedule follows the API's pace.
- **staggered**: the varied durations, 4 tasks per model, each submitted 30% of a duration
  after the one before whether or not it ended (as slots freed by other models bring
  them, in the `versus` rate-limited workload): a model's first night, all probing.

Schedules: the Poller's (`next_poll_delay` with its learned mean and deviation), the
learned one (`learned_poll_delay`) with its settings (`backoff.AIM`) and with one setting
changed at a time, or another estimate of the durations (`bench/schedule_alternatives.py`);
"informed" rows start from the schedule an earlier whole run left (what a store keeps).
Printed per schedule: polls per separation and mean delay share (p90), over all tasks and
after each model's first 12. The **bound** rows are what no schedule can beat knowing each
model's true distribution in advance (polls only at the points of a large sample of it,
chosen by dynamic programming for each price of a poll): the frontier of polls per
separation against the mean delay. `orchestrator/backoff.py` records the results.
"""

from __future__ import annotations

import argparse
import dataclasses
import heapq
import json
import random
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from bench.schedule_alternatives import Current, MidpointModel, TurnbullModel
from bench.workloads import REALISTIC_DURATIONS
from orchestrator import backoff
from orchestrator.manifest import PollSpec

Sampler = Callable[[random.Random, int], float]  # (rng, index of the task) -> duration


@dataclass(frozen=True)
class Workload:
    name: str
    spec: PollSpec
    models: dict[str, Sampler]
    tasks_per_model: int
    concurrent: int
    lag: float
    # When set, a model's tasks do not wait for one another: each is submitted this share
    # of its model's first duration after the one before (slots freed by other models).
    stagger: float | None = None


def _fixed(_: random.Random, __: int) -> float:
    return 5.0


def _varied(base: float, drift: bool = False) -> Sampler:
    def draw(rng: random.Random, index: int) -> float:
        scale = 1.5 if drift and 40 <= index < 70 else 1.0
        return scale * (1.0 + rng.uniform(2.0, 20.0) + base * rng.uniform(0.75, 1.25))

    return draw


def workloads() -> dict[str, Workload]:
    """The fixed, varied and drifting workloads."""
    fixed_spec = PollSpec(initial=1.0, max=5.0, timeout=600.0)
    default_spec = PollSpec(initial=3.0, max=60.0, timeout=1800.0)
    return {
        "fixed": Workload(
            "fixed", fixed_spec, {m: _fixed for m in REALISTIC_DURATIONS}, 84, 8, 0.02
        ),
        "varied": Workload(
            "varied",
            default_spec,
            {m: _varied(b) for m, b in REALISTIC_DURATIONS.items()},
            100,
            2,
            0.2,
        ),
        "varied, 20 per model": Workload(
            "varied, 20 per model",
            default_spec,
            {m: _varied(b) for m, b in REALISTIC_DURATIONS.items()},
            20,
            2,
            0.2,
        ),
        "drift": Workload(
            "drift",
            default_spec,
            {m: _varied(b, drift=True) for m, b in REALISTIC_DURATIONS.items()},
            100,
            2,
            0.2,
        ),
        "staggered": Workload(
            "staggered",
            default_spec,
            {m: _varied(b) for m, b in REALISTIC_DURATIONS.items()},
            4,
            4,
            0.2,
            stagger=0.3,
        ),
    }


# --- the schedules under test ------------------------------------------------------------


class Schedule(Protocol):
    """One model's schedule, as the `Poller` drives it."""

    def delay(self, polls: int, age: float, rng: random.Random) -> float:
        """Seconds until the next poll of a task `age` s old, polled `polls` times so far."""
        ...

    def learn(self, pending: float, ended: float) -> None:
        """A task was last seen pending at `pending` s (0: never) and seen ended at `ended`."""
        ...

    def seen(self, pending: float) -> None:
        """A task was seen pending at `pending` s (the Poller's `seen_pending`)."""
        ...


class Learned:
    """`backoff.learned_poll_delay` with a `backoff.DurationModel` per model."""

    def __init__(self, spec: PollSpec, model: backoff.DurationModel | None = None) -> None:
        self.spec = spec
        self.model = model if model is not None else backoff.DurationModel()

    def delay(self, polls: int, age: float, rng: random.Random) -> float:
        return backoff.learned_poll_delay(polls, age, self.spec, self.model, rng=rng)

    def learn(self, pending: float, ended: float) -> None:
        self.model.observe(pending, ended)

    def seen(self, pending: float) -> None:
        self.model.seen_pending(pending)


# --- one workload, simulated -------------------------------------------------------------

STEADY_AFTER = 12  # a model's tasks from this one on are its steady state


@dataclass
class Outcome:
    """Per separation: its polls, its delay share, and its rank among its model's tasks."""

    polls: list[int]
    shares: list[float]
    ranks: list[int]

    def summary(self) -> dict[str, float | None]:
        steady = [i for i, rank in enumerate(self.ranks) if rank >= STEADY_AFTER]
        if not steady:  # too few tasks a model for a steady state
            return {
                "polls": round(statistics.mean(self.polls), 3),
                "delay_share": round(statistics.mean(self.shares), 4),
                "p90_delay_share": round(_percentile(self.shares, 90), 4),
                "max_polls": max(self.polls),
                "steady_polls": None,
                "steady_delay_share": None,
            }
        return {
            "polls": round(statistics.mean(self.polls), 3),
            "delay_share": round(statistics.mean(self.shares), 4),
            "p90_delay_share": round(_percentile(self.shares, 90), 4),
            "max_polls": max(self.polls),
            "steady_polls": round(statistics.mean(self.polls[i] for i in steady), 3),
            "steady_delay_share": round(statistics.mean(self.shares[i] for i in steady), 4),
        }

    def __add__(self, other: Outcome) -> Outcome:
        return Outcome(
            self.polls + other.polls, self.shares + other.shares, self.ranks + other.ranks
        )


def simulate(
    workload: Workload, make: Callable[[PollSpec], Schedule], seed: int, *, informed: bool = False
) -> Outcome:
    """Every model's tasks through one schedule per model; `informed`: the schedules
    first ran a whole earlier run of the workload (what a store kept from last night)."""
    outcome = Outcome([], [], [])
    for index, (model, draw) in enumerate(workload.models.items()):
        schedule = make(workload.spec)
        if informed:
            _one_model(workload, schedule, draw, random.Random(f"before:{seed}:{index}:{model}"))
        outcome += _one_model(workload, schedule, draw, random.Random(f"{seed}:{index}:{model}"))
    return outcome


def _one_model(w: Workload, schedule: Schedule, draw: Sampler, rng: random.Random) -> Outcome:
    # Events: (time, order, task); a task: [submitted, ends, client start, polls, last
    # pending age, rank].
    events: list[tuple[float, int, list[float]]] = []
    order = 0
    submitted = 0
    outcome = Outcome([], [], [])

    def submit(now: float) -> None:
        nonlocal order, submitted
        duration = draw(rng, submitted)
        start = now + rng.uniform(0.0, w.lag)  # the client's clock starts after the answer
        task = [now, now + duration, start, 0.0, 0.0, float(submitted)]
        submitted += 1
        delay = schedule.delay(0, 0.0, rng)
        order += 1
        heapq.heappush(events, (start + delay + rng.uniform(0.0, w.lag), order, task))

    if w.stagger is None:
        for _ in range(min(w.concurrent, w.tasks_per_model)):
            submit(0.0)
    else:  # a submission is an event too (an empty task): its first poll is planned then
        first = draw(random.Random(rng.random()), 0)
        for k in range(w.tasks_per_model):
            order += 1
            heapq.heappush(events, (k * w.stagger * first, order, []))
    while events:
        now, _, task = heapq.heappop(events)
        if not task:
            submit(now)
            continue
        submitted_at, ends, start, n, last_pending, rank = task
        n += 1
        age = now - start
        if now >= ends:
            outcome.polls.append(int(n))
            outcome.shares.append((now - ends) / (ends - submitted_at))
            outcome.ranks.append(int(rank))
            schedule.learn(last_pending, age)
            if w.stagger is None and submitted < w.tasks_per_model:
                submit(now)
            continue
        task[3], task[4] = n, age
        schedule.seen(age)
        delay = schedule.delay(int(n), age, rng)
        order += 1
        heapq.heappush(events, (now + delay + rng.uniform(0.0, w.lag), order, task))
    return outcome


# --- what no schedule can beat -----------------------------------------------------------


def frontier(
    workload: Workload, prices: Sequence[float], *, points: int = 400, seed: int = 0
) -> list[dict[str, float]]:
    """For each price (delay share one poll is worth), the optimal schedule of every model
    knowing its distribution exactly: mean polls per separation and mean delay share."""
    rows = []
    samples = []
    for index, draw in enumerate(workload.models.values()):
        rng = random.Random(f"bound:{seed}:{index}")
        big = sorted(draw(rng, 0) for _ in range(points * 10))
        # Equal-weight quantile points of a large sample: the distribution, discretized.
        samples.append(np.array([big[i * 10 + 5] for i in range(points)]))
    for price in prices:
        polls, delays = [], []
        for x in samples:
            p, d = _optimal(x, price)
            polls.append(p)
            delays.append(d)
        rows.append(
            {
                "price": price,
                "polls": round(float(np.mean(polls)), 3),
                "delay_share": round(float(np.mean(delays)), 4),
            }
        )
    return rows


def _optimal(x: np.ndarray, price: float) -> tuple[float, float]:
    """Optimal polls among the sorted points `x` (equal weights) for cost polls + delay /
    price; returns the mean polls and mean delay share of that schedule."""
    k = len(x)
    inv = np.concatenate([[0.0], np.cumsum(1.0 / x)])  # inv[j] = sum of 1/x[:j]
    value = np.zeros(k + 1)  # value[i]: cost of the tasks after point i, last poll at x[i-1]
    choice = np.zeros(k + 1, dtype=int)
    idx = np.arange(1, k + 1)  # poll at x[j-1] for j in 1..k
    for i in range(k - 1, -1, -1):
        js = idx[i:]
        delay = x[js - 1] * (inv[js] - inv[i]) - (js - i)  # over tasks i..j-1: delay shares
        cost = (k - i) + delay / price + value[js]
        best = int(np.argmin(cost))
        value[i] = cost[best]
        choice[i] = js[best]
    polls = delay_total = 0.0
    i = 0
    while i < k:
        j = int(choice[i])
        polls += k - i
        delay_total += float(x[j - 1] * (inv[j] - inv[i]) - (j - i))
        i = j
    return polls / k, delay_total / k


def _percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


# --- the report ----------------------------------------------------------------------------


def _learned(
    model: type[backoff.DurationModel] = backoff.DurationModel, **changes: Any
) -> Callable[[PollSpec], Schedule]:
    aim = dataclasses.replace(backoff.AIM, **changes)
    return lambda spec: Learned(spec, model(aim=aim))


SCHEDULES: dict[str, Callable[[PollSpec], Schedule]] = {
    "current (E, S window)": Current,
    "learned": _learned(),
    "learned, poll.max caps aimed waits": _learned(ceiling=True),
    "learned, price 0.01": _learned(price=0.01),
    "learned, price 0.02": _learned(price=0.02),
    "learned, head 0.5": _learned(head=0.5),
    "learned, head 0.9": _learned(head=0.9),
    "learned, window 64": _learned(window=64),
    "learned, window 16": _learned(window=16),
    "learned, probing x1.5": _learned(probe=1.5),
    "learned, no waiting for an older sibling (kin 0)": _learned(kin=0.0),
    "learned, ladder computed after every bracket": _learned(refresh=0.0),
    "learned, durations: bracket midpoints": _learned(MidpointModel),
    "learned, durations: Turnbull's estimate": _learned(TurnbullModel),
}
INFORMED = ("current (E, S window)", "learned")


def run(seeds: int) -> dict[str, Any]:
    """Every schedule on every workload over `seeds` seeds, and the bounds."""
    results: dict[str, Any] = {}
    for name, workload in workloads().items():
        rows: dict[str, Any] = {}
        for label, make in SCHEDULES.items():
            rows[label] = _merged(workload, make, seeds, informed=False)
            if label in INFORMED and name != "drift":
                rows[f"{label}, informed"] = _merged(workload, make, seeds, informed=True)
        if name != "drift":
            rows["bound"] = frontier(workload, [0.005, 0.01, 0.015, 0.02, 0.03, 0.04])
        results[name] = rows
    results["ladder_cpu_us"] = _ladder_cpu()
    return results


def _merged(
    workload: Workload, make: Callable[[PollSpec], Schedule], seeds: int, *, informed: bool
) -> dict[str, float | None]:
    outcome = Outcome([], [], [])
    for seed in range(seeds):
        outcome += simulate(workload, make, seed, informed=informed)
    return outcome.summary()


def _ladder_cpu() -> float:
    """Microseconds of CPU for one new bracket and the ladder it leads to (varied)."""
    workload = workloads()["varied"]
    schedule = Learned(workload.spec)
    draw = workload.models["mdx23c"]
    _one_model(workload, schedule, draw, random.Random(0))
    brackets = schedule.model.to_dict()["brackets"]
    started = time.process_time()
    for k in range(500):
        schedule.model.observe(*brackets[k % len(brackets)])
        schedule.model.ladder()
    return round((time.process_time() - started) / 500 * 1e6, 1)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.schedule_sim", description=__doc__)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    results = run(args.seeds)
    for name, rows in results.items():
        if not isinstance(rows, dict):
            print(f"{name}: {rows}")
            continue
        print(f"{name}:  polls, delay (p90); after a model's first {STEADY_AFTER} tasks")
        for label, row in rows.items():
            if label == "bound":
                print(
                    "  bound: "
                    + ", ".join(f"{r['polls']:.2f} at {100 * r['delay_share']:.1f}%" for r in row)
                )
                continue
            steady = (
                "-"
                if row["steady_polls"] is None
                else f"{row['steady_polls']:.2f}, {100 * row['steady_delay_share']:.1f}%"
            )
            print(
                f"  {label}: {row['polls']:.2f}, {100 * row['delay_share']:.1f}% "
                f"({100 * row['p90_delay_share']:.0f}%); {steady}"
            )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
