"""Songs on disk become projects: digest, upload, create; then their jobs run as any other.

    digest    every song file of the manifest is hashed (BLAKE3) before any request (the
              store remembers the digest of a file by path, size and modification time);
              files with the same bytes are one song, whose shard is its digest's
    plan      each song's models (every model its sweeps name, in catalogue order), the
              model its project is created with (the first), and its folder in the tree
              (`paths.song_folder`: a slug of its file name, with a short digest when
              another song or project of the manifest has the same; fixed once uploaded)
    upload    `POST /uploads` with a key of the digest (committed first), then the bytes
              PUT to the signed URL, without the token; an expired URL is asked for again
              with the same key (the same file, a fresh URL)
    create    `POST /projects` with the title, the file and the first model, under a key
              of the digest committed (with its reservation, under a ceiling) first: its
              task is the job of that model, polled and downloaded like any other
    the rest  the song's other models wait, holding no slot, until its project is known;
              then they are the project's re-separations, under the song's project gate

A song already made into a project by an earlier run is its project's jobs at once. What
each failure does is `lifecycle.on_failure`'s (steps `upload` and `create`); the song's
other jobs end the run as its creation does. `songs.json` lists every song file with its
digest, title, folder and project, so a later manifest can name the projects directly.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

import anyio

from orchestrator.api import YoukaClient
from orchestrator.budget import Budget
from orchestrator.delivery import EXPIRED_URL_ROUNDS, SongPlace
from orchestrator.errors import (
    ApiError,
    DownloadError,
    ExpiredUrlError,
    InsufficientCreditsError,
    StemsweepError,
    UsageError,
)
from orchestrator.failures import Fault, Outcome, Record, Step, on_failure, upload_fault
from orchestrator.files import write_json_atomic
from orchestrator.jobs import JobId, Shard, song_key, song_ref
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
from orchestrator.paths import song_folder, song_slug
from orchestrator.scheduling import Ticket
from orchestrator.songfiles import file_digest
from orchestrator.spec import Manifest, SongFile
from orchestrator.views import PlanRow, plan_rows

log = get_logger()


@dataclass(frozen=True)
class Song:
    """One distinct song of the manifest: `file` is the first file with its bytes (its
    title, its name in the upload), `paths` every file with them (more than one: the same
    song under several names)."""

    digest: str
    file: SongFile
    paths: tuple[Path, ...]
    models: tuple[str, ...]  # in catalogue order: the first creates the project
    folder: str

    @property
    def ref(self) -> str:
        """Its name before it has a project: `b3.<digest>` (`jobs.song_ref`)."""
        return song_ref(self.digest)

    @property
    def name(self) -> str:
        return str(self.file.path)


def plan_songs(
    manifest: Manifest,
    digests: Mapping[Path, str],
    catalogue: Sequence[str],
    recorded: Mapping[str, str],
) -> list[Song]:
    """The manifest's distinct songs, in manifest order (pure).

    `digests` gives each song file's digest, `catalogue` the model names in catalogue
    order, `recorded` the folder the store already gave a song (by digest), which it keeps.
    """
    files: dict[str, list[SongFile]] = {}
    models: dict[str, set[str]] = {}
    for sweep in manifest.sweeps:
        for song in sweep.songs:
            digest = digests[song.path]
            same = files.setdefault(digest, [])
            if all(f.path != song.path for f in same):
                same.append(song)
            models.setdefault(digest, set()).update(sweep.models)
    projects = {p.lower() for sweep in manifest.sweeps for p in sweep.projects}
    slugs = {digest: song_slug(same[0].path.name) for digest, same in files.items()}
    by_slug: dict[str, set[str]] = {}
    for digest, slug in slugs.items():
        by_slug.setdefault(slug, set()).add(digest)
    taken = {folder: digest for digest, folder in recorded.items()}
    rank = {name: i for i, name in enumerate(catalogue)}
    songs = []
    for digest, same in files.items():
        slug = slugs[digest]
        unique = (
            len(by_slug[slug]) == 1 and slug not in projects and taken.get(slug, digest) == digest
        )
        songs.append(
            Song(
                digest=digest,
                file=same[0],
                paths=tuple(f.path for f in same),
                models=tuple(sorted(models[digest], key=lambda m: rank.get(m, len(rank)))),
                folder=recorded.get(digest) or song_folder(slug, digest, unique=unique),
            )
        )
    return songs


async def digest_songs(manifest: Manifest, ledger: Ledger) -> dict[Path, str]:
    """The BLAKE3 digest of every song file of the manifest. A file whose path, size and
    modification time the store knows is not read again; the others are hashed in a worker
    thread. `UsageError` naming a file that cannot be read any more."""
    digests, unknown = _known_digests(manifest, ledger)
    hashed = await anyio.to_thread.run_sync(_hash_all, list(unknown)) if unknown else {}
    ledger.remember_digests((*unknown[path], digest) for path, digest in hashed.items())
    return {**digests, **hashed}


def _known_digests(
    manifest: Manifest, ledger: Ledger
) -> tuple[dict[Path, str], dict[Path, tuple[str, int, int]]]:
    """The digests the store knows, by file; the other files' (path, size, mtime_ns)."""
    digests: dict[Path, str] = {}
    unknown: dict[Path, tuple[str, int, int]] = {}
    for sweep in manifest.sweeps:
        for song in sweep.songs:
            if song.path in digests or song.path in unknown:
                continue
            try:
                status = song.path.stat()
                where = str(song.path.resolve())
            except OSError as exc:
                raise _unreadable(song.path, exc) from None
            digest = ledger.known_digest(where, status.st_size, status.st_mtime_ns)
            if digest is None:
                unknown[song.path] = (where, status.st_size, status.st_mtime_ns)
            else:
                digests[song.path] = digest
    return digests, unknown


