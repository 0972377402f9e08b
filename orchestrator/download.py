"""Streaming, verified, atomic file writes: the only module of stemsweep that writes files.

Every file is written under a temporary name in its final folder (`.stemsweep-partial-*`),
flushed and fsynced, then renamed over the final name, and the folder is fsynced: a reader
never sees half a file, and a crash leaves only temporary files, which the next run removes
with `remove_partials`. A download is received first (`stage`: a short body in memory, a long
one in a temporary file, hashed on the way; `receive` does the same in a worker thread, from
a blocking reader) and put in place by `commit`, which takes a job's stems and its
`job.json` together: one worker-thread call and one folder fsync per job.

Server-supplied strings (stem types, model names, ids) become path components only through
`safe_path`, which refuses anything but plain names and checks that the result stays under
the output root.

Errors (`orchestrator.errors`): `DownloadError` for a body that cannot be verified or
written, `RetryableDownloadError` for a failure worth another attempt (a short body).
Transport errors of aiohttp raised while streaming are let through unchanged, after the
temporary file is removed: `transport.py` translates them, in one place with every other HTTP
error.
"""

from __future__ import annotations

import builtins
import contextlib
import hashlib
import json
import os
import re
import secrets
import stat
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO, Protocol
from urllib.parse import unquote, urlsplit

import aiohttp
import anyio
import blake3

from orchestrator.errors import DownloadError, RetryableDownloadError

PARTIAL_PREFIX = ".stemsweep-partial-"
DEFAULT_CHUNK_SIZE = 1 << 20
MAX_NAME_LENGTH = 128

SAFE_NAME = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9._-]*[A-Za-z0-9_-])?")
"""A plain file name: ASCII letters, digits, `_`, `-` and inner dots; no leading dot or dash,
no trailing dot. Matched with `fullmatch`, and never longer than `MAX_NAME_LENGTH`."""

# Names Windows reserves whatever the extension; refused everywhere so a tree can be copied.
_RESERVED = frozenset(
    {"con", "prn", "aux", "nul"}
    | {f"com{i}" for i in range(1, 10)}
    | {f"lpt{i}" for i in range(1, 10)}
)

_EXTENSION_BY_TYPE = {
    "audio/wav": "wav",
    "audio/x-wav": "wav",
    "audio/wave": "wav",
    "audio/vnd.wave": "wav",
    "audio/flac": "flac",
    "audio/x-flac": "flac",
    "audio/mpeg": "mp3",
    "audio/mp3": "mp3",
    "audio/ogg": "ogg",
    "audio/opus": "opus",
    "audio/mp4": "m4a",
    "audio/x-m4a": "m4a",
    "audio/aac": "m4a",
    "audio/aiff": "aiff",
    "audio/x-aiff": "aiff",
}
AUDIO_SUFFIXES = frozenset({"wav", "flac", "mp3", "ogg", "opus", "m4a", "aac", "aiff"})
FALLBACK_EXTENSION = "bin"


@dataclass(frozen=True)
class Downloaded:
    """A file that was streamed, verified and renamed into place; `digest` is
    `blake3:<hex>`, `mtime_ns` its modification time once in place."""

    path: Path
    bytes: int
    digest: str
    content_type: str | None
    mtime_ns: int


# --- names and paths ----------------------------------------------------------------------


def is_safe_name(name: str) -> bool:
    """True when `name` can be used as one path component as it is."""
    return (
        isinstance(name, str)
        and 0 < len(name) <= MAX_NAME_LENGTH
        and SAFE_NAME.fullmatch(name) is not None
        and name.split(".", 1)[0].lower() not in _RESERVED
    )


def safe_path(root: Path, *parts: str) -> Path:
    """`root/part/...`, refusing unsafe parts and any result that would leave `root`.

    Each part must be a plain name (`is_safe_name`): not empty, `.` or `..`, no separator,
    not absolute, no NUL, not too long. When one of them is a symlink already on disk, the
    joined path is resolved (following it) and must still lie under the resolved root.
    """
    for part in parts:
        if not is_safe_name(part):
            raise DownloadError(f"unsafe name from the server: {_shown(part)}")
    path = root.joinpath(*parts)
    # Plain names cannot climb out of `root`: only a symlink among the parts already on disk
    # can. One lstat per part finds one, and only then is the path resolved and checked.
    # (Resolving every path walked the root's own components each time: some thirty lstat
    # calls per job, a measurable share of a run's CPU.)
    below = root
    for part in parts:
        below = below / part
        try:
            mode = os.lstat(below).st_mode
        except OSError:
            break  # missing (or under a file): nothing further down exists to follow
        if stat.S_ISLNK(mode):
            if not path.resolve().is_relative_to(root.resolve()):
                raise DownloadError(f"path leaves the output folder: {_shown(os.fspath(path))}")
            break
    return path


