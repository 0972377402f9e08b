"""The Youka client: the only module of stemsweep that speaks HTTP to the API.

One `YoukaClient` owns one `aiohttp.ClientSession` for a run. The session carries no
credentials: `Authorization: Bearer ...` is added to each request whose URL has the API's own
origin (scheme, host, port), and to no other. Downloads follow redirects by hand so that this
decision is made again for every hop: a stem URL on the storage host, or a redirect from the
API to it, is fetched without the token.

Every API request (retries included, and download hops that hit the API host) first passes
two gates shared by all callers of the client (downloads from other hosts pass neither):

    pause gate   closed until a deadline after a 429 (Retry-After, or an exponential backoff)
    limiter      one aiolimiter leaky bucket of `requests_per_second`

Waits between attempts are stamina's own (`stamina.set_testing` removes them in tests); the
pause gate reads the time and sleeps through the `Clock` seam.

Retries use stamina, only on what is worth retrying: 429, 5xx, dropped connections, timeouts,
short bodies, and, on submissions, `IDEMPOTENT_REPLAY_IN_PROGRESS` and `CONFLICT` (the API's
"retry later with the same key"). A submission is always retried with the caller's key.

Failures are translated into the tree of `orchestrator.errors` in one place,
`translate_failure`:

    401 anywhere (and 403 on /me)          CredentialsError
    429, 5xx, connection and read errors   RetryableApiError (RetryableDownloadError for downloads)
    403, 401, 410 from a download URL      ExpiredUrlError: re-read the project for a fresh URL
    any other failure                      ApiError (DownloadError for downloads)

Messages are built from the method, the URL without its query string, the status and the
error envelope; never from aiohttp's exceptions or request objects, which print signed URLs
and headers.
"""

from __future__ import annotations

import http.client
import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Self, TypeVar
from urllib.parse import quote

import aiohttp
import stamina
from aiolimiter import AsyncLimiter
from yarl import URL

from orchestrator import __version__
from orchestrator.clock import REAL_CLOCK, Clock
from orchestrator.connection import ENV_API_KEY, require_key
from orchestrator.download import (
    DEFAULT_CHUNK_SIZE,
    FALLBACK_EXTENSION,
    Downloaded,
    Staged,
    commit_one,
    extension_for,
    stage,
    with_extension,
)
from orchestrator.errors import (
    ApiError,
    CredentialsError,
    DownloadError,
    ExpiredUrlError,
    RetryableApiError,
    RetryableDownloadError,
    StemsweepError,
)
from orchestrator.logs import redact_text, redact_url
from orchestrator.storage import MAX_ERROR_BODY, Answer, StorageClient

__all__ = [
    "TERMINAL_FAILED",
    "TERMINAL_OK",
    "Downloaded",
    "Project",
    "Stem",
    "Task",
    "YoukaClient",
    "backoff_after_429",
    "parse_project",
    "parse_retry_after",
    "parse_task",
    "redact_url",
    "same_origin",
    "translate_failure",
]

TERMINAL_OK = frozenset({"completed", "finalized"})
TERMINAL_FAILED = frozenset({"failed", "cancelled", "timed-out"})

DEFAULT_READ_TIMEOUT = 60.0
DEFAULT_CONNECT_TIMEOUT = 30.0
DEFAULT_WAIT_INITIAL = 1.0
DEFAULT_WAIT_MAX = 60.0
DEFAULT_WAIT_JITTER = 1.0
DEFAULT_MAX_PAUSE = 600.0
"""The longest a single 429 may pause the client, whatever its `Retry-After` says."""
MAX_REDIRECTS = 5

REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
EXPIRED_STATUSES = frozenset({401, 403, 410})
SUBMIT_RETRY_CODES = frozenset({"IDEMPOTENT_REPLAY_IN_PROGRESS", "CONFLICT"})
IDEMPOTENCY_KEY = re.compile(r"[A-Za-z0-9._:-]{1,255}")

T = TypeVar("T")

_STATUS_ALIASES = {"canceled": "cancelled", "timedout": "timed-out", "inprogress": "in-progress"}


# --- the data the API returns ---------------------------------------------------------------


