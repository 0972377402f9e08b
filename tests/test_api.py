"""The Youka client over real loopback HTTP: credentials, retries, pacing, pauses, downloads.

Cases the simulator produces on demand run against it; cases it cannot produce exactly (a
redirect chain, a body cut at byte N, one specific header) run against a small aiohttp server
started by the test on 127.0.0.1, port 0.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
import blake3
import pytest
import structlog
from aiohttp import web
from aiohttp.test_utils import TestServer

from orchestrator.api import YoukaClient
from orchestrator.errors import (
    ApiError,
    CredentialsError,
    DownloadError,
    ExpiredUrlError,
    RetryableApiError,
    RetryableDownloadError,
)
from orchestrator.files import PARTIAL_PREFIX
from orchestrator.logs import REDACTED, shared_processors
from orchestrator.pacing import backoff_after_429
from orchestrator.simulator.profile import Faults, Profile
from orchestrator.simulator.server import Simulator
from orchestrator.transport import same_origin
from orchestrator.wire import (
    TERMINAL_FAILED,
    TERMINAL_OK,
    parse_project,
    parse_retry_after,
    parse_task,
)

pytestmark = pytest.mark.anyio

KEY = "yk_test_0123456789abcdef"
FAST = {"wait_initial": 0.01, "wait_max": 0.05, "wait_jitter": 0.0}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


# --- a small recording server -----------------------------------------------------------------


@dataclass
class Seen:
    method: str
    path: str
    query: str
    authorization: str | None
    headers: dict[str, str]
    t: float


Handler = Callable[[web.Request, int], Awaitable[web.StreamResponse]]


@dataclass
class Fake:
    """An aiohttp server on 127.0.0.1:0 answering every path with `handler(request, n)`."""

    handler: Handler
    seen: list[Seen] = field(default_factory=list)
    server: TestServer | None = None

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.seen.append(
            Seen(
                request.method,
                request.path,
                request.query_string,
                request.headers.get("Authorization"),
                dict(request.headers),
                time.monotonic(),
            )
        )
        return await self.handler(request, len(self.seen))

    def url(self, path: str) -> str:
        assert self.server is not None
        return str(self.server.make_url(path))

    async def __aenter__(self) -> Fake:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self.server = TestServer(app, host="127.0.0.1", port=0)
        await self.server.start_server()
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        await self.server.close()


def envelope(status: int, code: str, message: str = "", **headers: str) -> web.Response:
    body = {"error": {"code": code, "message": message or code.lower(), "issues": []}}
    return web.json_response(body, status=status, headers=headers)


def client(base_url: str, **kwargs: Any) -> YoukaClient:
    options: dict[str, Any] = {"requests_per_second": 1000, "attempts": 4, **FAST}
    options.update(kwargs)
    return YoukaClient(base_url, KEY, **options)


def partials(folder: Path) -> list[Path]:
    return list(folder.rglob(PARTIAL_PREFIX + "*"))


def files_in(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*") if p.is_file())


async def ok_me(request: web.Request, n: int) -> web.StreamResponse:
    return web.json_response({"email": "a@b", "userId": "usr_1", "apiKeyId": "key_1"})


async def audio_file(request: web.Request, n: int) -> web.StreamResponse:
    return web.Response(body=b"RIFF" + b"\0" * 996, content_type="audio/wav")


# --- credentials --------------------------------------------------------------------------------


async def test_token_goes_to_the_api_origin_and_not_to_a_direct_storage_url(
    tmp_path: Path,
) -> None:
    """The Bearer token reaches the API host; a stem URL on another origin gets none."""
    async with Fake(ok_me) as api, Fake(audio_file) as storage, client(api.url("/api/v1")) as y:
        await y.me()
        got = await y.download(storage.url("/files/a.wav?signature=s1"), tmp_path / "v")
    assert api.seen[0].authorization == f"Bearer {KEY}"
    assert api.seen[0].path == "/api/v1/me"
    assert [s.authorization for s in storage.seen] == [None]
    assert storage.seen[0].headers.get("Accept-Encoding") == "identity"
    assert got.path == tmp_path / "v.wav" and got.bytes == 1000


async def test_redirect_from_the_api_to_storage_drops_the_token(tmp_path: Path) -> None:
    """A download that the API redirects to the storage host sends the token to the API only."""
    async with Fake(audio_file) as storage:

        async def redirect(request: web.Request, n: int) -> web.StreamResponse:
            raise web.HTTPFound(storage.url("/files/x.wav?signature=abc"))

        async with Fake(redirect) as api, client(api.url("/api/v1")) as youka:
            await youka.download(api.url("/api/v1/stems/stm_1/download?sig=1"), tmp_path / "v")
            assert youka.downloads == 2 and youka.requests == 0
    assert api.seen[0].authorization == f"Bearer {KEY}"
    assert storage.seen[0].authorization is None
    assert storage.seen[0].query == "signature=abc"
    assert all(s.headers.get("Accept-Encoding") == "identity" for s in api.seen + storage.seen)


async def test_credentials_are_decided_again_on_every_hop(tmp_path: Path) -> None:
    """API -> storage -> API: the token goes on the two API hops and not on the storage hop."""
    async with Fake(audio_file) as final:
        api_url = ""

        async def bounce(request: web.Request, n: int) -> web.StreamResponse:
            raise web.HTTPTemporaryRedirect(api_url + "/final")

        async with Fake(bounce) as storage:

            async def api_handler(request: web.Request, n: int) -> web.StreamResponse:
                if request.path == "/api/v1/final":
                    raise web.HTTPFound(final.url("/f.wav"))
                raise web.HTTPFound(storage.url("/hop"))

            async with Fake(api_handler) as api, client(api.url("/api/v1")) as youka:
                api_url = api.url("/api/v1")
                await youka.download(api.url("/api/v1/start"), tmp_path / "x")
    assert [s.authorization for s in api.seen] == [f"Bearer {KEY}"] * 2
    assert storage.seen[0].authorization is None and final.seen[0].authorization is None


async def test_a_different_port_or_scheme_is_another_origin() -> None:
    """Same host on another port, or another scheme, is not the API's origin."""
    assert same_origin("https://api.youka.io/api/v1", "https://API.youka.io:443/x?y=1")
    assert not same_origin("https://api.youka.io/api/v1", "http://api.youka.io/api/v1")
    assert not same_origin("http://127.0.0.1:8000/a", "http://127.0.0.1:8001/a")
    assert not same_origin("https://api.youka.io", "https://cdn.youka.io")


