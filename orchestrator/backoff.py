"""When to poll a separation task next (pure: no clock, no I/O).

Every poll is one paced API request, and every second between a task's end and the poll
that sees it is a second its slot stays taken. `scheduling.Poller` polls a task it
submitted by `learned_poll_delay`, aimed by what the run (and the runs before it: the
state keeps each model's brackets, `timings`) learned of its model's durations, and a
task resumed from an earlier run, whose age it does not know, by `next_poll_delay`.
(Longer than 400 lines: the measurements that chose the schedule are a quarter of it.)

Probing a resumed task, `next_poll_delay`
-----------------------------------------

It is polled at once, then the gaps start at `poll.initial` and grow `MULTIPLIER` (1.5)
times, capped at `poll.max`: with the defaults (3 s, 60 s) 3, 4.5, 6.75, 10.1, ... 60, 60.
Each gap is shortened at random by up to `JITTER` (a tenth) of itself, drawn from the
task's own RNG (`task_rng`): tasks resumed together drift apart instead of polling in lock
step, and a seeded RNG makes the schedule reproducible. No gap ends past the task's
deadline (`poll.timeout` from its resumption), so a task that never finishes is seen then.

The learned schedule, `learned_poll_delay` and `DurationModel`
--------------------------------------------------------------

A task's polls bracket its end: last seen pending L seconds after submission, seen ended
at U, it ended in (L, U]. A model's `DurationModel` keeps the latest 32 brackets
(`Aim.window`) and makes them a distribution (`end_spans`): each bracket's equal chance
spread evenly over its last part (max(L, 0.8 U), U]. A task found ended at its first poll
(L = 0) thus counts as having ended "somewhere in the last fifth before U", not "just
before U": its model keeps polling some tasks early enough to see where they end, which
is also how it follows tasks that get faster. From that distribution, `aimed_ladder`
chooses the ages at which to poll a new task, by dynamic programming: each poll costs 1,
each task's delay to be noticed costs that delay as a share of its duration divided by
`Aim.price` (0.015: a poll is worth 1.5% of a duration), and the chance that the next
task outlasts all 32 (1/33) pays every poll. The polls go where the chance of an end is
dense, as many as the price of a poll allows: for fixed durations one just past the end
(and, while found-ended tasks spread the chance over their last fifth, one before it: two
on average), for durations spread +-25% six or seven rungs, of which a task reaches three
or four on average. Past the ladder, a late task is polled at a gap that grows with its
lateness (half of it, from 2% to 15% of its age, at most `poll.max`); while a model has no
bracket yet, its tasks are probed with gaps growing 1.2 times (`Aim.probe`) from
`poll.initial`, and none is polled before half (`Aim.kin`) the oldest age at which a task
of its model was seen pending: an older sibling still running says this one most likely
is too, so only a model's first task pays the probing in full. Measured with the `versus`
benchmark's first nights (one run each): rate-limited (4 tasks a model, submitted minutes
apart) 3.54-3.71 polls a separation -> 3.06 at the same delay (12-17% -> 13.5%) and wall;
varied (20 a model, two at a time) 4.36 -> 4.04 polls, 7.2% -> 7.1%; fixed (a model's
first tasks all start together) the same, 2.41 polls at 2.1%. Offline, on
`schedule_sim`'s staggered workload (4 tasks a model, each submitted 30% of a duration
after the one before, default poll settings; 5 seeds): `kin` 0 11.8 polls at 8.5%, 0.3
10.3 at 9.5%, 0.5 8.9 at 8.4% (chosen: the least delay), 0.7 8.0 at 9.1%, 0.8 7.3 at
9.0%; the table's workloads submit a model's first tasks together, and read the same.

Two meanings of the poll settings change with it: an aimed poll may come sooner than
`poll.initial` after the one before (at least 2% of the age apart, `Aim.floor`), and the
wait for the first aimed poll is not capped by `poll.max` (capping it, measured below,
costs 1.3 polls a separation with the default 60 s for models of 2 to 5 minutes).

Chosen with `bench/schedule_sim.py`, which runs the schedules offline on the durations of
the benchmarks (5 seeds; "fixed": 5 s tasks, `poll: {initial: 1s, max: 5s}`, 8 in flight
per model, 84 per model; "varied": `bench/workloads.py`'s realistic durations, the
default poll settings, 2 in flight per model, 100 per model; "varied 20": the same with
20 per model, as in the `versus` benchmark; "drift": varied, whose durations grow by half
for tasks 40 to 69 of each model): polls per separation, and the mean delay to notice an
end as a share of the task's duration. "Informed": the model kept from an earlier run of
the same workload, as the state keeps it for the next night.

| schedule | fixed | varied | varied 20 | drift |
|---|---|---|---|---|
| learned (chosen) | 2.40, 1.6% | 3.46, 5.5% | 4.10, 7.1% | 3.94, 8.5% |
| learned, informed | 2.23, 1.4% | 3.33, 5.1% | 3.27, 4.9% | |
| the mean-and-spread window it replaced | 2.08, 18.4% | 4.34, 7.3% | 4.77, 8.2% | 4.68, 7.4% |
| the same, informed | 1.89, 14.6% | 4.26, 7.1% | 4.25, 7.0% | |
| `poll.max` caps the wait for aimed polls | 2.39, 1.3% | 4.85, 5.5% | 5.42, 6.9% | 5.43, 7.4% |
| price 0.01 (0.015 chosen) | 2.50, 1.5% | 4.04, 4.7% | 4.61, 6.3% | 4.58, 7.0% |
| price 0.02 | 2.33, 1.7% | 3.08, 6.2% | 3.89, 7.9% | 3.50, 10.1% |
| head 0.5 (0.8 chosen) | 3.00, 1.7% | 4.03, 5.4% | 4.69, 6.7% | 4.56, 7.4% |
| head 0.9 | 1.80, 1.7% | 2.72, 8.1% | 3.42, 10.4% | 3.28, 12.6% |
| window 16 (32 chosen) | 2.42, 1.6% | 3.42, 5.9% | 4.10, 7.2% | 3.54, 8.5% |
| window 64 | 2.34, 1.6% | 3.45, 5.4% | 4.10, 7.1% | 4.51, 6.4% |
| probing 1.5 times (1.2 chosen) | 1.76, 14.7% | 3.28, 5.9% | 3.31, 9.2% | 3.71, 9.2% |
| the ladder computed after every bracket | 2.33, 1.6% | 3.50, 5.4% | 4.14, 7.0% | 3.87, 8.6% |
| durations: the brackets' midpoints | 2.86, 2.1% | 3.75, 5.2% | 4.52, 6.2% | 4.30, 7.3% |
| durations: Turnbull's estimate | 1.76, 1.4% | 2.63, 9.1% | 3.47, 11.1% | 3.08, 13.3% |

No schedule can beat, on "varied", knowing each model's distribution exactly: 3.37 polls
at 4.1%, 2.88 at 5.0%, 2.54 at 5.8% (the same dynamic programming on 400 quantiles of
each). The learned schedule is about 1.4 points of delay above that at its polls: its
first tasks are probed, and 32 brackets, some of them wide, say less than the true
distribution. With 20 tasks per model, the probed first tasks weigh five times more: 4.1
polls at 7.1%, and 3.3 at 4.9% once informed by the night before. On "fixed", the first
wave (8 tasks per model probed at once, polled 4 times, up to 5.4 s) is seen 4% late: 0.4
of the 1.6 points. A window of 64 follows the drift better but spends more polls on it;
Turnbull's estimate (the most likely distribution given the brackets) puts the chance of
a task found ended at its first poll just below that poll, so the first poll never moves
earlier (on "varied", a third of the tasks end before it); the midpoints do about as well
on "varied" and "drift", with a fifth more polls on "fixed". Spans and ladder are computed
again once an eighth of the brackets are new (`Aim.refresh`), not after each one: 41
microseconds of CPU per bracket instead of 140, with the same polls and delays (table).

Measured in real runs (`python -m bench versus`, README "Performance"), the Poller with
this schedule took 2.4 polls at 1.4-2.0% on the fixed workload (the mean-and-spread
window: 2.1 at 18.6%), 4.4 at 7.3% on the varied one (5.0 at 8.1%), and 3.3 at 4.9% on
the varied one's second night; with `Aim.kin`, 2.4 at 1.5%, 4.0 at 7.2% and 3.3 at 4.8%.
"""

