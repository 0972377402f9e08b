"""Keeping a simulated world in a state folder: what is saved, when, and how it comes back.

    keeper = Keeper.open(path, profile, seed, time_scale)    # the saved world, or a new one
    ...                                                     # requests change the world
    keeper.after_request()                                  # before each answer leaves
    keeper.close()                                          # at shutdown: a full snapshot

What is saved: every project, task (with its schedule), stem, upload and idempotency key,
the credit balance, the clock, the restart count (which seeds the random streams of the
next start), the URL-signing secret (so a URL signed before a restart still verifies on the
same ports), and the record. When: a request that changed the world (a submission, a task
settled, an upload, a creation) appends its changes to the journal before its answer leaves;
what changed only counters (a poll's count, the record's soft counters) is saved by the first
request at least `SOFT_SAVE_INTERVAL` seconds after the last such save; everything at
shutdown. The uploaded bytes themselves are written by the upload route (`blobs`), before
its answer.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from orchestrator.simulator.clock import ClockMark, SimClock
from orchestrator.simulator.entities import CREATION, KINDS
from orchestrator.simulator.faults import Dice
from orchestrator.simulator.folder import StateFolder, StateFolderError
from orchestrator.simulator.profile import Profile
from orchestrator.simulator.record import Record
from orchestrator.simulator.world import World

SOFT_SAVE_INTERVAL = 1.0  # real seconds
# The settings that shape what a saved world holds: a different value would not fit it.
IDENTITY = ("projects", "song_seconds", "sample_rate", "synthesize", "stem_bytes")


class Blobs(Protocol):
    """Where uploaded bytes live: in memory, or in a state folder."""

    def put_blob(self, name: str, data: bytes) -> None: ...

    def get_blob(self, name: str) -> bytes: ...


class MemoryBlobs:
    """Uploaded bytes in memory, for a simulator without a state folder."""

    def __init__(self) -> None:
        self._data: dict[str, bytes] = {}

    def put_blob(self, name: str, data: bytes) -> None:
        self._data[name] = data

    def get_blob(self, name: str) -> bytes:
        return self._data[name]


@dataclass
class Parts:
    """A simulator's state: new, or as a state folder kept it."""

    clock: SimClock
    dice: Dice
    record: Record
    world: World
    secret: bytes
    generation: int


def new_parts(profile: Profile, seed: int, time_scale: float) -> Parts:
    """A fresh world for `profile`, all randomness drawn from `seed`."""
    dice = Dice(seed)
    record = Record(keep_requests=profile.record_requests)
    # The secret is not drawn from the seed: no two simulators should accept each other's URLs.
    return Parts(
        SimClock(time_scale), dice, record, World(profile, dice, record), secrets.token_bytes(32), 0
    )