async def test_more_than_five_redirects_fail_without_a_file(tmp_path: Path) -> None:
    """A redirect loop stops after five hops with a DownloadError and writes nothing."""

    async def loop(request: web.Request, n: int) -> web.StreamResponse:
        raise web.HTTPFound(f"/hop{n}")

    async with Fake(loop) as storage, client("http://127.0.0.1:9/api/v1") as youka:
        with pytest.raises(DownloadError, match="redirects"):
            await youka.download(storage.url("/start"), tmp_path / "v")
    assert len(storage.seen) == 6
    assert files_in(tmp_path) == []


async def test_the_storage_host_never_sees_credentials_from_the_simulator(tmp_path: Path) -> None:
    """Every simulator stem, direct or via the API, arrives; the storage host saw no token."""
    profile = Profile(projects=6, redirect_share=0.5, stem_bytes=4096, synthesize=False)
    stems = []
    async with Simulator(profile, seed=3) as sim:
        async with client(sim.base_url, attempts=2) as youka:
            for pid in sim.project_ids:
                project = await youka.project(pid)
                for stem in project.stems:
                    await youka.download(stem.url, tmp_path / stem.id)
                    stems.append(stem)
        snap = sim.record.snapshot()
    kinds = {"via API" if s.url.startswith(sim.base_url) else "direct" for s in stems}
    assert kinds == {"via API", "direct"}
    assert snap["storage_credentials_seen"] == 0
    assert len(files_in(tmp_path)) == len(stems) == snap["downloads"]
    assert youka.requests == snap["api_calls"] == 6


