"""The state store: durable transitions, the writer's lock, read-only access."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from orchestrator.errors import StateLockedError, UsageError
from orchestrator.lifecycle import Status
from orchestrator.state import StateStore, StemRow, default_state_path
from orchestrator.state_merge import adopt


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return default_state_path(tmp_path / "out")


def test_default_location(tmp_path: Path) -> None:
    """The state of an output tree lives in `{out}/.stemsweep/state.db`."""
    assert default_state_path(tmp_path) == tmp_path / ".stemsweep" / "state.db"


def test_lifecycle_of_a_job_is_recorded(db: Path) -> None:
    """Key, task id, outcome and files are recorded step by step, with the history."""
    with StateStore.open_writer(db) as store:
        assert store.get("prj_a", "demucs") is None
        store.commit_key("prj_a", "demucs", attempt=1, key="k1", known_stem_ids=["stm_old"])
        row = store.get("prj_a", "demucs")
        assert row is not None
        assert (row.status, row.key, row.task_id) == (Status.SUBMITTING, "k1", None)
        assert row.known_stem_ids == ("stm_old",)
        store.mark_submitted("prj_a", "demucs", "tsk_1")
        store.mark_finished("prj_a", "demucs", Status.SUCCEEDED)
        stem = StemRow(
            "vocals", "stm_new", 2.0, 10, "blake3:" + "ab" * 32, "demucs/prj_a/vocals.wav", 7
        )
        store.mark_done("prj_a", "demucs", [stem], missing_types=["backing_vocals"])
        row = store.get("prj_a", "demucs")
        assert row is not None
        assert row.status is Status.DONE and row.task_id == "tsk_1"
        assert row.submitted_at and row.finished_at and row.submitted_at.endswith("Z")
        assert row.missing_types == ("backing_vocals",)
        assert store.stems("prj_a", "demucs") == [stem]
    with StateStore.open_reader(db) as reader:
        done = reader.get("prj_a", "demucs")
        assert done is not None and done.status is Status.DONE
        assert [r.project for r in reader.iter_jobs()] == ["prj_a"]


def test_attempt_history_keeps_every_key(db: Path) -> None:
    """A second attempt replaces the job row but its first key stays in `attempts`."""
    with StateStore.open_writer(db) as store:
        store.commit_key("p", "m", attempt=1, key="k1", known_stem_ids=[])
        store.mark_submitted("p", "m", "t1")
        store.mark_finished("p", "m", Status.FAILED, error="separation failed")
        store.commit_key("p", "m", attempt=2, key="k2", known_stem_ids=[])
    conn = sqlite3.connect(db)
    rows = conn.execute("SELECT attempt, key, status FROM attempts ORDER BY attempt").fetchall()
    assert rows == [(1, "k1", "failed"), (2, "k2", "submitting")]


def test_wal_and_full_sync(db: Path) -> None:
    """The store runs in WAL mode with synchronous=FULL: a commit is on disk on return."""
    with StateStore.open_writer(db) as store:
        conn = store._conn
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL


def test_commit_survives_kill(db: Path) -> None:
    """A key committed by a process killed right after is there for the next one."""
    code = (
        "import os, sys; from pathlib import Path; from orchestrator.state import StateStore;"
        f"s = StateStore.open_writer(Path({str(db)!r}));"
        "s.commit_key('p', 'm', attempt=1, key='k', known_stem_ids=[]);"
        "os._exit(9)"
    )
    result = subprocess.run([sys.executable, "-c", code], check=False)
    assert result.returncode == 9
    with StateStore.open_writer(db) as store:  # the lock died with the process
        row = store.get("p", "m")
        assert row is not None and row.status is Status.SUBMITTING and row.key == "k"


def test_second_writer_is_refused(db: Path) -> None:
    """While one writer holds the store, another is refused naming the state and the pid."""
    with StateStore.open_writer(db):
        with pytest.raises(StateLockedError) as refused:
            StateStore.open_writer(db)
        assert str(db) in str(refused.value) and f"pid {os.getpid()}" in str(refused.value)
        assert refused.value.exit_code == 2
        with StateStore.open_reader(db) as reader:  # readers need no lock
            assert reader.get("p", "m") is None
    with StateStore.open_writer(db):  # released on close
        pass


def test_reader_of_missing_state_is_empty_and_creates_nothing(tmp_path: Path) -> None:
    """Reading a state that does not exist shows no jobs and leaves no file behind."""
    path = tmp_path / "none" / "state.db"
    with StateStore.open_reader(path) as reader:
        assert reader.get("p", "m") is None
        assert list(reader.iter_jobs()) == []
    assert not path.parent.exists()


def test_not_a_database_is_a_usage_error(tmp_path: Path) -> None:
    """A file that is not a state database is refused with a message naming it."""
    path = tmp_path / "state.db"
    path.write_text("hello, this is not SQLite" * 100)
    with pytest.raises(UsageError, match=str(path)):
        StateStore.open_writer(path)
    with pytest.raises(UsageError, match=str(path)):
        StateStore.open_reader(path)


def test_skipped_jobs_use_no_key(db: Path) -> None:
    """A job whose project could not be read is `skipped` with its reason and no key."""
    with StateStore.open_writer(db) as store:
        store.mark_skipped("p", "m", attempt=1, error="HTTP 404 NOT_FOUND")
        row = store.get("p", "m")
        assert row is not None
        assert (row.status, row.key, row.error) == (Status.SKIPPED, None, "HTTP 404 NOT_FOUND")


def test_reader_of_a_store_being_created_is_empty(tmp_path: Path) -> None:
    """A reader that arrives before the first run created the tables sees no jobs."""
    path = tmp_path / "state.db"
    sqlite3.connect(path).close()  # the file exists, its tables not yet
    with StateStore.open_reader(path) as reader:
        assert list(reader.iter_jobs()) == []


V1_STEMS = """
CREATE TABLE stems (
    project TEXT NOT NULL, model TEXT NOT NULL, type TEXT NOT NULL, stem_id TEXT NOT NULL,
    duration REAL, bytes INTEGER NOT NULL, sha256 TEXT NOT NULL, file TEXT NOT NULL,
    PRIMARY KEY (project, model, type)
);
"""


def write_v1_store(path: Path) -> None:
    """A store as schema 1 wrote it: a done job with one file and its bare sha256."""
    with StateStore.open_writer(path) as store:
        store.commit_key("prj_a", "demucs", attempt=1, key="k1", known_stem_ids=[])
        store.mark_finished("prj_a", "demucs", Status.SUCCEEDED)
    conn = sqlite3.connect(path)
    conn.executescript("DROP TABLE stems;" + V1_STEMS + "ALTER TABLE jobs DROP COLUMN key_at;")
    conn.execute(
        "INSERT INTO stems VALUES ('prj_a', 'demucs', 'vocals', 'stm_1', 2.0, 10, ?, ?)",
        ("cd" * 32, "demucs/prj_a/vocals.wav"),
    )
    conn.execute("UPDATE jobs SET status = 'done'")
    conn.execute("PRAGMA user_version=1")
    conn.commit()
    conn.close()


V1_STEM = StemRow("vocals", "stm_1", 2.0, 10, "sha256:" + "cd" * 32, "demucs/prj_a/vocals.wav")


def test_a_store_of_schema_1_is_read_and_upgraded(db: Path) -> None:
    """Schema 1's sha256 digests read as `sha256:<hex>`; the writer upgrades the file in place."""
    write_v1_store(db)
    with StateStore.open_reader(db) as reader:
        assert reader.stems("prj_a", "demucs") == [V1_STEM]
    with StateStore.open_writer(db) as store:
        assert store.stems("prj_a", "demucs") == [V1_STEM]
        row = store.get("prj_a", "demucs")
        assert row is not None and row.status is Status.DONE and row.key == "k1"
        store.record_verified("prj_a", "demucs", [replace(V1_STEM, mtime_ns=5)])
    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == 3
    conn.close()
    with StateStore.open_reader(db) as reader:
        assert reader.stems("prj_a", "demucs") == [replace(V1_STEM, mtime_ns=5)]