@dataclass(frozen=True)
class Task:
    """One execution record (`GET /tasks/{id}`). Unknown statuses count as not terminal."""

    id: str
    status: str
    error: str | None
    project_id: str | None

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL_OK or self.status in TERMINAL_FAILED

    @property
    def succeeded(self) -> bool:
        return self.status in TERMINAL_OK


@dataclass(frozen=True)
class Stem:
    """One entry of `project.stems[]`; `model` and `duration` are None when not sent."""

    id: str
    type: str
    model: str | None
    url: str
    duration: float | None


@dataclass(frozen=True)
class Project:
    """The durable state of a project, reduced to what a sweep needs."""

    id: str
    title: str
    stems: tuple[Stem, ...]


def normalize_status(raw: object) -> str:
    """`in_progress`, `IN-PROGRESS` and `in-progress` all become `in-progress`."""
    text = str(raw).strip().lower().replace("_", "-").replace(" ", "-") if raw else "unknown"
    return _STATUS_ALIASES.get(text.replace("-", ""), text)


def _text_or_none(value: object) -> str | None:
    if isinstance(value, str) and value:
        return value
    if isinstance(value, Mapping):
        message = value.get("message")
        return str(message) if message else json.dumps(value, default=str)[:500]
    return None if value is None or value == "" else str(value)


