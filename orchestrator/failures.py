"""What a failure within a run does to a job: the status it ends the run with, what the
state store is told, and the reason the summary gives (pure: no I/O).

When a step fails within a run, `on_failure` says which status the job ends the run with
and what the state store is told; the reason the summary gives is next to each row of
`FAILURES` (`fault_of` tells which failure an error is). The statuses are
`lifecycle.Status`, and what the next run does with each is `lifecycle.decide`'s table:

| step      | failure                          | status          | the state is told       |
|-----------|----------------------------------|-----------------|-------------------------|
| read      | a retryable API error            | pending         | nothing                 |
| read      | any other API error              | skipped         | mark_skipped            |
| read      | over the ceiling, or no price    | not_started     | nothing                 |
| reconcile | the task history not read        | submitting      | nothing                 |
| reconcile | its task cannot be told apart    | needs_attention | mark_needs_attention    |
| submit    | a retryable API error            | submitting      | record_error (same key) |
| submit    | too few credits (402)            | not_started     | mark_unsent (2)         |
| submit    | any other API error              | failed          | mark_finished           |
| poll      | an API error ends polling        | failed (1)      | mark_finished           |
| poll      | past `poll.timeout`              | timed_out       | mark_finished (task id) |
| poll      | the separation failed            | failed (1)      | mark_finished           |
| poll      | the separation was cancelled     | cancelled (1)   | mark_finished           |
| fetch     | an API error reading the project | download_failed | mark_download_failed    |
| fetch     | no stems of the model listed     | stranded        | mark_download_failed    |
| fetch     | the stem URLs kept expiring      | download_failed | mark_download_failed    |
| fetch     | a file not fetched or written    | download_failed | mark_download_failed    |
| upload    | a retryable error (POST or PUT)  | pending         | nothing (same key)      |
| upload    | the file refused, for good       | failed          | mark_song_failed        |
| create    | over the ceiling, or no price    | not_started     | nothing                 |
| create    | a retryable API error            | submitting      | nothing (same key)      |
| create    | too few credits (402)            | not_started     | mark_unsent (2)         |
| create    | any other API error              | failed          | mark_song_failed        |
| any       | any other stemsweep error        | as recorded     | nothing (`UNEXPECTED`)  |

(1) submitted again within the run while `retries.tasks` allows it (`may_resubmit`).
(2) the API started nothing: the reservation is released, and the next run submits the
    next attempt, under a new key (an API may remember the refusal under the old one).

`not_started` is no recorded status: the job keeps the row it had (or none), and the next
run submits it, once the ceiling or the balance allows. Once a job ends `not_started` for
the ceiling or for too few credits, every later submission of the run does too, without a
request (`Budget` in `orchestrator.budget`).

A key the API rejects (`CredentialsError`), an API that answered nothing for long
(`ApiUnavailableError`) or a state that cannot be written (`StateError`) is no job's
failure: the run stops.
Every row leaves a state the next run resumes from without paying twice: nothing recorded
before the key means a fresh start; `submitting` is reconciled before its key is re-sent;
a task id kept means polling the same task again; `download_failed` downloads again, never
separates; `stranded` and `needs_attention` wait for the user's `retry`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

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
from orchestrator.lifecycle import Status


class Outcome(StrEnum):
    """How a job may end a run without a recorded status of its own."""

    NOT_STARTED = "not_started"  # the ceiling, or too few credits: nothing was submitted


class Step(StrEnum):
    """Where on its way a job failed."""

    READ = "read"  # reading the project, before the key is committed
    RECONCILE = "reconcile"  # finding the task of a key whose answer was lost
    SUBMIT = "submit"  # the POST that carries the committed key
    UPLOAD = "upload"  # a song's bytes: announced, then PUT to the signed URL
    CREATE = "create"  # a project made from a song: its first separation
    POLL = "poll"  # waiting for the task to end
    FETCH = "fetch"  # after the separation: the project read again, its files received


class Fault(StrEnum):
    """What went wrong, as far as the failure policy is concerned."""

    UNSURE = "unsure"  # a retryable API error, after the client's retries: it may have worked
    REFUSED = "refused"  # any other API error: the API said no, for good
    TIMED_OUT = "timed_out"  # our poll deadline passed; the task may still end well
    SEPARATION_FAILED = "separation_failed"  # the server's verdict (failed, timed-out)
    SEPARATION_CANCELLED = "separation_cancelled"
    AMBIGUOUS = "ambiguous"  # the task of a lost answer cannot be told apart (`reconcile`)
    NO_STEMS = "no_stems"  # the project lists no stems of the job's model
    URLS_EXPIRED = "urls_expired"  # every project read gave URLs the storage host refused
    FILES = "files"  # a file could not be fetched, verified or written
    NO_CREDITS = "no_credits"  # the API said the account has too few credits (402)
    OVER_BUDGET = "over_budget"  # the ceiling: `limits.max_credits` would be passed, or no price
    OTHER = "other"  # any other stemsweep error


class Record(StrEnum):
    """What the state store is told about a failed job."""

    NOTHING = "nothing"
    SKIPPED = "mark_skipped"  # no key was sent
    ERROR = "record_error"  # the status stays: the next run repeats the step, same key
    FINISHED = "mark_finished"  # the attempt is over, with the status
    DOWNLOAD_FAILED = "mark_download_failed"  # with the status (download_failed, stranded)
    NEEDS_ATTENTION = "mark_needs_attention"
    UNSENT = "mark_unsent"  # nothing started: the reservation released, the next attempt next
    SONG_FAILED = "mark_song_failed"  # the song is refused for good (`retry` uploads it again)


@dataclass(frozen=True)
class Consequence:
    """What a failure does to a job: the status it ends the run with (None: as recorded),
    what the state is told, and why, as a template of the failure's facts (`explain`).

    `stored` is what the state records as the job's error when it is not the reason itself;
    `resubmit`: the separation may be submitted again within the run (`retries.tasks`).
    """

    status: Status | Outcome | None
    record: Record
    reason: str
    stored: str | None = None
    resubmit: bool = False

    def explain(self, **facts: object) -> str:
        """The reason, with `facts` (error, task, timeout, model, rounds) filled in."""
        return self.reason.format_map(facts)

    def stored_error(self, **facts: object) -> str:
        """What the state records as the job's error."""
        return (self.stored or self.reason).format_map(facts)


