"""GETs to the storage host in worker threads (`orchestrator.storage`), over loopback.

Each test starts a small aiohttp server on 127.0.0.1, port 0, that answers the way the case
needs (a long body, a cut one, a slow one, a compressed one, an error, a closed connection)
and records which connection each request came on.
"""

from __future__ import annotations

import gzip
import os
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import blake3
import pytest
import trustme
from aiohttp import web
from aiohttp.test_utils import TestServer
from yarl import URL

from orchestrator.api import YoukaClient
from orchestrator.download import DEFAULT_CHUNK_SIZE
from orchestrator.errors import DownloadError, RetryableDownloadError
from orchestrator.files import commit_one
from orchestrator.storage import StorageClient

pytestmark = pytest.mark.anyio

LONG = os.urandom(3 * DEFAULT_CHUNK_SIZE + 12345)
SHORT = os.urandom(100_000)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Storage:
    """A storage host on loopback: `url(name)`, and the requests it saw."""

    def __init__(self, server: TestServer) -> None:
        self.server = server
        self.ports: list[int] = []  # the client port of each request, in order
        self.headers: list[dict[str, str]] = []

    def url(self, name: str) -> URL:
        return self.server.make_url(f"/files/{name}")


@asynccontextmanager
async def storage(
    handler: Handler, *, tls: ssl.SSLContext | None = None, **server_options: Any
) -> AsyncIterator[Storage]:
    app = web.Application()
    seen: Storage | None = None

    async def recorded(request: web.Request) -> web.StreamResponse:
        assert seen is not None
        seen.ports.append(request.transport.get_extra_info("peername")[1])  # type: ignore[union-attr]
        seen.headers.append(dict(request.headers))
        return await handler(request)

    app.router.add_get("/files/{name}", recorded)
    scheme = "https" if tls is not None else "http"
    server = TestServer(app, host="127.0.0.1", port=0, scheme=scheme, **server_options)
    await server.start_server(ssl=tls)
    seen = Storage(server)
    try:
        yield seen
    finally:
        await server.close()


async def files(request: web.Request) -> web.StreamResponse:
    body = SHORT if request.match_info["name"] == "short" else LONG
    return web.Response(body=body, content_type="audio/wav")


def client(ssl_context: ssl.SSLContext | None = None) -> StorageClient:
    return StorageClient(
        connect_timeout=5, read_timeout=5, user_agent="stemsweep/test", ssl_context=ssl_context
    )


def final_in(folder: Path) -> Callable[[str | None], Path]:
    return lambda content_type: folder / ("vocals.wav" if content_type == "audio/wav" else "x.bin")


def all_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file())


async def test_a_long_body_is_staged_to_a_file_and_a_short_one_in_memory(tmp_path: Path) -> None:
    """A body longer than one chunk goes to a temporary file, hashed on the way; a short
    one stays in memory; both commit to the right bytes, digest and name."""
    storage_client = client()
    async with storage(files) as host:
        long = await storage_client.get(host.url("long"), {}, final_in(tmp_path / "a"))
        short = await storage_client.get(host.url("short"), {}, final_in(tmp_path / "b"))
    storage_client.close()
    assert long.staged is not None and long.staged.temp is not None
    assert short.staged is not None and short.staged.body == SHORT
    for answer, body in ((long, LONG), (short, SHORT)):
        assert answer.staged is not None
        placed = await commit_one(answer.staged)
        assert placed.path.name == "vocals.wav" and placed.path.read_bytes() == body
        assert placed.digest == "blake3:" + blake3.blake3(body).hexdigest()
    assert [p.name for p in all_files(tmp_path)] == ["vocals.wav", "vocals.wav"]


async def test_every_get_has_a_connection_of_its_own(tmp_path: Path) -> None:
    """Three GETs in a row to one origin each open a connection, ask the host to close it,
    and leave none open: bytes sent past a body can never reach the next GET."""
    storage_client = client()
    async with storage(files) as host:
        for name in ("long", "short", "long"):
            answer = await storage_client.get(host.url(name), {}, final_in(tmp_path))
            assert answer.staged is not None
            await commit_one(answer.staged)
    storage_client.close()
    assert len(host.ports) == 3 and len(set(host.ports)) == 3
    assert [h.get("Connection") for h in host.headers] == ["close"] * 3


