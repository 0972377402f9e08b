"""One HTTP request at a time, to the API or to a storage host: the only module (with
`storage`, its worker-thread GETs) that speaks HTTP for the client.

`Transport` owns the run's one `aiohttp.ClientSession`, which carries no credentials:
`Authorization: Bearer ...` is added to each request whose URL has the API's own origin
(scheme, host, port), and to no other. Every request to the API host (a JSON call, or a
download hop that lands there) first passes the `pacing` gates; requests to other hosts
pass neither. `api.YoukaClient` decides what to request, how often to retry and where a
redirect leads; `Transport` makes one attempt and says how it went.

Failures are translated into the tree of `orchestrator.errors` in one place,
`translate_failure`:

    402, 403 INSUFFICIENT_CREDITS          InsufficientCreditsError: no submission goes on
    401 anywhere (and 403 on /me)          CredentialsError
    429, 5xx, connection and read errors   RetryableApiError (RetryableDownloadError for files)
    403, 401, 410 from a file's URL        ExpiredUrlError: ask for a fresh URL
    any other failure                      ApiError (DownloadError for files)

Files are stems downloaded from the storage host, and songs uploaded to their signed URLs
(`put_file`): both go through `storage`'s connections, never with the token.

Messages are built from the method, the URL without its query string, the status and the
error envelope; never from aiohttp's exceptions or request objects, which print signed URLs
and headers.

A download hop is received by aiohttp on the event loop, except GETs to a storage origin
that has already announced a body longer than one chunk: those run in a worker thread
(`storage`). Either way a GET to a storage host has a connection of its own, closed after
its answer (the download session's connector closes every connection it is given back), so
bytes a host sends past the end of a body are never read as the next file; a hop that lands
on the API host (a redirect to the storage host, no file's bytes) shares the API calls'
kept-alive connections. A connection per stem costs about 0.25 ms of CPU: nothing against
stems of megabytes, 0.6 ms per job in the `cpu` benchmark's 16 KiB stems (README,
"Performance"). aiohttp is the cheaper of the two for short bodies (no thread hop: a
3,000-job run of 16 KiB stems took 0.5-1 ms more CPU per job through threads), the thread
for long ones (the bytes never pass through the event loop: 1 GiB of 16 MiB stems took 0.75
s of CPU instead of 1.7 s, and 20% less time).
"""

from __future__ import annotations

import http.client
import json
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote

import aiohttp
from yarl import URL

from orchestrator import __version__
from orchestrator.connection import ENV_API_KEY
from orchestrator.download import DEFAULT_CHUNK_SIZE, stage
from orchestrator.errors import (
    ApiError,
    CredentialsError,
    DownloadError,
    ExpiredUrlError,
    InsufficientCreditsError,
    RetryableApiError,
    RetryableDownloadError,
    StemsweepError,
)
from orchestrator.files import Staged
from orchestrator.logs import redact_text, redact_url
from orchestrator.pacing import Pacer
from orchestrator.storage import MAX_ERROR_BODY, Answer, StorageClient
from orchestrator.wire import describe_issues, envelope, task_id_of

USER_AGENT = f"stemsweep/{__version__}"
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
EXPIRED_STATUSES = frozenset({401, 403, 410})
SUBMIT_RETRY_CODES = frozenset({"IDEMPOTENT_REPLAY_IN_PROGRESS", "CONFLICT"})
INSUFFICIENT_CREDITS = "INSUFFICIENT_CREDITS"  # the code of a 403 that means 402


Origin = tuple[str, str, int | None]


def origin_of(url: str | URL) -> Origin:
    """(scheme, host, port) of `url`, with the scheme's default port made explicit."""
    parsed = url if isinstance(url, URL) else URL(url, encoded=True)
    return (parsed.scheme.lower(), (parsed.host or "").lower(), parsed.port)


def same_origin(a: str | URL, b: str | URL) -> bool:
    """True when `a` and `b` share scheme, host and port: only then may credentials go along."""
    return origin_of(a) == origin_of(b)


Kind = Literal["api", "submit", "me", "download", "upload"]

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
    download = kind in ("download", "upload")  # a file's bytes, from or to a signed URL

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

    code, server_message, issues = envelope(payload)
    message = f"{where}: HTTP {status}" + (f" {code}" if code else "")
    if server_message:
        message += f": {server_message}"
    if issues:
        message += f" ({describe_issues(issues)})"
    message = scrub(message)

    if not download and (status == 402 or (status == 403 and code == INSUFFICIENT_CREDITS)):
        return InsufficientCreditsError(message, status=status, code=code)
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


@dataclass(frozen=True)
class _Reply:
    status: int
    payload: bytes
    retry_after: float | None