# --- retries -------------------------------------------------------------------------------------


async def test_a_5xx_is_retried_until_it_succeeds() -> None:
    """Two 503s then a 200: the call succeeds on the third request."""

    async def flaky(request: web.Request, n: int) -> web.StreamResponse:
        if n <= 2:
            return envelope(503, "SERVICE_UNAVAILABLE")
        return await ok_me(request, n)

    async with Fake(flaky) as api, client(api.url("/api/v1")) as youka:
        assert (await youka.me())["userId"] == "usr_1"
        assert youka.requests == 3
    assert len(api.seen) == 3


@pytest.mark.parametrize(
    ("status", "code"),
    [(400, "BAD_REQUEST"), (404, "NOT_FOUND"), (422, "VALIDATION_FAILED"), (403, "FORBIDDEN")],
)
async def test_client_errors_are_not_retried(status: int, code: str) -> None:
    """400, 403, 404 and 422 fail at once with the envelope's code: one request."""

    async def refuse(request: web.Request, n: int) -> web.StreamResponse:
        return envelope(status, code, "the server says no")

    async with Fake(refuse) as api, client(api.url("/api/v1")) as youka:
        with pytest.raises(ApiError) as caught:
            await youka.project("prj_missing")
    assert not isinstance(caught.value, RetryableApiError)
    assert (caught.value.status, caught.value.code) == (status, code)
    assert "the server says no" in str(caught.value)
    assert len(api.seen) == 1


async def test_401_is_a_credentials_error_that_names_the_variable_not_the_key() -> None:
    """A 401 raises CredentialsError naming YOUKA_API_KEY, without the key, after one request."""

    async def unauthorized(request: web.Request, n: int) -> web.StreamResponse:
        return envelope(401, "UNAUTHORIZED", f"key {KEY} is revoked")

    async with Fake(unauthorized) as api, client(api.url("/api/v1")) as youka:
        with pytest.raises(CredentialsError) as caught:
            await youka.task("tsk_1")
    assert "YOUKA_API_KEY" in str(caught.value)
    assert KEY not in str(caught.value) and REDACTED in str(caught.value)
    assert len(api.seen) == 1


async def test_403_on_me_is_a_credentials_error() -> None:
    """`me()` turns a 403 into CredentialsError: the key is refused before any submission."""

    async def forbidden(request: web.Request, n: int) -> web.StreamResponse:
        return envelope(403, "FORBIDDEN")

    async with Fake(forbidden) as api, client(api.url("/api/v1")) as youka:
        with pytest.raises(CredentialsError, match="YOUKA_API_KEY"):
            await youka.me()


async def test_exhausted_attempts_raise_the_last_retryable_error() -> None:
    """After `attempts` 500s the last error is raised, as a RetryableApiError with its status."""

    async def broken(request: web.Request, n: int) -> web.StreamResponse:
        return envelope(500, "INTERNAL_SERVER_ERROR", f"failure {n}")

    async with Fake(broken) as api, client(api.url("/api/v1"), attempts=3) as youka:
        with pytest.raises(RetryableApiError, match="failure 3") as caught:
            await youka.project("prj_1")
    assert caught.value.status == 500 and len(api.seen) == 3


async def test_a_dropped_connection_is_retried() -> None:
    """A connection closed before any answer is retried on a new connection."""

    async def drop_first(request: web.Request, n: int) -> web.StreamResponse:
        if n == 1:
            assert request.transport is not None
            request.transport.close()
            await anyio.sleep(0.05)
        return await ok_me(request, n)

    async with Fake(drop_first) as api, client(api.url("/api/v1")) as youka:
        await youka.me()
    assert len(api.seen) == 2


async def test_a_refused_connection_ends_in_a_retryable_error_without_the_query() -> None:
    """Nobody listening: RetryableApiError after `attempts` tries, its message free of secrets."""
    async with Fake(ok_me) as gone:
        dead = gone.url("/api/v1")
    async with client(dead, attempts=2) as youka:
        with pytest.raises(RetryableApiError) as caught:
            await youka.me()
    assert youka.requests == 2
    assert "/api/v1/me" in str(caught.value) and KEY not in str(caught.value)