from __future__ import annotations

import math
import random
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from orchestrator.spec import PollSpec

MULTIPLIER = 1.5
JITTER = 0.1


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


def next_poll_delay(polls_so_far: int, elapsed: float, spec: PollSpec, *, rng: Uniform) -> float:
    """Seconds from now until the next poll of a task resumed from an earlier run, probed.

    `polls_so_far` polls were made since it was resumed `elapsed` seconds ago: the gap is
    `nominal_gap`, shortened at random by up to `JITTER` of itself. The result is > 0
    unless the deadline has passed (then 0: poll now, for the last time).
    """
    remaining = spec.timeout - elapsed
    if remaining <= 0:
        return 0.0
    gap = nominal_gap(polls_so_far, spec) * (1.0 - JITTER * rng.random())
    return min(gap, remaining)


def task_rng(seed: int, task_id: str) -> random.Random:
    """A reproducible RNG for one task: the same seed and task id give the same jitter."""
    return random.Random(f"{seed}:{task_id}")


# --- the learned schedule: polls aimed from a model's distribution of durations ---------

Span = tuple[float, float, float]
"""(low, high, chance): a task ends in (low, high] with this chance, evenly spread."""


@dataclass(frozen=True)
class Aim:
    """The learned schedule's settings; the module docstring says how each was chosen."""

    window: int = 32  # brackets a model keeps, the latest: the schedule follows the API
    price: float = 0.015  # one poll is worth this much delay, as a share of a duration
    head: float = 0.8  # a task found ended at its first poll ended after this share of it
    floor: float = 0.02  # two aimed polls of a task are at least this share of its age apart
    piece: float = 0.04  # the ladder considers polls this share of the age apart, at least
    sliver: float = 0.01  # ... and merges neighbouring spans holding less chance than this
    probe: float = 1.2  # probing: each gap this many times the one before
    kin: float = 0.5  # probing: no poll before this share of a sibling's oldest pending age
    tail_pace: float = 0.15  # past the ladder, a gap is at most this share of the age
    tail_growth: float = 0.5  # ... and this share of the time since the ladder's last poll
    ceiling: bool = False  # whether `poll.max` caps the wait for an aimed poll too
    refresh: float = 0.125  # spans and ladder are computed again once this share is new


