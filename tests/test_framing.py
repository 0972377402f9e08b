"""Downloads from a storage host that breaks HTTP framing, over loopback.

The host here is a raw socket server, since no well-behaved HTTP server can be made to send
bytes past the end of a body: it answers each request on a connection from a table, may
write a whole second answer after a body (as a misbehaving proxy or CDN does), may end a
body only by closing the connection, or send it in chunks. It keeps every connection open
until the client closes it, and counts the connections it was given.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from orchestrator.api import YoukaClient
from orchestrator.download import DEFAULT_CHUNK_SIZE
from orchestrator.errors import DownloadError
from orchestrator.files import commit

pytestmark = pytest.mark.anyio

LONG = 2 * DEFAULT_CHUNK_SIZE + 777  # a long body: received in a worker thread once seen
SHORT = 5000
# A whole answer of another type, written after a body: never to be taken for a response.
STRAY = b"HTTP/1.1 200 OK\r\nContent-Type: audio/flac\r\nContent-Length: 5\r\n\r\nEVIL!"


@dataclass(frozen=True)
class Reply:
    """How the host answers one path."""

    body: bytes
    content_type: str = "audio/wav"
    framing: str = "length"  # "length", "chunked", or "close" (the body ends with the connection)
    after: bytes = b""  # written after the body
    pause: float = 0.0  # seconds between the body and `after`


class RawStorage:
    """A storage host on 127.0.0.1 that answers `replies[path]`, keep-alive, on raw sockets."""

    def __init__(self, replies: dict[str, Reply]) -> None:
        self.replies = replies
        self.connections = 0
        self.requests: list[str] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.1)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self.port = self._listener.getsockname()[1]

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def __enter__(self) -> RawStorage:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)
        self._listener.close()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            self.connections += 1
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        conn.settimeout(10)
        pending = b""
        with conn, contextlib.suppress(OSError):
            while not self._stop.is_set():
                while b"\r\n\r\n" not in pending:
                    data = conn.recv(65536)
                    if not data:
                        return
                    pending += data
                head, pending = pending.split(b"\r\n\r\n", 1)
                path = head.split(b" ")[1].decode()
                self.requests.append(path)
                reply = self.replies[path]
                conn.sendall(self._answer(reply))
                if reply.framing == "close":
                    return
                if reply.after:
                    time.sleep(reply.pause)
                    conn.sendall(reply.after)

    @staticmethod
    def _answer(reply: Reply) -> bytes:
        head = f"HTTP/1.1 200 OK\r\nContent-Type: {reply.content_type}\r\n"
        if reply.framing == "length":
            return f"{head}Content-Length: {len(reply.body)}\r\n\r\n".encode() + reply.body
        if reply.framing == "chunked":
            half = len(reply.body) // 2
            chunks = b"".join(
                f"{len(part):x}\r\n".encode() + part + b"\r\n"
                for part in (reply.body[:half], reply.body[half:])
            )
            return f"{head}Transfer-Encoding: chunked\r\n\r\n".encode() + chunks + b"0\r\n\r\n"
        return f"{head}Connection: close\r\n\r\n".encode() + reply.body


@contextlib.contextmanager
def raw_storage(replies: dict[str, Reply]) -> Iterator[RawStorage]:
    with RawStorage(replies) as host:
        yield host


def youka() -> YoukaClient:
    """A client whose API is nowhere: these tests only download, from the storage host."""
    return YoukaClient(
        "http://127.0.0.1:9/api/v1",
        "yk_test",
        requests_per_second=100,
        attempts=1,
        read_timeout=3,
        connect_timeout=3,
    )


def files_in(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


@pytest.mark.parametrize("size", [SHORT, LONG], ids=["event-loop", "worker-thread"])
async def test_bytes_after_a_body_are_never_read_as_the_next_stem(
    tmp_path: Path, size: int
) -> None:
    """A host that writes a whole second answer after a body: each stem is saved with the
    bytes and the type of the answer to its own GET, and that connection is not used again."""
    a, b = os.urandom(size), os.urandom(size)
    replies = {
        "/warm.wav": Reply(os.urandom(LONG)),  # moves the origin's long bodies to threads
        "/a.wav": Reply(a, after=STRAY, pause=0.05),
        "/b.wav": Reply(b),
    }
    with raw_storage(replies) as host:
        async with youka() as client:
            if size == LONG:
                await client.fetch(host.url("/warm.wav"), tmp_path / "warm" / "vocals")
            staged = [
                await client.fetch(host.url(f"/{name}.wav"), tmp_path / "job" / name)
                for name in ("a", "b")
            ]
            await commit(staged)
    assert files_in(tmp_path / "job") == {"a.wav": a, "b.wav": b}
    assert [s.content_type for s in staged] == ["audio/wav", "audio/wav"]
    assert host.connections == len(host.requests)  # no connection served two GETs


@pytest.mark.parametrize("warm", [False, True], ids=["event-loop", "worker-thread"])
async def test_a_body_that_ends_only_with_its_connection_is_refused(
    tmp_path: Path, warm: bool
) -> None:
    """Neither Content-Length nor chunks: a cut connection would look like the body's end,
    so no file is staged, and the message says why."""
    replies = {
        "/warm.wav": Reply(os.urandom(LONG)),
        "/open.wav": Reply(b"x" * 100, framing="close"),
    }
    with raw_storage(replies) as host:
        async with youka() as client:
            if warm:
                await client.fetch(host.url("/warm.wav"), tmp_path / "warm" / "vocals")
            with pytest.raises(DownloadError, match="neither a valid Content-Length nor chunked"):
                await client.fetch(host.url("/open.wav"), tmp_path / "job" / "vocals")
    assert not (tmp_path / "job").exists() or not any((tmp_path / "job").iterdir())


@pytest.mark.parametrize("size", [SHORT, LONG], ids=["event-loop", "worker-thread"])
async def test_a_chunked_body_is_taken_whole(tmp_path: Path, size: int) -> None:
    """A chunked body has an exact end (its last chunk): it is received whole, on both paths."""
    body = os.urandom(size)
    replies = {"/warm.wav": Reply(os.urandom(LONG)), "/c.wav": Reply(body, framing="chunked")}
    with raw_storage(replies) as host:
        async with youka() as client:
            if size == LONG:
                await client.fetch(host.url("/warm.wav"), tmp_path / "warm" / "vocals")
            staged = await client.fetch(host.url("/c.wav"), tmp_path / "job" / "vocals")
            await commit([staged])
    assert files_in(tmp_path / "job") == {"vocals.wav": body}
