"""The in-run failure policy: what each failure does to a job, and which failure an error is.

The table below is the policy's rows: (step, failure) -> (status, state told, reason,
re-submitted within the run).
"""

from __future__ import annotations

import pytest

from orchestrator.errors import (
    ApiError,
    CredentialsError,
    DownloadError,
    ExpiredUrlError,
    InsufficientCreditsError,
    RetryableApiError,
    RetryableDownloadError,
    StateLockedError,
    StemsweepError,
)
from orchestrator.failures import (
    FAILURES,
    UNEXPECTED,
    Fault,
    Outcome,
    Record,
    Step,
    fault_of,
    may_resubmit,
    on_failure,
    separation_fault,
    upload_fault,
)
from orchestrator.lifecycle import Status

FACTS = {
    "error": "HTTP 503",
    "task": "tsk_1",
    "timeout": 1800.0,
    "model": "demucs",
    "rounds": 3,
    "song": "music/a.wav",
}
READ_FAILED = "project could not be read: HTTP 503"
BUDGET = "budget: HTTP 503"
SONG = "song music/a.wav: HTTP 503"
AGAIN = " (the next run sends it again)"
SAME_KEY = " (creation not confirmed, the next run re-sends the same key)"
HISTORY_FAILED = "the project's task history could not be read (the next run tries again): HTTP 503"
FAILURE_TABLE = [
    (Step.READ, Fault.UNSURE, Status.PENDING, Record.NOTHING, READ_FAILED, False),
    (Step.READ, Fault.REFUSED, Status.SKIPPED, Record.SKIPPED, READ_FAILED, False),
    (
        Step.SUBMIT,
        Fault.UNSURE,
        Status.SUBMITTING,
        Record.ERROR,
        "submission not confirmed, the next run finds its task or re-sends the same key: HTTP 503",
        False,
    ),
    (
        Step.SUBMIT,
        Fault.REFUSED,
        Status.FAILED,
        Record.FINISHED,
        "submission refused: HTTP 503",
        False,
    ),
    (Step.RECONCILE, Fault.UNSURE, Status.SUBMITTING, Record.NOTHING, HISTORY_FAILED, False),
    (Step.RECONCILE, Fault.REFUSED, Status.SUBMITTING, Record.NOTHING, HISTORY_FAILED, False),
    (
        Step.RECONCILE,
        Fault.AMBIGUOUS,
        Status.NEEDS_ATTENTION,
        Record.NEEDS_ATTENTION,
        "HTTP 503",
        False,
    ),
    (
        Step.POLL,
        Fault.UNSURE,
        Status.FAILED,
        Record.FINISHED,
        "task tsk_1 could not be polled: HTTP 503",
        True,
    ),
    (
        Step.POLL,
        Fault.REFUSED,
        Status.FAILED,
        Record.FINISHED,
        "task tsk_1 could not be polled: HTTP 503",
        True,
    ),
    (
        Step.POLL,
        Fault.TIMED_OUT,
        Status.TIMED_OUT,
        Record.FINISHED,
        "task tsk_1 not finished after 1800s (the next run resumes polling it)",
        False,
    ),
    (
        Step.POLL,
        Fault.SEPARATION_FAILED,
        Status.FAILED,
        Record.FINISHED,
        "separation HTTP 503",
        True,
    ),
    (
        Step.POLL,
        Fault.SEPARATION_CANCELLED,
        Status.CANCELLED,
        Record.FINISHED,
        "separation HTTP 503",
        True,
    ),
    (Step.FETCH, Fault.UNSURE, Status.DOWNLOAD_FAILED, Record.DOWNLOAD_FAILED, READ_FAILED, False),
    (Step.FETCH, Fault.REFUSED, Status.DOWNLOAD_FAILED, Record.DOWNLOAD_FAILED, READ_FAILED, False),
    (
        Step.FETCH,
        Fault.NO_STEMS,
        Status.STRANDED,
        Record.DOWNLOAD_FAILED,
        "the project lists no stems of demucs (replaced by a later separation?): "
        "`stemsweep retry` separates it again, a new separation that costs credits",
        False,
    ),
    (
        Step.FETCH,
        Fault.URLS_EXPIRED,
        Status.DOWNLOAD_FAILED,
        Record.DOWNLOAD_FAILED,
        "stem URLs kept expiring after 3 project reads: HTTP 503",
        False,
    ),
    (Step.FETCH, Fault.FILES, Status.DOWNLOAD_FAILED, Record.DOWNLOAD_FAILED, "HTTP 503", False),
    (Step.READ, Fault.OVER_BUDGET, Outcome.NOT_STARTED, Record.NOTHING, BUDGET, False),
    (Step.SUBMIT, Fault.OVER_BUDGET, Outcome.NOT_STARTED, Record.NOTHING, BUDGET, False),
    (Step.SUBMIT, Fault.NO_CREDITS, Outcome.NOT_STARTED, Record.UNSENT, BUDGET, False),
    (Step.UPLOAD, Fault.UNSURE, Status.PENDING, Record.NOTHING, SONG + AGAIN, False),
    (Step.UPLOAD, Fault.REFUSED, Status.FAILED, Record.SONG_FAILED, SONG, False),
    (Step.UPLOAD, Fault.FILES, Status.FAILED, Record.SONG_FAILED, SONG, False),
    (Step.CREATE, Fault.OVER_BUDGET, Outcome.NOT_STARTED, Record.NOTHING, BUDGET, False),
    (Step.CREATE, Fault.NO_CREDITS, Outcome.NOT_STARTED, Record.UNSENT, BUDGET, False),
    (Step.CREATE, Fault.UNSURE, Status.SUBMITTING, Record.NOTHING, SONG + SAME_KEY, False),
    (Step.CREATE, Fault.REFUSED, Status.FAILED, Record.SONG_FAILED, SONG, False),
]