def _shown(name: object) -> str:
    text = repr(name)
    return text if len(text) <= 60 else text[:57] + "..."


def extension_for(content_type: str | None, url: str) -> str:
    """The file extension for a body: from `Content-Type`, else the URL's audio suffix, else bin.

    Youka stores stems as uploaded and does not convert on download, so the type on disk can
    only come from the response.
    """
    if content_type:
        media_type = content_type.split(";", 1)[0].strip().lower()
        if media_type in _EXTENSION_BY_TYPE:
            return _EXTENSION_BY_TYPE[media_type]
    try:
        path = unquote(urlsplit(url).path)
    except ValueError:
        return FALLBACK_EXTENSION
    suffix = PurePosixPath(path).suffix.lower().lstrip(".")
    return suffix if suffix in AUDIO_SUFFIXES else FALLBACK_EXTENSION


def with_extension(dest: Path, ext: str) -> Path:
    """`dest` with `.ext` appended to its name (a dot already in the name is kept)."""
    if not re.fullmatch(r"[a-z0-9]{1,8}", ext):
        raise DownloadError(f"unusable file extension: {_shown(ext)}")
    return dest.with_name(f"{dest.name}.{ext}")


# --- digests --------------------------------------------------------------------------------

DIGEST_ALGORITHM = "blake3"
"""What `Downloaded.digest` and `Staged.digest` are made with: `blake3:<64 hex digits>`, the
same hex digits as `b3sum FILE` prints. (Stores of schema 1 recorded `sha256:`; both are read.)"""

_HASHERS: dict[str, Callable[[], Any]] = {"blake3": blake3.blake3, "sha256": hashlib.sha256}


def new_hasher() -> Any:
    """A fresh hasher of `DIGEST_ALGORITHM` (`update`, `hexdigest`; releases the GIL on
    large inputs)."""
    return _HASHERS[DIGEST_ALGORITHM]()


def file_digest(path: Path, algorithm: str = DIGEST_ALGORITHM) -> str:
    """`algorithm:hex` of the file at `path`, read 1 MiB at a time. Raises OSError."""
    hasher = _HASHERS[algorithm]()
    with path.open("rb") as f:
        while chunk := f.read(DEFAULT_CHUNK_SIZE):
            hasher.update(chunk)
    return f"{algorithm}:{hasher.hexdigest()}"


def digest_matches(path: Path, digest: str) -> bool:
    """Whether the file at `path` has `digest` (`algorithm:hex`); False when unreadable or the
    algorithm is unknown."""
    algorithm, _, _ = digest.partition(":")
    if algorithm not in _HASHERS:
        return False
    try:
        return file_digest(path, algorithm) == digest
    except OSError:
        return False


# --- verified streaming ---------------------------------------------------------------------


def check_length(received: int, content_length: int | None) -> None:
    """Raise `RetryableDownloadError` when `received` differs from a declared `Content-Length`."""
    if content_length is not None and received != content_length:
        raise RetryableDownloadError(
            f"received {received} bytes, Content-Length announced {content_length}"
        )


class Headers(Protocol):
    """Response headers, looked up by name without regard to case (aiohttp's and
    http.client's both are)."""

    def get(self, name: str, /) -> str | None: ...


def content_encoding(headers: Headers) -> str:
    """The body's content coding, lower case; `identity` when none is named."""
    return (headers.get("Content-Encoding") or "identity").strip().lower() or "identity"


def declared_length(headers: Headers) -> int | None:
    """The `Content-Length` a body must match, if any.

    With a content coding other than identity, Content-Length counts the encoded bytes and
    aiohttp hands out decoded ones: nothing to compare (aiohttp still detects a short body).
    """
    if content_encoding(headers) != "identity":
        return None
    raw = headers.get("Content-Length")
    if raw is None or not raw.strip().isdigit():
        return None
    return int(raw)


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


