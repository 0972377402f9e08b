"""The state store's SQLite file: its tables, their versions and upgrades, its connection,
and sqlite3's errors translated into `StateError`. With `state`, `state_merge` and `ledger`,
the state boundary: no other module touches SQLite.

    jobs      one row per (project, model): the current attempt, its key and task id,
              status (see `lifecycle.Status`), ISO-8601 UTC times (`key_at`: when the key
              was committed, just before its first POST), error, the ids of that model's
              stems that existed before the submission, missing/unsafe types
    attempts  one row per (project, model, attempt): the history of keys and outcomes
    stems     one row per (project, model, type): the downloaded file (relative to the
              output root), its bytes, digest (`blake3:<hex>`) and modification time in
              nanoseconds, the stem's id and duration

The songs, their files' digests and the credit reservations are `ledger`'s tables, in the
same file: what they mean is said there; their definitions and rows are here
(`create_ledger_tables`, `SongRecord`).

Schema 2 (digests with their algorithm, modification times) replaced schema 1 (`sha256`
column), and schema 3 added `jobs.key_at`: a writer upgrades an older store in place, in one
transaction, keeping its digests as `sha256:<hex>` (a key committed before schema 3 has no
`key_at`: its row's `updated_at` stands in); readers and adoption read every schema
(`job_columns`, `stem_columns`). A row reads as a `JobRecord` (`job_row`) or a `StemRow`.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from orchestrator.errors import StateError, UsageError
from orchestrator.lifecycle import Recorded, SongStatus, Status

SCHEMA_VERSION = 3
READABLE_VERSIONS = (1, 2, SCHEMA_VERSION)

SCHEMA = """
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

JOB_COLUMNS = (
    "project, model, attempt, key, task_id, status, submitted_at, finished_at, error, "
    "known_stem_ids, missing_types, unsafe_types, updated_at, key_at"
)
STEM_COLUMNS = "type, stem_id, duration, bytes, digest, file, mtime_ns"
ATTEMPT_COLUMNS = "project, model, attempt, key, task_id, status, submitted_at, finished_at, error"

_UPGRADE_FROM_V1 = (
    "ALTER TABLE stems RENAME COLUMN sha256 TO digest",
    "UPDATE stems SET digest = 'sha256:' || digest",
    "ALTER TABLE stems ADD COLUMN mtime_ns INTEGER",
)
_UPGRADE_FROM_V2 = ("ALTER TABLE jobs ADD COLUMN key_at TEXT",)


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


def job_columns(version: int) -> str:
    """`JOB_COLUMNS`' values as a store of `version` holds them (schemas 1 and 2 had no
    `key_at`: NULL in its place)."""
    return JOB_COLUMNS if version >= 3 else JOB_COLUMNS.removesuffix("key_at") + "NULL"


def stem_columns(version: int) -> str:
    """`STEM_COLUMNS`' values as a store of `version` holds them (schema 1 had a bare
    sha256 and no modification times)."""
    if version == 1:
        return "type, stem_id, duration, bytes, 'sha256:' || sha256, file, NULL"
    return STEM_COLUMNS


def create(conn: sqlite3.Connection, path: Path) -> None:
    """Create the tables of a new store, or upgrade an older one in place (one transaction);
    `UsageError` for a store of a schema this stemsweep does not know."""
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version not in (0, *READABLE_VERSIONS):
        raise UsageError(
            f"state {path} has schema version {version}; this stemsweep understands "
            f"versions 1 to {SCHEMA_VERSION}: use the stemsweep that wrote it"
        )
    if version in (1, 2):
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in (*(_UPGRADE_FROM_V1 if version == 1 else ()), *_UPGRADE_FROM_V2):
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
    conn.executescript(SCHEMA)
    conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")


def connect(path: Path, *, read_only: bool) -> sqlite3.Connection:
    """A connection to the store's file, in autocommit mode: transactions are explicit, one
    per change."""
    uri = f"{path.resolve().as_uri()}{'?mode=ro' if read_only else ''}"
    with translated(path):
        return sqlite3.connect(uri, uri=True, isolation_level=None, timeout=30.0)


