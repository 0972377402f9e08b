"""A sweep: stream the manifest's jobs, submit, poll, download, record; under the limits.

`run_manifest` composes the pure decisions (`lifecycle`, `backoff`), the state store, the
API client and the downloads under ONE `anyio` task group:

    dispatcher  reads jobs one by one from `iter_jobs`, decides each from its recorded
                state, and offers it to `Admission`; when the look-ahead buffer is full it
                waits for room, so a 100,000-job manifest is never held in memory
    job tasks   one per admitted job (bounded by the limits): read the project, commit
                the key, submit, wait for the poll loop's verdict, download, record
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
A separation the client gives up on (past `poll.timeout`, or a POST never confirmed) frees
its slots: the client cannot see it any more, and the next run picks it up again. A task
resumed from an earlier run gets a whole `poll.timeout` from the moment it is resumed.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterable, Mapping, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
from anyio.abc import TaskGroup

from orchestrator.api import YoukaClient
from orchestrator.clock import REAL_CLOCK, Clock
from orchestrator.connection import require_key, resolve_connection
from orchestrator.download import digest_matches
from orchestrator.errors import (
    ApiError,
    CredentialsError,
    DownloadError,
    ExpiredUrlError,
    RetryableApiError,
    StemsweepError,
    UsageError,
)
from orchestrator.files import Staged, commit, discard, remove_partials, write_json_atomic
from orchestrator.jobs import Job, Shard, count_jobs, idempotency_key, iter_jobs, select_shard
from orchestrator.lifecycle import (
    Action,
    Mode,
    Selection,
    Status,
    decide,
    may_resubmit,
    select_stems,
)
from orchestrator.logs import get_logger
from orchestrator.looplag import ENV_LOOP_LAG, LagSampler
from orchestrator.paths import (
    is_safe_name,
    job_file,
    own_folders,
    reference_base,
    stem_base,
    summary_name,
)
from orchestrator.scheduling import (
    ALL_GATES,
    SEPARATION_GATES,
    Admission,
    Entry,
    Poller,
    SharedReads,
)
from orchestrator.spec import Manifest, resolve_key_scope
from orchestrator.state import (
    JobRow,
    StateStore,
    StemRow,
    default_state_path,
    other_splits,
    utc_now,
)
from orchestrator.summary import (
    DOWNLOADING,
    WAITING,
    Failure,
    Note,
    Tally,
    job_document,
    summary_data,
)
from orchestrator.wire import Stem

EXPIRED_URL_ROUNDS = 3  # project reads per job when signed URLs keep expiring
DOWNLOAD_CONCURRENCY = 8  # jobs receiving their stem files at once, whole run
COMMIT_CONCURRENCY = 8  # jobs putting received files in place (fsync, rename) at once
# Jobs read ahead of the running ones. A job blocked by its project or model waits there
# while later jobs go, so the buffer must span many projects (manifests are project-major).
LOOKAHEAD_MIN = 1024
LOOKAHEAD_PER_SLOT = 16

log = get_logger()


@dataclass
class RunOutcome:
    """What a run did: its summary document (also in `{out}/summary.json`) and exit code."""

    summary: dict[str, Any]
    exit_code: int
    output: Path
    state_path: Path


async def run_manifest(
    manifest: Manifest,
    *,
    mode: Mode = Mode.RUN,
    output: Path | None = None,
    state_path: Path | None = None,
    api_url: str | None = None,
    shard: Shard | None = None,
    environ: Mapping[str, str] | None = None,
    clock: Clock = REAL_CLOCK,
    tally: Tally | None = None,
    handle_signals: bool = False,
    seed: int = 0,
    client_options: Mapping[str, Any] | None = None,
) -> RunOutcome:
    """Run (or retry) every job of `manifest`; see the module docstring.

    Raises, before any submission: `CredentialsError` (key missing, empty or rejected),
    `StateLockedError` (another run holds the state), `UsageError` (unusable state file).
    A key the API starts rejecting mid-run also raises `CredentialsError`, after the
    summary is written with it as `stopped_by`.
    `tally` receives live counts (the progress display reads it); `handle_signals` turns
    SIGINT/SIGTERM into a clean stop (exit code 130); `seed` seeds the poll jitter;
    `client_options` are passed to `YoukaClient` (tests and benchmarks shorten its waits).

    `shard` runs only that shard's jobs, with its own state and summary files in the shared
    output tree; at start it removes leftover partial files from its own job folders only,
    since the other shards may be writing theirs at that moment. A run first adopts what
    the tree's stores of another split (`state.db`, shards of another N) recorded for its
    jobs, so re-sharding neither repeats nor forgets any work.
    """
    environ = os.environ if environ is None else environ
    out = output if output is not None else manifest.output
    state_path = state_path if state_path is not None else default_state_path(out, shard)
    base_url, api_key = resolve_connection(manifest, environ, api_url)
    tally = tally if tally is not None else Tally()
    tally.total = tally.total or count_jobs(manifest, shard)
    started, started_at = time.monotonic(), utc_now()
    with StateStore.open_writer(state_path) as store:
        if out.exists():
            removed = remove_partials(out, only=own_folders(shard))
            if removed:
                log.info("run.partials_removed", count=removed)
        for other in other_splits(out, shard):
            wanted = (lambda _: True) if shard is None else shard.has_project
            adopted = store.adopt(other, wanted)
            if adopted:
                log.info("run.records_adopted", jobs=adopted, store=str(other))
        stack = AsyncExitStack()
        try:
            client, sim = await _open_client(
                stack, manifest, base_url, api_key, clock, client_options or {}
            )
            await client.me()  # a rejected key ends the run here, before any submission
            log.info(
                "run.started",
                manifest=str(manifest.path),
                mode=str(mode),
                jobs=tally.total,
                shard=None if shard is None else str(shard),
                output=str(out),
                state=str(state_path),
                api=client.base_url,
            )
            sweep = _Sweep(manifest, mode, out, store, client, clock, tally, seed, shard=shard)
            lag_path = environ.get(ENV_LOOP_LAG)
            if lag_path:
                sweep.sampler = LagSampler(clock, load=lambda: sweep.admission.in_flight.used)
            stopped_by: CredentialsError | None = None
            try:
                if sim is not None:
                    await _save_references(client, sim.root_url, manifest, out, shard)
                await sweep.run(handle_signals=handle_signals)
            except CredentialsError as exc:
                stopped_by = exc  # the key was rejected mid-run: the summary says so
                raise
            finally:
                # Plain synchronous writes: they complete even while the run is cancelled.
                interrupted = sweep.interrupted or not sweep.finished
                run_info = {
                    "manifest": str(manifest.path),
                    "name": manifest.name,
                    "mode": str(mode),
                    "shard": None if shard is None else str(shard),
                    "output": str(out),
                    "references": _references_path(manifest),
                    "state": str(state_path),
                    "summary": str(out / summary_name(shard)),
                    "started_at": started_at,
                    "finished_at": utc_now(),
                    "wall_seconds": round(time.monotonic() - started, 3),
                    "api_requests": client.requests,
                    "downloads": client.downloads,
                    "polls": sweep.poller.polls,
                }
                data = summary_data(
                    tally, run=run_info, interrupted=interrupted, stopped_by=stopped_by
                )
                write_json_atomic(out / summary_name(shard), data)
                if sweep.sampler is not None and lag_path:
                    sweep.sampler.write(Path(lag_path))
                log.info(
                    "run.finished",
                    interrupted=interrupted,
                    counts=data["counts"],
                    api_requests=client.requests,
                    wall_seconds=data["wall_seconds"],
                )
        finally:
            with anyio.CancelScope(shield=True):  # close connections even when cancelled
                await stack.aclose()
    return RunOutcome(summary=data, exit_code=data["exit_code"], output=out, state_path=state_path)


def _references_path(manifest: Manifest) -> str | None:
    """The manifest's `references` folder as an absolute path, for `stemsweep report`."""
    return None if manifest.references is None else str(manifest.references.resolve())


