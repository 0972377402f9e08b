"""What to run next, after a command that did not end well (pure).

    how it ended                        next
    run/retry, jobs not done (exit 1)   `stemsweep retry` with the same manifest and options
    run/retry, interrupted (exit 130)   the same command: it resumes where the run stopped
    run/retry, stopped (stopped_by)     fix what stopped it, then the same command
    run/retry, any other exit code      the same command
    invalid manifest (exit 2)           correct the manifest, then the same command
    key missing or rejected (exit 2)    export a key the API accepts, then the same command
    state in use (exit 2)               wait for the other run, then the same command
    extra missing (exit 2)              install it, then the same command
    other usage error (exit 2)          correct the command: `stemsweep COMMAND --help`
    interrupted elsewhere (exit 130)    the same command
    any other error (exit 1)            the same command

The commands come in as text from the command line, which knows the options given
(`output.same_command`): "the same command" is the one that was run, and the retry is the
same with `retry` as its command.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from orchestrator.connection import ENV_API_KEY
from orchestrator.envelope import (
    API_UNAVAILABLE,
    INTERRUPTED,
    INVALID_MANIFEST,
    MISSING_EXTRA,
    STATE_ERROR,
    STATE_LOCKED,
    UNAUTHORIZED,
    USAGE_ERROR,
)
from orchestrator.errors import ApiUnavailableError

API_UNAVAILABLE_EXIT = ApiUnavailableError.exit_code


@dataclass(frozen=True)
class NextStep:
    """A command to run, what to do before it (`fix`), and what it will do (`why`)."""

    command: str
    fix: str = ""
    why: str = ""

    def line(self) -> str:
        """The step as one line for people: `next: [fix, then] COMMAND  # why`."""
        text = f"next: {self.fix}, then {self.command}" if self.fix else f"next: {self.command}"
        return f"{text}  # {self.why}" if self.why else text


def after_run(summary: Mapping[str, Any], *, same: str, retry: str) -> NextStep | None:
    """The step after a run (or retry) whose summary is `summary`; None after exit 0."""
    if not summary.get("exit_code"):
        return None
    if summary.get("interrupted"):
        return NextStep(same, why="resumes where this run stopped, separating nothing twice")
    if summary.get("stopped_by") and summary["exit_code"] == API_UNAVAILABLE_EXIT:
        return NextStep(same, why="resumes once the API answers again; nothing was lost")
    if summary.get("stopped_by"):
        return NextStep(same, fix="fix what stopped the run (see above)", why="resumes")
    if summary["exit_code"] != 1:
        return NextStep(same, why="resumes")
    not_done = len(summary.get("failed", ()))
    jobs = f"the {not_done} job{'' if not_done == 1 else 's'}" if not_done else "the jobs"
    return NextStep(retry, why=f"gives {jobs} not done another go")


# What to do before running the same command again, per error code (exit 2).
_FIXES = {
    INVALID_MANIFEST: "correct the manifest as the error says",
    UNAUTHORIZED: f"export {ENV_API_KEY}=yk_... (a key the API accepts)",
    STATE_LOCKED: "wait for the other run to end (or give this one its own --state)",
    MISSING_EXTRA: "install the extra the error names",
    STATE_ERROR: "do what the error says about the state file",
}


def after_error(code: str, *, same: str, help_command: str) -> NextStep:
    """The step after a command stopped with the error `code` (`envelope.ERROR_CODES`)."""
    if code in _FIXES:
        return NextStep(same, fix=_FIXES[code])
    if code == USAGE_ERROR:
        return NextStep(help_command, fix="correct the command", why="what it accepts")
    if code == INTERRUPTED:
        return NextStep(same, why="starts again; a run resumes where it stopped")
    if code == API_UNAVAILABLE:
        return NextStep(same, why="resumes once the API answers again; nothing was lost")
    return NextStep(same, why="tries again")
