"""The engine's side of `reconcile`: for a job recorded `submitting` when the run started, the
key's age, the project's task history and what the tree knows of the project's tasks.

`Recovery.resolve` reads the history only when the key is past `idempotency_window` (within
it the re-sent key identifies its task, and no request is added); a project's history is
read once per run, whatever number of its jobs need it. `Recovery.settle` applies the
verdict for the engine: re-send the key, poll the adopted task (recorded as `submitted`),
or record the job `needs_attention` with what to check and the command that re-sends it.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from orchestrator.api import YoukaClient
from orchestrator.errors import ApiError
from orchestrator.failures import Fault, Step, fault_of
from orchestrator.jobs import JobId, Shard
from orchestrator.lifecycle import Action
from orchestrator.logs import get_logger
from orchestrator.outcomes import Outcomes
from orchestrator.reconcile import Resolution, Verdict, needs_history, reconcile, stamp_age
from orchestrator.scheduling import Ticket
from orchestrator.state import JobRecord
from orchestrator.wire import TaskHistory

log = get_logger()


class Recovery:
    """Decides, for each job whose key's answer was lost, what its key started.

    `command(job)` is the command line that re-sends `job`'s key on purpose.
    """

    def __init__(
        self,
        client: YoukaClient,
        outcomes: Outcomes,
        window: float,
        *,
        command: Callable[[JobId], str],
    ) -> None:
        self._client = client
        self._outcomes = outcomes
        self._store = outcomes.store
        self.window = window
        self._command = command
        self._histories: dict[str, TaskHistory] = {}

    def command_for(self, job: JobId) -> str:
        """The command line that re-sends `job`'s key on purpose."""
        return self._command(job)

    async def settle(self, ticket: Ticket) -> Action | None:
        """What to do with the ticket's key: `RESUBMIT_SAME_KEY`, or `RESUME_POLL` of the
        task it started (recorded, and the new row in `ticket.row`); None when the job stops
        here (recorded and reported: the history could not be read, or it needs attention)."""
        job, row = ticket.job, ticket.row
        assert row is not None
        try:
            found = await self.resolve(row)
        except ApiError as exc:
            self._outcomes.give_up(ticket, Step.RECONCILE, fault_of(exc), row.attempt, error=exc)
            return None
        log.info(
            "job.reconciled",
            project=job.project,
            model=job.model,
            verdict=str(found.verdict),
            task_id=found.task_id,
            reason=found.reason,
        )
        if found.verdict is Verdict.RESEND:
            return Action.RESUBMIT_SAME_KEY
        if found.verdict is Verdict.ADOPT:
            assert found.task_id is not None
            self._store.mark_submitted(job.project, job.model, found.task_id)
            ticket.row = self._store.get(job.project, job.model)
            return Action.RESUME_POLL
        error = attention_message(found, self._command(job))
        self._outcomes.give_up(ticket, Step.RECONCILE, Fault.AMBIGUOUS, row.attempt, error=error)
        return None

    async def resolve(self, row: JobRecord, now: datetime | None = None) -> Resolution:
        """The verdict for `row`'s key (`reconcile.reconcile`). Raises the `ApiError` of a
        history that could not be read."""
        age = key_age(row, now or datetime.now(UTC))
        if not needs_history(age, self.window):
            return reconcile(key_age=age, window=self.window)
        history = self._histories.get(row.project)
        if history is None:
            history = await self._client.project_tasks(row.project)
            self._histories[row.project] = history
        known = self._store.task_ids(row.project)
        return reconcile(
            key_age=age,
            window=self.window,
            unseen=[task for task in history.tasks if task.id not in known],
            complete=history.complete,
            unconfirmed=self._store.unconfirmed(row.project),
        )


def key_age(row: JobRecord, now: datetime) -> float | None:
    """Seconds since the row's key was committed (`key_at`; a row of an older store has
    only `updated_at`, a little later); None when neither reads as a time."""
    return stamp_age(row.key_at or row.updated_at, now)


def resend_command(manifest: Path, job: JobId, *, shard: Shard | None, out: Path | None) -> str:
    """The command that re-sends `job`'s recorded key on purpose."""
    parts = ["stemsweep", "retry", str(manifest)]
    if out is not None:
        parts += ["--out", str(out)]
    if shard is not None:
        parts += ["--shard", str(shard)]
    return " ".join([*parts, "--resend", f"{job.project}:{job.model}"])


def attention_message(resolution: Resolution, command: str) -> str:
    """What a job that needs attention tells its user: why, what to check, what to run."""
    return (
        f"{resolution.reason}. Check this project's separations in Youka; to send the key "
        "again (Youka answers with its earlier task while it remembers the key, else a new "
        f"separation starts and is charged): {command}"
    )


def creation_attention_message(resolution: Resolution, title: str, command: str) -> str:
    """What a song whose creation needs attention tells its user: why, what to check, what
    to run."""
    return (
        f"{resolution.reason}. Check the account's projects in Youka for one titled "
        f"{title!r}; if there is none, send the key again (Youka answers with the project it "
        f"made while it remembers the key, else a new project is made and charged): {command}"
    )