# --- submissions ---------------------------------------------------------------------------------


async def test_submit_sends_the_same_key_on_every_attempt_and_accepts_taskid() -> None:
    """A 500 after the write, then a replay: both POSTs carry the caller's key and body."""
    bodies: list[Any] = []

    async def after_write(request: web.Request, n: int) -> web.StreamResponse:
        bodies.append(await request.json())
        if n == 1:
            return envelope(500, "INTERNAL_SERVER_ERROR")
        return web.json_response({"taskId": "tsk_9", "projectId": "prj_1"}, status=202)

    async with Fake(after_write) as api, client(api.url("/api/v1")) as youka:
        assert await youka.submit("prj_1", "demucs", "restems-prj_1-demucs-1") == "tsk_9"
    assert [s.headers.get("Idempotency-Key") for s in api.seen] == ["restems-prj_1-demucs-1"] * 2
    assert [s.path for s in api.seen] == ["/api/v1/projects/prj_1/tasks/stem-separation"] * 2
    assert bodies == [{"splitModel": "demucs"}] * 2


async def test_submit_retries_replay_in_progress_and_conflict_with_the_same_key() -> None:
    """202 IDEMPOTENT_REPLAY_IN_PROGRESS and 409 CONFLICT are retried; `id` is a fallback."""

    async def busy(request: web.Request, n: int) -> web.StreamResponse:
        if n == 1:
            return envelope(202, "IDEMPOTENT_REPLAY_IN_PROGRESS")
        if n == 2:
            return envelope(409, "CONFLICT")
        return web.json_response({"id": "tsk_7"}, status=200)

    async with Fake(busy) as api, client(api.url("/api/v1")) as youka:
        assert await youka.submit("prj_1", "mdx23c", "k-1") == "tsk_7"
    assert len({s.headers.get("Idempotency-Key") for s in api.seen}) == 1
    assert len(api.seen) == 3


async def test_a_409_on_a_read_is_not_retried() -> None:
    """CONFLICT is worth retrying only on a submission; on a GET it fails at once."""

    async def conflict(request: web.Request, n: int) -> web.StreamResponse:
        return envelope(409, "CONFLICT")

    async with Fake(conflict) as api, client(api.url("/api/v1")) as youka:
        with pytest.raises(ApiError) as caught:
            await youka.task("tsk_1")
    assert not isinstance(caught.value, RetryableApiError) and len(api.seen) == 1


async def test_simulated_5xx_after_write_never_separates_twice() -> None:
    """Against the simulator's 5xx-after-write, retries reuse the key: one separation each."""
    faults = Faults(error_after_write=0.5)
    profile = Profile(projects=3, faults=faults, synthesize=False, created_time=0.0)
    models = ("mdx23c", "demucs", "bs_roformer")
    async with Simulator(profile, seed=11) as sim:
        async with client(sim.base_url, attempts=8) as youka:
            tasks = {
                (pid, model): await youka.submit(pid, model, f"sweep-{pid}-{model}-1")
                for pid in sim.project_ids
                for model in models
            }
        snap = sim.record.snapshot()
    assert snap["server_errors"].get("after_write", 0) >= 1
    assert snap["replays"] >= 1
    assert snap["duplicate_separations"] == 0
    assert snap["separations_total"] == len(tasks) == len(set(tasks.values())) == 9


# --- pacing and 429 ------------------------------------------------------------------------------


