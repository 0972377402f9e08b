"""Putting files in place: the only module of stemsweep that writes files.

Every file is written under a temporary name in its final folder (`.stemsweep-partial-*`),
flushed and fsynced, then renamed over the final name, and the folder is fsynced: a reader
never sees half a file, and a crash leaves only temporary files, which the next run removes
with `remove_partials`. `commit` takes a job's received bodies (`Staged`, from `download`)
and its `job.json` together: one worker-thread call and one folder fsync per job.
`write_json_atomic` and `write_bytes_atomic` write one file the same way (the summary, the
comparison report).

A file that cannot be written (disk full, a folder in the way) raises `DownloadError`, and
leaves no temporary file behind.
"""

from __future__ import annotations

import builtins
import contextlib
import json
import os
import secrets
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO

import anyio

from orchestrator.errors import DownloadError

PARTIAL_PREFIX = ".stemsweep-partial-"


@dataclass(frozen=True)
class Downloaded:
    """A file that was streamed, verified and renamed into place; `digest` is
    `blake3:<hex>`, `mtime_ns` its modification time once in place."""

    path: Path
    bytes: int
    digest: str
    content_type: str | None
    mtime_ns: int


@dataclass
class Staged:
    """A complete, verified body that is not in place yet: `commit` puts it there.

    A body of one chunk or less is held in memory (`body`); a longer one has been streamed to
    a temporary file in the final folder (`temp`, still open as `out`, not yet fsynced).
    `discard` removes what `commit` did not use.
    """

    path: Path
    bytes: int
    digest: str
    content_type: str | None
    body: builtins.bytes | None = None
    temp: Path | None = None
    out: BinaryIO | None = None


@dataclass
class _Placing:
    """One file on its way into place: its temporary file, open, and its final path."""

    temp: Path
    out: BinaryIO
    path: Path
    staged: Staged | None  # None for a JSON document
    placed: bool = False


async def commit(
    staged: Sequence[Staged], documents: Sequence[tuple[Path, Any]] = ()
) -> list[Downloaded]:
    """Put staged bodies, then JSON `documents` (path, data), in place durably.

    The bodies held in memory and the documents are written to temporary files here, on
    the caller's thread (page-cache writes); one worker-thread call then fsyncs every file,
    renames each over its final name and fsyncs their folders once. The worker thread makes
    only the calls that wait for the disk: each call it makes hands the GIL back and forth
    with the event loop, and those hand-offs, not the disk, were most of the CPU a job's
    files cost. On an error, what was not renamed yet is removed and `DownloadError` is
    raised (data that does not serialise raises `TypeError` before anything touches the
    disk); what was renamed is complete.
    """
    placing = _prepare(staged, documents)
    try:
        await anyio.to_thread.run_sync(_place, placing)
    except BaseException:
        _abandon(placing)
        raise
    return _finish(placing)


class GroupCommit:
    """`commit` for many callers at once: the commits that arrive while a worker-thread
    call is placing files are placed together by the next call, each as `commit` would
    (its own fsyncs, renames and folder fsyncs; a failure fails that commit alone).

    One hand-off to the worker thread per group instead of one per commit: each hand-off
    (a wake-up of the thread, the GIL passed back and forth) cost the event loop more than
    the calls it carried. Whoever finds no call running makes the next one; the others wait
    for it, and one whose commit the call did not take makes the one after.
    """

    def __init__(self) -> None:
        self._queue: list[_Group] = []
        self._running: anyio.Event | None = None  # set when the running call ends

    async def commit(
        self, staged: Sequence[Staged], documents: Sequence[tuple[Path, Any]] = ()
    ) -> list[Downloaded]:
        """As `commit`; see the class docstring."""
        entry = _Group(_prepare(staged, documents))
        self._queue.append(entry)
        try:
            while not entry.finished:
                if self._running is not None:
                    await self._running.wait()
                    continue
                batch, self._queue = self._queue, []
                running = self._running = anyio.Event()
                try:
                    # Not abandoned on cancellation: the call ends before this task does.
                    await anyio.to_thread.run_sync(_place_groups, batch)
                finally:
                    self._running = None
                    running.set()
        except BaseException:
            if entry in self._queue:
                self._queue.remove(entry)
            else:
                # Taken by a call still placing it: as `commit`, end only once it is done.
                with anyio.CancelScope(shield=True):
                    while not entry.finished and self._running is not None:
                        await self._running.wait()
            _abandon(entry.placing)
            raise
        if entry.error is not None:
            _abandon(entry.placing)
            raise entry.error
        return _finish(entry.placing)


@dataclass
class _Group:
    """One caller's files in a `GroupCommit`, and how placing them went."""

    placing: list[_Placing]
    finished: bool = False
    error: DownloadError | None = None


def _place_groups(groups: Sequence[_Group]) -> None:
    """`_place` for each group in turn (blocking); its error recorded with it."""
    for group in groups:
        try:
            _place(group.placing)
        except DownloadError as exc:
            group.error = exc
        finally:
            group.finished = True


def commit_blocking(
    staged: Sequence[Staged], documents: Sequence[tuple[Path, Any]] = ()
) -> list[Downloaded]:
    """`commit`, all on the calling thread (for callers already off the event loop)."""
    placing = _prepare(staged, documents)
    try:
        _place(placing)
    except BaseException:
        _abandon(placing)
        raise
    return _finish(placing)


