"""A lost state store rebuilt from the tree's job.json files (`state_guard` decides when).

Every done job left a `{out}/{model}/{folder}/job.json` with its files: its key, attempt,
task id and stems (sizes, digests). `rebuild` records each one the store has no row for,
as `done` (its files are hashed again before they are trusted), and from them what else the
store held:

    what                      from                           rebuilt as
    a job                     its job.json                   `done`, with its stems
    a song made into a        any job.json naming it         a `created` song: its path,
      project                   (`song`, `song_blake3`,        digest, folder (the job's),
                                `project`)                     project; so it is never
                                                               uploaded or created again
    its creation              the job.json whose key is      the creation's key, model and
                                the song's creation key        task, and the song's attempt
                                (`ss1:...:b3.{digest}:
                                create:{n}`)
    credit reservations       every restored job's key       `unpriced`: a run under
                                                               `limits.max_credits` prices
                                                               each again and counts it
                                                               before any submission

What cannot be rebuilt: a song's title (the file's title is shown in its place) and its
upload (not needed once it is a project); the credits each job cost (asked again, above:
the safe side, since every restored job counts, whether or not the run that did it had a
ceiling); a song's creation when its job.json is missing while another of its jobs left
one (then the job of its first model, when it has no row, may be that creation, already
charged: `songs` reports it `needs_attention` rather than separate it again). Jobs without a
job.json (not done when the state was lost) start again from their first key.

All of it is one transaction: a crash leaves the store as it was (empty, so the next run
rebuilds it again) or rebuilt whole.

A job belongs to the shard its project hashes to, or, for a project made from a song, the
shard its song's ref (`b3.{digest}`) hashes to: `wanted` is asked with that name. A
song's folder does not tell its shard, so a shard reads every job.json of the tree, and
parses those of its own projects and of songs: of a tree of 10,000 (best of 3, twice, on
a shared 2-CPU machine), a shard of 4 rebuilt in 0.27 and 0.33 s, where reading its own
projects' alone took 0.21 and 0.24 s; the whole tree in 0.66 and 0.72 s (0.77 and 0.79).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from orchestrator.jobs import KEY_COMPONENT_PATTERN, song_ref
from orchestrator.ledger import Ledger
from orchestrator.lifecycle import SongStatus, Status
from orchestrator.paths import JOB_FILE, is_safe_name
from orchestrator.state import JobRecord, StateStore, StemRow, utc_now
from orchestrator.state_files import no_follow
from orchestrator.state_merge import restore
from orchestrator.state_schema import SongRecord, create_ledger_tables

MAX_JOB_FILE_BYTES = 1 << 20  # a job.json of a handful of stems is about 1 KiB
MAX_TEXT = 255  # keys, task and stem ids of a job.json
MAX_SONG_PATH = 4096  # the song file's path a job.json names
_HEX_DIGEST = re.compile(r"[0-9a-f]{64}")
SONG_MARK = b'"song_blake3"'  # in every job.json of a song's job, whatever its folder
_KEY = re.compile(r"[A-Za-z0-9._:-]{1,255}")


@dataclass(frozen=True)
class SongOf:
    """The song a job.json names: its digest, the file's path, the job's folder."""

    digest: str
    path: str
    folder: str


@dataclass(frozen=True)
class JobFile:
    """What one done job's job.json says: its row, its files, and its song, if any."""

    row: JobRecord
    stems: list[StemRow]
    song: SongOf | None = None


@dataclass
class Rebuilt:
    """What a rebuild found: jobs and songs restored, and job.json files it could not use
    (with why)."""

    jobs: int = 0
    songs: int = 0
    unreadable: list[str] = field(default_factory=list)