def test_a_store_of_schema_2_is_read_and_upgraded(db: Path) -> None:
    """A store of schema 2 has no `key_at`: read without it, then upgraded in place, its
    rows keeping their keys (their key time reads as unknown until a key is committed)."""
    with StateStore.open_writer(db) as store:
        store.commit_key("prj_a", "demucs", attempt=1, key="k1", known_stem_ids=[])
    conn = sqlite3.connect(db)
    conn.executescript("ALTER TABLE jobs DROP COLUMN key_at; PRAGMA user_version=2;")
    conn.close()
    with StateStore.open_reader(db) as reader:
        row = reader.get("prj_a", "demucs")
        assert row is not None and row.key == "k1" and row.key_at is None
    with StateStore.open_writer(db) as store:
        row = store.get("prj_a", "demucs")
        assert row is not None and row.status is Status.SUBMITTING and row.key_at is None
        store.commit_key("prj_b", "demucs", attempt=1, key="k2", known_stem_ids=[])
        later = store.get("prj_b", "demucs")
        assert later is not None and later.key_at is not None
    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == 3
    conn.close()


def test_a_store_of_schema_1_is_adopted(tmp_path: Path) -> None:
    """Records of schema 1 in another split's store are adopted with their digests."""
    old = tmp_path / "state.db"
    write_v1_store(old)
    with StateStore.open_writer(tmp_path / "state-shard-0-of-2.db") as store:
        assert adopt(store, old, lambda project: True) == 1
        assert store.stems("prj_a", "demucs") == [V1_STEM]


def test_a_store_of_a_newer_schema_is_refused(db: Path) -> None:
    """A store written by a newer stemsweep is left untouched, with a message that says so."""
    with StateStore.open_writer(db):
        pass
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA user_version=9")
    conn.close()
    with pytest.raises(UsageError, match="schema version 9"):
        StateStore.open_writer(db)