def _prepare(staged: Sequence[Staged], documents: Sequence[tuple[Path, Any]]) -> list[_Placing]:
    """Every file of the commit written to an open temporary file, not yet fsynced."""
    texts = [(path, _json_bytes(data)) for path, data in documents]
    placing: list[_Placing] = []
    target: Path | None = None
    try:
        for item in staged:
            target = item.path
            if item.body is not None:
                item.temp, item.out = open_partial(item.path.parent)
                item.out.write(item.body)
            assert item.temp is not None and item.out is not None
            item.out.flush()
            placing.append(_Placing(item.temp, item.out, item.path, item))
        for path, data in texts:
            target = path
            temp, out = open_partial(path.parent)
            placing.append(_Placing(temp, out, path, None))
            out.write(data)
            out.flush()
    except BaseException as exc:
        _abandon(placing)
        discard(staged)
        if isinstance(exc, OSError):
            raise DownloadError(f"cannot write {target}: {exc.strerror or exc}") from None
        raise
    return placing


def _place(placing: Sequence[_Placing]) -> None:
    """fsync every file, rename each over its final name, fsync their folders (blocking)."""
    target = ""
    try:
        for item in placing:
            target = os.fspath(item.path)
            os.fsync(item.out.fileno())
        for item in placing:
            target = os.fspath(item.path)
            os.replace(item.temp, item.path)
            item.placed = True
    except OSError as exc:
        raise DownloadError(f"cannot write {target}: {exc.strerror or exc}") from None
    for folder in dict.fromkeys(item.path.parent for item in placing):
        fsync_folder(folder)


def _finish(placing: Sequence[_Placing]) -> list[Downloaded]:
    """Close the placed files; what they are, with their modification times."""
    done = []
    for item in placing:
        with item.out:
            if item.staged is not None:
                done.append(
                    Downloaded(
                        path=item.path,
                        bytes=item.staged.bytes,
                        digest=item.staged.digest,
                        content_type=item.staged.content_type,
                        mtime_ns=os.fstat(item.out.fileno()).st_mtime_ns,
                    )
                )
    return done


def _abandon(placing: Sequence[_Placing]) -> None:
    """Close every file of a failed commit and remove the temporary ones not renamed."""
    for item in placing:
        with contextlib.suppress(OSError):
            item.out.close()
        if not item.placed:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(item.temp)


def discard(staged: Iterable[Staged]) -> None:
    """Close and remove the temporary files of staged bodies that were not committed."""
    for item in staged:
        if item.out is not None:
            with contextlib.suppress(OSError):
                item.out.close()
        if item.temp is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(item.temp)
        item.body = None


async def commit_one(staged: Staged) -> Downloaded:
    """`commit` of one staged body alone."""
    (downloaded,) = await commit([staged])
    return downloaded


def open_partial(folder: Path) -> tuple[Path, BinaryIO]:
    """Create `folder` if needed and a new temporary file in it, open for writing."""
    folder.mkdir(parents=True, exist_ok=True)
    # O_EXCL: never reuse a name; 0o666 so the final file gets the usual umask-derived mode
    # (mkstemp would leave it 0600).
    while True:
        temp = folder / f"{PARTIAL_PREFIX}{secrets.token_hex(8)}"
        try:
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            continue
        return temp, os.fdopen(fd, "wb")


def fsync_folder(folder: Path) -> None:
    """Make a rename in `folder` durable (a no-op where folders cannot be opened, e.g. Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def remove_partials(root: Path, *, only: Callable[[PurePosixPath], bool] | None = None) -> int:
    """Delete the temporary files an interrupted run left under `root`; return how many.

    `only`, when given, says which folders (relative to `root`) are the caller's: partial
    files elsewhere are left alone, since another process may be writing them right now.
    """
    removed = 0
    for folder, _dirs, files in os.walk(root):
        if only is not None and not only(PurePosixPath(Path(folder).relative_to(root))):
            continue
        for name in files:
            if name.startswith(PARTIAL_PREFIX):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(os.path.join(folder, name))
                    removed += 1
    return removed


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Write `data` to `path`: temporary file, fsync, rename, folder fsync (blocking).

    `DownloadError` when it cannot be written; no temporary file is left behind.
    """
    commit_blocking([Staged(path, len(data), "", None, body=data)])


def write_json_atomic(path: Path, data: Any) -> None:
    """Write `data` as indented JSON to `path`: temporary file, fsync, rename, folder fsync.

    Paths and datetimes are written as strings. Data that does not serialise raises before
    anything touches the disk; a file that cannot be written (disk full, a folder in the
    way) raises `DownloadError`, like a stem that cannot be.
    """
    commit_blocking([], [(path, data)])


def _json_bytes(data: Any) -> bytes:
    text = json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False, default=_json_default)
    return (text + "\n").encode("utf-8")


def _json_default(value: Any) -> Any:
    if isinstance(value, Path):
        return os.fspath(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, set | frozenset):
        return sorted(value)
    raise TypeError(f"cannot write {type(value).__name__} as JSON")
