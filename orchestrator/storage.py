"""GETs to the storage host (any host but the API's), each received in a worker thread;
and PUTs of song files to their signed upload URLs, sent the same way.

A stem's bytes are most of what a run moves, and through aiohttp each chunk of them costs
the event loop's thread a copy out of the parser, a trip through its stream reader and a
hand-off to the thread that hashes and writes it: that thread was the bottleneck of a
1 GiB download (about 1.4 s of its CPU per GiB). Here the whole GET runs in a worker thread
with the standard library's `http.client`: the socket's bytes land in one reused buffer
(`readinto`), and `download.receive` hashes and writes them, all without holding the GIL.
The event loop only waits for the answer. Measured on the benchmark machine (1 GiB of
16 MiB stems): 1.5-1.7 s of client CPU per GiB down to 0.75-0.9 s, and the run's
throughput from 0.64-0.74 of curl's to 0.83-0.95.

`transport.Transport` decides which requests come here (never one to the API's origin: those
are paced, and only they carry the token; and only to a storage origin that has announced a
long body, since short ones are cheaper on the event loop) and translates the answers and
transport errors.

Every GET has a connection of its own (`Connection: close`), closed once its answer is read.
A kept-alive connection can hold bytes the host sent past the end of a body (a misbehaving
proxy or CDN does that), and the next GET on it would read them as its own answer: a wrong
file under the next stem's name (RFC 9112 section 6.3: such bytes must never be taken as a
response). Closing costs a connection per stem, which does not show against stems of
megabytes: in alternating runs of the downloads benchmark (1 GiB of 16 MiB stems), with
keep-alive and without, the medians were 806 and 768 MiB/s and 0.76 and 0.75 s of CPU per
GiB on a quiet machine (3 pairs), 475 and 464 MiB/s on a busy one (7 pairs), within the
runs' spread (README, "Performance"); over TLS each stem also costs a handshake (not
measured here). A body is framed by its `Content-Length` or by chunked encoding
(`download.require_framing`); one that ends only when the connection closes is refused,
since a cut connection would look like its end.

A song's bytes go out the same way (`put`): the file is sent with `sendfile`, from the page
cache to the socket without passing through Python (a TLS socket falls back to plain sends),
on a connection of its own too. Neither a GET nor a PUT from here ever carries the API's
token.

A caller that is cancelled abandons its worker thread: the thread is told to stop, its
socket is shut down so that a blocked read returns at once, and whatever it received is
removed.
"""

from __future__ import annotations

import contextlib
import http.client
import socket
import ssl
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import anyio
from yarl import URL

from orchestrator.download import (
    DEFAULT_CHUNK_SIZE,
    Stopped,
    content_encoding,
    in_memory,
    receive,
    require_framing,
)
from orchestrator.errors import DownloadError
from orchestrator.files import Staged, discard

MAX_ERROR_BODY = 64 * 1024  # bytes of an error or redirect answer kept for its message


@dataclass
class Answer:
    """What one GET gave: `staged` for a 200, else the status, headers and a bounded body."""

    status: int
    headers: Mapping[str, str] = field(default_factory=dict)
    staged: Staged | None = None
    payload: bytes = b""


