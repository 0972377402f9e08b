"""Songs and credits in the state store: which song became which project, and what a run
may still spend. Its tables live in the store's own SQLite file, and every write is one of
the store's transactions (`StateStore.transaction`), so a song's creation and its job's row,
or a submission's key and its reservation, are committed together.

    songs         one row per song, by the BLAKE3 digest of its bytes: the file it was
                  uploaded from, its title and folder in the tree (fixed when first
                  uploaded), its attempt and status (`lifecycle.SongStatus`), the upload's
                  key and file id, the creation's key and model, the project and the task it
                  became, why it failed, and `key_at`: when the key of its current step was
                  committed, just before its first POST (what `reconcile` measures against
                  `idempotency_window`)
    song_files    each song file's digest by path, size and modification time: a re-run
                  hashes only the files that changed
    reservations  one row per submission key under `limits.max_credits`: the credits its
                  quote said, `reserved` (counted against the ceiling), `released` (the
                  API started nothing, e.g. too few credits) or `unpriced` (a job restored
                  from its job.json after the state was lost: priced and counted by the next
                  run under a ceiling, before any submission; `budget.Budget.count_restored`)

`songs.key_at` came after the table: a writer adds the column to an older store (its rows'
`updated_at` stands in for it), readers and adoption read it as unknown.

The two keyed steps of a song are committed durably before their request, like a
separation's key: the upload's key (`commit_upload_key`) and the creation's key with its
reservation (`commit_create_key`). What a crash can lose of the others is harmless:

    lost                  the row reads            the next run
    record_file_id        uploading, no file id    re-sends the upload's key: the same file
    mark_uploaded         (synced: the PUT is never repeated once this is on disk)
    record_created        creating                 re-sends the creation's key: the API
                                                   answers the same project and task
    mark_song_failed      its status before        tries that step again
    mark_song_attention   creating (key kept)      reaches the same verdict (`reconcile`)
    unsend_creation       creating (key kept)      re-sends the refused key
    release               reserved                 counts once more: the ceiling stays safe
    price                 unpriced                 priced again before any submission

A rebuild of the store from the tree needs only `job.json` (`state_rebuild`): each job made
from a song records the song's path and digest (`song`, `song_blake3`) next to its
`project`, which is a `created` row of `songs` (`restore_songs`; the upload's file id is
not needed again), and every restored job's key gets an `unpriced` reservation.

Nothing secret is stored: no API key, no URL (the upload URL is asked for again).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable, Iterator

from orchestrator.lifecycle import SongStatus
from orchestrator.state import StateStore, utc_now
from orchestrator.state_schema import (
    LEDGER_TABLES,
    RELEASED,
    RESERVATION_COLUMNS,
    RESERVED,
    SONG_COLUMNS,
    UNPRICED,
    create_ledger_tables,
    song_columns,
    song_row,
)
from orchestrator.state_schema import SongRecord as SongRecord


class OverBudget(Exception):  # noqa: N818 - a refusal, not a failure of the store
    """A reservation would take the credits reserved past the ceiling; nothing committed."""


class Ledger:
    """The songs and reservations of one state store (see the module docstring).

    Over a store opened for writing, the tables are created when missing; over a reader
    that has none (a tree whose runs never had songs), everything reads as empty.
    """

    def __init__(self, store: StateStore) -> None:
        self._store = store
        self._conn: sqlite3.Connection = store.connection
        if store.writable:
            create_ledger_tables(self._conn)
        self._empty = not self._has_tables()
        self._columns = "" if self._empty else song_columns(self._conn)
        self._total: int | None = None  # the reserved credits, summed once, then kept

    # -- songs -----------------------------------------------------------------------------

    def song(self, digest: str) -> SongRecord | None:
        """The recorded state of a song, or None when it was never uploaded."""
        if self._empty:
            return None
        row = self._conn.execute(
            f"SELECT {self._columns} FROM songs WHERE digest = ?", (digest,)
        ).fetchone()
        return None if row is None else song_row(row)

    def songs(self) -> Iterator[SongRecord]:
        """Every recorded song, by digest."""
        if self._empty:
            return
        for row in self._conn.execute(f"SELECT {self._columns} FROM songs ORDER BY digest"):
            yield song_row(row)

    def commit_upload_key(
        self, digest: str, *, path: str, title: str, folder: str, attempt: int, key: str
    ) -> None:
        """Record the upload's key (status `uploading`) before its POST is sent; durable."""
        now = utc_now()
        with self._store.transaction():
            self._conn.execute(
                f"INSERT OR REPLACE INTO songs ({SONG_COLUMNS}) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, NULL, NULL, NULL, NULL, NULL, NULL, ?, ?)",
                (digest, path, title, folder, attempt, SongStatus.UPLOADING, key, now, now),
            )

    def record_file_id(self, digest: str, input_file_id: str) -> None:
        """The upload was announced: its file id (lost: the same key answers it again)."""
        self._update(digest, "input_file_id = ?", (input_file_id,), durable=False)

    def mark_uploaded(self, digest: str) -> None:
        """The bytes are stored (status `uploaded`); durable, so they are never sent again."""
        self._update(digest, "status = ?, error = NULL", (SongStatus.UPLOADED,))

    def commit_create_key(
        self, digest: str, *, key: str, model: str, also: Callable[[], None] | None = None
    ) -> None:
        """Record the creation's key and model (status `creating`) before its POST is sent,
        in one durable transaction with `also` (the reservation); nothing when it raises."""
        with self._store.transaction():
            if also is not None:
                also()
            self._set(
                digest,
                "status = ?, create_key = ?, split_model = ?, key_at = ?, error = NULL",
                (SongStatus.CREATING, key, model, utc_now()),
            )

    def record_created(self, digest: str, *, project: str, task_id: str) -> SongRecord:
        """The song is a project, its first separation under way: the song's row and the
        job of its first model (`submitted`, with the creation's key), together."""
        song = self.song(digest)
        assert song is not None and song.create_key is not None and song.split_model is not None

        def also() -> None:
            self._set(
                digest,
                "status = ?, project = ?, task_id = ?, error = NULL",
                (SongStatus.CREATED, project, task_id),
            )

        self._store.record_created(
            project, song.split_model, key=song.create_key, task_id=task_id, also=also
        )
        created = self.song(digest)
        assert created is not None
        return created

    def unsend_creation(self, digest: str, *, attempt: int, error: str) -> None:
        """The creation was refused before anything started (too few credits): back to
        `uploaded`, at `attempt` (the next one: the next creation's key is new)."""
        self._update(
            digest,
            "status = ?, attempt = ?, create_key = NULL, error = ?",
            (SongStatus.UPLOADED, attempt, error),
            durable=False,
        )

    def mark_song_failed(self, digest: str, error: str) -> None:
        """The song was refused for good (status `failed`; `retry` uploads it again)."""
        self._update(digest, "status = ?, error = ?", (SongStatus.FAILED, error), durable=False)

    def mark_song_attention(self, digest: str, error: str) -> None:
        """The song's creation may have made a project that cannot be told apart (status
        `needs_attention`, its key kept): nothing is sent for it until the user says so."""
        self._update(
            digest, "status = ?, error = ?", (SongStatus.NEEDS_ATTENTION, error), durable=False
        )

    def restore_songs(self, songs: Iterable[SongRecord]) -> int:
        """Record songs this store has no row for (rebuilt from the tree's job.json files),
        inside the caller's transaction (`state_merge.restore`'s); how many."""
        count = 0
        for song in songs:
            cursor = self._conn.execute(
                f"INSERT OR IGNORE INTO songs ({SONG_COLUMNS}) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    song.digest,
                    song.path,
                    song.title,
                    song.folder,
                    song.attempt,
                    song.status,
                    song.upload_key,
                    song.input_file_id,
                    song.create_key,
                    song.split_model,
                    song.project,
                    song.task_id,
                    song.error,
                    song.updated_at or utc_now(),
                    song.key_at,
                ),
            )
            count += cursor.rowcount
        self._empty = not self._has_tables()
        self._columns = "" if self._empty else song_columns(self._conn)
        return count

    def recorded_job(self, project: str, model: str) -> bool:
        """Whether the store has a row for the job (project, model)."""
        return self._store.get(project, model) is not None

    # -- digests of song files --------------------------------------------------------------

    def known_digest(self, path: str, size: int, mtime_ns: int) -> str | None:
        """The digest recorded for the file at `path` when it had this size and time."""
        if self._empty:
            return None
        row = self._conn.execute(
            "SELECT digest FROM song_files WHERE path = ? AND bytes = ? AND mtime_ns = ?",
            (path, size, mtime_ns),
        ).fetchone()
        return None if row is None else str(row[0])

    def remember_digests(self, files: Iterable[tuple[str, int, int, str]]) -> None:
        """Record (path, size, mtime_ns, digest) of files just hashed (lost: hashed again)."""
        rows = list(files)
        if rows and self._store.writable:
            with self._store.transaction(durable=False):
                self._conn.executemany(
                    "INSERT OR REPLACE INTO song_files (path, bytes, mtime_ns, digest) "
                    "VALUES (?, ?, ?, ?)",
                    rows,
                )

    # -- reservations --------------------------------------------------------------------

    def reserved(self) -> int:
        """The credits reserved and not released: what the ceiling is measured against.

        Summed from the table once, then kept up to date by `reserver` and `release` (this
        process is the store's only writer). A reservation rolled back with the commit it
        was part of stays counted until the next run: too high, never too low.
        """
        if self._empty:
            return 0
        if self._total is None:
            row = self._conn.execute(
                "SELECT coalesce(sum(credits), 0) FROM reservations WHERE status = ?",
                (RESERVED,),
            ).fetchone()
            self._total = int(row[0])
        return self._total

    def holds(self, key: str) -> bool:
        """Whether the submission with `key` has its credits reserved."""
        if self._empty:
            return False
        row = self._conn.execute(
            "SELECT 1 FROM reservations WHERE key = ? AND status = ?", (key, RESERVED)
        ).fetchone()
        return row is not None

    def reserver(
        self, key: str, *, subject: str, model: str, credits: int, ceiling: int
    ) -> Callable[[], None]:
        """What reserves `credits` for the submission with `key`, inside the transaction that
        commits the key: nothing when that key already holds a reservation; `OverBudget`
        (the transaction rolled back) when the reserved total would pass `ceiling`."""

        def reserve() -> None:
            if self.holds(key):
                return
            total = self.reserved()
            if total + credits > ceiling:
                raise OverBudget(
                    f"limits.max_credits {ceiling} reached: {total} reserved, this "
                    f"{model} separation costs {credits}"
                )
            self._conn.execute(
                f"INSERT OR REPLACE INTO reservations ({RESERVATION_COLUMNS}) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (key, subject, model, credits, RESERVED, utc_now()),
            )
            self._total = total + credits

        return reserve

    def reserve_alone(self, reserve: Callable[[], None]) -> None:
        """Run a `reserver` in a durable transaction of its own (for a key committed before)."""
        with self._store.transaction():
            reserve()

    def restore_unpriced(self, keys: Iterable[tuple[str, str, str]]) -> None:
        """Note (key, project, model) of jobs restored from their job.json: their
        reservations were lost with the state, and what they cost is asked again
        (`unpriced`, then `price`). A key that holds a reservation keeps it. Inside the
        caller's transaction (`state_merge.restore`'s)."""
        now = utc_now()
        self._conn.executemany(
            f"INSERT OR IGNORE INTO reservations ({RESERVATION_COLUMNS}) VALUES (?, ?, ?, 0, ?, ?)",
            [(key, subject, model, UNPRICED, now) for key, subject, model in keys],
        )

    def unpriced(self) -> list[tuple[str, str, str]]:
        """(key, project, model) of every restored job whose credits are not counted yet."""
        if self._empty:
            return []
        return [
            (str(key), str(subject), str(model))
            for key, subject, model in self._conn.execute(
                "SELECT key, subject, model FROM reservations WHERE status = ? ORDER BY key",
                (UNPRICED,),
            )
        ]

    def price(self, key: str, credits: int) -> None:
        """Count a restored job's credits as reserved, at what its quote says now, whatever
        the ceiling (they were spent)."""
        total = self.reserved()
        # Lost: still `unpriced`, and priced again by the next run before it sends anything.
        with self._store.transaction(durable=False):
            self._conn.execute(
                "UPDATE reservations SET credits = ?, status = ?, updated_at = ? "
                "WHERE key = ? AND status = ?",
                (credits, RESERVED, utc_now(), key, UNPRICED),
            )
        self._total = total + credits

    def release(self, key: str) -> int:
        """Give back the credits of a submission the API refused before starting anything;
        how many (0 when the key held none)."""
        if self._empty:
            return 0
        row = self._conn.execute(
            "SELECT credits FROM reservations WHERE key = ? AND status = ?", (key, RESERVED)
        ).fetchone()
        if row is None:
            return 0
        total = self.reserved()
        with self._store.transaction(durable=False):
            self._conn.execute(
                "UPDATE reservations SET status = ?, updated_at = ? WHERE key = ?",
                (RELEASED, utc_now(), key),
            )
        self._total = total - int(row[0])
        return int(row[0])

    # -- internals -----------------------------------------------------------------------

    def _has_tables(self) -> bool:
        row = self._conn.execute(
            f"SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name IN {LEDGER_TABLES}"
        ).fetchone()
        return int(row[0]) == len(LEDGER_TABLES)

    def _update(
        self, digest: str, assignments: str, values: tuple[object, ...], *, durable: bool = True
    ) -> None:
        with self._store.transaction(durable=durable):
            self._set(digest, assignments, values)

    def _set(self, digest: str, assignments: str, values: tuple[object, ...]) -> None:
        cursor = self._conn.execute(
            f"UPDATE songs SET {assignments}, updated_at = ? WHERE digest = ?",
            (*values, utc_now(), digest),
        )
        if cursor.rowcount != 1:
            raise RuntimeError(f"no song row for {digest}")