def _hash_all(paths: Sequence[Path]) -> dict[Path, str]:
    hashed = {}
    for path in paths:
        try:
            hashed[path] = file_digest(path)
        except OSError as exc:
            raise _unreadable(path, exc) from None
    return hashed


def _unreadable(path: Path, exc: OSError) -> UsageError:
    return UsageError(f"{path}: cannot be read ({exc.strerror or exc})")


class Dispatch(Protocol):
    """What the songs tell the engine: a job to offer to the limits, one to show as
    waiting, and a job that ends the run without being done."""

    def offer(self, ticket: Ticket) -> None: ...
    def wait(self, ticket: Ticket) -> None: ...
    def fail(self, ticket: Ticket, status: str, attempt: int, reason: str) -> None: ...


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
                record.status if record else None, record.attempt if record else 1, mode=self._mode
            )
            if step is SongStep.READY:
                assert record is not None and record.project is not None
                self._place(song, record.project)
                yield from (JobId(record.project, model) for model in song.models)
                continue
            tickets = [
                Ticket(JobId(song.ref, m), Decision(Action.SUBMIT, 1), gate=song.ref)
                for m in song.models
            ]
            if step is SongStep.REPORT_FAILED:
                assert record is not None
                reason = reported_again(Status.FAILED, record.error)
                for ticket in tickets:
                    self._report(song, ticket, Status.FAILED, attempt, reason)
                continue
            first = tickets[0]
            if record is not None and record.status is SongStatus.CREATING:
                first.job = JobId(song.ref, record.split_model or song.models[0])
            first.decision = Decision(Action.CREATE, attempt)
            self._parked[song.ref] = tickets[1:]
            for ticket in tickets[1:]:
                self.dispatch.wait(ticket)
            yield first

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
                        "title": record.title if record else song.file.title,
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
        if record.status is SongStatus.CREATING and record.create_key is not None:
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
        parked behind it, as `lifecycle.on_failure` says."""
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


async def prepare_songs(manifest: Manifest, ledger: Ledger, catalogue: Sequence[str]) -> list[Song]:
    """Every song of the manifest, digested (in a worker thread) and planned."""
    if not any(sweep.songs for sweep in manifest.sweeps):
        return []
    digests = await digest_songs(manifest, ledger)
    recorded = {song.digest: song.folder for song in ledger.songs()}
    return plan_songs(manifest, digests, catalogue, recorded)


def in_shard(songs: Sequence[Song], shard: Shard | None) -> list[Song]:
    """The songs of `shard` (every one without a shard)."""
    return list(songs) if shard is None else [s for s in songs if shard.has_song(s.digest)]


def plan_rows_of_songs(
    songs: Sequence[Song],
    ledger: Ledger,
    *,
    lookup: Any,
    files_present: Any,
    scope: str,
    mode: Mode,
) -> Iterator[tuple[PlanRow, float | None]]:
    """What a run would do with each song's jobs, from the state alone, as `plan` shows it;
    each row with the song's duration when it is not a project yet (for `plan --quote`)."""
    for song in songs:
        record = ledger.song(song.digest)
        step, attempt = decide_song(
            record.status if record else None, record.attempt if record else 1, mode=mode
        )
        if step is SongStep.READY:
            assert record is not None and record.project is not None
            jobs = [JobId(record.project, model) for model in song.models]
            for row in plan_rows(
                jobs, lookup=lookup, files_present=files_present, scope=scope, mode=mode
            ):
                yield replace(row, folder=f"{row.model}/{song.folder}"), None
            continue
        state = "new" if record is None else str(record.status)
        first = song.models[0]
        for model in song.models:
            if step is SongStep.REPORT_FAILED:
                action, key = str(Action.REPORT_FAILED), "-"
            elif model == first:
                action, key = str(Action.CREATE), song_key(scope, song.digest, "create", attempt)
            else:
                action, key = str(Action.SUBMIT), "-"  # its project's key, once it has one
            row = PlanRow(
                project=f"({song.folder})",
                model=model,
                recorded=state,
                action=action,
                attempt=attempt if model == first else 1,
                key=key,
                folder=f"{model}/{song.folder}",
            )
            yield row, song.file.duration


def song_job_ids(songs: Sequence[Song], ledger: Ledger) -> Iterator[JobId]:
    """Every job of the songs, for `status`: those of a song that is a project under its
    project's id, the others under the song's ref (no state row: pending)."""
    for song in songs:
        record = ledger.song(song.digest)
        project = record.project if record and record.project else song.ref
        yield from (JobId(project, model) for model in song.models)


def songs_for_reading(manifest: Manifest, ledger: Ledger, shard: Shard | None) -> list[Song]:
    """The songs of `shard` as `plan` and `status` see them (blocking: the files the store
    does not know are hashed here, and their digests not recorded)."""
    from orchestrator.catalog import model_names

    if not any(sweep.songs for sweep in manifest.sweeps):
        return []
    digests, unknown = _known_digests(manifest, ledger)
    digests.update(_hash_all(list(unknown)))
    recorded = {song.digest: song.folder for song in ledger.songs()}
    return in_shard(plan_songs(manifest, digests, model_names(), recorded), shard)
