"""What the state store and the run's report are told about a job as it moves and ends.

`Outcomes.give_up` applies a failure as `failures.on_failure` says: the state store is told
what the consequence's `record` names (`record`), and the job is reported failed (`fail`:
the tally, one `job.failed` log line). `show` moves a job to a status in the live counts;
`note` counts the types a done job could not deliver. The engine, and its reconciliation
(`recovery`), report through one `Outcomes`.
"""

from __future__ import annotations

from orchestrator.failures import Consequence, Fault, Record, Step, on_failure
from orchestrator.jobs import JobId
from orchestrator.lifecycle import Status
from orchestrator.logs import get_logger
from orchestrator.scheduling import Ticket
from orchestrator.state import JobRecord, StateStore
from orchestrator.tally import Failure, Note, Tally

log = get_logger()


class Outcomes:
    """Records and reports jobs' moves and failures, into one store and one tally."""

    def __init__(self, store: StateStore, tally: Tally) -> None:
        self.store = store
        self.tally = tally

    def give_up(
        self, ticket: Ticket, step: Step, fault: Fault, attempt: int, **facts: object
    ) -> None:
        """The job fails at `step`: recorded and reported as `failures.on_failure` says."""
        consequence = on_failure(step, fault)
        assert consequence.status is not None
        self.record(ticket.job, consequence, attempt, facts)
        self.fail(ticket, consequence.status, attempt, consequence.explain(**facts))

    def record(
        self, job: JobId, consequence: Consequence, attempt: int, facts: dict[str, object]
    ) -> None:
        """Tell the state store what `consequence` says it is told."""
        error = consequence.stored_error(**facts)
        project, model = job.project, job.model
        if consequence.record is Record.SKIPPED:
            self.store.mark_skipped(project, model, attempt=attempt, error=error)
        elif consequence.record is Record.ERROR:
            self.store.record_error(project, model, error)
        elif consequence.record is Record.FINISHED:
            assert isinstance(consequence.status, Status)
            self.store.mark_finished(project, model, consequence.status, error=error)
        elif consequence.record is Record.DOWNLOAD_FAILED:
            status = consequence.status or Status.DOWNLOAD_FAILED
            assert isinstance(status, Status)
            self.store.mark_download_failed(project, model, error, status=status)
        elif consequence.record is Record.NEEDS_ATTENTION:
            self.store.mark_needs_attention(project, model, error)
        elif consequence.record is Record.UNSENT:
            self.store.mark_unsent(project, model, attempt=attempt + 1, error=error)

    def show(self, ticket: Ticket, status: str) -> None:
        """Count the job under `status` in the live counts (instead of where it was)."""
        self.tally.move(ticket.job.model, ticket.shown, str(status))
        ticket.shown = str(status)

    def fail(self, ticket: Ticket, status: str, attempt: int, reason: str) -> None:
        """Report the job as ended without being done, with `reason`."""
        job = ticket.job
        self.show(ticket, status)
        self.tally.fail(Failure(job.project, job.model, str(status), attempt, reason))
        log.warning(
            "job.failed",
            project=job.project,
            model=job.model,
            status=str(status),
            attempt=attempt,
            reason=reason,
        )

    def note(self, ticket: Ticket, row: JobRecord | None) -> None:
        """Count the wanted types a done job did not deliver, or could not name safely."""
        if row is None:
            return
        job = ticket.job
        if row.missing_types:
            self.tally.note(Note(job.project, job.model, "missing", row.missing_types))
        if row.unsafe_types:
            self.tally.note(Note(job.project, job.model, "unsafe", row.unsafe_types))