class _Handoff:
    """What a worker thread and the task waiting for it share, under one lock."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._abandoned = False
        self._staged: Staged | None = None
        self._conn: http.client.HTTPConnection | None = None

    def stopped(self) -> bool:
        return self._abandoned

    def using(self, conn: http.client.HTTPConnection) -> None:
        with self._lock:
            self._conn = conn
            if self._abandoned:
                raise Stopped()

    def deliver(self, staged: Staged) -> Staged:
        """Hand `staged` over, unless the waiting task is gone (then remove it)."""
        with self._lock:
            if self._abandoned:
                discard([staged])
                raise Stopped()
            self._staged = staged
            return staged

    def abandon(self) -> None:
        """The waiting task is gone: stop the thread and remove what it delivered."""
        with self._lock:
            self._abandoned = True
            staged, self._staged = self._staged, None
            conn = self._conn
        if staged is not None:
            discard([staged])
        if conn is not None and conn.sock is not None:
            with contextlib.suppress(OSError):
                conn.sock.shutdown(socket.SHUT_RDWR)


class StorageClient:
    """Blocking GETs, each on a connection of its own, run in worker threads."""

    def __init__(
        self,
        *,
        connect_timeout: float,
        read_timeout: float,
        user_agent: str,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout
        self._user_agent = user_agent
        self._ssl_context = ssl_context

    async def get(
        self, url: URL, headers: Mapping[str, str], final_for: Callable[[str | None], Path]
    ) -> Answer:
        """GET `url`; for a 200, the body staged for `final_for(Content-Type)`.

        Raises what `http.client` and the socket raise on a transport failure (an `OSError`
        or `http.client.HTTPException`), `RetryableDownloadError` for a body shorter than
        its `Content-Length`, `DownloadError` for a body that cannot be written, is
        compressed although `identity` was asked for, or has no framing.
        """
        handoff = _Handoff()
        try:
            return await anyio.to_thread.run_sync(
                self._get, url, dict(headers), final_for, handoff, abandon_on_cancel=True
            )
        except BaseException:
            handoff.abandon()
            raise

    async def put(self, url: URL, headers: Mapping[str, str], path: Path, length: int) -> Answer:
        """PUT the first `length` bytes of the file at `path` to `url`; the status, headers
        and start of the answer's body.

        Raises what `http.client` and the socket raise on a transport failure, and `OSError`
        when the file cannot be read or is shorter than `length`.
        """
        handoff = _Handoff()
        try:
            return await anyio.to_thread.run_sync(
                self._put, url, dict(headers), path, length, handoff, abandon_on_cancel=True
            )
        except BaseException:
            handoff.abandon()
            raise

    def close(self) -> None:
        """Nothing to release: every connection is closed when its GET ends."""

    def _get(
        self,
        url: URL,
        headers: dict[str, str],
        final_for: Callable[[str | None], Path],
        handoff: _Handoff,
    ) -> Answer:
        headers.setdefault("User-Agent", self._user_agent)
        headers["Connection"] = "close"
        conn = self._connection(url)
        try:
            response = self._send(conn, url.raw_path_qs or "/", headers, handoff)
            if response.status == 200:
                content_type = response.getheader("Content-Type")
                final = final_for(content_type)
                declared = _declared_length(response)
                if declared is not None and declared <= DEFAULT_CHUNK_SIZE:
                    staged = in_memory(response.read(), final, declared, content_type)
                else:
                    staged = receive(
                        response.readinto,
                        final,
                        declared=declared,
                        content_type=content_type,
                        stopped=handoff.stopped,
                    )
                return Answer(200, dict(response.headers), staged=handoff.deliver(staged))
            payload = response.read(MAX_ERROR_BODY)
            return Answer(response.status, dict(response.headers), payload=payload)
        finally:
            conn.close()  # whatever the host sent past the answer is never read

    def _put(
        self, url: URL, headers: dict[str, str], path: Path, length: int, handoff: _Handoff
    ) -> Answer:
        headers.setdefault("User-Agent", self._user_agent)
        headers["Content-Length"] = str(length)
        headers["Connection"] = "close"
        conn = self._connection(url)
        try:
            response = self._send_file(
                conn, url.raw_path_qs or "/", headers, path, length, handoff
            )
            payload = response.read(MAX_ERROR_BODY)
            return Answer(response.status, dict(response.headers), payload=payload)
        finally:
            conn.close()  # a connection of its own, as every GET's

    def _send_file(
        self,
        conn: http.client.HTTPConnection,
        target: str,
        headers: dict[str, str],
        path: Path,
        length: int,
        handoff: _Handoff,
    ) -> http.client.HTTPResponse:
        """Send the PUT's head, then the file's bytes, and read the answer's head."""
        try:
            handoff.using(conn)
            if conn.sock is None:
                conn.connect()
                assert conn.sock is not None
                conn.sock.settimeout(self._read_timeout)
            conn.putrequest("PUT", target, skip_accept_encoding=True)
            for name, value in headers.items():
                conn.putheader(name, value)
            conn.endheaders()
            with path.open("rb") as source:
                sent = conn.sock.sendfile(source, 0, length)
            if sent != length:
                raise OSError(f"{path.name} has fewer than the {length} bytes announced")
            return conn.getresponse()
        except BaseException:
            conn.close()
            raise

    def _send(
        self,
        conn: http.client.HTTPConnection,
        target: str,
        headers: dict[str, str],
        handoff: _Handoff,
    ) -> http.client.HTTPResponse:
        """Connect, send the GET on `conn` and read the answer's head."""
        handoff.using(conn)
        conn.connect()
        assert conn.sock is not None
        conn.sock.settimeout(self._read_timeout)  # connect_timeout bounded the connect
        conn.request("GET", target, headers=headers)
        return conn.getresponse()

    def _connection(self, url: URL) -> http.client.HTTPConnection:
        host, port = url.host or "", url.port
        if url.scheme == "https":
            context = self._ssl_context or ssl.create_default_context()
            return http.client.HTTPSConnection(
                host, port, timeout=self._connect_timeout, context=context
            )
        return http.client.HTTPConnection(host, port, timeout=self._connect_timeout)


def _declared_length(response: http.client.HTTPResponse) -> int | None:
    """The length the body must have (None: chunked), after refusing a compressed body
    (identity was asked for, and this path does not decode) and one without framing."""
    encoding = content_encoding(response.headers)
    if encoding != "identity":
        raise DownloadError(
            f"the storage host sent a body with Content-Encoding {encoding!r} although "
            "identity was asked for; stems are stored as uploaded"
        )
    return require_framing(response.headers)