@pytest.mark.parametrize(("step", "fault", "status", "record", "reason", "resubmit"), FAILURE_TABLE)
def test_failure_table(
    step: Step, fault: Fault, status: Status, record: Record, reason: str, resubmit: bool
) -> None:
    """Each failure on a job's way gives the documented status, state record and reason."""
    consequence = on_failure(step, fault)
    assert (consequence.status, consequence.record) == (status, record)
    assert consequence.explain(**FACTS) == reason
    assert consequence.resubmit is resubmit


def test_failure_table_is_the_whole_policy() -> None:
    """The rows above are every row of the policy, so none can change unnoticed."""
    assert set(FAILURES) == {(row[0], row[1]) for row in FAILURE_TABLE}


def test_a_skipped_job_keeps_the_servers_error_and_others_their_reason() -> None:
    """`mark_skipped` records the error as given (no key was sent); the rest, the reason."""
    assert on_failure(Step.READ, Fault.REFUSED).stored_error(**FACTS) == "HTTP 503"
    assert on_failure(Step.SUBMIT, Fault.UNSURE).stored_error(**FACTS) == (
        "submission not confirmed, the next run finds its task or re-sends the same key: HTTP 503"
    )


@pytest.mark.parametrize("step", list(Step))
def test_any_other_error_keeps_the_recorded_status(step: Step) -> None:
    """An unexpected error at any step records nothing and keeps the job's status."""
    assert on_failure(step, Fault.OTHER) == UNEXPECTED
    assert UNEXPECTED.status is None and UNEXPECTED.record is Record.NOTHING
    assert UNEXPECTED.explain(error="disk full") == "disk full"


@pytest.mark.parametrize(
    ("error", "fault"),
    [
        (RetryableApiError("503"), Fault.UNSURE),
        (ApiError("404"), Fault.REFUSED),
        (ExpiredUrlError("403"), Fault.FILES),
        (DownloadError("short"), Fault.FILES),
        (StateLockedError("busy"), Fault.OTHER),
    ],
)
def test_fault_of_error(error: StemsweepError, fault: Fault) -> None:
    """Errors map to failures by their place in the tree, retryable ones first."""
    assert fault_of(error) is fault


@pytest.mark.parametrize(
    ("error", "fault"),
    [
        (RetryableDownloadError("503 on the PUT"), Fault.UNSURE),
        (ExpiredUrlError("403"), Fault.UNSURE),
        (DownloadError("400 CONTENT_TYPE_MISMATCH"), Fault.FILES),
        (RetryableApiError("503"), Fault.UNSURE),
        (InsufficientCreditsError("402"), Fault.NO_CREDITS),
        (ApiError("422 UNSUPPORTED_MEDIA"), Fault.REFUSED),
    ],
)
def test_upload_fault_of_error(error: StemsweepError, fault: Fault) -> None:
    """An upload's file errors worth retrying are unsure; too few credits is its own fault."""
    assert upload_fault(error) is fault


def test_a_rejected_key_is_no_jobs_failure() -> None:
    """CredentialsError stops the run: classifying it as a job's failure is refused."""
    with pytest.raises(ValueError, match="stops the run"):
        fault_of(CredentialsError("rejected"))


@pytest.mark.parametrize(
    ("used", "allowed", "expected"), [(0, 0, False), (0, 1, True), (1, 1, False), (2, 3, True)]
)
def test_task_retries(used: int, allowed: int, expected: bool) -> None:
    """`retries.tasks` is the number of automatic re-submissions of a failed separation."""
    assert may_resubmit(used, allowed) is expected


def test_separation_verdicts() -> None:
    """A cancelled task is cancelled, any other end is failed."""
    assert separation_fault("cancelled") is Fault.SEPARATION_CANCELLED
    assert separation_fault("timed-out") is Fault.SEPARATION_FAILED