async def stage(
    response: aiohttp.ClientResponse,
    final_path: Path,
    *,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> Staged:
    """Receive `response`'s body for `final_path`, hashing it and checking its length.

    A body of at most `chunk_size` declared bytes stays in memory: no disk work and no thread
    hop until `commit`. A longer one is streamed to a temporary file; each chunk is hashed and
    written in one worker-thread call, so hashing runs beside the event loop. On any error,
    cancellation included, the temporary file is removed and the error propagates:
    `RetryableDownloadError` for a length mismatch, `DownloadError` for a local I/O failure,
    aiohttp's own exception for a transport failure.
    """
    content_type = response.headers.get("Content-Type")
    declared = declared_length(response.headers)
    if declared is not None and declared <= chunk_size:
        return in_memory(await response.read(), final_path, declared, content_type)
    staged, out = await anyio.to_thread.run_sync(_open_staged, final_path, content_type)
    hasher = new_hasher()
    received = 0
    try:
        try:
            # anyio lets a started worker call finish even when the task is cancelled; the
            # file is closed by `discard`, never left to the GC.
            async for chunk in response.content.iter_chunked(chunk_size):
                received += len(chunk)
                await anyio.to_thread.run_sync(_hash_and_write, hasher, out, chunk)
            check_length(received, declared)
        except (aiohttp.ClientError, TimeoutError):
            raise  # transport errors (some are OSErrors too) are transport.py's to translate
        except OSError as exc:
            raise DownloadError(f"cannot write {final_path}: {exc.strerror or exc}") from None
    except BaseException:
        discard([staged])
        raise
    return _sealed(staged, received, hasher)


def in_memory(
    body: builtins.bytes, final_path: Path, declared: int | None, content_type: str | None
) -> Staged:
    """A short body, received whole, staged in memory after its length is checked."""
    check_length(len(body), declared)
    digest = f"{DIGEST_ALGORITHM}:{new_hasher().update(body).hexdigest()}"
    return Staged(final_path, len(body), digest, content_type, body=body)


class Stopped(Exception):
    """`receive` gave up because its caller no longer waits for it (cancelled)."""


def receive(
    read_into: Callable[[memoryview], int],
    final_path: Path,
    *,
    declared: int | None,
    content_type: str | None,
    stopped: Callable[[], bool],
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> Staged:
    """`stage` for a blocking reader, on the calling (worker) thread.

    `read_into(view)` fills `view` with the next bytes of the body and returns how many (0 at
    its end); each chunk is hashed and written to a temporary file in the final folder,
    through one reused buffer. `stopped()` is asked before each chunk: when it answers True,
    `Stopped` is raised. On any error the temporary file is removed and the error
    propagates: `RetryableDownloadError` for a length mismatch, `DownloadError` for a local
    I/O failure, the reader's own exception for a transport failure.
    """
    staged, out = _open_staged(final_path, content_type)
    hasher = new_hasher()
    view = memoryview(bytearray(chunk_size))
    received = 0
    try:
        while True:
            if stopped():
                raise Stopped()
            n = read_into(view)
            if not n:
                break
            hasher.update(view[:n])
            try:
                out.write(view[:n])
            except OSError as exc:
                raise DownloadError(f"cannot write {final_path}: {exc.strerror or exc}") from None
            received += n
        check_length(received, declared)
    except BaseException:
        discard([staged])
        raise
    return _sealed(staged, received, hasher)


def _open_staged(final_path: Path, content_type: str | None) -> tuple[Staged, BinaryIO]:
    """A `Staged` for `final_path` and its new, empty temporary file, open (blocking)."""
    try:
        temp, out = _open_partial(final_path.parent)
    except OSError as exc:
        folder = final_path.parent
        raise DownloadError(f"cannot write in {folder}: {exc.strerror or exc}") from None
    return Staged(final_path, 0, "", content_type, temp=temp, out=out), out


def _sealed(staged: Staged, received: int, hasher: Any) -> Staged:
    """`staged`, complete: its size and digest recorded."""
    staged.bytes = received
    staged.digest = f"{DIGEST_ALGORITHM}:{hasher.hexdigest()}"
    return staged


def _hash_and_write(hasher: Any, out: BinaryIO, chunk: bytes) -> None:
    hasher.update(chunk)
    out.write(chunk)


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
                item.temp, item.out = _open_partial(item.path.parent)
                item.out.write(item.body)
            assert item.temp is not None and item.out is not None
            item.out.flush()
            placing.append(_Placing(item.temp, item.out, item.path, item))
        for path, data in texts:
            target = path
            temp, out = _open_partial(path.parent)
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


def _open_partial(folder: Path) -> tuple[Path, BinaryIO]:
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
