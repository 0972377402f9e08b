"""Records that come into a state store from elsewhere: another split's store (`adopt`,
`open_view`), or the tree's job.json files (`restore`, for `state_guard`'s rebuild).

Part of the state boundary (with `state`, `state_schema` and `ledger`, the only modules
that touch SQLite): it works on the store's own connection, in the store's transactions.

`adopt` is for a tree whose runs were re-sharded (or went from one store to shards, or
back): a job done under another split stays done, a submission in flight is resumed with
its own key, a failed one keeps its attempt number, and the latest record of a job (by
`updated_at`) wins wherever it was made. The other store is only read, of any schema this
stemsweep reads; one that is not a stemsweep store adds nothing.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from orchestrator.state import StateStore
from orchestrator.state_files import refuse_links
from orchestrator.state_schema import (
    ATTEMPT_COLUMNS,
    JOB_COLUMNS,
    READABLE_VERSIONS,
    STEM_COLUMNS,
    JobRecord,
    StemRow,
    job_columns,
    stem_columns,
    translated,
)


def adopt(store: StateStore, other: Path, wanted: Callable[[str], bool]) -> int:
    """Copy into `store`, from the store at `other`, the jobs of the projects `wanted`
    selects that `store` has no row for, or an older one (by `updated_at`), with their
    attempts and files; return how many jobs (module docstring)."""
    refuse_links(other)
    conn = store.connection
    with translated(other):
        conn.create_function("stemsweep_wanted", 1, wanted, deterministic=True)
        conn.execute("ATTACH DATABASE ? AS other", (f"{other.resolve().as_uri()}?mode=ro",))
    try:
        with translated(other, doing="read"):
            version = conn.execute("PRAGMA other.user_version").fetchone()[0]
            tables = conn.execute(
                "SELECT count(*) FROM other.sqlite_master WHERE type = 'table' "
                "AND name IN ('jobs', 'attempts', 'stems')"
            ).fetchone()[0]
            if version not in READABLE_VERSIONS or tables != 3:
                return 0
            with store.transaction():
                return _copy_jobs(store, version)
    finally:
        conn.execute("DETACH DATABASE other")


def _copy_jobs(store: StateStore, version: int) -> int:
    conn = store.connection
    picked = "(project, model) IN (SELECT project, model FROM temp.adopted)"
    conn.execute(
        "CREATE TEMP TABLE adopted AS SELECT project, model FROM other.jobs AS o "
        "WHERE stemsweep_wanted(o.project) AND NOT EXISTS (SELECT 1 FROM main.jobs AS j "
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


def restore(store: StateStore, jobs: Iterable[tuple[JobRecord, Sequence[StemRow]]]) -> int:
    """Record jobs (with their files) `store` has no row for, in one transaction; return how
    many. For a store rebuilt from the tree's `job.json` files."""
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
    return count
