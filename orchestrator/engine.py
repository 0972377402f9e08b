"""The engine of a run: every job of the manifest under the limits, in ONE `anyio` task group.

    dispatcher  reads jobs one by one, the songs' (`songs.SongSteps`) then `iter_jobs`'s,
                decides each from its recorded state (`lifecycle.decide`), and offers it to
                `Admission`; when the look-ahead buffer is full it waits for room, so a
                100,000-job manifest is never held in memory
    job tasks   one per admitted job (bounded by the limits): its separation
                (`separation`: read the project, commit the key with its credits under
                `limits.max_credits`, submit, wait for the poll loop's verdict; a song's
                creation job first uploads and creates its project, `songs`), then its
                files (`delivery`), and record what happened
    poll loop   ONE loop (`Poller`) that polls every task in flight, each on its own
                backoff schedule, from a heap of due times; no job task holds anything
                but its slots while it waits
    signals     SIGINT/SIGTERM cancel the group; every state change is already committed,
                so the next run resumes where this one stopped (exit 130)

Limits hold at every instant because a job task exists only while it holds its slots:

    in_flight   `max_in_flight`, from committing the key until the task is terminal
    model       `per_model[model]`, the same span, for capped models
    project     `per_project`, from the first request until the job's files are on disk
                (the next separation on the project may replace `stems[]`)
    active      a bound on job tasks (downloads included), so memory stays bounded

`requests_per_second` and the 429 pause are enforced by the client for every request.
What a failure does to a job (its status, what the state is told, the reason) is
`failures.on_failure`'s table; the engine applies it and reports the job (`Tally`, one
`job.done` or `job.failed` log line). A separation the client gives up on (past
`poll.timeout`, or a POST never confirmed) frees its slots: the client cannot see it any
more, and the next run picks it up again. A task resumed from an earlier run gets a whole
`poll.timeout` from the moment it is resumed. A key recorded without its task (`submitting`
when the run starts) is reconciled first (`recovery`). A key the API rejects mid-run, an
API that stopped answering, or a state store that cannot be written stops the run
(`RUN_STOPPERS`).
"""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path

import anyio
from anyio.abc import TaskGroup

from orchestrator.api import YoukaClient
from orchestrator.budget import Budget
from orchestrator.clock import Clock
from orchestrator.delivery import DOWNLOAD_CONCURRENCY, EXPIRED_URL_ROUNDS, Delivery, Undelivered
from orchestrator.errors import (
    ApiUnavailableError,
    CredentialsError,
    StateError,
    StemsweepError,
)
from orchestrator.failures import (
    UNEXPECTED,
    Step,
)
from orchestrator.jobs import JobId, Shard, iter_jobs, select_shard
from orchestrator.ledger import Ledger
from orchestrator.lifecycle import Action, Mode, Status, decide, reported_again
from orchestrator.logs import get_logger, log_context
from orchestrator.looplag import LagSampler
from orchestrator.outcomes import Outcomes
from orchestrator.reads import SharedReads
from orchestrator.recovery import Recovery, resend_command
from orchestrator.scheduling import ALL_GATES, SEPARATION_GATES, Admission, Poller, Ticket
from orchestrator.separation import Separation
from orchestrator.songs import Song, SongSteps
from orchestrator.spec import Manifest, resolve_key_scope
from orchestrator.state import StateStore
from orchestrator.tally import DOWNLOADING, WAITING, Tally
from orchestrator.timings import Timings

# Jobs read ahead of the running ones. A job blocked by its project or model waits there
# while later jobs go, so the buffer must span many projects (manifests are project-major).
LOOKAHEAD_MIN = 1024
LOOKAHEAD_PER_SLOT = 16
# Errors that end the whole run, not one job: every other job would fail the same way.
RUN_STOPPERS = (CredentialsError, ApiUnavailableError, StateError)

log = get_logger()


