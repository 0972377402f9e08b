"""What a run reports: live counts, the end-of-run summary, and each job's `job.json` (pure).

`Tally` keeps counts of jobs per status and model while a run goes (memory does not grow
with the number of jobs that succeed: only failures are listed one by one; the types done
jobs could not deliver are counted per model, the details being in each `job.json`). `summary_data`
turns it into the document written to `{out}/summary.json` and `render_summary` into the
text printed on stdout. `job_document` is the content of `{out}/{model}/{project}/job.json`.
`plan_rows` and `status_tally` are what `stemsweep plan` and `stemsweep status` show, from
the state alone.
None of these ever sees the API key or a URL.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from orchestrator.errors import StemsweepError
from orchestrator.jobs import Job, idempotency_key
from orchestrator.lifecycle import Action, Mode, Recorded, Status, decide

# Phases a job passes through in a run that are not recorded statuses.
QUEUED = "queued"  # not yet read from the manifest
WAITING = "waiting"  # read, waiting for a slot (per project, per model, in flight)
DOWNLOADING = "downloading"  # separation succeeded, files being fetched

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
)
# How many failures the text summary lists before pointing at summary.json.
MAX_LISTED = 20


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

    def move(self, model: str, old: str | None, new: str) -> None:
        """One job of `model` went from `old` (None: not yet counted) to `new`."""
        if old is not None:
            self._counts[(model, old)] -= 1
            if self._counts[(model, old)] <= 0:
                del self._counts[(model, old)]
        self._counts[(model, new)] += 1

    def fail(self, failure: Failure) -> None:
        """Remember a job that ended without being done."""
        self.failures.append(failure)

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
    }


def render_summary(data: Mapping[str, Any]) -> str:
    """The summary as text for stdout: counts, per model, failures with reasons, where to look."""
    shard = f" (shard {data['shard']})" if data.get("shard") else ""
    lines = [
        f"stemsweep {data.get('mode', 'run')} {data.get('name', '')}{shard}: "
        f"{data['jobs']} jobs in {data.get('wall_seconds', 0.0):.1f}s, "
        f"{data.get('api_requests', 0)} API requests"
        + (" (interrupted)" if data["interrupted"] else ""),
        "  " + ", ".join(f"{status} {n}" for status, n in data["counts"].items()),
    ]
    per_model: Mapping[str, Mapping[str, int]] = data["per_model"]
    if per_model:
        width = max(len(m) for m in per_model)
        lines.append("per model:")
        for model, counts in per_model.items():
            shown = ", ".join(f"{s} {n}" for s, n in counts.items())
            lines.append(f"  {model:<{width}}  {shown}")
    failed: Sequence[Mapping[str, Any]] = data["failed"]
    if failed:
        lines.append(f"not done ({len(failed)}):")
        lines.extend(
            f"  {f['project']} {f['model']} [{f['status']}, attempt {f['attempt']}]: {f['reason']}"
            for f in failed[:MAX_LISTED]
        )
        if len(failed) > MAX_LISTED:
            lines.append(f"  ... and {len(failed) - MAX_LISTED} more in summary.json")
    notes: Sequence[Mapping[str, Any]] = data["notes"]
    if notes:
        lines.append("done, with types not delivered (details in each job.json):")
        lines.extend(
            f"  {n['model']}: {n['kind']} {', '.join(n['types'])} "
            f"({n['jobs']} job{'s' if n['jobs'] > 1 else ''})"
            for n in notes
        )
    if data.get("output"):
        where = f"files in {data['output']}"
        lines.append(where + (f", summary in {data['summary']}" if data.get("summary") else ""))
    return "\n".join(lines)


def job_document(
    *,
    project: str,
    model: str,
    key: str | None,
    attempt: int,
    task_id: str | None,
    status: str,
    submitted_at: str | None,
    finished_at: str | None,
    stems: Iterable[Mapping[str, Any]],
    missing_types: Sequence[str] = (),
    unsafe_types: Sequence[str] = (),
) -> dict[str, Any]:
    """The content of a job's `job.json`; each stem: id, type, duration, bytes, blake3, file.

    `file` is relative to the folder of `job.json`. No URL and no API key appear.
    """
    return {
        "project": project,
        "model": model,
        "key": key,
        "attempt": attempt,
        "task_id": task_id,
        "status": status,
        "submitted_at": submitted_at,
        "finished_at": finished_at,
        "stems": [dict(s) for s in stems],
        "missing_types": list(missing_types),
        "unsafe_types": list(unsafe_types),
    }


def format_table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """Rows as plain aligned columns (easy to read, and to `cut`/`awk` in a script)."""
    cells = [[str(h) for h in headers], *([str(c) for c in row] for row in rows)]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells
    )


# --- plan and status: what the state says, without any network -------------------------


class RecordedJob(Protocol):
    """What plan and status read of a job's state row (`state.JobRow`)."""

    @property
    def status(self) -> Status: ...
    @property
    def attempt(self) -> int: ...
    @property
    def key(self) -> str | None: ...
    @property
    def error(self) -> str | None: ...

    def recorded(self) -> Recorded: ...


@dataclass(frozen=True)
class PlanRow:
    """One job as `stemsweep plan` shows it."""

    project: str
    model: str
    recorded: str  # the recorded status, or `new`
    action: str  # what the next run would do (`lifecycle.Action`)
    attempt: int
    key: str  # the key the next submission carries (or the recorded one)
    folder: str  # where its files go, relative to the output root


def plan_rows(
    jobs: Iterable[Job],
    *,
    lookup: Callable[[str, str], RecordedJob | None],
    files_present: Callable[[str, str], bool],
    scope: str,
    mode: Mode,
) -> Iterator[PlanRow]:
    """What a `run` (or `retry`) would do with each job, from the state alone (streamed)."""
    for job in jobs:
        row = lookup(job.project, job.model)
        files_ok = row is not None and row.status is Status.DONE
        if files_ok:
            files_ok = files_present(job.project, job.model)
        decision = decide(row.recorded() if row else None, files_ok=files_ok, mode=mode)
        if decision.action is Action.SUBMIT or row is None or row.key is None:
            key = idempotency_key(scope, job.project, job.model, decision.attempt)
        else:
            key = row.key
        yield PlanRow(
            project=job.project,
            model=job.model,
            recorded="new" if row is None else str(row.status),
            action=str(decision.action),
            attempt=decision.attempt,
            key=key,
            folder=f"{job.model}/{job.project}",
        )


def status_tally(jobs: Iterable[Job], *, lookup: Callable[[str, str], RecordedJob | None]) -> Tally:
    """Jobs per status and model as the state records them; unstarted jobs are `pending`."""
    tally = Tally()
    for job in jobs:
        tally.total += 1
        row = lookup(job.project, job.model)
        status = Status.PENDING if row is None else row.status
        tally.move(job.model, None, str(status))
        if row is not None and status is not Status.DONE:
            reason = row.error or ""
            tally.fail(Failure(job.project, job.model, str(status), row.attempt, reason))
    return tally