AIM = Aim()


class DurationModel:
    """What the run knows of one model's separation times, and the poll ages it calls for.

    It keeps the latest `aim.window` brackets: a task last seen pending L seconds after
    its submission (0: never) and seen ended at U ended in (L, U]. `spans` makes them a
    distribution of durations (`end_spans`), `ladder` the ages at which to poll a new task
    (`aimed_ladder`); both are computed again, when next asked for, once `aim.refresh` of
    the kept brackets are new (after each of the first 8, then every 2nd, every 4th).
    Plain data both ways (`to_dict`, `from_dict`), for a store to keep across runs.
    """

    def __init__(self, brackets: Iterable[tuple[float, float]] = (), aim: Aim = AIM) -> None:
        self.aim = aim
        self._brackets: deque[tuple[float, float]] = deque(maxlen=aim.window)
        self._spans: tuple[Span, ...] | None = None
        self._ladder: tuple[float, ...] | None = None
        self._new = 0  # brackets since spans and ladder were last computed
        self.longest_pending = 0.0  # the oldest age at which a task was seen pending (a run's)
        for pending, ended in brackets:
            self.observe(pending, ended)

    def __len__(self) -> int:
        return len(self._brackets)

    def observe(self, pending: float, ended: float) -> None:
        """A task was last seen pending `pending` s after submission (0: never) and seen
        ended at `ended` s. ValueError for times that cannot be (ended <= 0, a negative
        or non-finite number)."""
        ended = _seconds(ended)
        pending = _seconds(pending)
        if ended <= 0:
            raise ValueError(f"a task is seen ended after its submission, not at {ended!r} s")
        self._brackets.append((pending if pending < ended else 0.0, ended))
        self._new += 1
        if self._new >= max(1.0, self.aim.refresh * len(self._brackets)):
            self._spans = self._ladder = None
            self._new = 0

    def seen_pending(self, age: float) -> None:
        """A task of the model was seen pending `age` seconds after its submission: while
        nothing ended yet, its younger siblings wait (`learned_poll_delay`). Not kept
        across runs (`to_dict`): the brackets are."""
        if age > self.longest_pending:
            self.longest_pending = age

    def spans(self) -> tuple[Span, ...]:
        """Where the kept tasks ended (`end_spans`)."""
        if self._spans is None:
            self._spans = end_spans(self._brackets, self.aim)
        return self._spans

    def ladder(self) -> tuple[float, ...]:
        """The ages (s after submission) at which to poll a new task (`aimed_ladder`)."""
        if self._ladder is None:
            beyond = 1.0 / (len(self._brackets) + 1)
            self._ladder = aimed_ladder(self.spans(), beyond=beyond, aim=self.aim)
        return self._ladder

    def quantile(self, q: float) -> float:
        """The `q`-quantile (0..1) of the durations; ValueError when nothing is known."""
        spans = self.spans()
        if not spans:
            raise ValueError("no durations observed yet")
        total = 0.0
        for low, high, chance in spans:
            if total + chance >= q:
                return low + (high - low) * max(0.0, q - total) / chance
            total += chance
        return spans[-1][1]

    def mean(self) -> float | None:
        """The mean duration, None when nothing is known (for the progress display's ETA)."""
        spans = self.spans()
        total = sum(chance for _, _, chance in spans)
        if not total:
            return None
        return sum((low + high) / 2 * chance for low, high, chance in spans) / total

    def deviation(self) -> float | None:
        """The mean absolute deviation of the durations from `mean`, None when nothing is
        known."""
        mean = self.mean()
        if mean is None:
            return None
        spans = self.spans()
        total = sum(chance for _, _, chance in spans)
        return sum(abs((low + high) / 2 - mean) * chance for low, high, chance in spans) / total

    def to_dict(self) -> dict[str, Any]:
        """`{"brackets": [[pending, ended], ...]}`, oldest first."""
        return {"brackets": [[low, high] for low, high in self._brackets]}

    @classmethod
    def from_dict(cls, data: Any, aim: Aim = AIM) -> DurationModel:
        """The model `to_dict` described; ValueError saying what is wrong otherwise."""
        brackets = data.get("brackets") if isinstance(data, dict) else None
        if not isinstance(brackets, list) or not all(
            isinstance(b, list | tuple) and len(b) == 2 for b in brackets
        ):
            raise ValueError("a duration model reads {'brackets': [[pending, ended], ...]}")
        return cls(((b[0], b[1]) for b in brackets), aim)