async def test_requests_are_paced_by_one_limiter() -> None:
    """75 concurrent calls at 25/s: at most ~1 s of burst, and the rest spread at the rate."""
    async with (
        Fake(ok_me) as api,
        client(api.url("/api/v1"), requests_per_second=25) as youka,
        anyio.create_task_group() as tg,
    ):
        for _ in range(75):
            tg.start_soon(youka.me)
    times = sorted(s.t for s in api.seen)
    assert len(times) == 75
    # (75 - 25 burst) / 25 per second = 2 s; the margin absorbs a loaded machine delaying
    # the first requests' arrival, which can only shorten the span seen by the server.
    assert times[-1] - times[0] >= 1.4
    # Without a limiter all 75 land at once; with it, ~25 then 5 more in the next 0.2 s (the
    # slack covers connection set-up spreading the first burst).
    assert sum(1 for t in times if t - times[0] < 0.2) <= 25 + 5 + 10


async def test_a_429_with_retry_after_pauses_every_caller() -> None:
    """After a 429 with Retry-After: 1, no request of any caller reaches the API for ~1 s."""
    rate_limited_at: list[float] = []

    async def throttle_once(request: web.Request, n: int) -> web.StreamResponse:
        if n == 1:
            rate_limited_at.append(time.monotonic())
            return envelope(429, "TOO_MANY_REQUESTS", **{"Retry-After": "1"})
        return await ok_me(request, n)

    async with Fake(throttle_once) as api, client(api.url("/api/v1")) as youka:

        async def later_caller() -> None:
            for _ in range(100):  # start once the 429 has been seen
                if youka.paused_for() > 0:
                    break
                await anyio.sleep(0.01)
            await youka.task("tsk_other")

        async with anyio.create_task_group() as tg:
            tg.start_soon(youka.me)
            tg.start_soon(later_caller)
            tg.start_soon(later_caller)
    after = [s.t - rate_limited_at[0] for s in api.seen[1:]]
    assert len(after) == 3
    assert min(after) >= 0.95, after


async def test_a_429_without_retry_after_backs_off_exponentially() -> None:
    """Repeated 429s without Retry-After pause every caller for growing, capped intervals."""
    assert [backoff_after_429(n, initial=1.0, maximum=6.0) for n in (1, 2, 3, 4)] == [
        1.0,
        2.0,
        4.0,
        6.0,
    ]

    async def throttle_twice(request: web.Request, n: int) -> web.StreamResponse:
        if n <= 2:
            return envelope(429, "TOO_MANY_REQUESTS")
        return await ok_me(request, n)

    options = {"wait_initial": 0.1, "wait_max": 1.0, "wait_jitter": 0.0}
    async with Fake(throttle_twice) as api, client(api.url("/api/v1"), **options) as youka:
        await youka.me()
    gaps = [b.t - a.t for a, b in zip(api.seen, api.seen[1:], strict=False)]
    assert gaps[0] >= 0.09 and gaps[1] >= 0.19


def test_retry_after_accepts_seconds_and_http_dates() -> None:
    """Retry-After is read as delay-seconds or an HTTP date (against the response's Date)."""
    date = "Wed, 21 Oct 2015 07:28:00 GMT"
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after(" 0.5 ") == 0.5
    assert parse_retry_after("-4") == 0.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:30 GMT", date=date) == 30.0
    now = datetime(2015, 10, 21, 7, 27, 0, tzinfo=UTC)
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=now) == 60.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None and parse_retry_after("") is None


async def test_downloads_from_storage_are_not_paced_but_api_redirects_are(tmp_path: Path) -> None:
    """At 10 requests/s, 15 storage downloads finish at once; 15 via the API host take >= 0.5 s."""
    async with Fake(audio_file) as storage:

        async def redirect(request: web.Request, n: int) -> web.StreamResponse:
            raise web.HTTPFound(storage.url(f"/files/{n}.wav"))

        async with (
            Fake(redirect) as api,
            client(api.url("/api/v1"), requests_per_second=10) as youka,
        ):
            start = time.monotonic()
            async with anyio.create_task_group() as tg:
                for i in range(15):
                    tg.start_soon(youka.download, storage.url(f"/d{i}.wav"), tmp_path / f"d{i}")
            direct = time.monotonic() - start
            start = time.monotonic()
            async with anyio.create_task_group() as tg:
                for i in range(15):
                    tg.start_soon(youka.download, api.url(f"/api/v1/r{i}"), tmp_path / f"r{i}")
            redirected = time.monotonic() - start
    assert direct < 0.4
    assert redirected >= 0.4


