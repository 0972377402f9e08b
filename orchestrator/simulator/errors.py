"""The simulated API's refusals, and the error envelope every one of them is sent in.

    {"error": {"code": "NOT_FOUND", "message": "...", "issues": [...]}}

Any part of the simulator refuses a request by raising `ApiProblem`; the HTTP layer turns it
into the envelope with its status and headers, in one place. A handler that must answer
nothing at all (a dropped connection) closes it and raises `Dropped`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


class ApiProblem(Exception):
    """A request the simulator answers with an error envelope."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        issues: Sequence[Mapping[str, Any]] = (),
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.issues = [dict(issue) for issue in issues]
        self.headers = dict(headers or {})

    def envelope(self) -> dict[str, Any]:
        """The JSON body of the response."""
        return {"error": {"code": self.code, "message": self.message, "issues": self.issues}}


def issue(path: str, message: str) -> dict[str, Any]:
    """One entry of `issues`: the offending field and what is wrong with it."""
    return {"path": [path], "message": message}


def not_found(what: str, ident: str, hint: str) -> ApiProblem:
    """404 for an unknown id, naming it and saying where valid ids come from."""
    return ApiProblem(404, "NOT_FOUND", f"{what} {ident!r} does not exist; {hint}")


def validation(message: str, issues: Sequence[Mapping[str, Any]]) -> ApiProblem:
    """422 for a well-formed request whose fields are not acceptable."""
    return ApiProblem(422, "VALIDATION_ERROR", message, issues=issues)


class Dropped(Exception):
    """The connection was closed on purpose, without a response."""
