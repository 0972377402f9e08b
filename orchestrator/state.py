# Longer than the package's other modules, on purpose: the store is one class over one
# SQLite file, and its schema, every transition with its durability, the crash table that
# reasons about them and the adoption of other splits' records are read together (the
# docstring and the schema are a quarter of it). Cut it where a new table brings its own.
# (Its files and lock are `state_files.py`'s; checking a store as it is opened, and rebuilding
# a lost one, `state_guard.py`'s: neither speaks to SQLite.)
"""The state store: one SQLite file per output tree; with `ledger` (its songs and credit
reservations, in the same file and transactions), the only module that touches SQLite.

Default location `{output}/.stemsweep/state.db` (`--state` overrides). The file is opened
in WAL mode with `synchronous=FULL`, and every method that changes something commits one
transaction. `commit_key` is on disk when it returns: that is what makes a crash at any
instant safe, since the idempotency key is committed (`submitting`) before its POST is
sent, so a later run re-sends the same key and the API answers with the task it already
started.

The other transitions are committed with `synchronous=NORMAL` (`durable=False` below): the
commit is written to the WAL but not waited for on disk. A process crash (even `kill -9`)
loses none of them, since the written WAL is in the OS's cache; a power loss or an OS crash
may lose the last few, always a suffix (the WAL is replayed in order up to its first
incomplete frame), and never a key: every synced commit makes every earlier one durable too.
Each transition that can be lost falls back to a state the next run handles without harm:

    lost              the row reads             the next run
    mark_submitted    submitting (key kept)     re-sends the same key: the API answers
                                                with the same task, no second separation
    mark_finished     submitted (task id kept)  polls the task again: the same verdict
    mark_done         succeeded, or submitted   downloads the stems again (files are
                                                replaced atomically), never re-separates
    mark_download_failed, record_error
                      the status before         downloads again / re-sends the same key
    mark_skipped      no row                    reads the project again
    mark_unsent       submitting (key kept)     re-sends the refused key: the API refuses
                                                it again, or starts it once
    record_created    (the song's `creating`)   re-sends the creation's key: the API
                                                answers the same project and task

Waiting for the disk on each of them cost one fsync per transition, on the event loop's
thread: 167 microseconds of CPU per synced commit against 50 unsynced on the benchmark
machine, more wall time on slower disks (README, "Performance").
A shard (`--shard I/N`) has its own store, `state-shard-I-of-N.db`, next to it.

There is one writer, the `run`/`retry` process. It holds an exclusive `flock` on
`state.db.lock` next to the database for its whole life (the OS drops it when the process
dies, even on `kill -9`); a second writer is refused with `StateLockedError`. `plan` and
`status` open the store read-only and take no lock. No path of the store is used through a
symbolic link (`state_files`: the lock, and the links refused before SQLite opens a file).

Every error of sqlite3 becomes a `StateError` here (exit 2), naming the file and what to do:
a store that cannot be read or written stops the run, since nothing could be recorded.

Tables:

    jobs      one row per (project, model): the current attempt, its key and task id,
              status (see `lifecycle.Status`), ISO-8601 UTC times (`key_at`: when the key
              was committed, just before its first POST), error, the ids of that model's
              stems that existed before the submission, missing/unsafe types
    attempts  one row per (project, model, attempt): the history of keys and outcomes
    stems     one row per (project, model, type): the downloaded file (relative to the
              output root), its bytes, digest (`blake3:<hex>`) and modification time in
              nanoseconds, the stem's id and duration

Schema 2 (digests with their algorithm, modification times) replaced schema 1 (`sha256`
column), and schema 3 added `jobs.key_at`: a writer upgrades an older store in place, in one
transaction, keeping its digests as `sha256:<hex>` (a key committed before schema 3 has no
`key_at`: its row's `updated_at` stands in); readers and `adopt` read every schema.

Nothing secret is stored: no API key, no URL.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType

from orchestrator.errors import StateError, UsageError
from orchestrator.jobs import Shard
from orchestrator.lifecycle import Recorded, Status
from orchestrator.state_files import STATE_DIR, lock, refuse_links

STATE_FILE = "state.db"
SCHEMA_VERSION = 3

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    project TEXT NOT NULL,
    model TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    key TEXT,
    task_id TEXT,
    status TEXT NOT NULL,
    submitted_at TEXT,
    finished_at TEXT,
    error TEXT,
    known_stem_ids TEXT NOT NULL DEFAULT '[]',
    missing_types TEXT NOT NULL DEFAULT '[]',
    unsafe_types TEXT NOT NULL DEFAULT '[]',
    updated_at TEXT NOT NULL,
    key_at TEXT,
    PRIMARY KEY (project, model)
);
CREATE TABLE IF NOT EXISTS attempts (
    project TEXT NOT NULL,
    model TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    key TEXT,
    task_id TEXT,
    status TEXT NOT NULL,
    submitted_at TEXT,
    finished_at TEXT,
    error TEXT,
    PRIMARY KEY (project, model, attempt)
);
CREATE TABLE IF NOT EXISTS stems (
    project TEXT NOT NULL,
    model TEXT NOT NULL,
    type TEXT NOT NULL,
    stem_id TEXT NOT NULL,
    duration REAL,
    bytes INTEGER NOT NULL,
    digest TEXT NOT NULL,
    file TEXT NOT NULL,
    mtime_ns INTEGER,
    PRIMARY KEY (project, model, type)
);
"""

