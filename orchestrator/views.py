"""What the commands print: the run's summary, and `plan` and `status` from the state (pure).

`render_summary` is the text `run` and `retry` print on stdout, from the summary document
(`tally.summary_data`). `plan_rows` is what a run would do with each job, and
`status_tally` the jobs per status and model, both from the state alone, without any
network. `format_table` lays rows out in plain columns a script can `cut`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from orchestrator.jobs import JobId, idempotency_key
from orchestrator.lifecycle import Action, Mode, Recorded, Status, decide
from orchestrator.tally import Failure, Tally

# How many failures the text summary lists before pointing at summary.json.
MAX_LISTED = 20


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
    lines.extend(_advice(data))
    if data.get("output"):
        where = f"files in {data['output']}"
        lines.append(where + (f", summary in {data['summary']}" if data.get("summary") else ""))
    return "\n".join(lines)


def _advice(data: Mapping[str, Any]) -> list[str]:
    """What the summary asks of its reader: jobs only `retry` can move, what it costs, and
    a state that was rebuilt."""
    lines = []
    counts: Mapping[str, int] = data["counts"]
    stranded, attention = counts.get("stranded", 0), counts.get("needs_attention", 0)
    if stranded:
        lines.append(
            f"{stranded} job(s) stranded: the API no longer lists their stems; "
            "`stemsweep retry` separates them again (new separations: they cost credits)"
        )
    if attention:
        lines.append(
            f"{attention} job(s) need attention: a submission whose task cannot be told "
            "apart; each reason says what to check and how to re-send it (`retry --resend`)"
        )
    again: Mapping[str, int] = data.get("new_attempts") or {}
    if again:
        shown = ", ".join(f"{n} {status}" for status, n in again.items())
        lines.append(f"separated again, as new attempts that cost credits: {shown}")
    rebuilt: Mapping[str, Any] | None = data.get("state_rebuilt")
    if rebuilt:
        aside = f", kept aside as {rebuilt['kept_aside']}" if rebuilt.get("kept_aside") else ""
        lines.append(
            f"state was {rebuilt['found']}{aside}: rebuilt from "
            f"{rebuilt['jobs_from_job_json']} job.json file(s)"
        )
    return lines


def format_table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """Rows as plain aligned columns (easy to read, and to `cut`/`awk` in a script)."""
    cells = [[str(h) for h in headers], *([str(c) for c in row] for row in rows)]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells
    )


# --- plan and status: what the state says, without any network -------------------------


class RecordedJob(Protocol):
    """What plan and status read of a job's state row (`state.JobRecord`)."""

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
    jobs: Iterable[JobId],
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


def status_tally(
    jobs: Iterable[JobId], *, lookup: Callable[[str, str], RecordedJob | None]
) -> Tally:
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
