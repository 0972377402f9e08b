"""The files of a state store, besides what SQLite writes in them: the writer's lock, and no
path of the store used through a symbolic link.

A store at `state.db` is that file, SQLite's `state.db-wal`, `-shm` and `-journal` next to
it, and the writer's lock `state.db.lock` (`store_paths`), in the tree's `.stemsweep`
folder by default. SQLite follows a link at the database's path (it resolves the path to
find its `-wal`), so a link planted at any of these paths could make a run write through it
to a file outside the tree: `refuse_links` refuses them, and the `.stemsweep` folder being
one, with a message that says what to remove; the lock is also opened with `O_NOFOLLOW`.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from orchestrator.errors import StateError, StateLockedError

STATE_DIR = ".stemsweep"
LOCK_SUFFIX = ".lock"
SQLITE_SIDE_FILES = ("-wal", "-shm", "-journal")
"""The files SQLite keeps next to a database."""


def lock(path: Path) -> int:
    """Take the writer's lock of the store at `path` (creating its folder), or raise
    `StateLockedError`; `StateError` when the lock's path is a symbolic link."""
    refuse_links(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lock_path = path.with_name(path.name + LOCK_SUFFIX)
    try:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    except OSError as exc:
        raise StateError(
            f"state lock {lock_path} cannot be opened: {exc.strerror or exc}"
            + (" (a symbolic link: remove it)" if os.path.islink(lock_path) else "")
        ) from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
        os.close(fd)
        raise StateLockedError(
            f"another stemsweep run is using {path} (pid {holder}); wait for it to finish, "
            "or give this run its own --state"
        ) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
    return fd


def store_paths(path: Path) -> list[Path]:
    """The files of the store at `path`: the database, SQLite's files next to it, the lock."""
    return [path, *(path.with_name(path.name + s) for s in (*SQLITE_SIDE_FILES, LOCK_SUFFIX))]


def refuse_links(path: Path) -> None:
    """`StateError` when a file of the store at `path` (`store_paths`), or the tree's
    `.stemsweep` folder that holds it, is a symbolic link: SQLite follows a link at the
    database's path, and a run would write through it outside the tree."""
    folder = path.parent
    planted = [folder] if folder.name == STATE_DIR and folder.is_symlink() else []
    planted += [p for p in store_paths(path) if p.is_symlink()]
    if planted:
        raise StateError(
            f"{planted[0]} is a symbolic link; stemsweep never reads or writes its state "
            "through one: remove it (or give the run another --state)"
        )
