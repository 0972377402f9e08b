"""What a run counts while it goes, and the summary document it ends with (pure).

`Tally` keeps counts of jobs per status and model while a run goes (memory does not grow
with the number of jobs that succeed: only failures are listed one by one; the types done
jobs could not deliver are counted per model, the details being in each `job.json`); the
progress display reads it, with the separation durations the run has learned so far
(`durations`, the poll loop's) for its forecast. `summary_data` turns it into the document
written to `{out}/summary.json`; `views.render_summary` prints it. None of these ever sees
the API key or a URL.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from orchestrator.errors import StemsweepError
from orchestrator.lifecycle import Status

# Phases a job passes through in a run that are not recorded statuses.
QUEUED = "queued"  # not yet read from the manifest
WAITING = "waiting"  # read, waiting for a slot (per project, per model, in flight)
DOWNLOADING = "downloading"  # separation succeeded, files being fetched
NOT_STARTED = "not_started"  # the ceiling or too few credits (`failures.Outcome`)

# The order statuses are shown in: work in progress first, then outcomes.
DISPLAY_ORDER = (
    QUEUED,
    WAITING,
    Status.PENDING.value,
    Status.SUBMITTING.value,
    Status.SUBMITTED.value,
    Status.SUCCEEDED.value,
    DOWNLOADING,
    Status.DONE.value,
    Status.DOWNLOAD_FAILED.value,
    Status.FAILED.value,
    Status.CANCELLED.value,
    Status.TIMED_OUT.value,
    Status.SKIPPED.value,
    NOT_STARTED,
    Status.STRANDED.value,
    Status.NEEDS_ATTENTION.value,
)

# The phases and statuses of a job that is still going in a run; any other is where the job
# ended up for this run (done, or a failure of any kind).
GOING = frozenset(
    {
        QUEUED,
        WAITING,
        Status.SUBMITTING.value,
        Status.SUBMITTED.value,
        Status.SUCCEEDED.value,
        DOWNLOADING,
    }
)


class Durations(Protocol):
    """What a run has learned of its separations' durations (`scheduling.Poller`)."""

    def expected(self, model: str) -> float | None: ...
    def spread(self, model: str) -> float | None: ...


@dataclass(frozen=True)
class Failure:
    """A job that did not end `done`, and why."""

    project: str
    model: str
    status: str
    attempt: int
    reason: str


@dataclass(frozen=True)
class Note:
    """Stem types of a done job that were not downloaded: `missing` or `unsafe` names."""

    project: str
    model: str
    kind: str
    types: tuple[str, ...]


class Tally:
    """Jobs per (model, status) as a run goes, plus the failures and notes to report."""

    def __init__(self, total: int = 0) -> None:
        self.total = total
        self._counts: Counter[tuple[str, str]] = Counter()
        self.failures: list[Failure] = []
        self.notes: Counter[tuple[str, str, tuple[str, ...]]] = Counter()
        self.durations: Durations | None = None  # set by the run, read by the display
        self._settled = 0  # jobs counted straight into an end: done or failed before this run
        # New attempts (new keys: separations that cost credits) of jobs recorded with an
        # earlier attempt, by the status that attempt ended with (`failed`, `stranded`...).
        self.new_attempts: Counter[str] = Counter()

    def move(self, model: str, old: str | None, new: str) -> None:
        """One job of `model` went from `old` (None: not yet counted) to `new`."""
        if old is not None:
            self._counts[(model, old)] -= 1
            if self._counts[(model, old)] <= 0:
                del self._counts[(model, old)]
        elif new not in GOING:
            self._settled += 1
        self._counts[(model, new)] += 1

    def fail(self, failure: Failure) -> None:
        """Remember a job that ended without being done."""
        self.failures.append(failure)

    def new_attempt(self, earlier: str) -> None:
        """A job recorded as `earlier` got a new attempt (a new separation, charged)."""
        self.new_attempts[earlier] += 1

    def note(self, note: Note) -> None:
        """Count types a done job could not deliver, per (model, kind, types)."""
        self.notes[(note.model, note.kind, note.types)] += 1

    def _snapshot(self) -> dict[tuple[str, str], int]:
        # dict() copies in one C call, under the GIL: the progress display may read while
        # the event loop's thread updates the counts.
        return dict(self._counts)

    @property
    def seen(self) -> int:
        return sum(self._snapshot().values())

    @property
    def ended(self) -> int:
        """Jobs at an end (done, or not done for good in this run), earlier runs' included."""
        return sum(n for (_, status), n in self._snapshot().items() if status not in GOING)

    @property
    def ended_here(self) -> int:
        """Jobs this run took to an end: `ended` less those found there at the start (a done
        job skipped, a failed one reported again)."""
        return self.ended - self._settled

    def by_status(self) -> dict[str, int]:
        """Jobs per status, in display order; jobs not yet read count as `queued`."""
        snapshot = self._snapshot()
        counts: Counter[str] = Counter()
        for (_, status), n in snapshot.items():
            counts[status] += n
        queued = self.total - sum(snapshot.values())
        if queued > 0:
            counts[QUEUED] += queued
        return {s: counts[s] for s in _ordered(counts)}

    def by_model(self) -> dict[str, dict[str, int]]:
        """Jobs per model and status (jobs not yet read are not attributed to a model)."""
        table: dict[str, Counter[str]] = {}
        for (model, status), n in self._snapshot().items():
            table.setdefault(model, Counter())[status] += n
        return {m: {s: c[s] for s in _ordered(c)} for m, c in sorted(table.items())}


def _ordered(counts: Mapping[str, int]) -> list[str]:
    rank = {s: i for i, s in enumerate(DISPLAY_ORDER)}
    return sorted((s for s, n in counts.items() if n), key=lambda s: (rank.get(s, 99), s))


def exit_code_for(counts: Mapping[str, int], *, interrupted: bool) -> int:
    """0 when every job is done, 130 when interrupted, 1 otherwise."""
    if interrupted:
        return 130
    return 0 if all(status == Status.DONE for status, n in counts.items() if n) else 1


def summary_data(
    tally: Tally,
    *,
    run: Mapping[str, Any],
    interrupted: bool,
    stopped_by: StemsweepError | None = None,
) -> dict[str, Any]:
    """The run's summary document: `run` (manifest, times, requests...) plus the outcome.

    `stopped_by`: the error that ended the run early (the key rejected mid-run); the
    summary then says so and takes that error's exit code.
    """
    counts = tally.by_status()
    exit_code = exit_code_for(counts, interrupted=interrupted)
    return {
        **run,
        "interrupted": interrupted,
        **({"stopped_by": str(stopped_by)} if stopped_by is not None else {}),
        "exit_code": stopped_by.exit_code if stopped_by is not None else exit_code,
        "jobs": tally.total,
        "counts": counts,
        "per_model": tally.by_model(),
        "failed": [
            {
                "project": f.project,
                "model": f.model,
                "status": f.status,
                "attempt": f.attempt,
                "reason": f.reason,
            }
            for f in tally.failures
        ],
        "notes": [
            {"model": model, "kind": kind, "types": list(types), "jobs": n}
            for (model, kind, types), n in sorted(tally.notes.items())
        ],
        # Separations this run started again, each a new charge, by the earlier outcome.
        "new_attempts": dict(sorted(tally.new_attempts.items())),
    }