def _seconds(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"a time is a number of seconds, not {value!r}")
    if not 0 <= value < math.inf:
        raise ValueError(f"a time is a finite number of seconds >= 0, not {value!r}")
    return float(value)


def end_spans(brackets: Iterable[tuple[float, float]], aim: Aim = AIM) -> tuple[Span, ...]:
    """Where tasks end, from their brackets: each bracket's equal chance spread evenly over
    it, cut to its last part, (max(L, `aim.head` U), U]; summed, as spans between the
    brackets' ends (a bracket of no width is a point: a span of no width).

    A task found ended at its first poll (L = 0) ended "somewhere before U": not taken to
    mean "just before U", so the ladder keeps polling some tasks early enough to see
    where they end, and follows a model whose tasks get faster.
    """
    clipped = [(max(low, aim.head * high), high) for low, high in brackets]
    if not clipped:
        return ()
    cuts = sorted({v for bracket in clipped for v in bracket})
    index = {v: i for i, v in enumerate(cuts)}
    weight = 1.0 / len(clipped)
    density = [0.0] * len(cuts)  # a difference array over the spans between cuts
    points = [0.0] * len(cuts)
    for low, high in clipped:
        if high > low:
            d = weight / (high - low)
            density[index[low]] += d
            density[index[high]] -= d
        else:
            points[index[high]] += weight
    spans = []
    running = 0.0
    for k in range(len(cuts) - 1):
        running += density[k]
        chance = running * (cuts[k + 1] - cuts[k])
        if chance > 1e-12:
            spans.append((cuts[k], cuts[k + 1], chance))
    spans += [(cuts[k], cuts[k], c) for k, c in enumerate(points) if c > 0]
    spans.sort(key=lambda span: (span[1], span[0]))
    return tuple(spans)