_READ = "project could not be read: {error}"
_BUDGET = "budget: {error}"
_SONG = "song {song}: {error}"
_HISTORY = "the project's task history could not be read (the next run tries again): {error}"
STRANDED_REASON = (
    "the project lists no stems of {model} (replaced by a later separation?): "
    "`stemsweep retry` separates it again, a new separation that costs credits"
)
_SEPARATION = "separation {error}"
_POLL = "task {task} could not be polled: {error}"
FAILURES: Mapping[tuple[Step, Fault], Consequence] = {
    (Step.READ, Fault.UNSURE): Consequence(Status.PENDING, Record.NOTHING, _READ),
    (Step.READ, Fault.REFUSED): Consequence(
        Status.SKIPPED, Record.SKIPPED, _READ, stored="{error}"
    ),
    (Step.RECONCILE, Fault.UNSURE): Consequence(Status.SUBMITTING, Record.NOTHING, _HISTORY),
    (Step.RECONCILE, Fault.REFUSED): Consequence(Status.SUBMITTING, Record.NOTHING, _HISTORY),
    (Step.RECONCILE, Fault.AMBIGUOUS): Consequence(
        Status.NEEDS_ATTENTION, Record.NEEDS_ATTENTION, "{error}"
    ),
    (Step.SUBMIT, Fault.UNSURE): Consequence(
        Status.SUBMITTING,
        Record.ERROR,
        "submission not confirmed, the next run finds its task or re-sends the same key: {error}",
    ),
    (Step.SUBMIT, Fault.REFUSED): Consequence(
        Status.FAILED, Record.FINISHED, "submission refused: {error}"
    ),
    (Step.READ, Fault.OVER_BUDGET): Consequence(Outcome.NOT_STARTED, Record.NOTHING, _BUDGET),
    (Step.SUBMIT, Fault.OVER_BUDGET): Consequence(Outcome.NOT_STARTED, Record.NOTHING, _BUDGET),
    (Step.SUBMIT, Fault.NO_CREDITS): Consequence(Outcome.NOT_STARTED, Record.UNSENT, _BUDGET),
    (Step.UPLOAD, Fault.UNSURE): Consequence(
        Status.PENDING, Record.NOTHING, _SONG + " (the next run sends it again)"
    ),
    (Step.UPLOAD, Fault.REFUSED): Consequence(Status.FAILED, Record.SONG_FAILED, _SONG),
    (Step.UPLOAD, Fault.FILES): Consequence(Status.FAILED, Record.SONG_FAILED, _SONG),
    (Step.CREATE, Fault.OVER_BUDGET): Consequence(Outcome.NOT_STARTED, Record.NOTHING, _BUDGET),
    (Step.CREATE, Fault.NO_CREDITS): Consequence(Outcome.NOT_STARTED, Record.UNSENT, _BUDGET),
    (Step.CREATE, Fault.UNSURE): Consequence(
        Status.SUBMITTING,
        Record.NOTHING,
        _SONG + " (creation not confirmed, the next run re-sends the same key)",
    ),
    (Step.CREATE, Fault.REFUSED): Consequence(Status.FAILED, Record.SONG_FAILED, _SONG),
    (Step.POLL, Fault.UNSURE): Consequence(Status.FAILED, Record.FINISHED, _POLL, resubmit=True),
    (Step.POLL, Fault.REFUSED): Consequence(Status.FAILED, Record.FINISHED, _POLL, resubmit=True),
    (Step.POLL, Fault.TIMED_OUT): Consequence(
        Status.TIMED_OUT,
        Record.FINISHED,
        "task {task} not finished after {timeout:g}s (the next run resumes polling it)",
    ),
    (Step.POLL, Fault.SEPARATION_FAILED): Consequence(
        Status.FAILED, Record.FINISHED, _SEPARATION, resubmit=True
    ),
    (Step.POLL, Fault.SEPARATION_CANCELLED): Consequence(
        Status.CANCELLED, Record.FINISHED, _SEPARATION, resubmit=True
    ),
    (Step.FETCH, Fault.UNSURE): Consequence(Status.DOWNLOAD_FAILED, Record.DOWNLOAD_FAILED, _READ),
    (Step.FETCH, Fault.REFUSED): Consequence(Status.DOWNLOAD_FAILED, Record.DOWNLOAD_FAILED, _READ),
    (Step.FETCH, Fault.NO_STEMS): Consequence(
        Status.STRANDED, Record.DOWNLOAD_FAILED, STRANDED_REASON
    ),
    (Step.FETCH, Fault.URLS_EXPIRED): Consequence(
        Status.DOWNLOAD_FAILED,
        Record.DOWNLOAD_FAILED,
        "stem URLs kept expiring after {rounds} project reads: {error}",
    ),
    (Step.FETCH, Fault.FILES): Consequence(
        Status.DOWNLOAD_FAILED, Record.DOWNLOAD_FAILED, "{error}"
    ),
}
UNEXPECTED = Consequence(None, Record.NOTHING, "{error}")
"""Any other stemsweep error, at any step: the job keeps its recorded status."""


