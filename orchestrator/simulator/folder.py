"""A simulator's state folder on disk: a snapshot, a journal, uploaded files, and a lock.

    DIR/lock            held (flock) while a simulator uses the folder: one at a time
    DIR/world.json      the whole world at one instant, numbered `seq`
    DIR/journal.jsonl   one line per save since then: the objects that changed, numbered
    DIR/uploads/FILE    the bytes of each uploaded file

Why a snapshot and a journal: a world must not lose a write it has answered, even when its
process is killed the next instant, yet rewriting the whole world on every request would
cost time in proportion to its size. So each request that changed something appends one
line with just those objects before its answer leaves (a write(2), no fsync: it survives
the process, not a power cut), and once the journal outgrows the snapshot, a new snapshot
is written to a temporary file, fsynced and renamed over the old one, and the journal is
emptied. Reading takes the snapshot, then every journal line numbered after it; a line cut
short at the very end (a crash mid-write) is dropped, damage anywhere else is refused.

Every file is opened relative to the folder's own descriptor, without following symbolic
links: a link planted at any of these paths (or at the folder itself) is refused with a
message naming it, and nothing is read or written through it.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SNAPSHOT = "world.json"
JOURNAL = "journal.jsonl"
LOCK = "lock"
UPLOADS = "uploads"
FORMAT = 1
MIN_JOURNAL_BYTES = 1 << 20  # below this the journal is never compacted
_NOFOLLOW = os.O_NOFOLLOW | os.O_CLOEXEC


class StateFolderError(Exception):
    """A state folder that cannot be used; the message says which path and what to do."""


@dataclass
class Saved:
    """What a state folder holds: the latest `seq`, and the world as plain data."""

    seq: int = 0
    identity: dict[str, Any] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)
    rows: dict[str, dict[str, Any]] = field(default_factory=dict)
    record: dict[str, Any] = field(default_factory=dict)
    requests: list[Any] = field(default_factory=list)

    def apply(self, entry: dict[str, Any]) -> None:
        """Bring this up to date with one journal line."""
        self.seq = entry["seq"]
        for kind, changed in entry.get("put", {}).items():
            self.rows.setdefault(kind, {}).update(changed)
        for kind, removed in entry.get("del", {}).items():
            table = self.rows.setdefault(kind, {})
            for ident in removed:
                table.pop(ident, None)
        self.meta = {**self.meta, **entry.get("meta", {})}
        self.record = entry.get("record", self.record)
        self.requests.extend(entry.get("requests", ()))


class StateFolder:
    """An open, locked state folder. `close()` releases it."""

    def __init__(self, path: Path, dir_fd: int, lock_fd: int) -> None:
        self.path = path
        self._dir = dir_fd
        self._lock = lock_fd
        self._journal = self._open(JOURNAL, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        self.journal_bytes = os.fstat(self._journal).st_size
        self.snapshot_bytes = 0
        with contextlib.suppress(FileExistsError):
            os.mkdir(UPLOADS, 0o700, dir_fd=dir_fd)
        self._uploads = _open_dir(path / UPLOADS, UPLOADS, dir_fd)

    @classmethod
    def open(cls, path: Path) -> StateFolder:
        """Create (if needed), open and lock the folder at `path`."""
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StateFolderError(
                f"cannot create the simulator state folder {path}: {exc.strerror or exc}"
            ) from None
        dir_fd = _open_dir(path)
        try:
            lock_fd = _open_at(dir_fd, path, LOCK, os.O_RDWR | os.O_CREAT)
        except BaseException:
            os.close(dir_fd)
            raise
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return cls(path, dir_fd, lock_fd)
        except BlockingIOError:
            os.close(lock_fd)
            os.close(dir_fd)
            raise StateFolderError(
                f"the simulator state folder {path} is in use by another simulator; stop it "
                "first, or give this one another folder"
            ) from None
        except BaseException:
            os.close(lock_fd)
            os.close(dir_fd)
            raise

    def close(self) -> None:
        """Release the folder (the lock goes with its descriptor)."""
        for fd in (self._journal, self._uploads, self._lock, self._dir):
            with contextlib.suppress(OSError):
                os.close(fd)

    # -- reading -----------------------------------------------------------------------

    def load(self) -> Saved | None:
        """The saved world, or None when the folder holds none yet."""
        raw = self._read(SNAPSHOT)
        journal = self._read(JOURNAL) or b""
        if raw is None:
            if journal.strip():
                raise self._damaged(JOURNAL, "it has a journal but no world.json")
            return None
        self.snapshot_bytes = len(raw)
        try:
            data = json.loads(raw)
            if data.get("format") != FORMAT:
                raise ValueError(f"format {data.get('format')!r}, expected {FORMAT}")
            saved = Saved(
                seq=data["seq"],
                identity=data["identity"],
                meta=data["meta"],
                rows=data["rows"],
                record=data.get("record", {}),
                requests=data.get("requests", []),
            )
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise self._damaged(SNAPSHOT, str(exc)) from None
        lines = journal.split(b"\n")
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
                if entry["seq"] > saved.seq:
                    saved.apply(entry)
            except (ValueError, KeyError, TypeError, AttributeError) as exc:
                if number == len(lines):  # the last line, cut short by a crash: not answered
                    break
                raise self._damaged(JOURNAL, f"line {number}: {exc}") from None
        return saved

    def _damaged(self, name: str, why: str) -> StateFolderError:
        return StateFolderError(
            f"the simulator state in {self.path} is damaged ({name}: {why}); move the folder "
            "away to start a new simulated world"
        )

    # -- writing -----------------------------------------------------------------------

    def append(self, entry: dict[str, Any]) -> None:
        """Add one journal line (written before the answer that depends on it)."""
        line = (json.dumps(entry, separators=(",", ":")) + "\n").encode()
        view = memoryview(line)
        while view:
            view = view[os.write(self._journal, view) :]
        self.journal_bytes += len(line)

    def wants_snapshot(self) -> bool:
        """Whether the journal has outgrown the snapshot (time to compact)."""
        return self.journal_bytes > max(MIN_JOURNAL_BYTES, self.snapshot_bytes)

    def snapshot(self, data: dict[str, Any]) -> None:
        """Replace the snapshot with `data` (atomically, synced), then empty the journal."""
        raw = json.dumps({"format": FORMAT, **data}, separators=(",", ":")).encode()
        self._replace(self._dir, SNAPSHOT, raw, self.path)
        self.snapshot_bytes = len(raw)
        # Lines up to the snapshot's seq are skipped on reading, so a crash before this
        # truncation leaves a folder that still reads right.
        os.ftruncate(self._journal, 0)
        self.journal_bytes = 0

    def put_blob(self, name: str, data: bytes) -> None:
        """Store an uploaded file's bytes under `name` (atomically, synced)."""
        self._replace(self._uploads, name, data, self.path / UPLOADS)

    def get_blob(self, name: str) -> bytes:
        """The bytes stored under `name`."""
        fd = _open_at(self._uploads, self.path / UPLOADS, name, os.O_RDONLY)
        with os.fdopen(fd, "rb") as file:
            return file.read()

    def _replace(self, dir_fd: int, name: str, data: bytes, folder: Path) -> None:
        temp = f".{name}.tmp"
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp, dir_fd=dir_fd)  # a leftover of a crash; never a link followed
        fd = _open_at(dir_fd, folder, temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        os.fsync(dir_fd)

    def _open(self, name: str, flags: int) -> int:
        return _open_at(self._dir, self.path, name, flags)

    def _read(self, name: str) -> bytes | None:
        try:
            fd = self._open(name, os.O_RDONLY)
        except FileNotFoundError:
            return None
        with os.fdopen(fd, "rb") as file:
            return file.read()


def _open_at(dir_fd: int, folder: Path, name: str, flags: int) -> int:
    """Open `name` in the folder `dir_fd` without following a link; refuse one clearly."""
    try:
        return os.open(name, flags | _NOFOLLOW, 0o600, dir_fd=dir_fd)
    except FileNotFoundError:
        raise
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise StateFolderError(
                f"{folder / name} is a symbolic link; the simulator never follows links in "
                "its state folder: remove it"
            ) from None
        raise StateFolderError(f"cannot open {folder / name}: {exc.strerror or exc}") from None


def _open_dir(path: Path, name: str | None = None, dir_fd: int | None = None) -> int:
    flags = os.O_RDONLY | os.O_DIRECTORY | _NOFOLLOW
    try:
        return os.open(name if name is not None else path, flags, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            is_link = path.is_symlink()
            raise StateFolderError(
                f"{path} is {'a symbolic link' if is_link else 'not a folder'}; the simulator "
                "keeps its state only in a real folder: remove it or choose another"
            ) from None
        raise StateFolderError(f"cannot open {path}: {exc.strerror or exc}") from None