# --- downloads -----------------------------------------------------------------------------------


def cut_after(sent: int, announced: int) -> Handler:
    """A handler that announces `announced` bytes, sends `sent`, and closes the connection."""

    async def handler(request: web.Request, n: int) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "audio/wav"})
        response.content_length = announced
        await response.prepare(request)
        await response.write(b"x" * sent)
        assert request.transport is not None
        request.transport.close()
        return response

    return handler


async def test_a_truncated_body_is_retryable_and_leaves_no_file(tmp_path: Path) -> None:
    """A body cut at byte 500 of 1000: retried, then RetryableDownloadError, nothing on disk."""
    async with Fake(cut_after(500, 1000)) as storage, client("http://127.0.0.1:9", attempts=2) as y:
        with pytest.raises(RetryableDownloadError):
            await y.download(storage.url("/f.wav?signature=secret"), tmp_path / "model" / "vocals")
    assert len(storage.seen) == 2
    assert files_in(tmp_path) == []
    assert not partials(tmp_path)


async def test_a_truncated_body_then_a_whole_one_gives_the_whole_file(tmp_path: Path) -> None:
    """The retry after a cut body writes the complete file with its own digest."""
    body = bytes(range(256)) * 8
    cut = cut_after(100, len(body))

    async def then_whole(request: web.Request, n: int) -> web.StreamResponse:
        if n == 1:
            return await cut(request, n)
        return web.Response(body=body, content_type="audio/flac")

    async with Fake(then_whole) as storage, client("http://127.0.0.1:9") as youka:
        got = await youka.download(storage.url("/s"), tmp_path / "vocals")
    assert got.path == tmp_path / "vocals.flac"
    assert got.path.read_bytes() == body and got.bytes == len(body)
    assert got.digest == "blake3:" + blake3.blake3(body).hexdigest()
    assert files_in(tmp_path) == ["vocals.flac"]


async def test_a_body_shorter_than_content_length_is_refused(tmp_path: Path) -> None:
    """Content-Length 4096 but 10 bytes and a clean close: a length mismatch, no file."""

    async def short(request: web.Request, n: int) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "audio/wav"})
        response.content_length = 4096
        response.force_close()
        await response.prepare(request)
        await response.write(b"0123456789")
        await response.write_eof()
        return response

    async with Fake(short) as storage, client("http://127.0.0.1:9", attempts=1) as youka:
        with pytest.raises(RetryableDownloadError):
            await youka.download(storage.url("/s.wav"), tmp_path / "vocals")
    assert files_in(tmp_path) == []


async def test_read_timeout_bounds_each_read_not_the_whole_body(tmp_path: Path) -> None:
    """A body trickling for ~1 s completes with a 0.4 s read timeout; a 1 s stall fails."""

    async def trickle(request: web.Request, n: int) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "audio/wav"})
        response.content_length = 10
        await response.prepare(request)
        for i in range(10):
            await response.write(b"z")
            if request.path == "/steady":
                await anyio.sleep(0.1)
            elif i == 4:
                await anyio.sleep(1.0)
        await response.write_eof()
        return response

    options = {"read_timeout": 0.4, "attempts": 1}
    async with Fake(trickle) as storage, client("http://127.0.0.1:9", **options) as youka:
        got = await youka.download(storage.url("/steady"), tmp_path / "steady")
        assert got.bytes == 10
        with pytest.raises(RetryableDownloadError):
            await youka.download(storage.url("/stall"), tmp_path / "stall")
    assert files_in(tmp_path) == ["steady.wav"]


async def test_an_expired_signed_url_is_not_retried(tmp_path: Path) -> None:
    """A 403 from storage is an ExpiredUrlError after one request: re-read the project."""

    async def expired(request: web.Request, n: int) -> web.StreamResponse:
        return envelope(403, "URL_EXPIRED", "the signed URL has expired")

    async with Fake(expired) as storage, client("http://127.0.0.1:9") as youka:
        with pytest.raises(ExpiredUrlError) as caught:
            await youka.download(storage.url("/f.wav?expires=1&signature=deadbeef"), tmp_path / "v")
    assert len(storage.seen) == 1
    assert "deadbeef" not in str(caught.value) and "expires=" not in str(caught.value)
    assert "/f.wav" in str(caught.value)