_JOB_COLUMNS = (
    "project, model, attempt, key, task_id, status, submitted_at, finished_at, error, "
    "known_stem_ids, missing_types, unsafe_types, updated_at, key_at"
)
# The same values from a store of schema 1 or 2, which had no `key_at`.
_JOB_COLUMNS_V2 = _JOB_COLUMNS.removesuffix("key_at") + "NULL"


_STEM_COLUMNS = "type, stem_id, duration, bytes, digest, file, mtime_ns"
# The same values from a store of schema 1, which had a bare sha256 and no modification times.
_STEM_COLUMNS_V1 = "type, stem_id, duration, bytes, 'sha256:' || sha256, file, NULL"
_UPGRADE_FROM_V1 = (
    "ALTER TABLE stems RENAME COLUMN sha256 TO digest",
    "UPDATE stems SET digest = 'sha256:' || digest",
    "ALTER TABLE stems ADD COLUMN mtime_ns INTEGER",
)
_UPGRADE_FROM_V2 = ("ALTER TABLE jobs ADD COLUMN key_at TEXT",)

_ATTEMPT_COLUMNS = "project, model, attempt, key, task_id, status, submitted_at, finished_at, error"

# Each table copied by `adopt`: its columns, and the same values read from a store of each
# older schema.
_ADOPTED_TABLES: tuple[tuple[str, str, dict[int, str]], ...] = (
    ("jobs", _JOB_COLUMNS, {1: _JOB_COLUMNS_V2, 2: _JOB_COLUMNS_V2}),
    ("attempts", _ATTEMPT_COLUMNS, {}),
    ("stems", f"project, model, {_STEM_COLUMNS}", {1: f"project, model, {_STEM_COLUMNS_V1}"}),
)
_SHARD_STORE = re.compile(r"state-shard-(\d+)-of-(\d+)\.db")


def default_state_path(output: Path, shard: Shard | None = None) -> Path:
    """Where the state of an output tree lives unless `--state` says otherwise.

    `{output}/.stemsweep/state.db`; a shard's own is `state-shard-I-of-N.db` next to it, so
    the shards of one tree never share a store (nor its lock).
    """
    name = STATE_FILE if shard is None else f"state-{shard.name}.db"
    return output / STATE_DIR / name