async def cut(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": "audio/wav"})
    response.content_length = len(LONG)
    await response.prepare(request)
    await response.write(LONG[: len(LONG) // 2])
    assert request.transport is not None
    request.transport.close()
    return response


async def test_a_body_cut_short_is_retryable_and_leaves_no_file(tmp_path: Path) -> None:
    """Fewer bytes than Content-Length announced: RetryableDownloadError, no temporary file."""
    storage_client = client()
    async with storage(cut) as host:
        with pytest.raises(RetryableDownloadError, match="Content-Length announced"):
            await storage_client.get(host.url("long"), {}, final_in(tmp_path))
    storage_client.close()
    assert all_files(tmp_path) == []


async def answers(request: web.Request) -> web.StreamResponse:
    name = request.match_info["name"]
    if name == "moved":
        raise web.HTTPFound("/files/long")
    if name == "busy":
        return web.json_response(
            {"error": {"code": "UNAVAILABLE", "message": "later"}},
            status=503,
            headers={"Retry-After": "7"},
        )
    if name == "big-error":
        return web.Response(status=404, body=b"x" * 200_000)
    return web.Response(body=gzip.compress(LONG), headers={"Content-Encoding": "gzip"})


async def test_answers_other_than_200_come_back_with_head_and_a_bounded_body(
    tmp_path: Path,
) -> None:
    """A redirect returns its Location, an error its status, headers and at most 64 KiB of
    its body; no file is written for any of them."""
    storage_client = client()
    async with storage(answers) as host:
        moved = await storage_client.get(host.url("moved"), {}, final_in(tmp_path))
        busy = await storage_client.get(host.url("busy"), {}, final_in(tmp_path))
        big = await storage_client.get(host.url("big-error"), {}, final_in(tmp_path))
    storage_client.close()
    assert moved.status == 302 and moved.headers["Location"] == "/files/long"
    assert busy.status == 503 and busy.headers["Retry-After"] == "7"
    assert b"UNAVAILABLE" in busy.payload
    assert big.status == 404 and len(big.payload) == 64 * 1024
    assert all(a.staged is None for a in (moved, busy, big))
    assert all_files(tmp_path) == []


async def test_a_compressed_body_is_refused_without_a_file(tmp_path: Path) -> None:
    """Stems are stored as uploaded: a Content-Encoding other than identity is a clear error,
    and nothing is written."""
    storage_client = client()
    async with storage(answers) as host:
        with pytest.raises(DownloadError, match="Content-Encoding 'gzip'"):
            await storage_client.get(host.url("zipped"), {}, final_in(tmp_path))
    storage_client.close()
    assert all_files(tmp_path) == []


async def test_cancelling_stops_the_thread_and_removes_its_file(tmp_path: Path) -> None:
    """A GET cancelled mid-body returns at once; its worker thread stops (its socket is shut
    down, so the server sees the connection go) and its temporary file is removed."""
    gone = anyio.Event()

    async def endless(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "audio/wav"})
        response.content_length = 100 * len(LONG)
        await response.prepare(request)
        try:
            while True:
                await response.write(LONG[:65536])
                await anyio.sleep(0.05)
        finally:  # the write fails, or the handler is cancelled, once the client is gone
            gone.set()

    storage_client = client()
    async with storage(endless) as host:
        with anyio.move_on_after(0.5) as scope:
            await storage_client.get(host.url("long"), {}, final_in(tmp_path))
        assert scope.cancelled_caught
        with anyio.fail_after(5):
            await gone.wait()
        for _ in range(250):  # the thread removes its file as it stops
            if not all_files(tmp_path):
                break
            await anyio.sleep(0.02)
        assert all_files(tmp_path) == []
    storage_client.close()


async def test_a_storage_origin_that_sent_a_long_body_is_read_in_worker_threads(
    tmp_path: Path,
) -> None:
    """YoukaClient.fetch receives the first long body from a storage origin on its event
    loop; later GETs to that origin go to worker threads; every GET has its own connection,
    every file is right and no request carries the API key."""
    youka = YoukaClient("http://127.0.0.1:9/api/v1", "sk-test", requests_per_second=100, attempts=2)
    async with storage(files) as host, youka:
        for index in range(3):
            staged = await youka.fetch(str(host.url("long")), tmp_path / f"{index}" / "vocals")
            placed = await commit_one(staged)
            assert placed.path.name == "vocals.wav" and placed.path.read_bytes() == LONG
        noted = youka._transport._large_bodies  # the origins whose GETs go to threads
        assert noted == {("http", "127.0.0.1", host.server.port)}
    assert len(set(host.ports)) == 3
    assert not any("Authorization" in h for h in host.headers)


async def test_over_tls_the_host_is_verified_and_the_body_arrives_whole(tmp_path: Path) -> None:
    """Over HTTPS a long body arrives as over HTTP when the host's certificate is trusted; a
    host the client does not trust is refused with a certificate error and no file."""
    authority = trustme.CA()
    server_side = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("127.0.0.1").configure_cert(server_side)
    trusting = ssl.create_default_context()
    authority.configure_trust(trusting)
    async with storage(files, tls=server_side) as host:
        assert host.url("long").scheme == "https"
        trusted = client(trusting)
        answer = await trusted.get(host.url("long"), {}, final_in(tmp_path / "ok"))
        trusted.close()
        assert answer.staged is not None
        placed = await commit_one(answer.staged)
        assert placed.path.read_bytes() == LONG
        untrusted = client()  # the system's authorities only
        with pytest.raises(ssl.SSLCertVerificationError):
            await untrusted.get(host.url("long"), {}, final_in(tmp_path / "refused"))
        untrusted.close()
    assert [p.parent.name for p in all_files(tmp_path)] == ["ok"]
