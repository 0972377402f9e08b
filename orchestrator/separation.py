"""One job's separation: from its recorded state to a terminal task (`engine` runs it).

    reconcile   a key recorded without its task: what did it start? (`recovery`)
    create      a song's first model: its upload and the project's creation (`songs`)
    submit      read the project (a job the state knows nothing of may take the run's
                latest listing, `reads`), commit the key durably with its credits under
                `limits.max_credits` (`budget`), then POST it; a key already committed
                is sent again as it is
    wait        the poll loop's verdict (`scheduling.Poller`), recorded; a failed
                separation is submitted again, as a new attempt, up to `retries.tasks`

`Separation.run` says whether the separation ended in success; every other ending is
reported here (`outcomes`), with what `failures.on_failure` makes of it.
"""

from __future__ import annotations

from collections.abc import Callable

from orchestrator.api import YoukaClient
from orchestrator.budget import Budget, original_seconds
from orchestrator.errors import ApiError, InsufficientCreditsError
from orchestrator.failures import (
    Consequence,
    Fault,
    Step,
    fault_of,
    may_resubmit,
    on_failure,
    separation_fault,
)
from orchestrator.jobs import idempotency_key
from orchestrator.ledger import OverBudget
from orchestrator.lifecycle import Action, Status
from orchestrator.logs import get_logger
from orchestrator.outcomes import Outcomes
from orchestrator.reads import HOLD_SHARE, SharedReads
from orchestrator.recovery import Recovery
from orchestrator.scheduling import Poller, Ticket
from orchestrator.songs import SongSteps
from orchestrator.spec import Manifest
from orchestrator.state import JobRecord, StateStore
from orchestrator.tally import Tally
from orchestrator.wire import Project

log = get_logger()


