"""The Youka client: the calls stemsweep makes, how often each is tried, and downloads.

One `YoukaClient` is one run's connection to the API: the endpoints (`me`, `submit`, `task`,
`project`, `project_tasks`; for songs `announce_upload`, `put_upload`, `create_project`; for
credits `quote`, `credits`), parsed into `wire`'s shapes, and `fetch`/`download` of stem
files. Underneath, `transport.Transport` makes one request at a time (the session, the
token sent to the API's own origin only, failures translated into `orchestrator.errors`),
and `pacing.Pacer` holds every API request of every caller to `requests_per_second` and
pauses them all after a 429.

An API that answers nothing (every call ending in a connection error or a 5xx, after its
retries) for `outage_after` seconds (5 minutes by default) stops the run with
`ApiUnavailableError`: past that point each job would only fail the same way in turn, and
a later run resumes them all. A 429 or any 4xx is an answer.

Retries use stamina, only on what is worth retrying: 429, 5xx, dropped connections, timeouts,
short bodies, and, on submissions, `IDEMPOTENT_REPLAY_IN_PROGRESS` and `CONFLICT` (the API's
"retry later with the same key"). A submission is always retried with the caller's key, and
so are an upload's announcement and a project's creation. Too few credits (402) is never
retried.
Waits between attempts are stamina's own (`stamina.set_testing` removes them in tests); the
pause gate reads the time and sleeps through the `Clock` seam.

Downloads follow redirects by hand, so that whether the token goes along is decided again
for every hop: a stem URL on the storage host, or a redirect from the API to it, is fetched
without the token.

(A little over 400 lines: one method per endpoint, each with its retries and its
translation read where it is called; the shapes are `wire`'s, the session `transport`'s.)
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeVar

import stamina
from yarl import URL

from orchestrator.clock import REAL_CLOCK, Clock
from orchestrator.connection import require_key
from orchestrator.errors import (
    ApiError,
    ApiUnavailableError,
    DownloadError,
    RetryableApiError,
    RetryableDownloadError,
)
from orchestrator.files import Downloaded, Staged, commit_one
from orchestrator.logs import redact_url
from orchestrator.pacing import Pacer
from orchestrator.paths import file_for
from orchestrator.storage import Answer
from orchestrator.transport import REDIRECT_STATUSES, Kind, Transport
from orchestrator.wire import (
    Created,
    Project,
    Quote,
    Task,
    TaskHistory,
    UploadSlot,
    parse_created,
    parse_project,
    parse_quote,
    parse_task,
    parse_task_history,
    parse_upload_slot,
    task_id_of,
)

DEFAULT_READ_TIMEOUT = 60.0
DEFAULT_CONNECT_TIMEOUT = 30.0
DEFAULT_WAIT_INITIAL = 1.0
DEFAULT_WAIT_MAX = 60.0
DEFAULT_WAIT_JITTER = 1.0
DEFAULT_MAX_PAUSE = 600.0
"""The longest a single 429 may pause the client, whatever its `Retry-After` says."""
DEFAULT_OUTAGE_AFTER = 300.0
"""Seconds without any answer from the API after which a run stops (module docstring)."""
MAX_REDIRECTS = 5
IDEMPOTENCY_KEY = re.compile(r"[A-Za-z0-9._:-]{1,255}")

T = TypeVar("T")


def _retry_hook(exc: Exception) -> bool | float:
    """stamina's hook: retry only retryable errors, after `Retry-After` when the server sent one."""
    if isinstance(exc, RetryableApiError | RetryableDownloadError):
        return exc.retry_after if exc.retry_after is not None else True
    return False


