"""How long the rest of a run should take, and how fast it goes (pure).

The forecast rests on what the poll loop has learned in this run: per model, the mean
duration E of a separation and its mean deviation S (`Tally.durations`, the `Poller`'s):

    left(m)   jobs of model m not yet separating (waiting, submitting), plus half of those
              separating now (on average half done)
    work      sum over models of left(m) * E(m), plus the jobs not yet read from the
              manifest * the mean E (their models are not known yet)
    lanes     the separations in flight now, at least 1: whatever holds the run back
              (max_in_flight, per_project, per_model, the request rate) shows there, so
              no limit has to be modelled
    ETA       work / lanes
    margin    sqrt(sum over models of left(m) * S(m)^2 / lanes): each lane runs about
              left / lanes separations whose durations vary independently

A model not seen to end yet counts at the mean E of the others. Before any separation has
ended there is no E: the forecast then follows the pace so far (jobs ended per second in
this run), and before any job has ended there is no forecast. Downloads are not counted:
they overlap the separations of other jobs.

Rejected: the pace alone (jobs ended so far / elapsed). It is wrong early, when the first
wave of separations is still running and nothing has ended, and again whenever a resumed
run skips finished jobs at thousands per second.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from orchestrator.lifecycle import Status
from orchestrator.tally import QUEUED, WAITING, Tally

NOT_SEPARATING = frozenset({WAITING, Status.SUBMITTING.value})
SEPARATING = frozenset({Status.SUBMITTED.value})


@dataclass(frozen=True)
class Forecast:
    """The time left (None: nothing to go on yet), its margin, and the pace so far."""

    seconds: float | None
    margin: float
    per_minute: float | None  # jobs this run took to an end, per minute of its time


def forecast(tally: Tally, elapsed: float) -> Forecast:
    """The forecast for a run `elapsed` seconds old, from its `tally`; see the module."""
    ended = tally.ended_here
    per_minute = ended / elapsed * 60 if elapsed > 0 and ended > 0 else None
    by_status = tally.by_status()
    going = sum(n for s, n in by_status.items() if s in NOT_SEPARATING | SEPARATING)
    queued = by_status.get(QUEUED, 0)
    if going + queued == 0:
        return Forecast(0.0 if tally.total else None, 0.0, per_minute)
    lanes = max(1, sum(n for s, n in by_status.items() if s in SEPARATING))
    left = {
        model: sum(n for s, n in per.items() if s in NOT_SEPARATING)
        + sum(n for s, n in per.items() if s in SEPARATING) / 2
        for model, per in tally.by_model().items()
    }
    learned = _learned(tally, list(left))
    if learned:
        mean_e = sum(e for e, _ in learned.values()) / len(learned)
        mean_s = sum(s for _, s in learned.values()) / len(learned)
        work = queued * mean_e
        variance = queued * mean_s**2
        for model, n in left.items():
            e, s = learned.get(model, (mean_e, mean_s))
            work += n * e
            variance += n * s**2
        return Forecast(work / lanes, math.sqrt(variance / lanes), per_minute)
    if per_minute is not None:
        remaining = tally.total - tally.ended
        return Forecast(remaining / per_minute * 60, 0.0, per_minute)
    return Forecast(None, 0.0, per_minute)


def _learned(tally: Tally, models: list[str]) -> dict[str, tuple[float, float]]:
    """(E, S) of every model with a learned duration."""
    durations = tally.durations
    if durations is None:
        return {}
    learned = {}
    for model in models:
        expected = durations.expected(model)
        if expected is not None:
            learned[model] = (expected, durations.spread(model) or 0.0)
    return learned


def format_seconds(seconds: float) -> str:
    """A duration as people read it: `45s`, `3m05s`, `2h07m`, `3d04h`."""
    whole = max(0, round(seconds))
    if whole < 60:
        return f"{whole}s"
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h{minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d{hours:02d}h"
