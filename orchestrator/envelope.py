"""The one JSON document a command answers with under `--json` (pure).

The shape is Youka's own CLI's:

    {"ok": true,  "data": DATA}
    {"ok": false, "error": {"code": CODE, "message": TEXT, "next": COMMAND, "fix": TEXT},
     "data": DATA}

`data` is the command's document (`views.py`); for `run` and `retry`, the summary exactly
as written to summary.json. A run that ended with jobs not done, was interrupted or was
stopped still has its summary: `ok` is false, `error` says why and `data` is there. An
error that stopped a command before it had anything to say has no `data`. `next` is the
command to run next (`nextstep.py`), `fix` what to do first, when there is something.
`ok` is true exactly when the exit code is 0.

Error codes:

    INVALID_MANIFEST   the manifest does not validate                          exit 2
    UNAUTHORIZED       YOUKA_API_KEY missing, empty or rejected                 exit 2
    STATE_LOCKED       another run holds the state store                        exit 2
    STATE_ERROR        the state cannot be used: a link, not a state file, SQLite exit 2
                       refused a read or a write
    MISSING_EXTRA      the command needs an extra that is not installed         exit 2
    USAGE_ERROR        anything else to change before running: arguments...     exit 2
    JOBS_NOT_DONE      the run ended with jobs not done (listed in data)        exit 1
    API_UNAVAILABLE    the API could not be reached, or failed every call for   exit 3
                       long: nothing is lost, the same command resumes later
    STOPPED            the run stopped early (`stopped_by` in data), or ended   its own
                       with an exit code other than 0, 1, 3 and 130
    INTERRUPTED        Ctrl-C or SIGTERM; with data when a run was going        exit 130
    API_ERROR, DOWNLOAD_ERROR, ERROR   other failures                           exit 1
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from pathlib import PurePath
from typing import Any

from orchestrator.errors import (
    ApiError,
    ApiUnavailableError,
    CredentialsError,
    DownloadError,
    ManifestError,
    StateError,
    StateLockedError,
    StemsweepError,
    UsageError,
)

INVALID_MANIFEST = "INVALID_MANIFEST"
UNAUTHORIZED = "UNAUTHORIZED"
STATE_LOCKED = "STATE_LOCKED"
STATE_ERROR = "STATE_ERROR"
API_UNAVAILABLE = "API_UNAVAILABLE"
MISSING_EXTRA = "MISSING_EXTRA"
USAGE_ERROR = "USAGE_ERROR"
JOBS_NOT_DONE = "JOBS_NOT_DONE"
STOPPED = "STOPPED"
INTERRUPTED = "INTERRUPTED"

# The code of an error of the tree: the first class it is an instance of, so that a new
# subclass has its parent's code until it is given its own.
ERROR_CODES: tuple[tuple[type[StemsweepError], str], ...] = (
    (ManifestError, INVALID_MANIFEST),
    (CredentialsError, UNAUTHORIZED),
    (StateLockedError, STATE_LOCKED),
    (StateError, STATE_ERROR),
    (UsageError, USAGE_ERROR),
    (ApiUnavailableError, API_UNAVAILABLE),
    (ApiError, "API_ERROR"),
    (DownloadError, "DOWNLOAD_ERROR"),
    (StemsweepError, "ERROR"),
)


def error_code(exc: StemsweepError) -> str:
    """The code of `exc` in the envelope (`ERROR_CODES`)."""
    return next(code for kind, code in ERROR_CODES if isinstance(exc, kind))


def success(data: Any) -> dict[str, Any]:
    """The envelope of a command that did what it was asked."""
    return {"ok": True, "data": jsonable(data)}


def failure(
    code: str, message: str, *, next_command: str = "", fix: str = "", data: Any = None
) -> dict[str, Any]:
    """The envelope of a command that did not; `data` when it still has its document."""
    error: dict[str, Any] = {"code": code, "message": message}
    if next_command:
        error["next"] = next_command
    if fix:
        error["fix"] = fix
    envelope: dict[str, Any] = {"ok": False, "error": error}
    if data is not None:
        envelope["data"] = jsonable(data)
    return envelope


def run_failure(summary: Mapping[str, Any]) -> tuple[str, str] | None:
    """(code, message) of a run whose summary has a non-zero exit code, else None."""
    if not summary.get("exit_code"):
        return None
    if summary.get("interrupted"):
        return INTERRUPTED, "interrupted: the state is consistent, the same command resumes"
    if summary.get("stopped_by"):
        if summary["exit_code"] == ApiUnavailableError.exit_code:
            return API_UNAVAILABLE, f"the run was stopped: {summary['stopped_by']}"
        return STOPPED, f"the run was stopped: {summary['stopped_by']}"
    if summary["exit_code"] != 1:
        return STOPPED, f"the run ended with exit code {summary['exit_code']}"
    counts: Mapping[str, int] = summary.get("counts", {})
    not_done = {status: n for status, n in counts.items() if status != "done" and n}
    total = summary.get("jobs", sum(counts.values()))
    listed = ", ".join(f"{status} {n}" for status, n in not_done.items())
    return JOBS_NOT_DONE, f"{sum(not_done.values())} of {total} jobs not done ({listed})"


def jsonable(value: Any) -> Any:
    """`value` as JSON values: dataclasses as objects, paths as strings, tuples as lists."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [jsonable(v) for v in value]
    if isinstance(value, PurePath):
        return str(value)
    return value


def dumps(envelope: Mapping[str, Any]) -> str:
    """The envelope as one line of JSON (UTF-8 text kept as is)."""
    return json.dumps(envelope, ensure_ascii=False)