async def _open_client(
    stack: AsyncExitStack,
    manifest: Manifest,
    base_url: str,
    api_key: str | None,
    clock: Clock,
    options: Mapping[str, Any],
) -> tuple[YoukaClient, Any]:
    """The run's client, and the in-process simulator when the manifest asks for one."""
    sim = None
    if manifest.api.simulator is not None:
        from orchestrator.simulator.profile import ProfileError
        from orchestrator.simulator.server import Simulator

        spec = manifest.api.simulator
        try:
            simulator = Simulator(spec.profile, seed=spec.seed, time_scale=spec.time_scale)
        except ProfileError as exc:
            raise UsageError(f"{manifest.path}: api.simulator.profile: {exc}") from None
        sim = await stack.enter_async_context(simulator)
        base_url, api_key = sim.base_url, sim.api_key
    client = await stack.enter_async_context(
        YoukaClient(
            base_url,
            require_key(api_key),
            requests_per_second=manifest.limits.requests_per_second,
            attempts=manifest.retries.requests,
            clock=clock,
            **options,
        )
    )
    return client, sim


class _Sweep:
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
    ) -> None:
        self.manifest = manifest
        self.shard = shard
        self.mode = mode
        self.out = out
        self.store = store
        self.client = client
        self.tally = tally
        limits = manifest.limits
        self.scope = resolve_key_scope(manifest.key_scope, datetime.now(UTC))
        self.admission = Admission(limits, active=2 * limits.max_in_flight + DOWNLOAD_CONCURRENCY)
        self.lookahead = max(LOOKAHEAD_MIN, LOOKAHEAD_PER_SLOT * limits.max_in_flight)
        self.poller = Poller(client, manifest.poll, clock, seed=seed)
        self.reads = SharedReads(client)
        self._downloads = anyio.CapacityLimiter(DOWNLOAD_CONCURRENCY)
        self._commits = anyio.CapacityLimiter(COMMIT_CONCURRENCY)
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
        except* CredentialsError as group:
            # The key stopped working mid-run: report it as such, not as a task group error.
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
        for job in select_shard(iter_jobs(self.manifest), self.shard):
            entry = await self._entry(job)
            if entry is None:
                continue
            self._show(entry, WAITING)
            if self.admission.offer(entry):
                self._start(entry)
            while self.admission.waiting >= self.lookahead:
                self._room = anyio.Event()
                await self._room.wait()

    async def _entry(self, job: Job) -> Entry | None:
        """Decide a job from its recorded state; None when there is nothing to run."""
        row = self.store.get(job.project, job.model)
        files_ok = False
        if row is not None and row.status is Status.DONE:
            stems = self.store.stems(job.project, job.model)
            verified = await anyio.to_thread.run_sync(self._check_done, row, stems)
            files_ok = verified is not None
            if verified:
                self.store.record_verified(job.project, job.model, verified)
        decision = decide(row.recorded() if row else None, files_ok=files_ok, mode=self.mode)
        entry = Entry(job, decision, row)
        if decision.action is Action.SKIP_DONE:
            self._show(entry, Status.DONE)
            self._note(entry, row)
            log.info("job.done", project=job.project, model=job.model, already=True)
            return None
        if decision.action is Action.REPORT_FAILED:
            assert row is not None
            reason = row.error or f"{row.status} in an earlier run"
            self._fail(entry, row.status, row.attempt, f"{reason} (use `stemsweep retry`)")
            return None
        return entry

    def _start(self, entry: Entry) -> None:
        assert self._tg is not None
        self._live += 1
        self._tg.start_soon(self._job_task, entry)

    def _release(self, entry: Entry, kinds: Iterable[str]) -> None:
        for waiter in self.admission.release(entry, kinds):
            self._start(waiter)
        if self.admission.waiting < self.lookahead:
            self._room.set()

    async def _job_task(self, entry: Entry) -> None:
        try:
            if entry.decision.separates:
                separated = await self._separate(entry)
                self._release(entry, SEPARATION_GATES)
                if not separated:
                    return
            await self._fetch(entry)
        except CredentialsError:
            raise  # the key stopped working: every other job would fail the same way
        except StemsweepError as exc:
            # Anything else ends this job only; its state row says where it stopped.
            row = self.store.get(entry.job.project, entry.job.model)
            status = row.status if row is not None else Status.PENDING
            self._fail(entry, status, entry.decision.attempt, str(exc))
        finally:
            self._release(entry, ALL_GATES)
            self._live -= 1
            if self._dispatched and self._live == 0:
                self._idle.set()

    # -- one job: separation -------------------------------------------------------------

    async def _separate(self, entry: Entry) -> bool:
        """Get the job's separation to a terminal success; False when it ended otherwise."""
        job, action, attempt = entry.job, entry.decision.action, entry.decision.attempt
        row: JobRow | None = entry.row
        resubmits = 0
        while True:
            if action is Action.RESUME_POLL:
                assert row is not None and row.task_id is not None
                task_id = row.task_id
                log.info("job.resumed", project=job.project, model=job.model, task_id=task_id)
            else:
                if action is Action.SUBMIT:
                    key = await self._commit_key(entry, attempt)
                    if key is None:
                        return False
                else:  # RESUBMIT_SAME_KEY: the key is already committed
                    assert row is not None and row.key is not None
                    key = row.key
                submitted = await self._submit(entry, key, attempt)
                if submitted is None:
                    return False
                task_id = submitted
            self._show(entry, Status.SUBMITTED)
            status, reason = await self._wait(
                entry, task_id, fresh=action is not Action.RESUME_POLL
            )
            if status is Status.SUCCEEDED:
                return True
            if status in (Status.FAILED, Status.CANCELLED) and may_resubmit(
                resubmits, self.manifest.retries.tasks
            ):
                resubmits += 1
                attempt += 1
                action = Action.SUBMIT
                log.info("job.resubmitting", project=job.project, model=job.model, attempt=attempt)
                continue  # the slots pass from the failed separation to the new one
            self._fail(entry, status, attempt, reason)
            return False

    async def _commit_key(self, entry: Entry, attempt: int) -> str | None:
        """Read the project, then commit the key durably; None when the job cannot go on."""
        job = entry.job
        try:
            project = await self.reads.project(job.project)
        except RetryableApiError as exc:
            # Nothing was recorded: the next run tries this job afresh.
            self._fail(entry, Status.PENDING, attempt, f"project could not be read: {exc}")
            return None
        except ApiError as exc:
            self.store.mark_skipped(job.project, job.model, attempt=attempt, error=str(exc))
            self._fail(entry, Status.SKIPPED, attempt, f"project could not be read: {exc}")
            return None
        known = [s.id for s in project.stems if s.model == job.model]
        key = idempotency_key(self.scope, job.project, job.model, attempt)
        self.store.commit_key(
            job.project, job.model, attempt=attempt, key=key, known_stem_ids=known
        )
        self._show(entry, Status.SUBMITTING)
        return key

    async def _submit(self, entry: Entry, key: str, attempt: int) -> str | None:
        """POST the separation with `key`; the task id, or None (recorded) on failure."""
        job = entry.job
        try:
            task_id = await self.client.submit(job.project, job.model, key)
        except RetryableApiError as exc:
            # The POST may have been applied: keep `submitting`, so the next run re-sends the
            # same key and gets the same task instead of starting a second separation.
            reason = f"submission not confirmed, the next run re-sends the same key: {exc}"
            self.store.record_error(job.project, job.model, reason)
            self._fail(entry, Status.SUBMITTING, attempt, reason)
            return None
        except ApiError as exc:
            reason = f"submission refused: {exc}"
            self.store.mark_finished(job.project, job.model, Status.FAILED, error=reason)
            self._fail(entry, Status.FAILED, attempt, reason)
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

    async def _wait(self, entry: Entry, task_id: str, *, fresh: bool) -> tuple[Status, str]:
        """Wait for the poll loop's verdict on `task_id` and record it."""
        job = entry.job
        try:
            verdict = await self.poller.wait_terminal(task_id, job.model, fresh=fresh)
        except ApiError as exc:
            status, reason = Status.FAILED, f"task {task_id} could not be polled: {exc}"
        else:
            if verdict.task is None:
                status = Status.TIMED_OUT
                reason = (
                    f"task {task_id} not finished after {self.manifest.poll.timeout:g}s "
                    "(the next run resumes polling it)"
                )
            elif verdict.task.succeeded:
                status, reason = Status.SUCCEEDED, ""
            else:
                status = Status.CANCELLED if verdict.task.status == "cancelled" else Status.FAILED
                reason = f"separation {verdict.task.status}" + (
                    f": {verdict.task.error}" if verdict.task.error else ""
                )
        self.store.mark_finished(job.project, job.model, status, error=reason or None)
        self._show(entry, status)
        log.info(
            "job.separated" if status is Status.SUCCEEDED else "job.separation_ended",
            project=job.project,
            model=job.model,
            task_id=task_id,
            status=str(status),
        )
        return status, reason

    # -- one job: download ---------------------------------------------------------------

    async def _fetch(self, entry: Entry) -> None:
        """Download the job's stems (fresh project reads when URLs expire), then record."""
        job = entry.job
        row = self.store.get(job.project, job.model)
        assert row is not None
        self._show(entry, DOWNLOADING)
        staged: dict[str, tuple[Stem, Staged]] = {}
        expired: ExpiredUrlError | None = None
        try:
            for _ in range(EXPIRED_URL_ROUNDS):
                try:
                    project = await self.reads.project(job.project)
                except ApiError as exc:
                    self._download_failed(entry, row, f"project could not be read: {exc}")
                    return
                chosen = select_stems(
                    project.stems,
                    model=job.model,
                    wanted=self.manifest.download_types,
                    known_ids=row.known_stem_ids,
                    is_safe=is_safe_name,
                )
                if chosen.delivered == 0:
                    reason = f"the project lists no stems of {job.model} (replaced since?)"
                    self._download_failed(entry, row, reason)
                    return
                try:
                    stems = await self._receive_and_commit(job, row, chosen, staged)
                except ExpiredUrlError as exc:
                    expired = exc
                    log.info("download.expired_url", project=job.project, model=job.model)
                    continue
                except DownloadError as exc:
                    self._download_failed(entry, row, str(exc))
                    return
                break
            else:
                reason = (
                    f"stem URLs kept expiring after {EXPIRED_URL_ROUNDS} project reads: {expired}"
                )
                self._download_failed(entry, row, reason)
                return
        finally:
            discard(file for _, file in staged.values())
        self.store.mark_done(
            job.project, job.model, stems, missing_types=chosen.missing, unsafe_types=chosen.unsafe
        )
        self._show(entry, Status.DONE)
        done = self.store.get(job.project, job.model)
        self._note(entry, done)
        log.info(
            "job.done",
            project=job.project,
            model=job.model,
            attempt=row.attempt,
            task_id=row.task_id,
            files=len(stems),
            bytes=sum(s.bytes for s in stems),
            missing_types=list(chosen.missing),
            unsafe_types=list(chosen.unsafe),
        )

    async def _receive_and_commit(
        self, job: Job, row: JobRow, chosen: Selection[Stem], staged: dict[str, tuple[Stem, Staged]]
    ) -> list[StemRow]:
        """Receive the chosen stems not in `staged` yet, then put the job's files in place.

        What is received stays in `staged` until its commit takes it (the caller discards
        what is left); a stem received in an earlier round, before a URL expired, is kept.
        """
        async with self._downloads:
            for stem in chosen.chosen:
                if stem.type not in staged:
                    dest = stem_base(self.out, job.model, job.project, stem.type)
                    staged[stem.type] = (stem, await self.client.fetch(stem.url, dest))
                    log.debug(
                        "download.finished", project=job.project, model=job.model, type=stem.type
                    )
            # Handed over to a commit slot before the download slot is freed: received
            # bodies are always under one of the two limits, and the next job's bytes flow
            # while this one's fsyncs wait for the disk.
            await self._commits.acquire()
        try:
            files = [staged.pop(s.type) for s in chosen.chosen]
            return await self._commit_job(row, files, chosen.missing, chosen.unsafe)
        finally:
            self._commits.release()

    async def _commit_job(
        self,
        row: JobRow,
        files: list[tuple[Stem, Staged]],
        missing: Sequence[str],
        unsafe: Sequence[str],
    ) -> list[StemRow]:
        """Put a job's received files and its `job.json` in place together; their rows."""
        rows = [
            StemRow(
                type=stem.type,
                stem_id=stem.id,
                duration=stem.duration,
                bytes=file.bytes,
                digest=file.digest,
                file=file.path.relative_to(self.out).as_posix(),
            )
            for stem, file in files
        ]
        placed = await commit(
            [file for _, file in files], [self._job_document(row, rows, missing, unsafe)]
        )
        return [replace(r, mtime_ns=p.mtime_ns) for r, p in zip(rows, placed, strict=True)]

    def _download_failed(self, entry: Entry, row: JobRow, reason: str) -> None:
        self.store.mark_download_failed(entry.job.project, entry.job.model, reason)
        self._fail(entry, Status.DOWNLOAD_FAILED, row.attempt, reason)

    def _job_document(
        self,
        row: JobRow,
        stems: list[StemRow],
        missing: Iterable[str],
        unsafe: Iterable[str],
    ) -> tuple[Path, dict[str, Any]]:
        """Where the job's `job.json` goes, and what it says."""
        document = job_document(
            project=row.project,
            model=row.model,
            key=row.key,
            attempt=row.attempt,
            task_id=row.task_id,
            status=Status.DONE.value,
            submitted_at=row.submitted_at,
            finished_at=row.finished_at,
            stems=[
                {
                    "id": s.stem_id,
                    "type": s.type,
                    "duration": s.duration,
                    "bytes": s.bytes,
                    # `blake3: <hex>` (as `b3sum` prints it); `sha256` for older records.
                    **dict([s.digest.split(":", 1)]),
                    "file": Path(s.file).name,
                }
                for s in stems
            ],
            missing_types=list(missing),
            unsafe_types=list(unsafe),
        )
        return job_file(self.out, row.model, row.project), document

    def _check_done(self, row: JobRow, stems: list[StemRow]) -> list[StemRow] | None:
        """Whether a done job's files are intact (blocking); None when one is not.

        A file whose size and modification time are those recorded is trusted as it is; any
        other is hashed, and kept when its digest is the recorded one: those come back with
        their new modification time, to be recorded. A missing `job.json` is written again
        from the state (no API work).
        """
        verified = []
        for stem in stems:
            path = self.out / stem.file
            try:
                status = path.stat()
            except OSError:
                return None
            if status.st_size != stem.bytes:
                return None
            if status.st_mtime_ns != stem.mtime_ns:
                if not digest_matches(path, stem.digest):
                    return None
                verified.append(replace(stem, mtime_ns=status.st_mtime_ns))
        job_file, document = self._job_document(row, stems, row.missing_types, row.unsafe_types)
        if not job_file.exists():
            write_json_atomic(job_file, document)
        return verified

    # -- bookkeeping ---------------------------------------------------------------------

    def _show(self, entry: Entry, status: str) -> None:
        self.tally.move(entry.job.model, entry.shown, str(status))
        entry.shown = str(status)

    def _fail(self, entry: Entry, status: Status, attempt: int, reason: str) -> None:
        job = entry.job
        self._show(entry, status)
        self.tally.fail(Failure(job.project, job.model, str(status), attempt, reason))
        log.warning(
            "job.failed",
            project=job.project,
            model=job.model,
            status=str(status),
            attempt=attempt,
            reason=reason,
        )

    def _note(self, entry: Entry, row: JobRow | None) -> None:
        if row is None:
            return
        job = entry.job
        if row.missing_types:
            self.tally.note(Note(job.project, job.model, "missing", row.missing_types))
        if row.unsafe_types:
            self.tally.note(Note(job.project, job.model, "unsafe", row.unsafe_types))


async def _save_references(
    client: YoukaClient, root_url: str, manifest: Manifest, out: Path, shard: Shard | None
) -> None:
    """Save each project's true parts from the simulator to `{out}/_references/{project}/`.

    Simulator only: the comparison report scores separations against them. Parts already
    saved are not fetched again.
    """
    from orchestrator.simulator.media import REFERENCE_TYPES

    projects = dict.fromkeys(job.project for job in select_shard(iter_jobs(manifest), shard))
    for project in projects:
        for kind in REFERENCE_TYPES:
            base = reference_base(out, project, kind)
            if any(base.parent.glob(f"{kind}.*")):
                continue
            url = f"{root_url}/_sim/projects/{project}/references/{kind}"
            try:
                await client.download(url, base)
            except DownloadError as exc:
                log.warning("references.failed", project=project, type=kind, reason=str(exc))
                break