def rebuild(store: StateStore, out: Path, wanted: Callable[[str], bool]) -> Rebuilt:
    """Record every done job whose `job.json` is in the tree at `out` (of the projects and
    songs `wanted` selects, by project id or song ref) that `store` has no row for, with
    its song and an `unpriced` reservation of its key (module docstring)."""
    result = Rebuilt()
    found: list[JobFile] = []
    for path, model, folder in job_files(out):
        try:
            raw, mtime = _read(path)
            if not wanted(folder) and SONG_MARK not in raw:
                continue  # another shard's project: not parsed
            job = parse_job_file(raw, mtime, model, folder)
        except ValueError as exc:
            if wanted(folder):  # else another shard's project, most likely
                result.unreadable.append(f"{path}: {exc}")
            continue
        if wanted(song_ref(job.song.digest) if job.song else job.row.project):
            found.append(job)
    create_ledger_tables(store.connection)
    ledger = Ledger(store)

    def songs_and_credits() -> None:
        result.songs = ledger.restore_songs(songs_of(found))
        ledger.restore_unpriced(
            (job.row.key, job.row.project, job.row.model) for job in found if job.row.key
        )

    result.jobs = restore(store, ((job.row, job.stems) for job in found), songs_and_credits)
    return result


def songs_of(jobs: list[JobFile]) -> list[SongRecord]:
    """The songs the job.json files name, as `created` songs (module docstring): each from
    its creation's job.json when there is one, else from the latest of its jobs'."""
    by_digest: dict[str, list[JobFile]] = {}
    for job in jobs:
        if job.song is not None:
            by_digest.setdefault(job.song.digest, []).append(job)
    songs = []
    for digest, same in by_digest.items():
        same.sort(key=lambda j: j.row.updated_at, reverse=True)
        creation = next((j for j in same if _creation_attempt(j.row.key, digest)), None)
        source = creation or same[0]
        assert source.song is not None
        attempt = _creation_attempt(creation.row.key, digest) if creation else None
        songs.append(
            SongRecord(
                digest=digest,
                path=source.song.path,
                title="",  # not recorded in job.json: the song file's title stands in
                folder=source.song.folder,
                attempt=attempt or 1,
                status=SongStatus.CREATED,
                upload_key=None,
                input_file_id=None,
                create_key=creation.row.key if creation else None,
                split_model=creation.row.model if creation else None,
                project=source.row.project,
                task_id=creation.row.task_id if creation else None,
                error=None,
                updated_at=source.row.updated_at,
            )
        )
    return songs


def _creation_attempt(key: str | None, digest: str) -> int | None:
    """The song's attempt when `key` is its creation's key (`jobs.song_key`), else None."""
    parts = (key or "").split(":")
    if len(parts) == 5 and parts[2] == song_ref(digest) and parts[3] == "create":
        return int(parts[4]) if parts[4].isdigit() and int(parts[4]) >= 1 else None
    return None


def job_files(out: Path) -> Iterator[tuple[Path, str, str]]:
    """(path, model, folder) of every `{out}/{model}/{folder}/job.json`, in name order;
    folders whose names are not plain names are not looked into."""
    try:
        models = sorted(e.name for e in os.scandir(out) if e.is_dir(follow_symlinks=False))
    except OSError:
        return
    for model in models:
        if not is_safe_name(model) or model.startswith("_"):
            continue
        try:
            folders = sorted(
                e.name for e in os.scandir(out / model) if e.is_dir(follow_symlinks=False)
            )
        except OSError:
            continue
        for folder in folders:
            path = out / model / folder / JOB_FILE
            if is_safe_name(folder) and path.is_file():
                yield path, model, folder


def read_job_file(path: Path, model: str, folder: str) -> JobFile:
    """A done job's row, files and song from its `job.json` in `{model}/{folder}/`;
    `ValueError` saying what is wrong with a file that is not one (too long, not JSON,
    another job's, a field out of shape)."""
    return parse_job_file(*_read(path), model, folder)


def _read(path: Path) -> tuple[bytes, float]:
    """A job.json's bytes and modification time, never through a link; `ValueError`."""
    try:
        with open(path, "rb", opener=no_follow) as f:
            raw = f.read(MAX_JOB_FILE_BYTES + 1)
        mtime = os.stat(path, follow_symlinks=False).st_mtime
    except OSError as exc:
        raise ValueError(f"cannot be read ({exc.strerror or exc})") from None
    if len(raw) > MAX_JOB_FILE_BYTES:
        raise ValueError(f"longer than {MAX_JOB_FILE_BYTES} bytes")
    return raw, mtime