def aimed_ladder(spans: Sequence[Span], *, beyond: float, aim: Aim = AIM) -> tuple[float, ...]:
    """The poll ages that cost least for tasks that end as `spans` say.

    A poll costs one; a task's delay to be noticed (from its end to the first poll at or
    after it) costs that delay as a share of its duration, divided by `aim.price`.
    `beyond` is the chance that a task outlasts every span: it pays every poll (and then
    follows the tail of `learned_poll_delay`). Polls are chosen among the ends of the
    spans cut into pieces (`_pieces`), at least `aim.floor` of the age apart, by dynamic
    programming over the pieces: O(pieces^2), some 30 to 40 pieces from 32 brackets.
    """
    pieces = _pieces(spans, aim)
    n = len(pieces)
    if n == 0:
        return ()
    scale = 1.0 - beyond
    # Per piece, its chance w and w * c, where a poll at t costs it w * (t * c - 1): c is
    # the mean of 1 / s over its evenly spread ends s.
    weights, inverse = [0.0], [0.0]
    for low, high, chance in pieces:
        c = math.log(high / low) / (high - low) if high > low else 1.0 / high
        weights.append(weights[-1] + scale * chance)
        inverse.append(inverse[-1] + scale * chance * c)
    total = weights[-1] + beyond
    ends = [high for _, high, _ in pieces]
    cost = [0.0] * (n + 1)  # cost[i]: of what ends after the poll that caught pieces[:i]
    choice = [n] * (n + 1)
    for i in range(n - 1, -1, -1):
        earliest = ends[i - 1] * (1.0 + aim.floor) if i else 0.0
        best = math.inf
        for j in range(i + 1, n + 1):
            at = ends[j - 1]
            if at < earliest:
                at = earliest
            delay = (at * (inverse[j] - inverse[i]) - (weights[j] - weights[i])) / aim.price
            if delay >= best:
                break  # the delay only grows with j, and cost[j] >= 0
            if delay + cost[j] < best:
                best, choice[i] = delay + cost[j], j
        cost[i] = total - weights[i] + best  # every poll is paid by what is still open
    ladder: list[float] = []
    i = 0
    while i < n:
        i = choice[i]
        at = ends[i - 1]
        ladder.append(max(at, ladder[-1] * (1.0 + aim.floor)) if ladder else at)
    return tuple(ladder)


def _pieces(spans: Sequence[Span], aim: Aim) -> list[Span]:
    """`spans` as the pieces the ladder chooses among, each from `aim.head` of its end at
    the earliest: neighbours holding less than `aim.sliver` together merged (up to
    `aim.piece` of their age wide), wide spans cut about `aim.piece` of their age wide (a
    poll may be due inside one) into pieces holding `aim.sliver` at least."""
    pieces: list[Span] = []
    for low, high, chance in spans:
        low = max(low, aim.head * high)
        if pieces:
            first, _, held = pieces[-1]
            if held + chance <= aim.sliver and high <= first * (1.0 + aim.piece):
                pieces[-1] = (min(first, low), high, held + chance)
                continue
        count = 1
        if high > low:
            count = min(
                math.ceil(math.log(high / low) / math.log1p(aim.piece)),
                math.ceil(chance / aim.sliver),
            )
            count = max(count, 1)
        ratio = (high / low) ** (1.0 / count)
        cut = [low * ratio**k for k in range(count)] + [high]
        pieces.extend((cut[k], cut[k + 1], chance / count) for k in range(count))
    return pieces


def learned_poll_delay(
    polls_so_far: int, elapsed: float, spec: PollSpec, model: DurationModel, *, rng: Uniform
) -> float:
    """Seconds from now until the next poll of a task, aimed by what `model` learned.

    While `model` is empty, probing: the first gap is `poll.initial`, each next one
    `model.aim.probe` times the one before (or `probe - 1` of the age, when longer), at
    most `poll.max`, shortened at random by up to `JITTER` of itself; and no poll before
    the age `aim.kin` of the longest a task of the model was seen pending (an older
    sibling still running: this one most likely is too). Then the next age of
    `model.ladder()`; past it, a gap that grows with the lateness (`aim.tail_growth` of
    it, from `aim.floor` to `aim.tail_pace` of the age, at most `poll.max`). No gap ends
    past the deadline (0: poll now, the last time).
    """
    remaining = spec.timeout - elapsed
    if remaining <= 0:
        return 0.0
    aim = model.aim
    if not len(model):
        gap = spec.initial * aim.probe ** min(polls_so_far, 100)
        gap = min(max(gap, (aim.probe - 1.0) * elapsed), spec.max) * (1.0 - JITTER * rng.random())
        return min(max(gap, aim.kin * model.longest_pending - elapsed), remaining)
    previous = 0.0
    for at in model.ladder():
        if at > elapsed * (1.0 + aim.floor):
            wait = at - elapsed
            return min(min(wait, spec.max) if aim.ceiling else wait, remaining)
        previous = at
    late = elapsed - previous
    gap = min(aim.tail_pace * elapsed, max(aim.floor * elapsed, aim.tail_growth * late))
    return min(gap, spec.max, remaining)
