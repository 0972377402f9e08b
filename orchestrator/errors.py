"""The one exception tree of stemsweep.

    StemsweepError                  base; `exit_code` is what the CLI exits with
    ├── UsageError                  exit 2: the user must change something before a run
    │   ├── ManifestError           invalid manifest (file, field path, what is allowed)
    │   ├── CredentialsError        YOUKA_API_KEY missing, empty, or rejected by the API
    │   ├── StateLockedError        another run holds the state store
    │   └── StateError              the state store cannot be used: not a state file, a
    │                               symbolic link, a read or write SQLite refused
    ├── ApiUnavailableError         exit 3: the API was unreachable or kept failing; the run
    │                               stopped, nothing is lost, run it again later
    ├── ApiError                    an API call failed for good (after retries)
    │   ├── RetryableApiError       429, 5xx, connection errors: worth another attempt
    │   └── InsufficientCreditsError  402 (or 403 INSUFFICIENT_CREDITS): final for the run
    └── DownloadError               a file could not be fetched, verified or written (or a
        │                           song's bytes sent to its upload URL)
        ├── RetryableDownloadError  a short body, a 5xx, a dropped connection: worth another attempt
        └── ExpiredUrlError         a signed URL refused (403, expired): re-read the project

Lower-level errors are translated into this tree in exactly one place each: aiohttp's in
`transport.py`, sqlite3's in `state_schema.py`, pydantic's in `manifest.py`, yaml's in
`manifest_yaml.py`. Messages never contain the API key or a signed URL's query string.
"""

from __future__ import annotations


class StemsweepError(Exception):
    """Base of every error stemsweep raises on purpose."""

    exit_code = 1


class UsageError(StemsweepError):
    """Something the user must fix; reported without a traceback, exit 2."""

    exit_code = 2


class ManifestError(UsageError):
    """A manifest that does not validate."""


class CredentialsError(UsageError):
    """The API key is missing, empty, or rejected."""


class StateLockedError(UsageError):
    """Another `stemsweep run` is using the same state store."""


class StateError(UsageError):
    """The state store cannot be used: it is not a state file, a path of it is a symbolic
    link, or SQLite refused a read or a write (damage, a full disk, an I/O error).

    `damaged`: SQLite found the file's pages damaged (rather than, say, the disk full).
    """

    def __init__(self, message: str, *, damaged: bool = False) -> None:
        super().__init__(message)
        self.damaged = damaged


class ApiUnavailableError(StemsweepError):
    """The API could not be reached, or failed every call, for long enough that the run
    stopped: no job failed on its own, and `run` resumes them all later (exit 3)."""

    exit_code = 3


class ApiError(StemsweepError):
    """An API call that failed for good.

    `status` is the HTTP status (0 when no response arrived), `code` the error code of the
    envelope (`NOT_FOUND`, `CONFLICT`, ...) when the server sent one.
    """

    def __init__(self, message: str, *, status: int = 0, code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


class RetryableApiError(ApiError):
    """A failure worth retrying: 429, 5xx, a dropped connection, a truncated body.

    `retry_after` is the server's `Retry-After` in seconds, when it sent one.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int = 0,
        code: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, status=status, code=code)
        self.retry_after = retry_after


class InsufficientCreditsError(ApiError):
    """The account has too few credits for a submission (HTTP 402, or 403 with a code that
    says so): nothing was started, and no further submission of the run is sent."""


class DownloadError(StemsweepError):
    """A file that could not be downloaded, verified or written."""


class RetryableDownloadError(DownloadError):
    """A download failure worth another attempt: a short body, a 5xx, a dropped connection.

    `retry_after` is the server's `Retry-After` in seconds, when it sent one.
    """

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ExpiredUrlError(DownloadError):
    """The storage host refused a signed URL (403, expired signature): re-read the project."""
