"""Records that come into a state store from elsewhere: another split's store (`adopt`,
`open_view`), or the tree's job.json files (`restore`, for `state_rebuild`).

Part of the state boundary (with `state`, `state_schema` and `ledger`, the only modules
that touch SQLite): it works on the store's own connection, in the store's transactions.

`adopt` is for a tree whose runs were re-sharded (or went from one store to shards, or
back): a job done under another split stays done, a submission in flight is resumed with
its own key, a failed one keeps its attempt number, and the latest record of a job (by
`updated_at`) wins wherever it was made. With its jobs come the records of `ledger` that go
with them: a song stays the project it became (it is never uploaded or created again), and
the credits reserved for its submissions stay counted under `limits.max_credits`.

Each job, song and reservation goes to the shard its name hashes to (`jobs.Shard`): a
project's id, or for a song and every job and reservation of the project it became, the
song's ref (`b3.{digest}`), since songs are given to shards by their digest. A store knows
a project as a song's from its `songs` table (the other store's, or this one's).
The other store is only read, of any schema this stemsweep reads; one that is not a
stemsweep store adds nothing.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from orchestrator.jobs import SONG_REF_PREFIX
from orchestrator.state import StateStore
from orchestrator.state_files import refuse_links
from orchestrator.state_schema import (
    ATTEMPT_COLUMNS,
    JOB_COLUMNS,
    LEDGER_TABLES,
    READABLE_VERSIONS,
    RESERVATION_COLUMNS,
    SONG_COLUMNS,
    STEM_COLUMNS,
    JobRecord,
    StemRow,
    create_ledger_tables,
    job_columns,
    song_columns,
    stem_columns,
    translated,
)


def adopt(store: StateStore, other: Path, wanted: Callable[[str], bool]) -> int:
    """Copy into `store`, from the store at `other`, the jobs `wanted` selects that `store`
    has no row for, or an older one (by `updated_at`), with their attempts and files, and
    the songs, song files' digests and credit reservations that go with them; return how
    many jobs (module docstring).

    `wanted` is asked with the name a job's shard is chosen by: its project id, or for a
    project made from a song, its song's ref (`b3.{digest}`).
    """
    refuse_links(other)
    conn = store.connection
    with translated(other):
        conn.create_function("stemsweep_wanted", 1, wanted, deterministic=True)
        conn.execute("ATTACH DATABASE ? AS other", (f"{other.resolve().as_uri()}?mode=ro",))
    try:
        with translated(other, doing="read"):
            version = conn.execute("PRAGMA other.user_version").fetchone()[0]
            tables = {
                str(row[0])
                for row in conn.execute("SELECT name FROM other.sqlite_master WHERE type = 'table'")
            }
            if version not in READABLE_VERSIONS or not {"jobs", "attempts", "stems"} <= tables:
                return 0
            create_ledger_tables(conn)  # the ledger's, which the song-aware choice below reads
            songs = set(LEDGER_TABLES) <= tables
            with store.transaction():
                count = _copy_jobs(store, version, songs=songs)
                if songs:
                    _copy_ledger(store)
                return count
    finally:
        conn.execute("DETACH DATABASE other")


def _shard_name(project: str, *, songs: bool) -> str:
    """SQL for the name a job of `project` (an SQL expression) is sharded by: its song's ref
    when a store knows the project as a song's, else the project id itself."""
    known = [
        f"(SELECT '{SONG_REF_PREFIX}' || s.digest FROM {db}.songs AS s "
        f"WHERE s.project = {project} LIMIT 1)"
        for db in (("other", "main") if songs else ("main",))
    ]
    return f"coalesce({', '.join(known)}, {project})"


def _copy_jobs(store: StateStore, version: int, *, songs: bool) -> int:
    conn = store.connection
    picked = "(project, model) IN (SELECT project, model FROM temp.adopted)"
    conn.execute(
        "CREATE TEMP TABLE adopted AS SELECT project, model FROM other.jobs AS o "
        f"WHERE stemsweep_wanted({_shard_name('o.project', songs=songs)}) "
        "AND NOT EXISTS (SELECT 1 FROM main.jobs AS j "
        "WHERE j.project = o.project AND j.model = o.model "
        "AND j.updated_at >= o.updated_at)"
    )
    count = int(conn.execute("SELECT count(*) FROM temp.adopted").fetchone()[0])
    conn.execute(f"DELETE FROM main.stems WHERE {picked}")
    copied = (
        ("jobs", JOB_COLUMNS, job_columns(version)),
        ("attempts", ATTEMPT_COLUMNS, ATTEMPT_COLUMNS),
        ("stems", f"project, model, {STEM_COLUMNS}", f"project, model, {stem_columns(version)}"),
    )
    for table, columns, source in copied:
        conn.execute(
            f"INSERT OR REPLACE INTO main.{table} ({columns}) "
            f"SELECT {source} FROM other.{table} WHERE {picked}"
        )
    conn.execute("DROP TABLE temp.adopted")
    return count