def local_api_folder(output: Path, shard: Shard | None = None) -> Path:
    """Where a run's in-process simulator keeps its world: `{output}/.stemsweep/simulator/`,
    or `simulator-shard-I-of-N/` for a shard (each shard's process runs its own)."""
    name = "simulator" if shard is None else f"simulator-{shard.name}"
    return output / STATE_DIR / name


def other_splits(output: Path, shard: Shard | None) -> list[Path]:
    """The stores of the tree at `output` that belong to another split of its jobs, newest
    first: `state.db` and the stores of shards of another N than `shard`'s.

    The other shards of the same N hold none of `shard`'s jobs, and may be running: they
    are left alone.
    """
    folder = output / STATE_DIR
    found = []
    for path in [folder / STATE_FILE, *folder.glob("state-shard-*-of-*.db")]:
        match = _SHARD_STORE.fullmatch(path.name)
        if shard is None and match is None:
            continue  # the unsharded run's own store
        if shard is not None and match is not None and int(match[2]) == shard.count:
            continue
        if path.is_file():
            found.append(path)
    return sorted(found, key=lambda p: p.stat().st_mtime, reverse=True)


def utc_now() -> str:
    """The wall-clock time as ISO-8601 UTC, e.g. `2025-01-31T22:04:05.123Z`."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class JobRecord:
    """One job's recorded state (a `jobs` row)."""

    project: str
    model: str
    attempt: int
    key: str | None
    task_id: str | None
    status: Status
    submitted_at: str | None
    finished_at: str | None
    error: str | None
    known_stem_ids: tuple[str, ...]
    missing_types: tuple[str, ...]
    unsafe_types: tuple[str, ...]
    updated_at: str
    key_at: str | None = None

    def recorded(self) -> Recorded:
        """The part of the row that `lifecycle.decide` needs."""
        return Recorded(self.status, self.attempt, self.key, self.task_id)


@dataclass(frozen=True)
class StemRow:
    """One downloaded stem file; `file` is relative to the output root, `digest` is
    `algorithm:hex`, `mtime_ns` the file's modification time when it was last verified
    (None: never recorded, the file must be hashed to be trusted)."""

    type: str
    stem_id: str
    duration: float | None
    bytes: int
    digest: str
    file: str
    mtime_ns: int | None = None


