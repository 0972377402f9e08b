"""Streaming, verified, atomic file writes: the only module of stemsweep that writes files.

Every file is written under a temporary name in its final folder (`.stemsweep-partial-*`),
flushed and fsynced, then renamed over the final name, and the folder is fsynced: a reader
never sees half a file, and a crash leaves only temporary files, which the next run removes
with `remove_partials`.

Server-supplied strings (stem types, model names, ids) become path components only through
`safe_path`, which refuses anything but plain names and checks that the result stays under
the output root.

Errors: `DownloadError` for a body that cannot be verified or written;
`RetryableDownloadError` for a failure worth another attempt (a short body); and
`ExpiredUrlError` for a signed URL the storage host no longer accepts. Transport errors of
aiohttp raised while streaming are let through unchanged, after the temporary file is
removed: `api.py` translates them, in one place with every other HTTP error.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import secrets
import stat
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO
from urllib.parse import unquote, urlsplit

import aiohttp
import anyio

from orchestrator.errors import DownloadError

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


class RetryableDownloadError(DownloadError):
    """A download failure worth another attempt: a short body, a 5xx, a dropped connection.

    `retry_after` is the server's `Retry-After` in seconds, when it sent one.
    """

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ExpiredUrlError(DownloadError):
    """The storage host refused a signed URL (403, expired signature): re-read the project."""


@dataclass(frozen=True)
class Downloaded:
    """A file that was streamed, verified and renamed into place."""

    path: Path
    bytes: int
    sha256: str
    content_type: str | None


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


# --- verified streaming ---------------------------------------------------------------------


def check_length(received: int, content_length: int | None) -> None:
    """Raise `RetryableDownloadError` when `received` differs from a declared `Content-Length`."""
    if content_length is not None and received != content_length:
        raise RetryableDownloadError(
            f"received {received} bytes, Content-Length announced {content_length}"
        )


def _declared_length(response: aiohttp.ClientResponse) -> int | None:
    # With a content coding other than identity, Content-Length counts the encoded bytes and
    # aiohttp hands out decoded ones: nothing to compare (aiohttp still detects a short body).
    encoding = response.headers.get("Content-Encoding", "identity").strip().lower()
    if encoding not in ("", "identity"):
        return None
    raw = response.headers.get("Content-Length")
    if raw is None or not raw.strip().isdigit():
        return None
    return int(raw)


async def stream_to_file(
    response: aiohttp.ClientResponse,
    final_path: Path,
    *,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> Downloaded:
    """Stream `response`'s body to `final_path`, atomically, hashing it on the way.

    The body goes to a temporary file in the same folder; its length is checked against
    `Content-Length`, the file is flushed and fsynced, renamed over `final_path`, and the
    folder is fsynced. On any error, cancellation included, the temporary file is removed and
    the error propagates: `RetryableDownloadError` for a length mismatch, `DownloadError` for
    a local I/O failure, aiohttp's own exception for a transport failure.
    """
    folder = final_path.parent
    content_type = response.headers.get("Content-Type")
    declared = _declared_length(response)
    if declared is not None and declared <= chunk_size:
        # A body of one chunk (every stem of a few seconds, every job.json-sized file) is
        # read whole and written in ONE worker-thread call: a thread hop costs about as much
        # CPU as a small write, and the streaming path below makes four per file.
        body = await response.read()
        check_length(len(body), declared)
        try:
            sha256 = await anyio.to_thread.run_sync(_write_whole, final_path, body)
        except OSError as exc:
            raise DownloadError(f"cannot write {final_path}: {exc.strerror or exc}") from None
        return Downloaded(
            path=final_path, bytes=len(body), sha256=sha256, content_type=content_type
        )
    digest = hashlib.sha256()
    received = 0
    try:
        temp, out = await anyio.to_thread.run_sync(_open_partial, folder)
    except OSError as exc:
        raise DownloadError(f"cannot write in {folder}: {exc.strerror or exc}") from None
    try:
        try:
            # Disk work runs in worker threads; anyio lets a started one finish even when the
            # task is cancelled, and the file is closed here, never left to the GC.
            with out:
                async for chunk in response.content.iter_chunked(chunk_size):
                    digest.update(chunk)
                    received += len(chunk)
                    await anyio.to_thread.run_sync(out.write, chunk)
                check_length(received, declared)
                await anyio.to_thread.run_sync(_flush_and_sync, out)
            os.replace(temp, final_path)
            await anyio.to_thread.run_sync(fsync_folder, folder)
        except (aiohttp.ClientError, TimeoutError):
            raise  # transport errors (some are OSErrors too) are api.py's to translate
        except OSError as exc:
            raise DownloadError(f"cannot write {final_path}: {exc.strerror or exc}") from None
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
        raise
    return Downloaded(
        path=final_path, bytes=received, sha256=digest.hexdigest(), content_type=content_type
    )


def _write_whole(final_path: Path, body: bytes) -> str:
    """Write `body` to `final_path` atomically (temporary file, fsync, rename, folder
    fsync); its sha256."""
    sha256 = hashlib.sha256(body).hexdigest()
    temp, out = _open_partial(final_path.parent)
    try:
        with out:
            out.write(body)
            _flush_and_sync(out)
        os.replace(temp, final_path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
        raise
    fsync_folder(final_path.parent)
    return sha256


def _flush_and_sync(out: BinaryIO) -> None:
    out.flush()
    os.fsync(out.fileno())


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
    text = json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False, default=_json_default)
    folder = path.parent
    try:
        temp, out = _open_partial(folder)
    except OSError as exc:
        raise DownloadError(f"cannot write in {folder}: {exc.strerror or exc}") from None
    try:
        with out:
            out.write((text + "\n").encode("utf-8"))
            _flush_and_sync(out)
        os.replace(temp, path)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
        if isinstance(exc, OSError):
            raise DownloadError(f"cannot write {path}: {exc.strerror or exc}") from None
        raise
    fsync_folder(folder)


def _json_default(value: Any) -> Any:
    if isinstance(value, Path):
        return os.fspath(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, set | frozenset):
        return sorted(value)
    raise TypeError(f"cannot write {type(value).__name__} as JSON")
