"""One job's files: choose its stems, receive them, and put them in place with its job.json.

After a separation succeeded, `Delivery.deliver` reads the project (fresh signed URLs),
picks the job's stems by model and type (`lifecycle.select_stems`), receives each one
(`YoukaClient.fetch`: verified, in memory or in a temporary file) and commits them
together with the job's `job.json` (`files.commit`): a reader sees all of a job's files or
none of them. When the storage host refuses the signed URLs, the project is read again for
fresh ones, up to `EXPIRED_URL_ROUNDS` times; stems already received are kept.

It returns an outcome, `Delivered` (the files' rows, and the wanted types the model did
not deliver or that are unsafe as file names) or `Undelivered` (the failure, for
`failures.on_failure`), and records and reports nothing about the job itself: the
engine does. A rejected key (`CredentialsError`) propagates: the run stops.

Two limits hold across the run: `DOWNLOAD_CONCURRENCY` jobs receive at once, and
`COMMIT_CONCURRENCY` put their files in place at once. A job hands its received files from
a download slot to a commit slot, so the next job's bytes flow while its fsyncs wait.

A project made from a song file has its files in the song's folder
(`{out}/{model}/{song}/`, `SongPlace`), and its `job.json` names the song: `song` (its path)
and `song_blake3` (the digest of its bytes), next to `project`.

`check_done` verifies a finished job's files on a later run, without the network;
`save_references` saves the true stems an in-process simulator serves, for the report.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

import anyio

from orchestrator.api import YoukaClient
from orchestrator.download import digest_matches
from orchestrator.errors import ApiError, DownloadError, ExpiredUrlError
from orchestrator.failures import Fault, fault_of
from orchestrator.files import GroupCommit, Staged, discard, write_json_atomic
from orchestrator.jobs import JobId
from orchestrator.lifecycle import Selection, Status, select_stems
from orchestrator.logs import get_logger
from orchestrator.paths import is_safe_name, job_file, reference_base, stem_base
from orchestrator.reads import SharedReads
from orchestrator.state import JobRecord, StemRow
from orchestrator.wire import Stem

EXPIRED_URL_ROUNDS = 3  # project reads per job when signed URLs keep expiring
DOWNLOAD_CONCURRENCY = 8  # jobs receiving their stem files at once, whole run
COMMIT_CONCURRENCY = 8  # jobs putting received files in place (fsync, rename) at once

log = get_logger()


@dataclass(frozen=True)
class SongPlace:
    """Where the jobs of a project made from a song put their files (`folder`, in place of
    the project id), and the song: the file it was uploaded from and its BLAKE3 digest."""

    folder: str
    path: str
    digest: str


@dataclass(frozen=True)
class Delivered:
    """Every chosen file of a job is in place: their rows (to record), and the wanted types
    the model did not deliver (`missing`) or that are not safe as file names (`unsafe`)."""

    stems: list[StemRow]
    missing: tuple[str, ...]
    unsafe: tuple[str, ...]


@dataclass(frozen=True)
class Undelivered:
    """A job's files could not all be put in place: the failure, and the error's message."""

    fault: Fault
    error: str = ""


class Delivery:
    """Receives and commits jobs' files under the run's download and commit slots."""

    def __init__(
        self,
        out: Path,
        client: YoukaClient,
        reads: SharedReads,
        wanted: Sequence[str],
        places: Mapping[str, SongPlace] | None = None,
    ) -> None:
        self.out = out
        self._client = client
        self._reads = reads
        self._wanted = wanted
        self._places: Mapping[str, SongPlace] = places if places is not None else {}
        self._downloads = anyio.CapacityLimiter(DOWNLOAD_CONCURRENCY)
        self._commits = anyio.CapacityLimiter(COMMIT_CONCURRENCY)
        self._group = GroupCommit()  # the jobs committing at once share worker-thread calls

    async def deliver(
        self, job: JobId, row: JobRecord, *, hold: float = 0.0
    ) -> Delivered | Undelivered:
        """Put the job's files in place, with fresh project reads when URLs expire; the
        first read may wait `hold` seconds for other jobs of the project (`reads`)."""
        staged: dict[str, tuple[Stem, Staged]] = {}
        expired = ""
        try:
            for _ in range(EXPIRED_URL_ROUNDS):
                try:
                    project = await self._reads.project(job.project, hold=hold)
                    hold = 0.0
                except ApiError as exc:
                    return Undelivered(fault_of(exc), str(exc))
                chosen = select_stems(
                    project.stems,
                    model=job.model,
                    wanted=self._wanted,
                    known_ids=row.known_stem_ids,
                    is_safe=is_safe_name,
                )
                if chosen.delivered == 0:
                    return Undelivered(Fault.NO_STEMS)
                try:
                    stems = await self._receive_and_commit(job, row, chosen, staged)
                except ExpiredUrlError as exc:
                    expired = str(exc)
                    log.info("download.expired_url", project=job.project, model=job.model)
                    continue
                except DownloadError as exc:
                    return Undelivered(Fault.FILES, str(exc))
                return Delivered(stems, chosen.missing, chosen.unsafe)
            return Undelivered(Fault.URLS_EXPIRED, expired)
        finally:
            discard(file for _, file in staged.values())

    def check_done(self, row: JobRecord, stems: list[StemRow]) -> list[StemRow] | None:
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
        path, document = self._job_document(row, stems, row.missing_types, row.unsafe_types)
        if not path.exists():
            write_json_atomic(path, document)
        return verified

    async def _receive_and_commit(
        self,
        job: JobId,
        row: JobRecord,
        chosen: Selection[Stem],
        staged: dict[str, tuple[Stem, Staged]],
    ) -> list[StemRow]:
        """Receive the chosen stems not in `staged` yet, then put the job's files in place.

        What is received stays in `staged` until its commit takes it (the caller discards
        what is left); a stem received in an earlier round, before a URL expired, is kept.
        """
        async with self._downloads:
            for stem in chosen.chosen:
                if stem.type not in staged:
                    dest = stem_base(self.out, job.model, self._folder(job.project), stem.type)
                    staged[stem.type] = (stem, await self._client.fetch(stem.url, dest))
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
        row: JobRecord,
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
        placed = await self._group.commit(
            [file for _, file in files], [self._job_document(row, rows, missing, unsafe)]
        )
        return [replace(r, mtime_ns=p.mtime_ns) for r, p in zip(rows, placed, strict=True)]

    def _job_document(
        self,
        row: JobRecord,
        stems: list[StemRow],
        missing: Iterable[str],
        unsafe: Iterable[str],
    ) -> tuple[Path, dict[str, Any]]:
        """Where the job's `job.json` goes, and what it says."""
        place = self._places.get(row.project)
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
            song=None if place is None else {"song": place.path, "song_blake3": place.digest},
        )
        return job_file(self.out, row.model, self._folder(row.project)), document

    def _folder(self, project: str) -> str:
        """The job's folder under its model's: its song's, or its project id."""
        place = self._places.get(project)
        return project if place is None else place.folder


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
    song: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The content of a job's `job.json`; each stem: id, type, duration, bytes, blake3, file.

    `file` is relative to the folder of `job.json`. No URL and no API key appear. `song`
    (`song`: the file's path, `song_blake3`: its digest) for a project made from a song.
    """
    return {
        **(song or {}),
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


class ReferenceSource(Protocol):
    """Where the true stems of a project's song can be fetched: an in-process simulator."""

    def reference_urls(self, project: str) -> Mapping[str, str]:
        """The URL of each true part (`original`, `vocals`, ...) of `project`'s song."""
        ...


async def save_references(
    client: YoukaClient, source: ReferenceSource, projects: Iterable[str], out: Path
) -> None:
    """Save each project's true parts to `{out}/_references/{project}/{type}.{ext}`.

    The comparison report scores separations against them. Parts already saved are not
    fetched again; a part that cannot be fetched is logged, and the project's other parts
    are left for the next run.
    """
    for project in dict.fromkeys(projects):
        for kind, url in source.reference_urls(project).items():
            base = reference_base(out, project, kind)
            if any(base.parent.glob(f"{kind}.*")):
                continue
            try:
                await client.download(url, base)
            except DownloadError as exc:
                log.warning("references.failed", project=project, type=kind, reason=str(exc))
                break
