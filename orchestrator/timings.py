"""What the poll loop learned of each model's separation times, kept in the state store
across runs, so that a nightly run aims its first polls as well as its last ones.

    durations   one row per (API origin, model): the model's latest brackets of
                (last seen pending, seen ended] seconds after submission
                (`backoff.DurationModel.to_dict`, JSON), and when they were saved

The table lives in the store's own SQLite file (`state.py` is the store; like `ledger`,
this module shares its connection and transactions: `StateStore.transaction`), so it
needs no file, lock or crash reasoning of its own. `CREATE TABLE IF NOT EXISTS` on opening
for a run: a store written before this table existed simply gains it; a reader of a store
without it (`plan`, `status`) reads nothing. A store rebuilt from the tree's `job.json`
files starts uninformed: the brackets are not in `job.json`, and a run learns them again.

Rows are keyed by the API's origin (scheme, host and port; an in-process simulator by its
profile and time scale, since its port changes every run), so that the durations of a
simulator never shape the polls of the real API, nor those of one API another's.

Saving is cheap and may be lost: the brackets of the models observed since the last save
are written in one transaction without waiting for the disk (`durable=False`) after every
`SAVE_EVERY` observations, and at the end of the run. A crash loses at most those: the next
run learns them again. A saved model that does not read back (`ValueError` from
`DurationModel.from_dict`) is logged and left out: that model starts uninformed.

When a tree is split anew (`--shard`), a run adopts, for each model, the most recently
saved brackets of the tree's other stores (`adopt`), as the runner adopts their jobs.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from urllib.parse import urlsplit

from orchestrator.backoff import DurationModel
from orchestrator.logs import get_logger
from orchestrator.state import StateStore, utc_now
from orchestrator.state_files import refuse_links

SAVE_EVERY = 32  # observations between two saves (each one unsynced transaction)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS durations (
    origin TEXT NOT NULL,
    model TEXT NOT NULL,
    brackets TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (origin, model)
);
"""

log = get_logger()


def api_origin(base_url: str) -> str:
    """The key of an API's durations: `scheme://host:port` of its URL."""
    parts = urlsplit(base_url)
    scheme = parts.scheme.lower()
    port = parts.port or {"http": 80, "https": 443}.get(scheme)
    return f"{scheme}://{(parts.hostname or '').lower()}:{port}"


def simulator_origin(profile: str, time_scale: float) -> str:
    """The key of an in-process simulator's durations: its profile and time scale."""
    return f"simulator:{profile}@{time_scale:g}"


class Timings:
    """The learned durations of one API in one state store (see the module docstring)."""

    def __init__(self, store: StateStore, origin: str) -> None:
        self._store = store
        self._conn: sqlite3.Connection = store.connection
        self.origin = origin
        if store.writable:
            self._conn.executescript(_SCHEMA)
        self._models: dict[str, DurationModel] = {}
        self._dirty: set[str] = set()
        self._unsaved = 0

    def load(self) -> dict[str, DurationModel]:
        """Each model's durations as saved for this origin (the same dict is updated by the
        poll loop and saved from); a model whose record does not read back is left out."""
        try:
            rows = self._conn.execute(
                "SELECT model, brackets FROM durations WHERE origin = ?", (self.origin,)
            ).fetchall()
        except sqlite3.Error:
            rows = []  # no such table: a reader of a store written before it existed
        for model, text in rows:
            try:
                self._models[str(model)] = DurationModel.from_dict(json.loads(str(text)))
            except ValueError as exc:  # json's errors are ValueErrors too
                log.warning("durations.unreadable", model=str(model), reason=str(exc))
        return self._models

    def observed(self, model: str) -> None:
        """`model` has a new observation; saved with the next batch."""
        self._dirty.add(model)
        self._unsaved += 1
        if self._unsaved >= SAVE_EVERY:
            self.save()

    def save(self) -> None:
        """Write the models observed since the last save (one unsynced transaction)."""
        if not self._dirty or not self._store.writable:
            return
        now = utc_now()
        rows = [
            (self.origin, model, json.dumps(self._models[model].to_dict()), now)
            for model in sorted(self._dirty)
            if model in self._models
        ]
        with self._store.transaction(durable=False):  # lost: learned again
            self._conn.executemany(
                "INSERT OR REPLACE INTO durations (origin, model, brackets, updated_at) "
                "VALUES (?, ?, ?, ?)",
                rows,
            )
        self._dirty.clear()
        self._unsaved = 0

    def adopt(self, other: Path) -> int:
        """Copy from the store at `other` (only read) this origin's models saved there more
        recently than here; how many. A store without durations adds nothing."""
        refuse_links(other)
        try:
            source = sqlite3.connect(f"{other.resolve().as_uri()}?mode=ro", uri=True)
        except sqlite3.Error:
            return 0
        try:
            rows = source.execute(
                "SELECT model, brackets, updated_at FROM durations WHERE origin = ?",
                (self.origin,),
            ).fetchall()
        except sqlite3.Error:
            return 0  # no such table: written before durations were kept
        finally:
            source.close()
        with self._store.transaction(durable=False):
            before = self._conn.total_changes
            self._conn.executemany(
                "INSERT INTO durations (origin, model, brackets, updated_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (origin, model) DO UPDATE SET brackets = excluded.brackets, "
                "updated_at = excluded.updated_at WHERE excluded.updated_at > updated_at",
                [(self.origin, str(m), str(b), str(t)) for m, b, t in rows],
            )
            return self._conn.total_changes - before