def _copy_ledger(store: StateStore) -> None:
    """The songs `wanted` selects (by their ref), the latest record of each; every song
    file's digest this store does not know; the reservations of the projects and songs
    `wanted` selects, the latest record of each key."""
    conn = store.connection
    conn.execute(
        f"INSERT OR REPLACE INTO main.songs ({SONG_COLUMNS}) "
        f"SELECT {song_columns(conn, 'other')} FROM other.songs AS o "
        f"WHERE stemsweep_wanted('{SONG_REF_PREFIX}' || o.digest) "
        "AND NOT EXISTS (SELECT 1 FROM main.songs AS s "
        "WHERE s.digest = o.digest AND s.updated_at >= o.updated_at)"
    )
    conn.execute(
        "INSERT OR IGNORE INTO main.song_files (path, bytes, mtime_ns, digest) "
        "SELECT path, bytes, mtime_ns, digest FROM other.song_files"
    )
    conn.execute(
        f"INSERT OR REPLACE INTO main.reservations ({RESERVATION_COLUMNS}) "
        f"SELECT {RESERVATION_COLUMNS} FROM other.reservations AS o "
        f"WHERE stemsweep_wanted({_shard_name('o.subject', songs=True)}) "
        "AND NOT EXISTS (SELECT 1 FROM main.reservations AS r "
        "WHERE r.key = o.key AND r.updated_at >= o.updated_at)"
    )


def open_view(path: Path, others: Sequence[Path]) -> StateStore:
    """Read-only, in memory: the store at `path` as a run of it would see it after adopting
    `others` (`state_files.other_splits`), i.e. the latest record of every job wherever it
    was made. Without `others`, `StateStore.open_reader(path)`.

    For `plan` and `status` of a sharded tree: without `--shard` they see what every shard
    recorded, and a shard of a new split sees what the earlier splits did.
    """
    if not others:
        return StateStore.open_reader(path)
    view = StateStore.open_memory(path)
    for source in (path, *others):
        if source.is_file():
            adopt(view, source, lambda _: True)
    return view


def restore(
    store: StateStore,
    jobs: Iterable[tuple[JobRecord, Sequence[StemRow]]],
    also: Callable[[], None] | None = None,
) -> int:
    """Record jobs (with their files) `store` has no row for, and then run `also` (the
    ledger's part), in one transaction: a crash leaves all of it or none; return how many
    jobs. For a store rebuilt from the tree's `job.json` files."""
    conn = store.connection
    count = 0
    with store.transaction():
        for row, stems in jobs:
            cursor = conn.execute(
                f"INSERT OR IGNORE INTO jobs ({JOB_COLUMNS}) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    row.project,
                    row.model,
                    row.attempt,
                    row.key,
                    row.task_id,
                    row.status,
                    row.submitted_at,
                    row.finished_at,
                    row.error,
                    json.dumps(list(row.known_stem_ids)),
                    json.dumps(list(row.missing_types)),
                    json.dumps(list(row.unsafe_types)),
                    row.updated_at,
                    row.key_at,
                ),
            )
            if cursor.rowcount != 1:
                continue
            count += 1
            conn.execute(
                f"INSERT OR REPLACE INTO attempts ({ATTEMPT_COLUMNS}) "
                f"SELECT {ATTEMPT_COLUMNS} FROM jobs WHERE project = ? AND model = ?",
                (row.project, row.model),
            )
            conn.executemany(
                f"INSERT OR REPLACE INTO stems (project, model, {STEM_COLUMNS}) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (row.project, row.model, s.type, s.stem_id, s.duration, s.bytes, s.digest)
                    + (s.file, s.mtime_ns)
                    for s in stems
                ],
            )
        if also is not None:
            also()
    return count