class Engine:
    """The jobs of one run, their slots, and the poll loop; one task group owns them all."""

    def __init__(
        self,
        manifest: Manifest,
        mode: Mode,
        out: Path,
        store: StateStore,
        client: YoukaClient,
        clock: Clock,
        tally: Tally,
        seed: int,
        *,
        shard: Shard | None = None,
        songs: list[Song] | None = None,
        resend: Callable[[JobId], bool] = lambda job: False,
        timings: Timings | None = None,
    ) -> None:
        self.manifest = manifest
        self.shard = shard
        self.resend = resend
        self.mode = mode
        self.store = store
        self.client = client
        self.tally = tally
        limits = manifest.limits
        self.scope = resolve_key_scope(manifest.key_scope, datetime.now(UTC))
        ledger = Ledger(store)
        self.budget = Budget(client, ledger, limits.max_credits)
        self.songs = SongSteps(
            songs or [],
            mode=mode,
            scope=self.scope,
            client=client,
            ledger=ledger,
            budget=self.budget,
        )
        self.songs.dispatch = self
        self.admission = Admission(limits, active=2 * limits.max_in_flight + DOWNLOAD_CONCURRENCY)
        self.lookahead = max(LOOKAHEAD_MIN, LOOKAHEAD_PER_SLOT * limits.max_in_flight)
        self.poller = Poller(
            client,
            manifest.poll,
            clock,
            seed=seed,
            learned=None if timings is None else timings.load(),
            on_learn=None if timings is None else timings.observed,
        )
        tally.durations = self.poller  # what the progress display forecasts from
        self.reads = SharedReads(client, self.poller.settle)
        self.delivery = Delivery(
            out, client, self.reads, manifest.download_types, places=self.songs.places
        )
        self.outcomes = Outcomes(store, tally)
        out_given = None if out == manifest.output else out
        self.recovery = Recovery(
            client,
            self.outcomes,
            manifest.idempotency_window,
            command=lambda job: resend_command(manifest.path, job, shard=shard, out=out_given),
        )
        self.separation = Separation(
            manifest,
            self.scope,
            store=store,
            client=client,
            budget=self.budget,
            reads=self.reads,
            poller=self.poller,
            recovery=self.recovery,
            songs=self.songs,
            outcomes=self.outcomes,
            tally=tally,
        )
        self._room = anyio.Event()
        self._idle = anyio.Event()
        self._live = 0
        self._dispatched = False
        self._tg: TaskGroup | None = None
        self.interrupted = False
        self.finished = False
        self.sampler: LagSampler | None = None  # event-loop lag, when asked for

    async def run(self, *, handle_signals: bool) -> None:
        """Dispatch every job and wait for all of them; return early when interrupted."""
        try:
            async with anyio.create_task_group() as tg:
                self._tg = tg
                if handle_signals:
                    tg.start_soon(self._stop_on_signal, tg)
                tg.start_soon(self.poller.run, tg)
                if self.sampler is not None:
                    tg.start_soon(self.sampler.run)
                await self._dispatch()
                self._dispatched = True
                if self._live:
                    await self._idle.wait()
                self.finished = True
                tg.cancel_scope.cancel()  # the poll loop and the signal watcher
        except* RUN_STOPPERS as group:
            # The key stopped working, the API went silent, the state cannot be written:
            # report it as such, not as a task group error.
            raise group.exceptions[0] from None

    async def _stop_on_signal(self, tg: TaskGroup) -> None:
        with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async for signum in signals:
                log.warning("run.interrupted", signal=signal.Signals(signum).name)
                self.interrupted = True
                tg.cancel_scope.cancel()
                return

    # -- dispatching ---------------------------------------------------------------------

    async def _dispatch(self) -> None:
        for item in self.songs.work():
            ticket = await self._ticket(item) if isinstance(item, JobId) else item
            if ticket is not None:
                await self._enqueue(ticket)
        for job in select_shard(iter_jobs(self.manifest), self.shard):
            ticket = await self._ticket(job)
            if ticket is not None:
                await self._enqueue(ticket)

    async def _enqueue(self, ticket: Ticket) -> None:
        self.offer(ticket)
        while self.admission.waiting >= self.lookahead:
            self._room = anyio.Event()
            await self._room.wait()

    def offer(self, ticket: Ticket) -> None:
        """Offer a job to the limits: it starts now, or waits in the buffer."""
        self.wait(ticket)
        if self.admission.offer(ticket):
            self._start(ticket)

    def wait(self, ticket: Ticket) -> None:
        """Show a job as waiting (a song's other models wait for its project)."""
        self.outcomes.show(ticket, WAITING)

    async def _ticket(self, job: JobId) -> Ticket | None:
        """Decide a job from its recorded state; None when there is nothing to run."""
        row = self.store.get(job.project, job.model)
        files_ok = False
        if row is not None and row.status is Status.DONE:
            stems = self.store.stems(job.project, job.model)
            verified = await anyio.to_thread.run_sync(self.delivery.check_done, row, stems)
            files_ok = verified is not None
            if verified:
                self.store.record_verified(job.project, job.model, verified)
        decision = decide(
            row.recorded() if row else None,
            files_ok=files_ok,
            mode=self.mode,
            resend=self.resend(job),
        )
        ticket = Ticket(job, decision, row)
        if decision.action is Action.SKIP_DONE:
            self.outcomes.show(ticket, Status.DONE)
            self.outcomes.note(ticket, row)
            log.info("job.done", project=job.project, model=job.model, already=True)
            return None
        if decision.action is Action.REPORT_FAILED:
            assert row is not None
            self.outcomes.fail(
                ticket, row.status, row.attempt, reported_again(row.status, row.error)
            )
            return None
        return ticket

    def _start(self, ticket: Ticket) -> None:
        assert self._tg is not None
        self._live += 1
        self._tg.start_soon(self._job_task, ticket)

    def _release(self, ticket: Ticket, kinds: Iterable[str]) -> None:
        for waiter in self.admission.release(ticket, kinds):
            self._start(waiter)
        if self.admission.waiting < self.lookahead:
            self._room.set()

    async def _job_task(self, ticket: Ticket) -> None:
        # Every event of this job, stamina's retries included, carries its project and model.
        with log_context(project=ticket.job.project, model=ticket.job.model):
            await self._run_job(ticket)

    async def _run_job(self, ticket: Ticket) -> None:
        try:
            if ticket.decision.separates:
                separated = await self.separation.run(ticket)
                self._release(ticket, SEPARATION_GATES)
                if not separated:
                    return
            await self._deliver(ticket)
        except RUN_STOPPERS:
            raise  # every other job would fail the same way
        except StemsweepError as exc:
            # Anything else ends this job only; its state row says where it stopped.
            row = self.store.get(ticket.job.project, ticket.job.model)
            status = row.status if row is not None else Status.PENDING
            self.outcomes.fail(
                ticket, status, ticket.decision.attempt, UNEXPECTED.explain(error=exc)
            )
        finally:
            self._release(ticket, ALL_GATES)
            self._live -= 1
            if self._dispatched and self._live == 0:
                self._idle.set()

    # -- one job: its files --------------------------------------------------------------

    async def _deliver(self, ticket: Ticket) -> None:
        """Have the job's files delivered, then record the outcome."""
        job = ticket.job
        row = self.store.get(job.project, job.model)
        assert row is not None
        self.outcomes.show(ticket, DOWNLOADING)
        outcome = await self.delivery.deliver(job, row, hold=ticket.hold)
        if isinstance(outcome, Undelivered):
            facts = {"error": outcome.error, "model": job.model, "rounds": EXPIRED_URL_ROUNDS}
            self.outcomes.give_up(ticket, Step.FETCH, outcome.fault, row.attempt, **facts)
            return
        self.store.mark_done(
            job.project,
            job.model,
            outcome.stems,
            missing_types=outcome.missing,
            unsafe_types=outcome.unsafe,
        )
        self.outcomes.show(ticket, Status.DONE)
        self.outcomes.note(ticket, self.store.get(job.project, job.model))
        log.info(
            "job.done",
            project=job.project,
            model=job.model,
            attempt=row.attempt,
            task_id=row.task_id,
            files=len(outcome.stems),
            bytes=sum(s.bytes for s in outcome.stems),
            missing_types=list(outcome.missing),
            unsafe_types=list(outcome.unsafe),
        )

    def fail(self, ticket: Ticket, status: str, attempt: int, reason: str) -> None:
        """A job ends the run without being done (a song's, reported by `songs`)."""
        self.outcomes.fail(ticket, status, attempt, reason)