class Transport:
    """The session, the token by origin, and one request at a time; see the module docstring.

    `requests` counts API requests sent (retries included); `downloads` counts download HTTP
    requests (each redirect hop included).
    """

    def __init__(
        self,
        base: URL,
        api_key: str,
        pacer: Pacer,
        *,
        read_timeout: float,
        connect_timeout: float,
    ) -> None:
        self._base = base
        self._origin = origin_of(base)
        self._api_key = api_key
        self._pacer = pacer
        self._api_timeout = aiohttp.ClientTimeout(
            total=read_timeout, sock_connect=connect_timeout, sock_read=read_timeout
        )
        # Downloads may run long: bound each read, never the whole body.
        self._download_timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=connect_timeout, sock_read=read_timeout
        )
        self._session: aiohttp.ClientSession | None = None
        self._downloads: aiohttp.ClientSession | None = None
        self._large_bodies: set[Origin] = set()  # storage origins whose GETs go to threads
        self._storage = StorageClient(
            connect_timeout=connect_timeout, read_timeout=read_timeout, user_agent=USER_AGENT
        )
        self.requests = 0
        self.downloads = 0

    async def open(self) -> None:
        """Open the sessions (one per run for API calls, one for downloads)."""
        self._session = self._new_session(aiohttp.TCPConnector())
        # Downloads never reuse a connection: see the module docstring.
        self._downloads = self._new_session(aiohttp.TCPConnector(force_close=True))

    def _new_session(self, connector: aiohttp.TCPConnector) -> aiohttp.ClientSession:
        return aiohttp.ClientSession(
            connector=connector,
            headers={"User-Agent": USER_AGENT},
            timeout=self._download_timeout,
            cookie_jar=aiohttp.DummyCookieJar(),
            raise_for_status=False,
            trust_env=False,
        )

    async def close(self) -> None:
        """Close the sessions."""
        for session in (self._session, self._downloads):
            if session is not None:
                await session.close()
        self._session = self._downloads = None
        self._storage.close()

    def url(self, *segments: str) -> URL:
        """The API URL of a path of `segments`; each id is one path segment, whatever it holds."""
        path = "/".join(quote(segment, safe="") for segment in segments)
        return URL(f"{self._base}/{path}", encoded=True)

    def failure(self, kind: Kind, method: str, url: str | URL, **details: Any) -> StemsweepError:
        """`translate_failure`, with the key among the secrets scrubbed from the message."""
        return translate_failure(kind, method, url, secrets=(self._api_key,), **details)

    async def call(self, kind: Kind, method: str, url: URL, body: Any, key: str | None) -> Any:
        """One API request; its JSON answer, or the failure translated (see the docstring)."""
        await self._pacer.admit()
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
                reply = _Reply(response.status, payload, self._pacer.retry_after(response.headers))
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise self.failure(kind, method, url, exc=exc) from None
        self._pacer.note_reply(reply.status, reply.retry_after)
        if not 200 <= reply.status < 300:
            raise self.failure(
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
        if kind == "submit" and isinstance(data, Mapping) and not task_id_of(data):
            # A 202 may carry an envelope instead of a task: IDEMPOTENT_REPLAY_IN_PROGRESS.
            code, _, _ = envelope(reply.payload)
            if code is not None:
                raise self.failure(kind, method, url, status=reply.status, payload=reply.payload)
        return data

    async def get(self, url: URL, final_for: Callable[[str | None], Path]) -> Answer:
        """One download GET of `url`, without following a redirect: `staged` for a 200, the
        status, headers and start of the body otherwise.

        `final_for(content_type)` is where a 200's body goes. A GET to the API host is paced
        and carries the token; to any other host it carries neither.
        """
        to_api = origin_of(url) == self._origin
        if to_api:
            await self._pacer.admit()
        self.downloads += 1
        headers = self._headers(url, Accept="*/*")
        headers["Accept-Encoding"] = "identity"
        if to_api or origin_of(url) not in self._large_bodies:
            return await self._aiohttp_hop(url, headers, final_for, to_api=to_api)
        try:
            return await self._storage.get(url, headers, final_for)
        except _TRANSPORT_ERRORS as exc:
            raise self.failure("download", "GET", url, exc=exc) from None

    async def put_file(self, url: URL, path: Path, length: int, content_type: str) -> Answer:
        """One PUT of the file at `path` (`length` bytes) to a signed upload URL, with its
        `Content-Type`: through `storage`, with no token and no pacing (the URL is on the
        storage host; it is signed, the token is not needed even on the API's own)."""
        headers = {"Content-Type": content_type, "Accept": "*/*"}
        try:
            return await self._storage.put(url, headers, path, length)
        except _TRANSPORT_ERRORS as exc:
            raise self.failure("upload", "PUT", url, exc=exc) from None

    # --- mechanics ---

    @property
    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError("use YoukaClient as `async with YoukaClient(...) as client:`")
        return self._session

    @property
    def _download_http(self) -> aiohttp.ClientSession:
        if self._downloads is None:
            raise RuntimeError("use YoukaClient as `async with YoukaClient(...) as client:`")
        return self._downloads

    def _headers(self, url: URL, **extra: str) -> dict[str, str]:
        """Headers for one request: the token only when `url` has the API's own origin."""
        headers = dict(extra)
        if origin_of(url) == self._origin:
            headers["Authorization"] = f"Bearer {self._api_key}"
        return headers

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
        its later GETs go to `storage`, in worker threads (see `get`).
        """
        # A hop to the API host shares the API calls' kept-alive connections (a redirect, no
        # file's bytes); any other host's bytes come on a connection of their own.
        session = self._http if to_api else self._download_http
        async with self._response(session, url, headers) as response:
            if to_api:
                self._pacer.note_reply(response.status, self._pacer.retry_after(response.headers))
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

    @asynccontextmanager
    async def _response(
        self, session: aiohttp.ClientSession, url: URL, headers: dict[str, str]
    ) -> AsyncIterator[aiohttp.ClientResponse]:
        """One GET without following redirects; transport errors translated."""
        try:
            async with session.get(
                url, headers=headers, allow_redirects=False, timeout=self._download_timeout
            ) as response:
                yield response
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise self.failure("download", "GET", url, exc=exc) from None

    async def _stream(self, response: aiohttp.ClientResponse, final: Path, url: URL) -> Staged:
        try:
            return await stage(response, final)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise self.failure("download", "GET", url, exc=exc) from None