def utc_now() -> str:
    """The wall-clock time as ISO-8601 UTC, e.g. `2025-01-31T22:04:05.123Z`."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@contextmanager
def translated(path: Path, *, doing: str = "open") -> Iterator[None]:
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


def job_row(row: tuple[object, ...]) -> JobRecord:
    """A `JobRecord` from a row of `JOB_COLUMNS`."""
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


# --- the ledger's tables (`ledger`), in the same file -------------------------------------

LEDGER_SCHEMA = """
CREATE TABLE IF NOT EXISTS songs (
    digest TEXT PRIMARY KEY,
    path TEXT NOT NULL,
    title TEXT NOT NULL,
    folder TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    status TEXT NOT NULL,
    upload_key TEXT,
    input_file_id TEXT,
    create_key TEXT,
    split_model TEXT,
    project TEXT,
    task_id TEXT,
    error TEXT,
    updated_at TEXT NOT NULL,
    key_at TEXT
);
CREATE TABLE IF NOT EXISTS song_files (
    path TEXT PRIMARY KEY,
    bytes INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    digest TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS reservations (
    key TEXT PRIMARY KEY,
    subject TEXT NOT NULL,
    model TEXT NOT NULL,
    credits INTEGER NOT NULL,
    status TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
"""
SONG_COLUMNS = (
    "digest, path, title, folder, attempt, status, upload_key, input_file_id, create_key, "
    "split_model, project, task_id, error, updated_at, key_at"
)
RESERVATION_COLUMNS = "key, subject, model, credits, status, updated_at"
LEDGER_TABLES = ("songs", "song_files", "reservations")
RESERVED, RELEASED, UNPRICED = "reserved", "released", "unpriced"


def create_ledger_tables(conn: sqlite3.Connection) -> None:
    """Create the ledger's tables in a store's database where they are missing, and add
    `songs.key_at` to an older one (`ledger`'s docstring)."""
    conn.executescript(LEDGER_SCHEMA)
    if "key_at" not in _columns(conn, "main", "songs"):
        conn.execute("ALTER TABLE songs ADD COLUMN key_at TEXT")


def song_columns(conn: sqlite3.Connection, schema: str = "main") -> str:
    """`SONG_COLUMNS`' values as the `songs` table of database `schema` holds them (NULL
    for a `key_at` it does not have)."""
    if "key_at" in _columns(conn, schema, "songs"):
        return SONG_COLUMNS
    return SONG_COLUMNS.removesuffix("key_at") + "NULL"


def _columns(conn: sqlite3.Connection, schema: str, table: str) -> set[str]:
    return {str(row[1]) for row in conn.execute(f"PRAGMA {schema}.table_info({table})")}


@dataclass(frozen=True)
class SongRecord:
    """One song's recorded state (a `songs` row)."""

    digest: str
    path: str
    title: str
    folder: str
    attempt: int
    status: SongStatus
    upload_key: str | None
    input_file_id: str | None
    create_key: str | None
    split_model: str | None
    project: str | None
    task_id: str | None
    error: str | None
    updated_at: str = ""
    key_at: str | None = None  # when the current step's key was committed (module docstring)


def song_row(row: tuple[object, ...]) -> SongRecord:
    """A `SongRecord` from a row of `SONG_COLUMNS`."""
    (digest, path, title, folder, attempt, status, upload_key, input_file_id, create_key,
     split_model, project, task_id, error, updated_at, key_at) = row  # fmt: skip

    def text(value: object) -> str | None:
        return None if value is None else str(value)

    return SongRecord(
        digest=str(digest),
        path=str(path),
        title=str(title),
        folder=str(folder),
        attempt=int(attempt),  # type: ignore[call-overload]
        status=SongStatus(str(status)),
        upload_key=text(upload_key),
        input_file_id=text(input_file_id),
        create_key=text(create_key),
        split_model=text(split_model),
        project=text(project),
        task_id=text(task_id),
        error=text(error),
        updated_at=str(updated_at),
        key_at=text(key_at),
    )
