"""The files of a state store, besides what SQLite writes in them: the writer's lock, and no
path of the store used through a symbolic link.

A store at `state.db` is that file, SQLite's `state.db-wal`, `-shm` and `-journal` next to
it, and the writer's lock `state.db.lock` (`store_paths`), in the tree's `.stemsweep`
folder by default. SQLite follows a link at the database's path (it resolves the path to
find its `-wal`), so a link planted at any of these paths could make a run write through it
to a file outside the tree: `refuse_links` refuses them, and the `.stemsweep` folder being
one, with a message that says what to remove; the lock is also opened with `O_NOFOLLOW`.

Where the stores of a tree are: `state.db` for a run of the whole manifest, and
`state-shard-I-of-N.db` for each shard (`default_state_path`); `other_splits` finds those of
another split of the jobs, whose records a run adopts (`state_merge`).
"""

from __future__ import annotations

import fcntl
import os
import re
from pathlib import Path

from orchestrator.errors import StateError, StateLockedError
from orchestrator.jobs import Shard

STATE_DIR = ".stemsweep"
STATE_FILE = "state.db"
LOCK_SUFFIX = ".lock"
SQLITE_SIDE_FILES = ("-wal", "-shm", "-journal")
"""The files SQLite keeps next to a database."""
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


def no_follow(name: str, flags: int) -> int:
    """An opener (for `open(..., opener=no_follow)`) that never follows a symbolic link."""
    return os.open(name, flags | os.O_NOFOLLOW | os.O_CLOEXEC)
