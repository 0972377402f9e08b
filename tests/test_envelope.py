"""The `--json` envelope: its shape, the code of every error, a run's failure (pure)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from orchestrator.envelope import (
    ERROR_CODES,
    dumps,
    error_code,
    failure,
    jsonable,
    run_failure,
    success,
)
from orchestrator.errors import (
    ApiError,
    ApiUnavailableError,
    CredentialsError,
    DownloadError,
    ExpiredUrlError,
    ManifestError,
    RetryableApiError,
    StateError,
    StateLockedError,
    StemsweepError,
    UsageError,
)


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (ManifestError("m"), "INVALID_MANIFEST"),
        (CredentialsError("c"), "UNAUTHORIZED"),
        (StateLockedError("s"), "STATE_LOCKED"),
        (StateError("s"), "STATE_ERROR"),
        (UsageError("u"), "USAGE_ERROR"),
        (ApiUnavailableError("a"), "API_UNAVAILABLE"),
        (ApiError("a"), "API_ERROR"),
        (RetryableApiError("r"), "API_ERROR"),  # a subclass has its parent's code
        (DownloadError("d"), "DOWNLOAD_ERROR"),
        (ExpiredUrlError("e"), "DOWNLOAD_ERROR"),
        (StemsweepError("x"), "ERROR"),
    ],
)
def test_every_error_has_a_code(error: StemsweepError, code: str) -> None:
    """Each error of the tree maps to its code, the most specific class first."""
    assert error_code(error) == code


def test_the_codes_go_from_specific_to_general() -> None:
    """No class of the table comes after one of its own base classes (it would never match)."""
    classes = [kind for kind, _ in ERROR_CODES]
    for i, kind in enumerate(classes):
        assert not any(issubclass(kind, earlier) for earlier in classes[:i]), kind


def test_the_two_shapes() -> None:
    """`{ok: true, data}`; `{ok: false, error: {code, message, next?, fix?}, data?}`."""
    assert success({"a": 1}) == {"ok": True, "data": {"a": 1}}
    assert failure("E", "m") == {"ok": False, "error": {"code": "E", "message": "m"}}
    assert failure("E", "m", next_command="n", fix="f", data={"a": 1}) == {
        "ok": False,
        "error": {"code": "E", "message": "m", "next": "n", "fix": "f"},
        "data": {"a": 1},
    }


@pytest.mark.parametrize(
    ("summary", "expected"),
    [
        ({"exit_code": 0, "counts": {"done": 3}}, None),
        (
            {"exit_code": 1, "jobs": 5, "counts": {"done": 2, "failed": 2, "skipped": 1}},
            ("JOBS_NOT_DONE", "3 of 5 jobs not done (failed 2, skipped 1)"),
        ),
        (
            {"exit_code": 130, "interrupted": True, "counts": {}},
            ("INTERRUPTED", "interrupted: the state is consistent, the same command resumes"),
        ),
        (
            {"exit_code": 2, "stopped_by": "key rejected", "counts": {}},
            ("STOPPED", "the run was stopped: key rejected"),
        ),
        (
            {"exit_code": 3, "stopped_by": "the API could not be reached", "counts": {}},
            ("API_UNAVAILABLE", "the run was stopped: the API could not be reached"),
        ),
        ({"exit_code": 4, "counts": {}}, ("STOPPED", "the run ended with exit code 4")),
    ],
)
def test_a_runs_failure(summary: dict[str, Any], expected: tuple[str, str] | None) -> None:
    """A run's summary gives its code and message: jobs not done, interrupted, stopped."""
    assert run_failure(summary) == expected


@dataclass(frozen=True)
class Written:
    html: Path
    parts: tuple[str, ...]


def test_values_become_json() -> None:
    """Dataclasses become objects, paths strings, tuples lists; the line is one document."""
    value = jsonable({"result": Written(Path("/r/report.html"), ("a", "b")), 3: None})
    assert value == {"result": {"html": "/r/report.html", "parts": ["a", "b"]}, "3": None}
    line = dumps(success(value))
    assert "\n" not in line and json.loads(line)["data"] == value