@pytest.mark.parametrize(
    ("content_type", "path", "name", "expected"),
    [
        ("audio/flac", "/blob", "vocals", "vocals.flac"),
        ("audio/x-wav; charset=binary", "/blob", "vocals", "vocals.wav"),
        ("application/octet-stream", "/stems/a.MP3", "vocals", "vocals.mp3"),
        ("application/octet-stream", "/stems/a.exe", "vocals", "vocals.bin"),
        ("audio/mpeg", "/x", "vocals.v2", "vocals.v2.mp3"),
    ],
)
async def test_the_extension_comes_from_the_response(
    tmp_path: Path, content_type: str, path: str, name: str, expected: str
) -> None:
    """Content-Type decides the extension, else the URL's audio suffix, else .bin."""

    async def typed(request: web.Request, n: int) -> web.StreamResponse:
        return web.Response(body=b"data", headers={"Content-Type": content_type})

    async with Fake(typed) as storage, client("http://127.0.0.1:9") as youka:
        got = await youka.download(storage.url(path + "?signature=x"), tmp_path / name)
    assert got.path.name == expected
    assert files_in(tmp_path) == [expected]


async def test_a_5xx_on_a_signed_url_is_reported_without_its_query(tmp_path: Path) -> None:
    """A failing signed URL's error message keeps the path and drops the query string."""

    async def fail(request: web.Request, n: int) -> web.StreamResponse:
        return envelope(502, "BAD_GATEWAY")

    async with Fake(fail) as storage, client("http://127.0.0.1:9", attempts=2) as youka:
        url = storage.url("/files/stm_1.wav?expires=99&signature=c0ffee")
        with pytest.raises(RetryableDownloadError) as caught:
            await youka.download(url, tmp_path / "v")
    message = str(caught.value)
    assert "/files/stm_1.wav" in message and "502" in message
    assert "c0ffee" not in message and "?" not in message


async def test_chaos_faults_are_survived_with_every_file_correct(tmp_path: Path) -> None:
    """Drops, 5xx, 429s and cut bodies from the simulator: every stem lands, byte for byte."""
    faults = Faults(
        drop_connection=0.15,
        error_on_get=0.25,
        rate_limit=0.25,
        retry_after_share=0.0,
        truncate_body=0.3,
    )
    profile = Profile(projects=4, faults=faults, stem_bytes=8192, synthesize=False)
    async with Simulator(profile, seed=2) as sim:
        async with client(sim.base_url, attempts=10) as youka:
            for pid in sim.project_ids:
                project = await youka.project(pid)
                for stem in project.stems:
                    got = await youka.download(stem.url, tmp_path / pid / stem.id)
                    expected = await sim.context.media.stem_bytes(sim.context.world.stems[stem.id])
                    assert got.digest == "blake3:" + blake3.blake3(expected).hexdigest()
        snap = sim.record.snapshot()
    # The run met faults on both sides: downloads cut or dropped, API calls refused.
    assert snap["truncated_bodies"] + snap["dropped_connections"] >= 2
    assert snap["rate_limited"]["total"] + sum(snap["server_errors"].values()) >= 2
    assert snap["storage_credentials_seen"] == 0
    assert not partials(tmp_path)