def parse_job_file(raw: bytes, mtime: float, model: str, folder: str) -> JobFile:
    """`read_job_file`, from the file's bytes and modification time."""
    try:
        doc = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise ValueError("not JSON") from None
    if not isinstance(doc, dict):
        raise ValueError("not a JSON object")
    song = _song(doc, folder)
    project = doc.get("project")
    if doc.get("model") != model or (song is None and project != folder):
        raise ValueError(f"names another job than {model}/{folder}")
    if song is not None and not (
        isinstance(project, str)
        and len(project) <= MAX_TEXT
        and KEY_COMPONENT_PATTERN.fullmatch(project)
    ):
        raise ValueError("no usable project")
    if doc.get("status") != Status.DONE:
        raise ValueError(f"status {str(doc.get('status'))[:40]!r}, not done")
    key, attempt = doc.get("key"), doc.get("attempt")
    if not isinstance(key, str) or not _KEY.fullmatch(key):
        raise ValueError("no usable key")
    if type(attempt) is not int or attempt < 1:
        raise ValueError("no usable attempt")
    stems = [_stem(item, model, folder) for item in _list(doc, "stems")]
    when = datetime.fromtimestamp(mtime, UTC).isoformat(timespec="milliseconds")
    row = JobRecord(
        project=folder if song is None else str(project),
        model=model,
        attempt=attempt,
        key=key,
        task_id=_text(doc, "task_id"),
        status=Status.DONE,
        submitted_at=_text(doc, "submitted_at"),
        finished_at=_text(doc, "finished_at"),
        error=None,
        known_stem_ids=(),
        missing_types=tuple(_names(doc, "missing_types")),
        unsafe_types=tuple(_names(doc, "unsafe_types")),
        updated_at=when.replace("+00:00", "Z") if mtime else utc_now(),
    )
    return JobFile(row, stems, song)


def _song(doc: dict[str, object], folder: str) -> SongOf | None:
    """The song a job.json names (`song_blake3`, `song`), if any."""
    if "song_blake3" not in doc:
        return None
    digest, path = doc.get("song_blake3"), doc.get("song")
    if not isinstance(digest, str) or not _HEX_DIGEST.fullmatch(digest):
        raise ValueError("song_blake3 is not a BLAKE3 hex digest")
    if not isinstance(path, str) or not 0 < len(path) <= MAX_SONG_PATH:
        raise ValueError("no usable song path")
    return SongOf(digest=digest, path=path, folder=folder)


def _stem(item: object, model: str, folder: str) -> StemRow:
    if not isinstance(item, dict):
        raise ValueError("a stem is not a JSON object")
    kind, name, size = item.get("type"), item.get("file"), item.get("bytes")
    if not isinstance(kind, str) or not is_safe_name(kind):
        raise ValueError("a stem has no usable type")
    if not isinstance(name, str) or not is_safe_name(name) or not name.startswith(f"{kind}."):
        raise ValueError(f"stem {kind}: no usable file name")
    if type(size) is not int or size < 0:
        raise ValueError(f"stem {kind}: no usable size")
    digest = next(
        (f"{alg}:{item[alg]}" for alg in ("blake3", "sha256") if isinstance(item.get(alg), str)),
        "",
    )
    if not _HEX_DIGEST.fullmatch(digest.partition(":")[2]):
        raise ValueError(f"stem {kind}: no usable digest")
    duration = item.get("duration")
    stem_id = item.get("id")
    if not isinstance(stem_id, str) or not 0 < len(stem_id) <= MAX_TEXT:
        raise ValueError(f"stem {kind}: no usable id")
    return StemRow(
        type=kind,
        stem_id=stem_id,
        duration=None
        if isinstance(duration, bool) or not isinstance(duration, int | float)
        else float(duration),
        bytes=size,
        digest=digest,
        file=f"{model}/{folder}/{name}",
    )


def _list(doc: dict[str, object], name: str) -> list[object]:
    value = doc.get(name, [])
    if not isinstance(value, list):
        raise ValueError(f"{name} is not a list")
    return value


def _names(doc: dict[str, object], name: str) -> list[str]:
    return [v for v in _list(doc, name) if isinstance(v, str) and is_safe_name(v)]


def _text(doc: dict[str, object], name: str) -> str | None:
    value = doc.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > MAX_TEXT:
        raise ValueError(f"{name} is not a short text")
    return value
