"""Songs on disk become projects: digest, upload, create; then their jobs run as any other.

    digest    every song file of the manifest is hashed and planned before any request
    plan        (`song_plan`: its folder, its models, the first of which creates it)
    upload    `POST /uploads` with a key of the digest (committed first), then the bytes
              PUT to the signed URL, without the token; an expired URL is asked for again
              with the same key (the same file, a fresh URL)
    create    `POST /projects` with the title, the file and the first model, under a key
              of the digest committed (with its reservation, under a ceiling) first: its
              task is the job of that model, polled and downloaded like any other
    the rest  the song's other models wait, holding no slot, until its project is known;
              then they are the project's re-separations, under the song's project gate

A song already made into a project by an earlier run is its project's jobs at once. What
each failure does is `failures.on_failure`'s (steps `upload` and `create`); the song's
other jobs end the run as its creation does. `songs.json` lists every song file with its
digest, title, folder and project, so a later manifest can name the projects directly.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from orchestrator.api import YoukaClient
from orchestrator.budget import Budget
from orchestrator.delivery import EXPIRED_URL_ROUNDS, SongPlace
from orchestrator.errors import (
    ApiError,
    DownloadError,
    ExpiredUrlError,
    InsufficientCreditsError,
    StemsweepError,
)
from orchestrator.failures import Fault, Outcome, Record, Step, on_failure, upload_fault
from orchestrator.files import write_json_atomic
from orchestrator.jobs import JobId, song_key
from orchestrator.ledger import Ledger, OverBudget, SongRecord
from orchestrator.lifecycle import (
    Action,
    Decision,
    Mode,
    SongStatus,
    SongStep,
    Status,
    decide_song,
    reported_again,
)
from orchestrator.logs import get_logger
from orchestrator.reconcile import Verdict, reconcile_creation, stamp_age
from orchestrator.recovery import Recovery, creation_attention_message
from orchestrator.scheduling import Ticket
from orchestrator.song_plan import Song as Song
from orchestrator.song_plan import in_shard as in_shard
from orchestrator.song_plan import plan_rows_of_songs as plan_rows_of_songs
from orchestrator.song_plan import prepare_songs as prepare_songs
from orchestrator.song_plan import song_job_ids as song_job_ids
from orchestrator.song_plan import songs_for_reading as songs_for_reading

log = get_logger()


class Dispatch(Protocol):
    """What the songs tell the engine: a job to offer to the limits, one to show as
    waiting, and a job that ends the run without being done; and what they ask it: whether
    the user named a job with `retry --resend`, and how long keys are assumed remembered
    and the command that re-sends one (`recovery`)."""

    def offer(self, ticket: Ticket) -> None: ...
    def wait(self, ticket: Ticket) -> None: ...
    def fail(self, ticket: Ticket, status: str, attempt: int, reason: str) -> None: ...
    @property
    def resend(self) -> Callable[[JobId], bool]: ...
    @property
    def recovery(self) -> Recovery: ...


class _Failed(Exception):  # noqa: N818 - how a step ends, not an error of the module
    def __init__(self, step: Step, fault: Fault, error: object) -> None:
        super().__init__(str(error))
        self.step, self.fault = step, fault


class SongSteps:
    """The songs of one run (this shard's): their jobs, their uploads and creations."""

    def __init__(
        self,
        songs: Sequence[Song],
        *,
        mode: Mode,
        scope: str,
        client: YoukaClient,
        ledger: Ledger,
        budget: Budget,
    ) -> None:
        self.songs = list(songs)
        self._by_ref = {song.ref: song for song in self.songs}
        self._mode = mode
        self._scope = scope
        self._client = client
        self._ledger = ledger
        self._budget = budget
        self._parked: dict[str, list[Ticket]] = {}
        self.places: dict[str, SongPlace] = {}  # project id -> where its song's files go
        self.dispatch: Dispatch | None = None

    @property
    def jobs(self) -> int:
        """How many jobs the songs make: each song times its models."""
        return sum(len(song.models) for song in self.songs)

    def work(self) -> Iterator[JobId | Ticket]:
        """What the engine dispatches for the songs, song by song: the jobs of a song that
        is a project already, or the creation of one that is not (its other models are
        parked here until it is); a song refused in an earlier run is reported here."""
        assert self.dispatch is not None
        for song in self.songs:
            record = self._ledger.song(song.digest)
            step, attempt = decide_song(
                record.status if record else None,
                record.attempt if record else 1,
                mode=self._mode,
                resend=record is not None and self._resent(song, record),
            )
            if step is SongStep.READY:
                assert record is not None and record.project is not None
                self._place(song, record.project)
                yield from self._project_jobs(song, record)
                continue
            tickets = [
                Ticket(JobId(song.ref, m), Decision(Action.SUBMIT, 1), gate=song.ref)
                for m in song.models
            ]
            if record is not None and step is SongStep.CREATE:
                step = self._lost_creation(song, record, step)
                record = self._ledger.song(song.digest)
            if step is SongStep.REPORT_FAILED:
                assert record is not None
                status = (
                    Status.NEEDS_ATTENTION
                    if record.status is SongStatus.NEEDS_ATTENTION
                    else Status.FAILED
                )
                reason = reported_again(status, record.error)
                for ticket in tickets:
                    self._report(song, ticket, status, attempt, reason)
                continue
            first = tickets[0]
            if record is not None and _keyed(record):
                first.job = JobId(song.ref, record.split_model or song.models[0])
            first.decision = Decision(Action.CREATE, attempt)
            self._parked[song.ref] = tickets[1:]
            for ticket in tickets[1:]:
                self.dispatch.wait(ticket)
            yield first

    def _resent(self, song: Song, record: SongRecord) -> bool:
        """Whether the user named the song's creation with `retry --resend FOLDER:MODEL`."""
        assert self.dispatch is not None
        model = record.split_model or song.models[0]
        return self._mode is Mode.RETRY and self.dispatch.resend(JobId(song.folder, model))

    def _lost_creation(self, song: Song, record: SongRecord, step: SongStep) -> SongStep:
        """A creation whose key was committed and whose answer was lost: `step` (re-send the
        key) within `idempotency_window`, or unless the user named it with `--resend`; past
        the window, the song `needs_attention` (`reconcile.reconcile_creation`)."""
        if record.status is not SongStatus.CREATING or self._resent(song, record):
            return step
        assert self.dispatch is not None
        recovery = self.dispatch.recovery
        age = stamp_age(record.key_at or record.updated_at, datetime.now(UTC))
        found = reconcile_creation(key_age=age, window=recovery.window)
        log.info(
            "song.reconciled",
            song=song.name,
            digest=song.digest,
            verdict=str(found.verdict),
            reason=found.reason,
        )
        if found.verdict is Verdict.RESEND:
            return step
        model = record.split_model or song.models[0]
        command = recovery.command_for(JobId(song.folder, model))
        error = creation_attention_message(found, record.title, command)
        self._ledger.mark_song_attention(song.digest, error)
        log.warning("song.needs_attention", song=song.name, digest=song.digest, reason=error)
        return SongStep.REPORT_FAILED

    def _project_jobs(self, song: Song, record: SongRecord) -> Iterator[JobId]:
        """The jobs of a song that is a project. When the store was rebuilt from job.json
        files without its creation's (no creation key), the job of its first model (the
        creation's, unless the manifest's models changed), when it has no row, may be that
        creation, separated and charged already: it is reported `needs_attention` until
        `retry --resend PROJECT:MODEL` names it."""
        assert record.project is not None and self.dispatch is not None
        jobs = [JobId(record.project, model) for model in song.models]
        first = jobs[0]
        if record.create_key is not None or self._ledger.recorded_job(first.project, first.model):
            yield from jobs
            return
        held = first
        for job in jobs:
            if job != held or (self._mode is Mode.RETRY and self.dispatch.resend(job)):
                yield job
                continue
            command = self.dispatch.recovery.command_for(job)
            reason = (
                "the state was rebuilt from the tree's job.json files, and this song's "
                f"creation left none: project {job.project} was made with a first separation "
                f"stemsweep has no record of, perhaps this {job.model} one. Check the "
                f"project's stems in Youka; to separate it now (a new separation, charged): "
                f"{command}"
            )
            ticket = Ticket(job, Decision(Action.SUBMIT, 1))
            self.dispatch.fail(ticket, Status.NEEDS_ATTENTION, 1, reason)

    async def create(self, ticket: Ticket) -> str | None:
        """Upload and create the song of a creation ticket; the task id of its first
        separation (the ticket's job is then the project's), or None when the song ends the
        run otherwise (reported, with its parked jobs)."""
        song = self._by_ref[ticket.job.project]
        attempt = ticket.decision.attempt
        try:
            record = self._ledger.song(song.digest)
            if record is None or record.status in (SongStatus.UPLOADING, SongStatus.FAILED):
                await self._budget.precheck(ticket.job.model, song.file.duration)
                record = await self._upload(song, record, attempt)
            created = await self._create(song, record, ticket.job.model)
        except OverBudget as exc:
            self._end(song, ticket, _Failed(Step.CREATE, Fault.OVER_BUDGET, exc))
            return None
        except _Failed as failed:
            self._end(song, ticket, failed)
            return None
        assert created.project is not None and created.task_id is not None
        ticket.job = JobId(created.project, ticket.job.model)
        self._place(song, created.project)
        log.info(
            "song.created",
            song=song.name,
            digest=song.digest,
            project=created.project,
            model=ticket.job.model,
            task_id=created.task_id,
        )
        assert self.dispatch is not None
        for parked in self._parked.pop(song.ref, []):
            parked.job = JobId(created.project, parked.job.model)
            self.dispatch.offer(parked)
        return created.task_id

    def summary(self) -> dict[str, Any]:
        """The `songs` part of the summary: songs, files, and the files that are one song."""
        return {
            "songs": len(self.songs),
            "files": sum(len(song.paths) for song in self.songs),
            "same_bytes": [
                [str(p) for p in song.paths] for song in self.songs if len(song.paths) > 1
            ],
        }

    def write_list(self, path: Path) -> None:
        """Write `songs.json`: every song file, its digest, title, folder and project."""
        entries = []
        for song in self.songs:
            record = self._ledger.song(song.digest)
            for file in song.paths:
                entries.append(
                    {
                        "path": str(file),
                        "blake3": song.digest,
                        "title": record.title if record and record.title else song.file.title,
                        "folder": song.folder,
                        "project": record.project if record else None,
                        "status": str(record.status) if record else "new",
                        "error": record.error if record else None,
                    }
                )
        write_json_atomic(path, {"songs": entries})

    # -- the steps -----------------------------------------------------------------------

    async def _upload(self, song: Song, record: SongRecord | None, attempt: int) -> SongRecord:
        """Announce the song and PUT its bytes; its record, `uploaded`."""
        file = song.file
        if record is None or record.status is not SongStatus.UPLOADING or record.upload_key is None:
            key = song_key(self._scope, song.digest, "upload", attempt)
            self._ledger.commit_upload_key(
                song.digest,
                path=str(file.path),
                title=file.title,
                folder=song.folder,
                attempt=attempt,
                key=key,
            )
        else:
            key = record.upload_key
        try:
            size = file.path.stat().st_size
        except OSError as exc:
            raise _Failed(Step.UPLOAD, Fault.FILES, f"cannot be read: {exc.strerror}") from None
        if size != file.size:
            raise _Failed(Step.UPLOAD, Fault.FILES, "the file changed since it was read")
        failure: StemsweepError | None = None
        for _ in range(EXPIRED_URL_ROUNDS):
            try:
                slot = await self._client.announce_upload(
                    file.path.name, file.content_type, size, key
                )
                self._ledger.record_file_id(song.digest, slot.input_file_id)
                await self._client.put_upload(slot.upload_url, file.path, size, file.content_type)
            except ExpiredUrlError as exc:
                failure = exc  # the same key answers the same file with a fresh URL
                continue
            except (ApiError, DownloadError) as exc:
                raise _Failed(Step.UPLOAD, upload_fault(exc), exc) from None
            self._ledger.mark_uploaded(song.digest)
            log.info("song.uploaded", song=song.name, digest=song.digest, bytes=size)
            uploaded = self._ledger.song(song.digest)
            assert uploaded is not None
            return uploaded
        assert failure is not None
        raise _Failed(Step.UPLOAD, upload_fault(failure), failure)

    async def _create(self, song: Song, record: SongRecord, model: str) -> SongRecord:
        """POST /projects under the creation's key (committed, reserved first)."""
        digest = song.digest
        assert record.input_file_id is not None
        if _keyed(record):
            assert record.create_key is not None
            key, model = record.create_key, record.split_model or model
            commit = None  # re-sent: committed (and reserved) by an earlier run
        else:
            key = song_key(self._scope, digest, "create", record.attempt)

            def commit(also: Any) -> None:
                self._ledger.commit_create_key(digest, key=key, model=model, also=also)

        async def seconds() -> float:
            return song.file.duration

        await self._budget.admit(key, subject=song.ref, model=model, seconds=seconds, commit=commit)
        try:
            created = await self._client.create_project(
                record.title, record.input_file_id, model, key
            )
        except InsufficientCreditsError as exc:
            self._budget.refused(key, str(exc))
            raise _Failed(Step.CREATE, Fault.NO_CREDITS, exc) from None
        except ApiError as exc:
            raise _Failed(Step.CREATE, upload_fault(exc), exc) from None
        return self._ledger.record_created(
            digest, project=created.project_id, task_id=created.task_id
        )

    def _end(self, song: Song, ticket: Ticket, failed: _Failed) -> None:
        """The song ends the run without a project: recorded and reported, with the jobs
        parked behind it, as `failures.on_failure` says."""
        assert self.dispatch is not None
        consequence = on_failure(failed.step, failed.fault)
        attempt = ticket.decision.attempt
        error = str(failed)
        reason = consequence.explain(error=error, song=song.name)
        if consequence.record is Record.SONG_FAILED:
            self._ledger.mark_song_failed(song.digest, reason)
        elif consequence.record is Record.UNSENT:
            self._ledger.unsend_creation(song.digest, attempt=attempt + 1, error=reason)
        status = consequence.status or Status.PENDING
        self._report(song, ticket, status, attempt, reason)
        # The others were never submitted: they wait for the song, as its creation does.
        others = Status.PENDING if status is Status.SUBMITTING else status
        for parked in self._parked.pop(song.ref, []):
            self._report(song, parked, others, 1, reason)
        if status is not Outcome.NOT_STARTED:
            log.warning("song.failed", song=song.name, digest=song.digest, reason=reason)

    def _report(self, song: Song, ticket: Ticket, status: str, attempt: int, reason: str) -> None:
        """A job of a song that is no project ends the run: named by the song's folder."""
        assert self.dispatch is not None
        ticket.job = JobId(song.folder, ticket.job.model)
        self.dispatch.fail(ticket, status, attempt, reason)

    def _place(self, song: Song, project: str) -> None:
        self.places[project] = SongPlace(
            folder=song.folder, path=str(song.file.path), digest=song.digest
        )


def _keyed(record: SongRecord) -> bool:
    """Whether the song's creation key was committed: re-sent as it is, never a new one."""
    keyed = (SongStatus.CREATING, SongStatus.NEEDS_ATTENTION)
    return record.status in keyed and record.create_key is not None
