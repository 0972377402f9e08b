"""The songs of a manifest, before any request: digested, planned, and what `plan` and
`status` show of them (their upload and creation are `songs`').

    digest    every song file of the manifest is hashed (BLAKE3) before any request (the
              store remembers the digest of a file by path, size and modification time);
              files with the same bytes are one song, whose shard is its digest's
    plan      each song's models (every model its sweeps name, in catalogue order), the
              model its project is created with (the first), and its folder in the tree
              (`paths.song_folder`: a slug of its file name, with a short digest when
              another song or project of the manifest has the same; fixed once uploaded)
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import anyio

from orchestrator.errors import UsageError
from orchestrator.jobs import JobId, Shard, song_key, song_ref
from orchestrator.ledger import Ledger
from orchestrator.lifecycle import Action, Mode, SongStep, decide_song
from orchestrator.paths import song_folder, song_slug
from orchestrator.songfiles import file_digest
from orchestrator.spec import Manifest, SongFile
from orchestrator.views import PlanRow, plan_rows


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