class Keeper:
    """Saves one simulator's world to its state folder."""

    def __init__(self, folder: StateFolder, parts: Parts, identity: dict[str, Any]) -> None:
        self.folder = folder
        self.parts = parts
        self.identity = identity
        self.seq = 0
        self._last_save = self._last_counters = parts.clock.real()

    @classmethod
    def open(cls, path: Path, profile: Profile, seed: int, time_scale: float) -> Keeper:
        """The world kept in `path` (resumed), or a new one saved there; the folder locked."""
        folder = StateFolder.open(path)
        try:
            identity = {"seed": seed, **{name: getattr(profile, name) for name in IDENTITY}}
            saved = folder.load()
            if saved is None:
                parts = new_parts(profile, seed, time_scale)
            else:
                _check_identity(path, saved.identity, identity)
                parts = _resumed(profile, seed, time_scale, saved)
            keeper = cls(folder, parts, identity)
            keeper.seq = 0 if saved is None else saved.seq
            keeper.snapshot()  # the start (and the restart count) saved; the journal emptied
            return keeper
        except BaseException:
            folder.close()
            raise

    def after_request(self) -> None:
        """Save what the request changed: at once when it must, else within the interval."""
        if self.parts.world.changes.durable or (
            self.parts.clock.real() - self._last_counters >= SOFT_SAVE_INTERVAL
        ):
            self.save()

    def save(self) -> None:
        """Append every change since the last save to the journal (compact when due)."""
        world, record = self.parts.world, self.parts.record
        changes = world.changes
        self.seq += 1
        entry: dict[str, Any] = {"seq": self.seq, "meta": self._moving_meta()}
        put = {
            kind: {ident: _row(world.rows(kind)[ident]) for ident in ids}
            for kind, ids in changes.touched.items()
            if ids
        }
        removed = {kind: sorted(ids) for kind, ids in changes.removed.items() if ids}
        if put:
            entry["put"] = put
        if removed:
            entry["del"] = removed
        now = self.parts.clock.real()
        counted = now - self._last_counters >= SOFT_SAVE_INTERVAL  # counters may lag, not writes
        requests_end = len(record.requests)
        if counted:
            entry["record"] = record.soft_state()
            if record.keep_requests and record.saved_requests < requests_end:
                entry["requests"] = record.requests[record.saved_requests : requests_end]
        self.folder.append(entry)  # raises when the disk refuses: the changes stay noted
        changes.clear()
        self._last_save = now
        if counted:
            self._last_counters = now
            record.saved_requests = requests_end
        if self.folder.wants_snapshot():
            self.snapshot()

    def snapshot(self) -> None:
        """Write the whole world as the new snapshot and empty the journal."""
        world, record = self.parts.world, self.parts.record
        self.seq += 1
        world.changes.clear()
        self.folder.snapshot(
            {
                "seq": self.seq,
                "identity": self.identity,
                "meta": self._meta(),
                "rows": {
                    kind: {ident: _row(obj) for ident, obj in world.rows(kind).items()}
                    for kind in KINDS
                },
                "record": record.soft_state(),
                "requests": record.requests if record.keep_requests else [],
            }
        )
        record.saved_requests = len(record.requests)
        self._last_save = self._last_counters = self.parts.clock.real()

    def close(self) -> None:
        """Save everything and release the folder."""
        try:
            self.snapshot()
        finally:
            self.folder.close()

    def _meta(self) -> dict[str, Any]:
        return {
            **self._moving_meta(),
            "generation": self.parts.generation,
            "secret": self.parts.secret.hex(),
        }

    def _moving_meta(self) -> dict[str, Any]:
        """What changes between snapshots besides the objects: the balance, the clock."""
        mark = self.parts.clock.mark()
        return {
            "balance": self.parts.world.balance,
            "clock": {"simulated": mark.simulated, "real": mark.real, "wall": mark.wall},
        }


def _row(obj: Any) -> Any:
    return obj.row()


def _resumed(profile: Profile, seed: int, time_scale: float, saved: Any) -> Parts:
    meta = saved.meta
    generation = meta["generation"] + 1
    dice = Dice(seed, generation)
    record = Record(keep_requests=profile.record_requests)
    record.restore_soft(saved.record)
    if record.keep_requests:
        record.requests = list(saved.requests)
    rows = {kind: saved.rows.get(kind, {}) for kind in KINDS}
    world = World.restore(profile, dice, record, rows)
    world.balance = meta["balance"]
    digests = [
        world.uploads[world.projects[t.project_id].upload or ""].sha256 or ""
        for t in world.tasks.values()
        if t.kind == CREATION and world.projects[t.project_id].upload in world.uploads
    ]
    record.recount(world.tasks.values(), world.uploads.values(), digests)
    clock = SimClock.resume(ClockMark(**meta["clock"]), time_scale)
    return Parts(clock, dice, record, world, bytes.fromhex(meta["secret"]), generation)


def _check_identity(path: Path, saved: dict[str, Any], wanted: dict[str, Any]) -> None:
    different = [
        f"{name} {saved.get(name)!r} (now {wanted[name]!r})"
        for name in wanted
        if saved.get(name) != wanted[name]
    ]
    if different:
        raise StateFolderError(
            f"the simulated world in {path} was made with other settings: "
            f"{', '.join(different)}; use the same seed and profile to resume it, or another "
            "state folder for a new world"
        )