class StateStore:
    """The jobs of one output tree. Use `open_writer` or `open_reader`, as context managers."""

    def __init__(
        self,
        conn: sqlite3.Connection,
        path: Path,
        lock_fd: int | None,
        *,
        version: int = SCHEMA_VERSION,
    ) -> None:
        self._conn = conn
        self.path = path
        self._lock_fd = lock_fd
        self._stem_columns = _STEM_COLUMNS_V1 if version == 1 else _STEM_COLUMNS
        self._job_columns = _JOB_COLUMNS_V2 if version < 3 else _JOB_COLUMNS

    # -- opening and closing -------------------------------------------------------------

    @classmethod
    def open_writer(cls, path: Path) -> StateStore:
        """Lock and open (creating it when new) the store for a run: `lock`, then
        `open_locked`. (`state_guard.open_checked` also checks it and rebuilds a lost one.)

        Raises `StateLockedError` when another process holds the lock, `StateError` when a
        path of the store is a symbolic link, `UsageError` when the file is not a stemsweep
        state database.
        """
        lock_fd = lock(path)
        try:
            return cls.open_locked(path, lock_fd)
        except BaseException:
            os.close(lock_fd)
            raise

    @classmethod
    def open_locked(cls, path: Path, lock_fd: int) -> StateStore:
        """Open (creating it when new) the store whose lock `lock_fd` holds, for a run; the
        store releases the lock when closed. Raises as `open_writer` does."""
        refuse_links(path)
        conn = _connect(path, read_only=False)
        try:
            with _translated(path):
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=FULL")
                version = conn.execute("PRAGMA user_version").fetchone()[0]
                if version not in (0, 1, 2, SCHEMA_VERSION):
                    raise UsageError(
                        f"state {path} has schema version {version}; this stemsweep "
                        f"understands versions 1 to {SCHEMA_VERSION}: use the stemsweep "
                        "that wrote it"
                    )
                if version in (1, 2):
                    _upgrade(conn, version)
                conn.executescript(_SCHEMA)
                conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        except BaseException:
            conn.close()
            raise
        return cls(conn, path, lock_fd)

    @classmethod
    def open_memory(cls, path: Path) -> StateStore:
        """An empty store in memory, named after `path` (for `plan` and `status` to show
        what a run would rebuild)."""
        conn = sqlite3.connect(":memory:", isolation_level=None)
        conn.executescript(_SCHEMA)
        return cls(conn, path, None)

    def check(self) -> list[str]:
        """The problems SQLite finds in the store's pages (`PRAGMA quick_check`; empty when
        it is sound). 0.13 s for a store of 100,000 jobs on the benchmark machine. A store
        too damaged to be checked raises `StateError`."""
        with _translated(self.path):
            rows = self._conn.execute("PRAGMA quick_check(20)").fetchall()
        problems = [str(row[0]) for row in rows]
        return [] if problems == ["ok"] else problems

    @classmethod
    def open_reader(cls, path: Path) -> StateStore:
        """Open the store read-only, without the lock; a missing file reads as empty.

        So does a store whose first run has not created its tables yet.
        """
        if path.exists():
            refuse_links(path)
            conn = _connect(path, read_only=True)
            with _translated(path):
                tables = conn.execute(
                    "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'jobs'"
                ).fetchone()[0]
                version = conn.execute("PRAGMA user_version").fetchone()[0]
            if tables:
                return cls(conn, path, None, version=version)
            conn.close()
        return cls.open_memory(path)

    @classmethod
    def open_view(cls, path: Path, others: Sequence[Path]) -> StateStore:
        """Read-only, in memory: the store at `path` as a run of it would see it after
        adopting `others` (`other_splits`), i.e. the latest record of every job wherever
        it was made. Without `others`, `open_reader(path)`.

        For `plan` and `status` of a sharded tree: without `--shard` they see what every
        shard recorded, and a shard of a new split sees what the earlier splits did.
        """
        if not others:
            return cls.open_reader(path)
        view = cls.open_memory(path)
        for source in (path, *others):
            if source.is_file():
                view.adopt(source, lambda _: True)
        return view

    def release_database(self) -> None:
        """Close the database and keep the lock, which the caller now holds (to put a
        damaged file aside and open a new store under the same lock)."""
        self._conn.close()
        self._lock_fd = None

    def close(self) -> None:
        """Close the database and release the lock."""
        self._conn.close()
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing the descriptor drops the flock
            self._lock_fd = None

    def __enter__(self) -> StateStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def connection(self) -> sqlite3.Connection:
        """The database connection, for `ledger`, whose tables live in the same file."""
        return self._conn

    @property
    def writable(self) -> bool:
        """Whether this store was opened by the run that owns it (`open_writer`)."""
        return self._lock_fd is not None

    @contextmanager
    def transaction(self, *, durable: bool = True) -> Iterator[None]:
        """One transaction on the store's database, for `ledger`'s own tables; `durable` as
        for the store's own transitions (module docstring)."""
        with self._transaction(None, None, durable=durable):
            yield

    # -- reading -------------------------------------------------------------------------

    def get(self, project: str, model: str) -> JobRecord | None:
        """The recorded state of one job, or None when it was never started."""
        with _translated(self.path, doing="read"):
            row = self._conn.execute(
                f"SELECT {self._job_columns} FROM jobs WHERE project = ? AND model = ?",
                (project, model),
            ).fetchone()
        return None if row is None else _job_row(row)

    def stems(self, project: str, model: str) -> list[StemRow]:
        """The recorded files of one job, by type."""
        with _translated(self.path, doing="read"):
            rows = self._conn.execute(
                f"SELECT {self._stem_columns} FROM stems WHERE project = ? AND model = ? "
                "ORDER BY type",
                (project, model),
            ).fetchall()
        return [StemRow(*row) for row in rows]

    def iter_jobs(self) -> Iterator[JobRecord]:
        """Every recorded job, ordered by project and model (streamed)."""
        with _translated(self.path, doing="read"):
            cursor = self._conn.execute(
                f"SELECT {self._job_columns} FROM jobs ORDER BY project, model"
            )
            for row in cursor:
                yield _job_row(row)

    def task_ids(self, project: str) -> set[str]:
        """Every task id recorded for `project`, by any job and attempt: the tasks of the
        project this tree knows it started."""
        with _translated(self.path, doing="read"):
            rows = self._conn.execute(
                "SELECT task_id FROM attempts WHERE project = ? AND task_id IS NOT NULL "
                "UNION SELECT task_id FROM jobs WHERE project = ? AND task_id IS NOT NULL",
                (project, project),
            ).fetchall()
        return {str(row[0]) for row in rows}

    def unconfirmed(self, project: str) -> int:
        """How many jobs of `project` have a key whose task is unknown (`submitting`, or
        `needs_attention`): submissions that may each have started a task."""
        with _translated(self.path, doing="read"):
            row = self._conn.execute(
                "SELECT count(*) FROM jobs WHERE project = ? AND key IS NOT NULL "
                "AND task_id IS NULL AND status IN (?, ?)",
                (project, Status.SUBMITTING, Status.NEEDS_ATTENTION),
            ).fetchone()
        return int(row[0])

    # -- writing: one durable transaction per call ----------------------------------------

    def commit_key(
        self,
        project: str,
        model: str,
        *,
        attempt: int,
        key: str,
        known_stem_ids: Sequence[str],
        also: Callable[[], None] | None = None,
    ) -> None:
        """Record `key` for `attempt` (status `submitting`) before its POST is sent.

        `also` runs first in the same transaction (the ledger's reservation of the
        submission's credits); when it raises, nothing is committed.
        """
        now = utc_now()
        with self._transaction(project, model):
            if also is not None:
                also()
            self._conn.execute(
                "DELETE FROM stems WHERE project = ? AND model = ?", (project, model)
            )
            self._conn.execute(
                f"INSERT OR REPLACE INTO jobs ({_JOB_COLUMNS}) "
                "VALUES (?, ?, ?, ?, NULL, ?, NULL, NULL, NULL, ?, '[]', '[]', ?, ?)",
                (
                    project,
                    model,
                    attempt,
                    key,
                    Status.SUBMITTING,
                    json.dumps(list(known_stem_ids)),
                    now,
                    now,
                ),
            )

    def mark_unsent(self, project: str, model: str, *, attempt: int, error: str) -> None:
        """The API refused the submission before starting anything (too few credits): the
        job is `pending` again, at `attempt` (the next one, so its next key is new)."""
        self._update(
            project,
            model,
            "status = ?, attempt = ?, key = NULL, key_at = NULL, task_id = NULL, error = ?",
            (Status.PENDING, attempt, error),
            durable=False,  # lost: `submitting`, and the refused key is sent again
        )

    def record_created(
        self, project: str, model: str, *, key: str, task_id: str, also: Callable[[], None]
    ) -> None:
        """A project was made from a song, and its first separation (this job) started:
        the job's row as `submitted` with the creation's key and task id, in one transaction
        with `also` (the song's own record, by `ledger`)."""
        now = utc_now()
        with self._transaction(project, model, durable=False):
            also()
            self._conn.execute(
                f"INSERT OR REPLACE INTO jobs ({_JOB_COLUMNS}) "
                "VALUES (?, ?, 1, ?, ?, ?, ?, NULL, NULL, '[]', '[]', '[]', ?, ?)",
                (project, model, key, task_id, Status.SUBMITTED, now, now, now),
            )

    def mark_submitted(self, project: str, model: str, task_id: str) -> None:
        """The API accepted the submission: its task id (status `submitted`)."""
        now = utc_now()
        self._update(
            project,
            model,
            "status = ?, task_id = ?, submitted_at = coalesce(submitted_at, ?), error = NULL",
            (Status.SUBMITTED, task_id, now),
            durable=False,  # lost: `submitting`, and the same key gets the same task
        )

    def mark_skipped(self, project: str, model: str, *, attempt: int, error: str) -> None:
        """The job was not submitted (e.g. its project does not exist); no key was used."""
        now = utc_now()
        with self._transaction(project, model, durable=False):  # lost: read the project again
            self._conn.execute(
                f"INSERT OR REPLACE INTO jobs ({_JOB_COLUMNS}) "
                "VALUES (?, ?, ?, NULL, NULL, ?, NULL, ?, ?, '[]', '[]', '[]', ?, NULL)",
                (project, model, attempt, Status.SKIPPED, now, error, now),
            )

    def mark_finished(
        self, project: str, model: str, status: Status, *, error: str | None = None
    ) -> None:
        """The separation (or our wait for it) ended: succeeded, failed, cancelled, timed_out."""
        now = utc_now()
        self._update(
            project,
            model,
            "status = ?, finished_at = ?, error = ?",
            (status, now, error),
            durable=False,  # lost: `submitted`, and polling the task again gives its verdict
        )

    def record_error(self, project: str, model: str, error: str) -> None:
        """Note why a job stopped without changing its status (e.g. a POST not confirmed)."""
        self._update(project, model, "error = ?", (error,), durable=False)

    def mark_download_failed(
        self, project: str, model: str, error: str, *, status: Status = Status.DOWNLOAD_FAILED
    ) -> None:
        """The separation succeeded but its files could not all be fetched (`stranded`: the
        project no longer lists them)."""
        self._update(project, model, "status = ?, error = ?", (status, error), durable=False)

    def mark_needs_attention(self, project: str, model: str, error: str) -> None:
        """A submission whose task cannot be told apart safely: nothing is sent for it until
        the user says so. Lost: `submitting`, and the next run reaches the same verdict."""
        self._update(
            project, model, "status = ?, error = ?", (Status.NEEDS_ATTENTION, error), durable=False
        )

    def mark_done(
        self,
        project: str,
        model: str,
        stems: Sequence[StemRow],
        *,
        missing_types: Sequence[str] = (),
        unsafe_types: Sequence[str] = (),
    ) -> None:
        """Every wanted file is on disk: record them and mark the job `done`, atomically."""
        # Lost: the files are downloaded again, never separated again.
        with self._transaction(project, model, durable=False):
            self._conn.execute(
                "DELETE FROM stems WHERE project = ? AND model = ?", (project, model)
            )
            self._conn.executemany(
                f"INSERT INTO stems (project, model, {_STEM_COLUMNS}) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        project,
                        model,
                        s.type,
                        s.stem_id,
                        s.duration,
                        s.bytes,
                        s.digest,
                        s.file,
                        s.mtime_ns,
                    )
                    for s in stems
                ],
            )
            self._conn.execute(
                "UPDATE jobs SET status = ?, error = NULL, missing_types = ?, unsafe_types = ?, "
                "updated_at = ? WHERE project = ? AND model = ?",
                (
                    Status.DONE,
                    json.dumps(list(missing_types)),
                    json.dumps(list(unsafe_types)),
                    utc_now(),
                    project,
                    model,
                ),
            )

    def record_verified(self, project: str, model: str, stems: Sequence[StemRow]) -> None:
        """Record the modification times of a done job's files, found intact by their digest."""
        # Lost: the files are hashed once more by the next run.
        with self._transaction(project, model, durable=False):
            self._conn.executemany(
                "UPDATE stems SET mtime_ns = ? WHERE project = ? AND model = ? AND type = ?",
                [(s.mtime_ns, project, model, s.type) for s in stems],
            )

    def restore(self, jobs: Iterable[tuple[JobRecord, Sequence[StemRow]]]) -> int:
        """Record jobs (with their files) this store has no row for, in one transaction;
        return how many. For a store rebuilt from the tree's `job.json` files."""
        count = 0
        with _translated(self.path, doing="write"):
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                for row, stems in jobs:
                    cursor = self._conn.execute(
                        f"INSERT OR IGNORE INTO jobs ({_JOB_COLUMNS}) "
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
                    self._conn.execute(
                        f"INSERT OR REPLACE INTO attempts ({_ATTEMPT_COLUMNS}) "
                        f"SELECT {_ATTEMPT_COLUMNS} FROM jobs WHERE project = ? AND model = ?",
                        (row.project, row.model),
                    )
                    self._conn.executemany(
                        f"INSERT OR REPLACE INTO stems (project, model, {_STEM_COLUMNS}) "
                        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        [(row.project, row.model, *_stem_values(s)) for s in stems],
                    )
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")
        return count

    # -- records of another sharding of the same tree -------------------------------------

    def adopt(self, other: Path, wanted: Callable[[str], bool]) -> int:
        """Copy from the store at `other` the jobs of the projects `wanted` selects that
        this store has no row for, or an older one (by `updated_at`), with their attempts and
        files; return how many jobs.

        For a tree whose runs were re-sharded (or went from one store to shards, or back):
        a job done under another split stays done, a submission in flight is resumed with
        its own key, a failed one keeps its attempt number, and the latest record of a job
        wins wherever it was made. `other` is only read; one that is not a stemsweep store
        of this schema adds nothing.
        """
        refuse_links(other)
        with _translated(other):
            self._conn.create_function("stemsweep_wanted", 1, wanted, deterministic=True)
            self._conn.execute(
                "ATTACH DATABASE ? AS other", (f"{other.resolve().as_uri()}?mode=ro",)
            )
        try:
            with _translated(other, doing="read"):
                version = self._conn.execute("PRAGMA other.user_version").fetchone()[0]
                tables = self._conn.execute(
                    "SELECT count(*) FROM other.sqlite_master WHERE type = 'table' "
                    "AND name IN ('jobs', 'attempts', 'stems')"
                ).fetchone()[0]
                if version not in (1, 2, SCHEMA_VERSION) or tables != 3:
                    return 0
                return self._copy_from_other(version)
        finally:
            self._conn.execute("DETACH DATABASE other")

    def _copy_from_other(self, version: int) -> int:
        picked = "(project, model) IN (SELECT project, model FROM temp.adopted)"
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            self._conn.execute(
                "CREATE TEMP TABLE adopted AS SELECT project, model FROM other.jobs AS o "
                "WHERE stemsweep_wanted(o.project) AND NOT EXISTS (SELECT 1 FROM main.jobs AS j "
                "WHERE j.project = o.project AND j.model = o.model "
                "AND j.updated_at >= o.updated_at)"
            )
            count = int(self._conn.execute("SELECT count(*) FROM temp.adopted").fetchone()[0])
            self._conn.execute(f"DELETE FROM main.stems WHERE {picked}")
            for table, columns, older in _ADOPTED_TABLES:
                source = older.get(version, columns)
                self._conn.execute(
                    f"INSERT OR REPLACE INTO main.{table} ({columns}) "
                    f"SELECT {source} FROM other.{table} WHERE {picked}"
                )
            self._conn.execute("DROP TABLE temp.adopted")
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")
        return count

    # -- internals -----------------------------------------------------------------------

    def _update(
        self,
        project: str,
        model: str,
        assignments: str,
        values: tuple[object, ...],
        *,
        durable: bool = True,
    ) -> None:
        with self._transaction(project, model, durable=durable):
            cursor = self._conn.execute(
                f"UPDATE jobs SET {assignments}, updated_at = ? WHERE project = ? AND model = ?",
                (*values, utc_now(), project, model),
            )
            if cursor.rowcount != 1:
                raise RuntimeError(f"no state row for {project}/{model}")

    @contextmanager
    def _transaction(
        self, project: str | None, model: str | None, *, durable: bool = True
    ) -> Iterator[None]:
        """One transaction; the job's attempt history follows its row (when there is one).

        `durable`: on disk when this returns (`synchronous=FULL`, the store's setting).
        Otherwise committed with `synchronous=NORMAL`: safe from a process crash, possibly
        lost in a power loss, and only for transitions that may be (module docstring).
        """
        with _translated(self.path, doing="write"):
            if not durable:
                self._conn.execute("PRAGMA synchronous=NORMAL")
            try:
                self._conn.execute("BEGIN IMMEDIATE")
                try:
                    yield
                    if project is not None:
                        self._conn.execute(
                            f"INSERT OR REPLACE INTO attempts ({_ATTEMPT_COLUMNS}) "
                            f"SELECT {_ATTEMPT_COLUMNS} FROM jobs "
                            "WHERE project = ? AND model = ?",
                            (project, model),
                        )
                except BaseException:
                    self._conn.execute("ROLLBACK")
                    raise
                self._conn.execute("COMMIT")
            finally:
                if not durable:
                    self._conn.execute("PRAGMA synchronous=FULL")


def _upgrade(conn: sqlite3.Connection, version: int) -> None:
    """Turn a store of schema 1 or 2 into schema 3, in one transaction (module docstring)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        for statement in (*(_UPGRADE_FROM_V1 if version == 1 else ()), *_UPGRADE_FROM_V2):
            conn.execute(statement)
        conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def _stem_values(s: StemRow) -> tuple[object, ...]:
    """A stem row's values in the order of `_STEM_COLUMNS`."""
    return (s.type, s.stem_id, s.duration, s.bytes, s.digest, s.file, s.mtime_ns)


def _job_row(row: tuple[object, ...]) -> JobRecord:
    (project, model, attempt, key, task_id, status, submitted_at, finished_at, error,
     known, missing, unsafe, updated_at, key_at) = row  # fmt: skip
    return JobRecord(
        project=str(project),
        model=str(model),
        attempt=int(attempt),  # type: ignore[call-overload]
        key=None if key is None else str(key),
        task_id=None if task_id is None else str(task_id),
        status=Status(str(status)),
        submitted_at=None if submitted_at is None else str(submitted_at),
        finished_at=None if finished_at is None else str(finished_at),
        error=None if error is None else str(error),
        known_stem_ids=tuple(json.loads(str(known))),
        missing_types=tuple(json.loads(str(missing))),
        unsafe_types=tuple(json.loads(str(unsafe))),
        updated_at=str(updated_at),
        key_at=None if key_at is None else str(key_at),
    )


def _connect(path: Path, *, read_only: bool) -> sqlite3.Connection:
    uri = f"{path.resolve().as_uri()}{'?mode=ro' if read_only else ''}"
    with _translated(path):
        # Autocommit mode: transactions are explicit (`_transaction`), one per change.
        return sqlite3.connect(uri, uri=True, isolation_level=None, timeout=30.0)


@contextmanager
def _translated(path: Path, *, doing: str = "open") -> Iterator[None]:
    """Turn sqlite3's errors into a `StateError` (exit 2) that names the state file and says
    what to do: a store that cannot be read or written stops the run."""
    try:
        yield
    except sqlite3.Error as exc:
        text = str(exc)
        damaged = isinstance(exc, sqlite3.DatabaseError) and (
            "malformed" in text or "not a database" in text
        )
        if damaged:
            advice = (
                "the file is damaged; the next `stemsweep run` keeps it aside and rebuilds "
                "the state from the tree's job.json files"
            )
        elif "disk" in text or "full" in text:
            advice = "free disk space or fix the disk, then run again: nothing recorded is lost"
        else:
            advice = "check the file and its folder (permissions, free space), then run again"
        where = "cannot be used" if doing == "open" else f"{doing} failed"
        raise StateError(f"state {path} {where}: {text}; {advice}", damaged=damaged) from None