def _number_or_none(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def parse_task(data: object, fallback_id: str = "") -> Task:
    """A `Task` from a task object; tolerant of extra and missing fields."""
    if not isinstance(data, Mapping):
        raise ValueError("a task is not a JSON object")
    output = data.get("output")
    project_id = output.get("projectId") if isinstance(output, Mapping) else None
    project_id = project_id or data.get("projectId")
    return Task(
        id=str(data.get("id") or data.get("taskId") or fallback_id),
        status=normalize_status(data.get("status")),
        error=_text_or_none(data.get("error")),
        project_id=str(project_id) if project_id else None,
    )


def parse_stem(data: object) -> Stem | None:
    """A `Stem`, or None for an entry without a usable `type` and `url`."""
    if not isinstance(data, Mapping):
        return None
    kind, url = data.get("type"), data.get("url")
    if not isinstance(kind, str) or not isinstance(url, str) or not url:
        return None
    model = data.get("model")
    return Stem(
        id=str(data.get("id") or ""),
        type=kind,
        model=model if isinstance(model, str) and model else None,
        url=url,
        duration=_number_or_none(data.get("duration")),
    )


def parse_project(data: object, fallback_id: str = "") -> Project:
    """A `Project` from a project object; stems that cannot be used are left out."""
    if not isinstance(data, Mapping):
        raise ValueError("a project is not a JSON object")
    raw_stems = data.get("stems")
    stems = (parse_stem(item) for item in (raw_stems if isinstance(raw_stems, list) else ()))
    title = data.get("title")
    return Project(
        id=str(data.get("id") or fallback_id),
        title=title if isinstance(title, str) else "",
        stems=tuple(stem for stem in stems if stem is not None),
    )


def _task_id(data: Mapping[str, Any]) -> str | None:
    task_id = data.get("taskId") or data.get("id")
    return str(task_id) if task_id else None


def _task_list(data: object) -> list[object]:
    if isinstance(data, list):
        return data
    if isinstance(data, Mapping):
        for field in ("tasks", "data", "items", "results"):
            if isinstance(data.get(field), list):
                return list(data[field])
    raise ValueError("a task list is neither a JSON array nor an object holding one")


# --- pure decisions -------------------------------------------------------------------------


Origin = tuple[str, str, int | None]


def origin_of(url: str | URL) -> Origin:
    """(scheme, host, port) of `url`, with the scheme's default port made explicit."""
    parsed = url if isinstance(url, URL) else URL(url, encoded=True)
    return (parsed.scheme.lower(), (parsed.host or "").lower(), parsed.port)


def same_origin(a: str | URL, b: str | URL) -> bool:
    """True when `a` and `b` share scheme, host and port: only then may credentials go along."""
    return origin_of(a) == origin_of(b)


def parse_retry_after(
    value: str | None, *, date: str | None = None, now: datetime | None = None
) -> float | None:
    """Seconds to wait from a `Retry-After` header (delay-seconds or an HTTP date), or None.

    An HTTP date is measured against the response's own `Date` header when there is one, so a
    skewed local clock does not matter; otherwise against `now` (the wall clock by default).
    """
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        return max(0.0, seconds) if seconds == seconds else None  # NaN is no answer
    try:
        when = parsedate_to_datetime(text)
        reference = parsedate_to_datetime(date) if date else (now or datetime.now(UTC))
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    if reference.tzinfo is None:
        reference = reference.replace(tzinfo=UTC)
    return max(0.0, (when - reference).total_seconds())


def backoff_after_429(consecutive: int, *, initial: float, maximum: float) -> float:
    """The pause for every caller after the `consecutive`-th 429 in a row without Retry-After."""
    try:
        return float(min(maximum, initial * 2 ** max(0, consecutive - 1)))
    except OverflowError:
        return maximum


def _envelope(payload: bytes) -> tuple[str | None, str | None, list[Any]]:
    """(code, message, issues) from `{"error": {...}}`; the start of the body when not JSON."""
    try:
        data = json.loads(payload) if payload else None
    except ValueError:
        text = payload[:200].decode("utf-8", "replace").strip()
        return None, text or None, []
    error = data.get("error") if isinstance(data, Mapping) else None
    if isinstance(error, str):
        return None, error, []
    if not isinstance(error, Mapping):
        return None, None, []
    code, message, issues = error.get("code"), error.get("message"), error.get("issues")
    return (
        str(code) if code else None,
        str(message) if message else None,
        list(issues) if isinstance(issues, list) else [],
    )


def _describe_issues(issues: Iterable[Any]) -> str:
    parts = []
    for issue in list(issues)[:10]:
        if isinstance(issue, Mapping):
            path = issue.get("path")
            where = ".".join(map(str, path)) if isinstance(path, list) else str(path or "")
            text = str(issue.get("message") or "")
            parts.append(f"{where}: {text}" if where else text)
        else:
            parts.append(str(issue))
    return "; ".join(p for p in parts if p)


Kind = Literal["api", "submit", "me", "download"]

# aiohttp's, and those of `storage` (the socket's OSErrors, http.client's protocol errors).
_TRANSPORT_ERRORS = (
    aiohttp.ClientConnectionError,
    aiohttp.ClientPayloadError,
    OSError,
    http.client.HTTPException,
)


def translate_failure(
    kind: Kind,
    method: str,
    url: str | URL,
    *,
    status: int = 0,
    payload: bytes = b"",
    retry_after: float | None = None,
    exc: BaseException | None = None,
    secrets: Iterable[str] = (),
) -> StemsweepError:
    """The one place where HTTP failures become stemsweep errors.

    Give either a response (`status`, `payload`, `retry_after`) or a transport exception
    (`exc`). The returned error's message holds the method, the URL without its query string,
    the status and the server's error envelope, scrubbed of `secrets`.
    """
    where = f"{method} {redact_url(url)}"
    download = kind == "download"

    def scrub(text: str) -> str:
        return redact_text(text, secrets)

    if exc is not None:
        # aiohttp's response errors print the full URL, its request objects their headers:
        # show only the class name for those, and a scrubbed text for the others.
        detail = type(exc).__name__
        if not isinstance(exc, aiohttp.ClientResponseError) and str(exc):
            detail = f"{detail}: {scrub(str(exc))[:300]}"
        message = f"{where}: {detail}"
        if isinstance(exc, _TRANSPORT_ERRORS):
            if download:
                return RetryableDownloadError(message)
            return RetryableApiError(message)
        return DownloadError(message) if download else ApiError(message)

    code, server_message, issues = _envelope(payload)
    message = f"{where}: HTTP {status}" + (f" {code}" if code else "")
    if server_message:
        message += f": {server_message}"
    if issues:
        message += f" ({_describe_issues(issues)})"
    message = scrub(message)

    if status == 401 or (status == 403 and kind == "me"):
        return CredentialsError(
            f"the API rejected the key in {ENV_API_KEY} (HTTP {status}"
            + (f" {code}" if code else "")
            + f"); check {ENV_API_KEY}. {message}"
        )
    if status == 429 or status == 408 or status >= 500:
        if download:
            return RetryableDownloadError(message, retry_after=retry_after)
        return RetryableApiError(message, status=status, code=code, retry_after=retry_after)
    if kind == "submit" and code in SUBMIT_RETRY_CODES:
        # "Retry later with the same key": the original request is still running (202) or
        # holds the key (409).
        return RetryableApiError(message, status=status, code=code, retry_after=retry_after)
    if download:
        if status in EXPIRED_STATUSES:
            return ExpiredUrlError(f"{message}; the URL has expired or was refused")
        return DownloadError(message)
    return ApiError(message, status=status, code=code)


def _retry_hook(exc: Exception) -> bool | float:
    """stamina's hook: retry only retryable errors, after `Retry-After` when the server sent one."""
    if isinstance(exc, RetryableApiError | RetryableDownloadError):
        return exc.retry_after if exc.retry_after is not None else True
    return False


# --- the client -----------------------------------------------------------------------------


class PauseGate:
    """A deadline shared by every caller: nobody sends an API request before it has passed."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._until = 0.0

    def pause(self, seconds: float) -> None:
        """Keep the gate closed for at least `seconds` from now (never shortens a pause)."""
        self._until = max(self._until, self._clock.now() + max(0.0, seconds))

    def remaining(self) -> float:
        return max(0.0, self._until - self._clock.now())

    async def wait_open(self) -> None:
        # A loop, because another 429 may push the deadline while we sleep.
        while (remaining := self.remaining()) > 0:
            await self._clock.sleep(remaining)


@dataclass(frozen=True)
class _Reply:
    status: int
    payload: bytes
    retry_after: float | None


class YoukaClient:
    """Async context manager owning ONE aiohttp.ClientSession that carries NO default credentials.

    `requests` counts API requests sent (retries included); `downloads` counts download HTTP
    requests (each redirect hop included). Retry waits come from stamina with `wait_initial`,
    `wait_max` and `wait_jitter`; pauses after a 429 go through `clock`.
    """

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        requests_per_second: float,
        attempts: int,
        clock: Clock = REAL_CLOCK,
        read_timeout: float = DEFAULT_READ_TIMEOUT,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        wait_initial: float = DEFAULT_WAIT_INITIAL,
        wait_max: float = DEFAULT_WAIT_MAX,
        wait_jitter: float = DEFAULT_WAIT_JITTER,
        max_pause: float = DEFAULT_MAX_PAUSE,
        retry_timeout: float | None = None,
    ) -> None:
        require_key(api_key)
        if requests_per_second <= 0:
            raise ValueError("requests_per_second must be positive")
        if attempts < 1:
            raise ValueError("attempts must be at least 1")
        base = URL(base_url.rstrip("/"), encoded=True)
        if base.scheme not in ("http", "https") or not base.host:
            raise ValueError(f"the API URL must be http(s)://host/...: {redact_url(base_url)}")
        self.base_url = str(base)
        self._base = base
        self._origin = origin_of(base)
        self._api_key = api_key
        self._attempts = attempts
        self._clock = clock
        self._wait = {
            "wait_initial": wait_initial,
            "wait_max": wait_max,
            "wait_jitter": wait_jitter,
        }
        self._retry_timeout = retry_timeout
        self._max_pause = max_pause
        self._api_timeout = aiohttp.ClientTimeout(
            total=read_timeout, sock_connect=connect_timeout, sock_read=read_timeout
        )
        # Downloads may run long: bound each read, never the whole body.
        self._download_timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=connect_timeout, sock_read=read_timeout
        )
        # A leaky bucket: pacing at `requests_per_second`, bursts of at most ~1 s worth.
        if requests_per_second >= 1:
            self._limiter = AsyncLimiter(requests_per_second, 1.0)
        else:
            self._limiter = AsyncLimiter(1, 1.0 / requests_per_second)
        self._gate = PauseGate(clock)
        self._consecutive_429 = 0
        self._session: aiohttp.ClientSession | None = None
        self._large_bodies: set[Origin] = set()  # storage origins whose GETs go to threads
        self._storage = StorageClient(
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            user_agent=f"stemsweep/{__version__}",
        )
        self.requests = 0
        self.downloads = 0

    def __repr__(self) -> str:
        return f"<YoukaClient {self.base_url} requests={self.requests} downloads={self.downloads}>"

    async def __aenter__(self) -> Self:
        self._session = aiohttp.ClientSession(
            headers={"User-Agent": f"stemsweep/{__version__}"},
            timeout=self._download_timeout,
            cookie_jar=aiohttp.DummyCookieJar(),
            raise_for_status=False,
            trust_env=False,
        )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
        self._storage.close()

    # --- the calls ---

    async def me(self) -> dict[str, Any]:
        """`GET /me`: who the key belongs to. CredentialsError when the key is refused."""
        data = await self._call("me", "GET", ("me",))
        if not isinstance(data, dict):
            raise ApiError("GET /me: the answer is not a JSON object", status=200)
        return data

    async def submit(self, project_id: str, model: str, key: str) -> str:
        """Start a stem separation with `model`; return the task id.

        `key` is sent as `Idempotency-Key` on every attempt: a retry after a failure whose
        write was applied returns the original task instead of a second separation.
        """
        if not IDEMPOTENCY_KEY.fullmatch(key):
            raise ValueError("an idempotency key is 1-255 characters of [A-Za-z0-9._:-]")
        data = await self._call(
            "submit",
            "POST",
            ("projects", project_id, "tasks", "stem-separation"),
            body={"splitModel": model},
            key=key,
        )
        task_id = _task_id(data) if isinstance(data, Mapping) else None
        if not task_id:
            raise ApiError(
                f"POST {self._url('projects', project_id, 'tasks', 'stem-separation')}: "
                "the answer holds no taskId",
                status=200,
            )
        return task_id

    async def task(self, task_id: str) -> Task:
        """`GET /tasks/{id}`."""
        data = await self._call("api", "GET", ("tasks", task_id))
        try:
            return parse_task(data, task_id)
        except ValueError as exc:
            raise ApiError(f"GET /tasks/{task_id}: {exc}", status=200) from None

    async def project(self, project_id: str) -> Project:
        """`GET /projects/{id}`."""
        data = await self._call("api", "GET", ("projects", project_id))
        try:
            return parse_project(data, project_id)
        except ValueError as exc:
            raise ApiError(f"GET /projects/{project_id}: {exc}", status=200) from None

    async def project_tasks(self, project_id: str) -> list[Task]:
        """`GET /projects/{id}/tasks`: the project's task history."""
        data = await self._call("api", "GET", ("projects", project_id, "tasks"))
        try:
            return [parse_task(item) for item in _task_list(data)]
        except ValueError as exc:
            raise ApiError(f"GET /projects/{project_id}/tasks: {exc}", status=200) from None

    async def download(self, url: str, dest: Path) -> Downloaded:
        """Stream `url` to `dest` plus the extension the response implies; verified, atomic:
        `fetch`, then `download.commit_one`."""
        return await commit_one(await self.fetch(url, dest))

    async def fetch(self, url: str, dest: Path) -> Staged:
        """Receive `url`'s body, verified, for `dest` plus the extension the response implies;
        `download.commit` puts it in place (with the other files of its job).

        Redirects are followed by hand (at most `MAX_REDIRECTS`), deciding per hop whether
        the token may go along; hops to the API host are paced like any API request.

        Each hop is received by aiohttp on the event loop, except GETs to a storage origin
        that has already announced a body longer than one chunk: those run in a worker
        thread (`storage`). aiohttp is the cheaper of the two for short bodies (no thread
        hop: a 3,000-job run of 16 KiB stems took 0.5-1 ms more CPU per job through threads),
        the thread for long ones (the bytes never pass through the event loop: 1 GiB of
        16 MiB stems took 0.75 s of CPU instead of 1.7 s, and 20% less time). Raises
        `ExpiredUrlError` when the URL is refused (re-read the project for a fresh one),
        `RetryableDownloadError` after the last attempt of a retryable failure, and
        `DownloadError` otherwise. A failed attempt leaves no file behind.
        """
        return await self._with_retries(lambda: self._download_once(url, dest))

    def pause(self, seconds: float) -> None:
        """Hold back every API request of every caller for `seconds` from now."""
        self._gate.pause(seconds)

    def paused_for(self) -> float:
        """Seconds until API requests may be sent again (0 when not paused)."""
        return self._gate.remaining()

    # --- mechanics ---

    @property
    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError("use YoukaClient as `async with YoukaClient(...) as client:`")
        return self._session

    def _url(self, *segments: str) -> URL:
        # Each id is one path segment, whatever it contains.
        path = "/".join(quote(segment, safe="") for segment in segments)
        return URL(f"{self._base}/{path}", encoded=True)

    def _headers(self, url: URL, **extra: str) -> dict[str, str]:
        """Headers for one request: the token only when `url` has the API's own origin."""
        headers = dict(extra)
        if origin_of(url) == self._origin:
            headers["Authorization"] = f"Bearer {self._api_key}"
        return headers

    async def _with_retries(self, once: Callable[[], Awaitable[T]]) -> T:
        """`once()`, retried with stamina when it fails in a way worth retrying.

        The first attempt runs outside stamina: setting up its retry machinery for every
        call cost about a sixth of the client's CPU per request, and nearly every call
        succeeds at once. A retryable failure of that attempt is raised again as stamina's
        first attempt, so attempt counts, waits (`Retry-After` included) and retry logs are
        stamina's, as if it had run the first one (only `retry_timeout` starts counting
        after it).
        """
        try:
            return await once()
        except (RetryableApiError, RetryableDownloadError) as exc:
            first: BaseException | None = exc
        async for attempt in self._retrying():
            with attempt:
                if first is not None:
                    failed, first = first, None
                    raise failed
                return await once()
        raise AssertionError("unreachable")

    def _retrying(self) -> Any:
        return stamina.retry_context(
            on=_retry_hook,
            attempts=self._attempts,
            timeout=self._retry_timeout,
            **self._wait,
        )

    async def _admit(self) -> None:
        """Wait until an API request may go: the pause gate, then the limiter, then the gate."""
        await self._gate.wait_open()
        await self._limiter.acquire()
        # A 429 may have arrived while this request waited for the limiter.
        await self._gate.wait_open()

    def _note_api_reply(self, status: int, retry_after: float | None) -> None:
        """Record a reply from the API host: after a 429, pause every caller."""
        if status != 429:
            self._consecutive_429 = 0
            return
        self._consecutive_429 += 1
        pause = retry_after
        if pause is None:
            pause = backoff_after_429(
                self._consecutive_429,
                initial=self._wait["wait_initial"],
                maximum=self._wait["wait_max"],
            )
        self._gate.pause(min(pause, self._max_pause))

    def _retry_after(self, headers: Mapping[str, str]) -> float | None:
        seconds = parse_retry_after(headers.get("Retry-After"), date=headers.get("Date"))
        return None if seconds is None else min(seconds, self._max_pause)

    async def _call(
        self,
        kind: Kind,
        method: str,
        segments: tuple[str, ...],
        *,
        body: Any = None,
        key: str | None = None,
    ) -> Any:
        url = self._url(*segments)
        return await self._with_retries(lambda: self._call_once(kind, method, url, body, key))

    async def _call_once(
        self, kind: Kind, method: str, url: URL, body: Any, key: str | None
    ) -> Any:
        await self._admit()
        self.requests += 1
        headers = self._headers(url, Accept="application/json")
        if key is not None:
            headers["Idempotency-Key"] = key
        try:
            async with self._http.request(
                method,
                url,
                json=body,
                headers=headers,
                allow_redirects=False,
                timeout=self._api_timeout,
            ) as response:
                payload = await response.read()
                reply = _Reply(response.status, payload, self._retry_after(response.headers))
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise self._failure(kind, method, url, exc=exc) from None
        self._note_api_reply(reply.status, reply.retry_after)
        if not 200 <= reply.status < 300:
            raise self._failure(
                kind,
                method,
                url,
                status=reply.status,
                payload=reply.payload,
                retry_after=reply.retry_after,
            )
        try:
            data = json.loads(reply.payload) if reply.payload.strip() else None
        except ValueError:
            # A 2xx whose body is not JSON is a broken proxy or a cut reply: worth another try
            # (a submission is retried with the same key, so it cannot run twice).
            raise RetryableApiError(
                f"{method} {redact_url(url)}: HTTP {reply.status} with a body that is not JSON",
                status=reply.status,
            ) from None
        if kind == "submit" and isinstance(data, Mapping) and not _task_id(data):
            # A 202 may carry an envelope instead of a task: IDEMPOTENT_REPLAY_IN_PROGRESS.
            code, _, _ = _envelope(reply.payload)
            if code is not None:
                raise self._failure(kind, method, url, status=reply.status, payload=reply.payload)
        return data

    def _failure(self, kind: Kind, method: str, url: str | URL, **details: Any) -> StemsweepError:
        return translate_failure(kind, method, url, secrets=(self._api_key,), **details)

    async def _download_once(self, url: str, dest: Path) -> Staged:
        current = URL(url, encoded=True)
        for _hop in range(MAX_REDIRECTS + 1):
            if current.scheme not in ("http", "https") or not current.host:
                raise DownloadError(f"not an http(s) URL: {redact_url(current)}")
            to_api = origin_of(current) == self._origin
            if to_api:
                await self._admit()
            self.downloads += 1
            headers = self._headers(current, Accept="*/*")
            headers["Accept-Encoding"] = "identity"

            def final_for(content_type: str | None, hop: URL = current) -> Path:
                ext = extension_for(content_type, str(hop))
                if ext == FALLBACK_EXTENSION and str(hop) != url:
                    ext = extension_for(None, url)
                return with_extension(dest, ext)

            if to_api or origin_of(current) not in self._large_bodies:
                answer = await self._aiohttp_hop(current, headers, final_for, to_api=to_api)
            else:
                try:
                    answer = await self._storage.get(current, headers, final_for)
                except _TRANSPORT_ERRORS as exc:
                    raise self._failure("download", "GET", current, exc=exc) from None
            if answer.staged is not None:
                return answer.staged
            if answer.status not in REDIRECT_STATUSES:
                raise self._failure(
                    "download",
                    "GET",
                    current,
                    status=answer.status,
                    payload=answer.payload,
                    retry_after=self._retry_after(answer.headers),
                )
            current = self._location(current, answer)
        raise DownloadError(f"GET {redact_url(url)}: more than {MAX_REDIRECTS} redirects")

    async def _aiohttp_hop(
        self,
        url: URL,
        headers: dict[str, str],
        final_for: Callable[[str | None], Path],
        *,
        to_api: bool,
    ) -> Answer:
        """One download GET with aiohttp, on the event loop's thread.

        A storage origin whose answer announces a body longer than one chunk is noted:
        its later GETs go to `storage`, in worker threads (see `_download_once`).
        """
        async with self._response(url, headers) as response:
            if to_api:
                self._note_api_reply(response.status, self._retry_after(response.headers))
            if response.status == 200:
                length = response.content_length
                if not to_api and length is not None and length > DEFAULT_CHUNK_SIZE:
                    self._large_bodies.add(origin_of(url))
                final = final_for(response.headers.get("Content-Type"))
                return Answer(200, staged=await self._stream(response, final, url))
            payload = b""
            if response.status not in REDIRECT_STATUSES:
                payload = await response.content.read(MAX_ERROR_BODY)
            return Answer(response.status, response.headers, payload=payload)

    @staticmethod
    def _location(current: URL, answer: Answer) -> URL:
        location = answer.headers.get("Location")
        if not location:
            raise DownloadError(
                f"GET {redact_url(current)}: HTTP {answer.status} without a Location"
            )
        return current.join(URL(location, encoded=True))

    @asynccontextmanager
    async def _response(
        self, url: URL, headers: dict[str, str]
    ) -> AsyncIterator[aiohttp.ClientResponse]:
        """One GET without following redirects; transport errors translated."""
        try:
            async with self._http.get(
                url, headers=headers, allow_redirects=False, timeout=self._download_timeout
            ) as response:
                yield response
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise self._failure("download", "GET", url, exc=exc) from None

    async def _stream(self, response: aiohttp.ClientResponse, final: Path, url: URL) -> Staged:
        try:
            return await stage(response, final)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise self._failure("download", "GET", url, exc=exc) from None