# --- parsing --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "status", "terminal", "succeeded"),
    [
        ("created", "created", False, False),
        ("queued", "queued", False, False),
        ("in-progress", "in-progress", False, False),
        ("IN_PROGRESS", "in-progress", False, False),
        ("completed", "completed", True, True),
        ("finalized", "finalized", True, True),
        ("failed", "failed", True, False),
        ("cancelled", "cancelled", True, False),
        ("timed-out", "timed-out", True, False),
        ("paused-for-review", "paused-for-review", False, False),
        (None, "unknown", False, False),
    ],
)
def test_task_statuses(raw: object, status: str, terminal: bool, succeeded: bool) -> None:
    """Documented statuses map to terminal/succeeded; unknown ones are not terminal."""
    task = parse_task({"id": "tsk_1", "status": raw, "output": {"projectId": "prj_1"}})
    assert (task.status, task.terminal, task.succeeded) == (status, terminal, succeeded)
    assert task.project_id == "prj_1"
    assert TERMINAL_OK.isdisjoint(TERMINAL_FAILED)


def test_a_project_is_parsed_tolerantly() -> None:
    """Extra fields are ignored; stems lacking model or duration keep None; unusable ones drop."""
    project = parse_project(
        {
            "id": "prj_1",
            "title": "Song",
            "artists": ["A"],
            "lyrics": None,
            "stems": [
                {"id": "stm_1", "type": "original", "url": "https://s/1.wav"},
                {
                    "id": "stm_2",
                    "type": "vocals",
                    "model": "demucs",
                    "url": "https://s/2.flac",
                    "duration": 181.5,
                    "loudness": -14,
                },
                {"id": "stm_3", "type": "instrumental"},
                "not a stem",
            ],
        }
    )
    assert project.title == "Song"
    assert [(s.id, s.model, s.duration) for s in project.stems] == [
        ("stm_1", None, None),
        ("stm_2", "demucs", 181.5),
    ]


def test_a_failed_task_keeps_its_error_message() -> None:
    """`error` is kept as text, whether the API sends a string or an object with a message."""
    assert parse_task({"id": "t", "status": "failed", "error": "out of credits"}).error == (
        "out of credits"
    )
    assert parse_task({"id": "t", "status": "failed", "error": {"message": "bad audio"}}).error == (
        "bad audio"
    )
    assert parse_task({"id": "t", "status": "queued", "error": None}).error is None


async def test_project_tasks_and_task_read_the_simulator() -> None:
    """submit, task and project_tasks agree on the task the simulator created."""
    profile = Profile(projects=1, synthesize=False)
    async with Simulator(profile, seed=2) as sim, client(sim.base_url) as youka:
        pid = sim.project_ids[0]
        task_id = await youka.submit(pid, "mdx23c", f"k-{pid}")
        task = await youka.task(task_id)
        history = await youka.project_tasks(pid)
    assert task.id == task_id and task.project_id == pid and not task.terminal
    assert [t.id for t in history.tasks] == [task_id] and history.complete


# --- secrets in logs ----------------------------------------------------------------------------


async def test_the_key_and_signed_queries_never_reach_the_logs(tmp_path: Path) -> None:
    """Retries and failures logged (by stamina too) carry neither the key nor a signature."""
    capture = structlog.testing.LogCapture()
    structlog.configure(processors=[*shared_processors([KEY]), capture])
    try:

        async def echo_key(request: web.Request, n: int) -> web.StreamResponse:
            return envelope(500, "INTERNAL_SERVER_ERROR", f"saw {request.headers['Authorization']}")

        async with Fake(echo_key) as api, client(api.url("/api/v1"), attempts=2) as youka:
            with pytest.raises(RetryableApiError) as caught:
                await youka.me()
            with pytest.raises(DownloadError) as failed_download:
                await youka.download(api.url("/api/v1/s?signature=feedface"), tmp_path / "v")
            log = structlog.get_logger()
            log.error("download.failed", error=failed_download.value, nested={"e": [caught.value]})
            try:
                raise RuntimeError(f"boom {KEY} {api.url('/x?signature=feedface')}")
            except RuntimeError:
                log.exception("job.crashed", key_seen={KEY: KEY})
    finally:
        structlog.reset_defaults()
    text = repr(capture.entries)
    assert any(e["event"] == "stamina.retry_scheduled" for e in capture.entries)
    assert KEY not in text and "feedface" not in text
    assert KEY not in str(caught.value) and REDACTED in str(caught.value)