class YoukaClient:
    """Async context manager owning one run's connection to the API (see the module docstring).

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
        outage_after: float = DEFAULT_OUTAGE_AFTER,
    ) -> None:
        require_key(api_key)
        self._pacer = Pacer(
            requests_per_second, clock, initial=wait_initial, maximum=wait_max, max_pause=max_pause
        )
        if attempts < 1:
            raise ValueError("attempts must be at least 1")
        base = URL(base_url.rstrip("/"), encoded=True)
        if base.scheme not in ("http", "https") or not base.host:
            raise ValueError(f"the API URL must be http(s)://host/...: {redact_url(base_url)}")
        self.base_url = str(base)
        self._attempts = attempts
        self._wait = {
            "wait_initial": wait_initial,
            "wait_max": wait_max,
            "wait_jitter": wait_jitter,
        }
        self._retry_timeout = retry_timeout
        self._clock = clock
        self._outage_after = outage_after
        self._last_answer = clock.now()  # when the API last answered anything
        self._transport = Transport(
            base,
            api_key,
            self._pacer,
            read_timeout=read_timeout,
            connect_timeout=connect_timeout,
        )

    def __repr__(self) -> str:
        return f"<YoukaClient {self.base_url} requests={self.requests} downloads={self.downloads}>"

    async def __aenter__(self) -> Self:
        await self._transport.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._transport.close()

    @property
    def requests(self) -> int:
        """API requests sent so far, retries included."""
        return self._transport.requests

    @property
    def downloads(self) -> int:
        """Download HTTP requests sent so far, each redirect hop included."""
        return self._transport.downloads

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
        task_id = task_id_of(data) if isinstance(data, Mapping) else None
        if not task_id:
            # Accepted, but which task it started is unknown: never a failure (a `retry`
            # would start a second separation); the job stays `submitting`, reconciled later.
            raise RetryableApiError(
                f"POST {self._transport.url('projects', project_id, 'tasks', 'stem-separation')}: "
                "the answer holds no usable taskId",
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

    async def project_tasks(self, project_id: str) -> TaskHistory:
        """`GET /projects/{id}/tasks`: the project's task history, and whether it is whole."""
        data = await self._call("api", "GET", ("projects", project_id, "tasks"))
        try:
            return parse_task_history(data)
        except ValueError as exc:
            raise ApiError(f"GET /projects/{project_id}/tasks: {exc}", status=200) from None

    async def announce_upload(
        self, filename: str, content_type: str, length: int, key: str
    ) -> UploadSlot:
        """`POST /uploads`: the file's id and a signed URL for its bytes. The same `key`
        answers the same id again, with a fresh URL (how to get one after it expired)."""
        body = {"filename": filename, "contentType": content_type, "contentLength": length}
        data = await self._keyed("announce_upload", ("uploads",), body, key)
        try:
            return parse_upload_slot(data)
        except ValueError as exc:
            raise ApiError(f"POST /uploads: {exc}", status=200) from None

    async def put_upload(self, url: str, path: Path, length: int, content_type: str) -> None:
        """PUT the file's bytes to its signed upload URL, without the token (retried on
        what is worth it; a PUT repeated stores the same bytes again). Raises
        `ExpiredUrlError` when the URL is refused: announce the upload again for a new one."""
        target = URL(url, encoded=True)
        if target.scheme not in ("http", "https") or not target.host:
            raise DownloadError(f"the upload URL is not an http(s) URL: {redact_url(url)}")

        async def once() -> None:
            answer = await self._transport.put_file(target, path, length, content_type)
            if not 200 <= answer.status < 300:
                raise self._transport.failure(
                    "upload",
                    "PUT",
                    target,
                    status=answer.status,
                    payload=answer.payload,
                    retry_after=self._pacer.retry_after(answer.headers),
                )

        await self._with_retries(once)

    async def create_project(self, title: str, input_file_id: str, model: str, key: str) -> Created:
        """`POST /projects`: a project from an uploaded file, and its first separation with
        `model`; retried with `key`, so a lost answer never makes a second project."""
        body = {"title": title, "inputFileId": input_file_id, "splitModel": model}
        data = await self._keyed("create_project", ("projects",), body, key)
        try:
            return parse_created(data)
        except ValueError as exc:
            raise ApiError(f"POST /projects: {exc}", status=200) from None

    async def quote(self, model: str, seconds: float) -> Quote:
        """`POST /projects/quote`: what a separation of `seconds` of song with `model` costs."""
        body = {"splitModel": model, "durationSeconds": seconds}
        data = await self._call("api", "POST", ("projects", "quote"), body=body)
        try:
            return parse_quote(data)
        except ValueError as exc:
            raise ApiError(f"POST /projects/quote: {exc}", status=200) from None

    async def credits(self) -> dict[str, Any]:
        """`GET /credits`: the account's balance, as the API shapes it (for display only)."""
        data = await self._call("api", "GET", ("credits",))
        return data if isinstance(data, dict) else {}

    async def _keyed(self, what: str, segments: tuple[str, ...], body: Any, key: str) -> Any:
        if not IDEMPOTENCY_KEY.fullmatch(key):
            raise ValueError(f"{what}: an idempotency key is 1-255 characters of [A-Za-z0-9._:-]")
        return await self._call("submit", "POST", segments, body=body, key=key)

    async def download(self, url: str, dest: Path) -> Downloaded:
        """Stream `url` to `dest` plus the extension the response implies (`paths.file_for`);
        verified, atomic: `fetch`, then `files.commit_one`."""
        return await commit_one(await self.fetch(url, dest))

    async def fetch(self, url: str, dest: Path) -> Staged:
        """Receive `url`'s body, verified, for `dest` plus the extension the response implies
        (`paths.file_for`); `files.commit` puts it in place (with the other files of its job).

        Redirects are followed by hand (at most `MAX_REDIRECTS`), deciding per hop whether
        the token may go along; hops to the API host are paced like any API request; each
        hop is one `Transport.get` (on the event loop, or in a worker thread). Raises
        `ExpiredUrlError` when the URL is refused (re-read the project for a fresh one),
        `RetryableDownloadError` after the last attempt of a retryable failure, and
        `DownloadError` otherwise. A failed attempt leaves no file behind.
        """
        return await self._with_retries(lambda: self._download_once(url, dest))

    def pause(self, seconds: float) -> None:
        """Hold back every API request of every caller for `seconds` from now."""
        self._pacer.pause(seconds)

    def paused_for(self) -> float:
        """Seconds until API requests may be sent again (0 when not paused)."""
        return self._pacer.paused_for()

    # --- mechanics ---

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

    async def _call(
        self,
        kind: Kind,
        method: str,
        segments: tuple[str, ...],
        *,
        body: Any = None,
        key: str | None = None,
    ) -> Any:
        url = self._transport.url(*segments)
        try:
            data = await self._with_retries(
                lambda: self._transport.call(kind, method, url, body, key)
            )
        except RetryableApiError as exc:
            if exc.status == 0 or exc.status >= 500:  # no answer, or a failing one
                self._stop_when_silent(exc)
            else:
                self._last_answer = self._clock.now()
            raise
        except ApiError:
            self._last_answer = self._clock.now()  # a refusal is an answer
            raise
        self._last_answer = self._clock.now()
        return data

    def _stop_when_silent(self, last: RetryableApiError) -> None:
        """`ApiUnavailableError` when the API has answered nothing for `outage_after`."""
        silent = self._clock.now() - self._last_answer
        if silent >= self._outage_after:
            raise ApiUnavailableError(
                f"the API at {redact_url(self.base_url)} answered no call for {silent:.1f}s "
                f"(the last: {last}); the run stopped, nothing is lost: run it again later"
            ) from None

    async def _download_once(self, url: str, dest: Path) -> Staged:
        current = URL(url, encoded=True)
        for _hop in range(MAX_REDIRECTS + 1):
            if current.scheme not in ("http", "https") or not current.host:
                raise DownloadError(f"not an http(s) URL: {redact_url(current)}")

            def final_for(content_type: str | None, hop: URL = current) -> Path:
                return file_for(dest, content_type, str(hop), url)

            answer = await self._transport.get(current, final_for)
            if answer.staged is not None:
                return answer.staged
            if answer.status not in REDIRECT_STATUSES:
                raise self._transport.failure(
                    "download",
                    "GET",
                    current,
                    status=answer.status,
                    payload=answer.payload,
                    retry_after=self._pacer.retry_after(answer.headers),
                )
            current = self._location(current, answer)
        raise DownloadError(f"GET {redact_url(url)}: more than {MAX_REDIRECTS} redirects")

    @staticmethod
    def _location(current: URL, answer: Answer) -> URL:
        location = answer.headers.get("Location")
        if not location:
            raise DownloadError(
                f"GET {redact_url(current)}: HTTP {answer.status} without a Location"
            )
        return current.join(URL(location, encoded=True))