def on_failure(step: Step, fault: Fault) -> Consequence:
    """What `fault` at `step` does to a job (the table in the module docstring)."""
    return FAILURES.get((step, fault), UNEXPECTED)


def fault_of(error: StemsweepError) -> Fault:
    """The failure an error is, for `on_failure`. A `CredentialsError` is none: it stops
    the run, and raises `ValueError` here."""
    if isinstance(error, CredentialsError):
        raise ValueError("a rejected key stops the run; it is no job's failure")
    if isinstance(error, RetryableApiError):
        return Fault.UNSURE
    if isinstance(error, InsufficientCreditsError):
        return Fault.NO_CREDITS
    if isinstance(error, ApiError):
        return Fault.REFUSED
    if isinstance(error, DownloadError):
        return Fault.FILES
    return Fault.OTHER


def upload_fault(error: StemsweepError) -> Fault:
    """The failure an error of a song's upload is: a file error worth retrying (a 5xx, a
    dropped connection, a URL that kept expiring) is unsure, like a retryable API error."""
    if isinstance(error, RetryableDownloadError | ExpiredUrlError):
        return Fault.UNSURE
    return fault_of(error)


def separation_fault(task_status: str) -> Fault:
    """The failure a separation that ended without success is: cancelled, or failed."""
    return Fault.SEPARATION_CANCELLED if task_status == "cancelled" else Fault.SEPARATION_FAILED


def may_resubmit(resubmits_so_far: int, task_retries: int) -> bool:
    """Whether a separation that failed in this run is submitted again (`retries.tasks`)."""
    return resubmits_so_far < task_retries
