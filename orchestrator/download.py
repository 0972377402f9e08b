"""Receiving a file's body, verified: its length checked and its digest taken on the way.

A body is received first (`stage`: a short body in memory, a long one in a temporary file in
its final folder, hashed on the way; `receive` does the same in a worker thread, from a
blocking reader) and put in place later by `files.commit`, with the other files of its job.
`digest_matches` checks a file already in place against its recorded digest.

A body is taken only when its end is known: its `Content-Length`, or the last chunk of a
chunked body (`require_framing`); its length must be the declared one, and its type is the
`Content-Type` of the response that delivered it.

Errors (`orchestrator.errors`): `DownloadError` for a body that cannot be written or has no
framing, `RetryableDownloadError` for a failure worth another attempt (a body shorter or
longer than announced). Transport errors of aiohttp raised while streaming are let through
unchanged, after the temporary file is removed: `transport.py` translates them, in one place
with every other HTTP error.
"""

from __future__ import annotations

import builtins
import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO, Protocol

import aiohttp
import anyio
import blake3

from orchestrator.errors import DownloadError, RetryableDownloadError
from orchestrator.files import Staged, discard, open_partial

DEFAULT_CHUNK_SIZE = 1 << 20


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


def is_chunked(headers: Headers) -> bool:
    """Whether the body is sent in chunks (`Transfer-Encoding` ending in `chunked`)."""
    codings = (headers.get("Transfer-Encoding") or "").lower().split(",")
    return codings[-1].strip() == "chunked"


def require_framing(headers: Headers) -> int | None:
    """The length a body must have (`declared_length`: None when chunked or encoded);
    `DownloadError` when the body has neither a `Content-Length` nor chunked encoding.

    Such a body ends when the connection closes, so a connection cut halfway would look
    like its end (RFC 9112 section 6.3): its length could not be checked, and it is never
    recorded. A `Content-Length` that is not one plain number counts as none.
    """
    if is_chunked(headers):
        return None
    raw = headers.get("Content-Length")
    if raw is None or not raw.strip().isdigit():
        raise DownloadError(
            "the storage host sent a body with neither a valid Content-Length nor chunked "
            f"encoding (Content-Length: {_shown_header(raw)}): a cut connection could not "
            "be told from its end"
        )
    return declared_length(headers)


def _shown_header(value: str | None) -> str:
    if value is None:
        return "none"
    return repr(value if len(value) <= 40 else value[:39] + "…")


async def stage(
    response: aiohttp.ClientResponse,
    final_path: Path,
    *,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> Staged:
    """Receive `response`'s body for `final_path`, hashing it and checking its length.

    The body must be framed (`require_framing`). A body of at most `chunk_size` declared
    bytes stays in memory: no disk work and no thread hop until `commit`. A longer one is
    streamed to a temporary file; each chunk is hashed and written in one worker-thread
    call, so hashing runs beside the event loop. On any error, cancellation included, the
    temporary file is removed and the error propagates: `RetryableDownloadError` for a
    length mismatch, `DownloadError` for a local I/O failure, aiohttp's own exception for a
    transport failure.
    """
    content_type = response.headers.get("Content-Type")
    declared = require_framing(response.headers)
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
        temp, out = open_partial(final_path.parent)
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