class Separation:
    """The separation step of every job of a run; see the module docstring."""

    def __init__(
        self,
        manifest: Manifest,
        scope: str,
        *,
        store: StateStore,
        client: YoukaClient,
        budget: Budget,
        reads: SharedReads,
        poller: Poller,
        recovery: Recovery,
        songs: SongSteps,
        outcomes: Outcomes,
        tally: Tally,
    ) -> None:
        self.manifest = manifest
        self.scope = scope
        self.store = store
        self.client = client
        self.budget = budget
        self.reads = reads
        self.poller = poller
        self.recovery = recovery
        self.songs = songs
        self.outcomes = outcomes
        self.tally = tally

    async def run(self, ticket: Ticket) -> bool:
        """Get the job's separation to a terminal success; False when it ended otherwise."""
        job, action, attempt = ticket.job, ticket.decision.action, ticket.decision.attempt
        row: JobRecord | None = ticket.row
        resubmits = 0
        while True:
            if action is Action.RECONCILE:  # what did the recorded key start? (`recovery`)
                found = await self.recovery.settle(ticket)
                if found is None:
                    return False
                action, row = found, ticket.row
            if action is Action.RESUME_POLL:
                assert row is not None and row.task_id is not None
                task_id = row.task_id
                log.info("job.resumed", project=job.project, model=job.model, task_id=task_id)
            elif action is Action.CREATE:
                created = await self.songs.create(ticket)  # the song's upload and creation
                if created is None:
                    return False
                task_id, job = created, ticket.job  # the job is its new project's now
            else:
                if action is Action.SUBMIT:
                    key = await self._commit_key(ticket, attempt)
                    if key is None:
                        return False
                else:  # RESUBMIT_SAME_KEY: the key is already committed
                    assert row is not None and row.key is not None
                    key = row.key
                    if not await self._admit(ticket, key, attempt):
                        return False
                submitted = await self._submit(ticket, key, attempt)
                if submitted is None:
                    return False
                task_id = submitted
            self.outcomes.show(ticket, Status.SUBMITTED)
            ended = await self._wait(
                ticket, task_id, attempt, fresh=action is not Action.RESUME_POLL
            )
            if ended is None:
                return True
            consequence, reason = ended
            if consequence.resubmit and may_resubmit(resubmits, self.manifest.retries.tasks):
                resubmits += 1
                attempt += 1
                action = Action.SUBMIT
                log.info("job.resubmitting", project=job.project, model=job.model, attempt=attempt)
                continue  # the slots pass from the failed separation to the new one
            assert consequence.status is not None
            self.outcomes.fail(ticket, consequence.status, attempt, reason)
            return False

    async def _commit_key(self, ticket: Ticket, attempt: int) -> str | None:
        """Read the project, then commit the key durably (with its credits, under a
        ceiling); None when the job cannot go on."""
        job = ticket.job
        if self.budget.stopped_by is not None:  # not even a read for a job that cannot go
            self.outcomes.give_up(
                ticket, Step.READ, Fault.OVER_BUDGET, attempt, error=self.budget.stopped_by
            )
            return None
        try:
            # A job the state knows nothing of may take the run's latest read (`reads`).
            if ticket.row is None:
                project = await self.reads.listing(job.project)
            else:
                project = await self.reads.project(job.project)
        except ApiError as exc:
            self.outcomes.give_up(ticket, Step.READ, fault_of(exc), attempt, error=exc)
            return None
        known = [s.id for s in project.stems if s.model == job.model]
        key = idempotency_key(self.scope, job.project, job.model, attempt)

        def commit(also: Callable[[], None] | None) -> None:
            self.store.commit_key(
                job.project, job.model, attempt=attempt, key=key, known_stem_ids=known, also=also
            )

        if not await self._admit(ticket, key, attempt, commit, project):
            return None
        if ticket.row is not None and attempt == ticket.decision.attempt > ticket.row.attempt:
            self.tally.new_attempt(str(ticket.row.status))  # `retry`: a new, charged separation
        self.outcomes.show(ticket, Status.SUBMITTING)
        return key

    async def _admit(
        self,
        ticket: Ticket,
        key: str,
        attempt: int,
        commit: Callable[[Callable[[], None] | None], None] | None = None,
        project: Project | None = None,
    ) -> bool:
        """`Budget.admit` for the submission with `key` (`commit` None: committed before,
        priced from a fresh read of its project only when it holds no reservation); False,
        reported, when the ceiling or the balance forbids it."""

        async def seconds() -> float | None:
            return original_seconds(project or await self.reads.listing(ticket.job.project))

        job = ticket.job
        try:
            await self.budget.admit(
                key, subject=job.project, model=job.model, seconds=seconds, commit=commit
            )
        except (OverBudget, ApiError) as exc:  # ApiError: the project could not be read
            self.outcomes.give_up(ticket, Step.SUBMIT, Fault.OVER_BUDGET, attempt, error=exc)
            return False
        return True

    async def _submit(self, ticket: Ticket, key: str, attempt: int) -> str | None:
        """POST the separation with `key`; the task id, or None (recorded) on failure."""
        job = ticket.job
        try:
            task_id = await self.client.submit(job.project, job.model, key)
        except ApiError as exc:
            # A POST that may have been applied keeps `submitting`: the next run finds the
            # task it started (`recovery`) instead of starting a second separation.
            if isinstance(exc, InsufficientCreditsError):
                self.budget.refused(key, str(exc))  # nothing started: no further submission
            self.outcomes.give_up(ticket, Step.SUBMIT, fault_of(exc), attempt, error=exc)
            return None
        self.store.mark_submitted(job.project, job.model, task_id)
        log.info(
            "job.submitted",
            project=job.project,
            model=job.model,
            attempt=attempt,
            key=key,
            task_id=task_id,
        )
        return task_id

    async def _wait(
        self, ticket: Ticket, task_id: str, attempt: int, *, fresh: bool
    ) -> tuple[Consequence, str] | None:
        """Wait for the poll loop's verdict on `task_id` and record it; None when the
        separation succeeded, else what its failure does to the job, and why."""
        job = ticket.job
        facts: dict[str, object] = {"task": task_id, "timeout": self.manifest.poll.timeout}
        fault: Fault | None
        try:
            verdict = await self.poller.wait_terminal(task_id, job.project, job.model, fresh=fresh)
        except ApiError as exc:
            fault, facts["error"] = fault_of(exc), exc
        else:
            task = verdict.task
            if task is None:
                fault = Fault.TIMED_OUT
            elif task.succeeded:
                fault = None
                ticket.hold = HOLD_SHARE * verdict.seconds if fresh else 0.0
            else:
                fault = separation_fault(task.status)
                facts["error"] = task.status + (f": {task.error}" if task.error else "")
        ended: tuple[Consequence, str] | None = None
        status: str
        if fault is None:
            status = Status.SUCCEEDED
            self.store.mark_finished(job.project, job.model, status, error=None)
        else:
            consequence = on_failure(Step.POLL, fault)
            assert consequence.status is not None
            status = consequence.status
            self.outcomes.record(job, consequence, attempt, facts)
            ended = consequence, consequence.explain(**facts)
        self.outcomes.show(ticket, status)
        log.info(
            "job.separated" if status is Status.SUCCEEDED else "job.separation_ended",
            project=job.project,
            model=job.model,
            task_id=task_id,
            status=str(status),
        )
        return ended
