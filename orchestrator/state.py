# About 500 lines, on purpose: the store is one class, and every transition of a job with
# its durability is read together with the crash table that reasons about them (the
# docstring is a tenth of it). What could stand apart does: the tables, their versions and
# upgrades (`state_schema.py`); records taken from another split's store or from the
# tree's job.json files (`state_merge.py`); its files and lock (`state_files.py`).
"""The state store: one SQLite file per output tree; with `ledger` (its songs and credit
reservations, in the same file and transactions), `state_schema` (its tables, upgrades and
connection) and `state_merge` (records taken from another split's store or from the tree's
job.json files), the only modules that touch SQLite. (Its files and lock are
`state_files.py`'s; checking a store as it is opened, and rebuilding a lost one,
`state_guard.py`'s: neither speaks to SQLite.)

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
Its tables (`jobs`, `attempts`, `stems`) and their schema versions are `state_schema`'s.

Nothing secret is stored: no API key, no URL.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType

from orchestrator.lifecycle import Status
from orchestrator.state_files import default_state_path as default_state_path
from orchestrator.state_files import local_api_folder as local_api_folder
from orchestrator.state_files import lock, refuse_links
from orchestrator.state_files import other_splits as other_splits
from orchestrator.state_schema import (
    ATTEMPT_COLUMNS,
    JOB_COLUMNS,
    SCHEMA,
    SCHEMA_VERSION,
    STEM_COLUMNS,
    connect,
    create,
    job_columns,
    job_row,
    stem_columns,
    translated,
)
from orchestrator.state_schema import JobRecord as JobRecord
from orchestrator.state_schema import StemRow as StemRow
from orchestrator.state_schema import utc_now as utc_now


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
        self._stem_columns = stem_columns(version)
        self._job_columns = job_columns(version)

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
        conn = connect(path, read_only=False)
        try:
            with translated(path):
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=FULL")
                create(conn, path)
        except BaseException:
            conn.close()
            raise
        return cls(conn, path, lock_fd)

    @classmethod
    def open_memory(cls, path: Path) -> StateStore:
        """An empty store in memory, named after `path` (for `plan` and `status` to show
        what a run would rebuild)."""
        conn = sqlite3.connect(":memory:", isolation_level=None)
        conn.executescript(SCHEMA)
        return cls(conn, path, None)

    def check(self) -> list[str]:
        """The problems SQLite finds in the store's pages (`PRAGMA quick_check`; empty when
        it is sound). 0.13 s for a store of 100,000 jobs on the benchmark machine. A store
        too damaged to be checked raises `StateError`."""
        with translated(self.path):
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
            conn = connect(path, read_only=True)
            with translated(path):
                tables = conn.execute(
                    "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'jobs'"
                ).fetchone()[0]
                version = conn.execute("PRAGMA user_version").fetchone()[0]
            if tables:
                return cls(conn, path, None, version=version)
            conn.close()
        return cls.open_memory(path)

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
        with translated(self.path, doing="read"):
            row = self._conn.execute(
                f"SELECT {self._job_columns} FROM jobs WHERE project = ? AND model = ?",
                (project, model),
            ).fetchone()
        return None if row is None else job_row(row)

    def stems(self, project: str, model: str) -> list[StemRow]:
        """The recorded files of one job, by type."""
        with translated(self.path, doing="read"):
            rows = self._conn.execute(
                f"SELECT {self._stem_columns} FROM stems WHERE project = ? AND model = ? "
                "ORDER BY type",
                (project, model),
            ).fetchall()
        return [StemRow(*row) for row in rows]

    def iter_jobs(self) -> Iterator[JobRecord]:
        """Every recorded job, ordered by project and model (streamed)."""
        with translated(self.path, doing="read"):
            cursor = self._conn.execute(
                f"SELECT {self._job_columns} FROM jobs ORDER BY project, model"
            )
            for row in cursor:
                yield job_row(row)

    def has_jobs(self) -> bool:
        """Whether the store holds any job."""
        with translated(self.path, doing="read"):
            return self._conn.execute("SELECT 1 FROM jobs LIMIT 1").fetchone() is not None

    def task_ids(self, project: str) -> set[str]:
        """Every task id recorded for `project`, by any job and attempt: the tasks of the
        project this tree knows it started."""
        with translated(self.path, doing="read"):
            rows = self._conn.execute(
                "SELECT task_id FROM attempts WHERE project = ? AND task_id IS NOT NULL "
                "UNION SELECT task_id FROM jobs WHERE project = ? AND task_id IS NOT NULL",
                (project, project),
            ).fetchall()
        return {str(row[0]) for row in rows}

    def unconfirmed(self, project: str) -> int:
        """How many jobs of `project` have a key whose task is unknown (`submitting`, or
        `needs_attention`): submissions that may each have started a task."""
        with translated(self.path, doing="read"):
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
                f"INSERT OR REPLACE INTO jobs ({JOB_COLUMNS}) "
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
                f"INSERT OR REPLACE INTO jobs ({JOB_COLUMNS}) "
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
                f"INSERT OR REPLACE INTO jobs ({JOB_COLUMNS}) "
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
                f"INSERT INTO stems (project, model, {STEM_COLUMNS}) "
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
        with translated(self.path, doing="write"):
            if not durable:
                self._conn.execute("PRAGMA synchronous=NORMAL")
            try:
                self._conn.execute("BEGIN IMMEDIATE")
                try:
                    yield
                    if project is not None:
                        self._conn.execute(
                            f"INSERT OR REPLACE INTO attempts ({ATTEMPT_COLUMNS}) "
                            f"SELECT {ATTEMPT_COLUMNS} FROM jobs "
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
