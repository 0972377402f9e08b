"""The pure decisions: what to do next for a job, which stems to take, what a failure does."""

from __future__ import annotations

from dataclasses import dataclass

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
from orchestrator.lifecycle import (
    FAILURES,
    UNEXPECTED,
    Action,
    Decision,
    Fault,
    Mode,
    Outcome,
    Record,
    Recorded,
    SongStatus,
    SongStep,
    Status,
    Step,
    decide,
    decide_song,
    fault_of,
    may_resubmit,
    on_failure,
    reported_again,
    select_stems,
    separation_fault,
    upload_fault,
)
from orchestrator.paths import is_safe_name

RUN, RETRY = Mode.RUN, Mode.RETRY
KEY, TASK = "ss1:s:prj_a:mdx23c:2", "tsk_1"

# (recorded status or None, files intact, mode) -> (action, attempt); recorded attempt is 2.
TABLE = [
    (None, False, RUN, Action.SUBMIT, 1),
    (None, False, RETRY, Action.SUBMIT, 1),
    (Status.PENDING, False, RUN, Action.SUBMIT, 2),
    (Status.SUBMITTING, False, RUN, Action.RECONCILE, 2),
    (Status.SUBMITTING, False, RETRY, Action.RECONCILE, 2),
    (Status.SUBMITTED, False, RUN, Action.RESUME_POLL, 2),
    (Status.SUBMITTED, False, RETRY, Action.RESUME_POLL, 2),
    (Status.TIMED_OUT, False, RUN, Action.RESUME_POLL, 2),
    (Status.TIMED_OUT, False, RETRY, Action.RESUME_POLL, 2),
    (Status.SUCCEEDED, False, RUN, Action.DOWNLOAD_ONLY, 2),
    (Status.SUCCEEDED, False, RETRY, Action.DOWNLOAD_ONLY, 2),
    (Status.DOWNLOAD_FAILED, False, RUN, Action.DOWNLOAD_ONLY, 2),
    (Status.DOWNLOAD_FAILED, False, RETRY, Action.DOWNLOAD_ONLY, 2),
    (Status.DONE, True, RUN, Action.SKIP_DONE, 2),
    (Status.DONE, True, RETRY, Action.SKIP_DONE, 2),
    (Status.DONE, False, RUN, Action.DOWNLOAD_ONLY, 2),
    (Status.DONE, False, RETRY, Action.DOWNLOAD_ONLY, 2),
    (Status.FAILED, False, RUN, Action.REPORT_FAILED, 2),
    (Status.FAILED, False, RETRY, Action.SUBMIT, 3),
    (Status.CANCELLED, False, RUN, Action.REPORT_FAILED, 2),
    (Status.CANCELLED, False, RETRY, Action.SUBMIT, 3),
    (Status.SKIPPED, False, RUN, Action.REPORT_FAILED, 2),
    (Status.SKIPPED, False, RETRY, Action.SUBMIT, 2),
    (Status.STRANDED, False, RUN, Action.REPORT_FAILED, 2),
    (Status.STRANDED, False, RETRY, Action.SUBMIT, 3),
    (Status.NEEDS_ATTENTION, False, RUN, Action.REPORT_FAILED, 2),
    (Status.NEEDS_ATTENTION, False, RETRY, Action.REPORT_FAILED, 2),
]


@pytest.mark.parametrize(("status", "files_ok", "mode", "action", "attempt"), TABLE)
def test_decision_table(
    status: Status | None, files_ok: bool, mode: Mode, action: Action, attempt: int
) -> None:
    """Each recorded status leads to the documented next action and attempt number."""
    recorded = None if status is None else Recorded(status, 2, KEY, TASK)
    assert decide(recorded, files_ok=files_ok, mode=mode) == Decision(action, attempt)


@pytest.mark.parametrize(
    ("status", "mode", "action"),
    [
        (Status.NEEDS_ATTENTION, RETRY, Action.RESUBMIT_SAME_KEY),
        (Status.NEEDS_ATTENTION, RUN, Action.REPORT_FAILED),
        (Status.FAILED, RETRY, Action.SUBMIT),
        (Status.SUBMITTING, RETRY, Action.RECONCILE),
    ],
)
def test_resend_re_sends_only_a_job_that_needs_attention_and_only_on_retry(
    status: Status, mode: Mode, action: Action
) -> None:
    """`retry --resend` re-sends the recorded key of a job that needs attention; it changes
    nothing for any other status, and `run` ignores it."""
    decision = decide(Recorded(status, 2, KEY, TASK), files_ok=False, mode=mode, resend=True)
    assert decision.action is action


def test_a_key_without_its_task_id_is_reconciled_never_re_sent_blindly() -> None:
    """A row with a key and no task id (whatever its status says) is reconciled first."""
    for status in (Status.SUBMITTING, Status.SUBMITTED, Status.TIMED_OUT):
        assert decide(Recorded(status, 1, KEY, None), files_ok=False, mode=RUN).action is (
            Action.RECONCILE
        )


def test_every_status_is_covered() -> None:
    """The table names every status, so a new status cannot slip by undecided."""
    assert {row[0] for row in TABLE} - {None} == set(Status)


def test_separating_actions_need_slots() -> None:
    """Submissions and resumed polls separate; downloads need slots but do not separate."""
    assert Decision(Action.SUBMIT, 1).separates
    assert Decision(Action.RESUME_POLL, 1).separates
    assert not Decision(Action.DOWNLOAD_ONLY, 1).separates
    assert Decision(Action.DOWNLOAD_ONLY, 1).needs_slots
    assert not Decision(Action.SKIP_DONE, 1).needs_slots
    assert not Decision(Action.REPORT_FAILED, 1).needs_slots


@pytest.mark.parametrize(
    ("used", "allowed", "expected"), [(0, 0, False), (0, 1, True), (1, 1, False), (2, 3, True)]
)
def test_task_retries(used: int, allowed: int, expected: bool) -> None:
    """`retries.tasks` is the number of automatic re-submissions of a failed separation."""
    assert may_resubmit(used, allowed) is expected


@dataclass(frozen=True)
class S:
    id: str
    type: str
    model: str | None


WANTED = ("instrumental", "vocals", "backing_vocals")


def pick(
    stems: list[S], known: tuple[str, ...] = ()
) -> tuple[list[str], tuple[str, ...], tuple[str, ...]]:
    chosen = select_stems(
        stems, model="demucs", wanted=WANTED, known_ids=known, is_safe=is_safe_name
    )
    return [s.id for s in chosen.chosen], chosen.missing, chosen.unsafe


def test_selects_by_model_and_type_not_position() -> None:
    """Only the job's model's stems are taken, one per wanted type, in wanted order."""
    stems = [
        S("o", "original", None),
        S("a", "vocals", "mdx23c"),
        S("b", "vocals", "demucs"),
        S("c", "instrumental", "demucs"),
        S("d", "original", "demucs"),
    ]
    assert pick(stems) == (["c", "b"], ("backing_vocals",), ())


def test_the_original_is_the_projects_own_unless_the_model_lists_one() -> None:
    """A wanted `original` is the project's model-less upload, or the model's own original."""
    wanted = ("original", "vocals")
    upload = [S("o", "original", None), S("v", "vocals", "demucs"), S("x", "original", "mdx23c")]
    picked = select_stems(
        upload, model="demucs", wanted=wanted, known_ids=(), is_safe=is_safe_name
    )
    assert [s.id for s in picked.chosen] == ["o", "v"] and picked.missing == ()
    assert picked.delivered == 1  # the upload is not something the model delivered
    own = select_stems(
        [*upload, S("d", "original", "demucs")],
        model="demucs",
        wanted=wanted,
        known_ids=(),
        is_safe=is_safe_name,
    )
    assert [s.id for s in own.chosen] == ["d", "v"]


def test_accumulated_sets_prefer_stems_newer_than_the_submission() -> None:
    """With two sets of the model listed, the ids unknown before submission win."""
    stems = [
        S("new_v", "vocals", "demucs"),
        S("old_v", "vocals", "demucs"),
        S("old_i", "instrumental", "demucs"),
    ]
    chosen, missing, _ = pick(stems, known=("old_v", "old_i"))
    assert chosen == ["old_i", "new_v"]
    assert missing == ("backing_vocals",)


def test_replaced_stems_take_what_is_there() -> None:
    """When every id is new (stems[] replaced), the model's stems are taken as listed."""
    stems = [S("x", "instrumental", "demucs"), S("y", "vocals", "demucs")]
    assert pick(stems, known=("gone1", "gone2"))[0] == ["x", "y"]


def test_unsafe_types_are_skipped_and_reported() -> None:
    """A type that is not a safe file name is never chosen, and is reported."""
    stems = [S("v", "vocals", "demucs"), S("e", "../../evil", "demucs"), S("f", "a/b", "demucs")]
    chosen, _, unsafe = pick(stems)
    assert chosen == ["v"]
    assert unsafe == ("../../evil", "a/b")


def test_counts_what_the_model_delivered() -> None:
    """`delivered` tells an empty model set (nothing to fetch) from missing types."""
    none = select_stems(
        [S("o", "original", None)],
        model="demucs",
        wanted=WANTED,
        known_ids=(),
        is_safe=is_safe_name,
    )
    assert none.delivered == 0 and none.missing == WANTED


# --- failures within a run: (step, failure) -> (status, state told, reason, re-submitted) ---

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


SONG_TABLE = [
    (None, RUN, SongStep.UPLOAD, 2),
    (None, RETRY, SongStep.UPLOAD, 2),
    (SongStatus.UPLOADING, RUN, SongStep.UPLOAD, 2),
    (SongStatus.UPLOADING, RETRY, SongStep.UPLOAD, 2),
    (SongStatus.UPLOADED, RUN, SongStep.CREATE, 2),
    (SongStatus.UPLOADED, RETRY, SongStep.CREATE, 2),
    (SongStatus.CREATING, RUN, SongStep.CREATE, 2),
    (SongStatus.CREATING, RETRY, SongStep.CREATE, 2),
    (SongStatus.CREATED, RUN, SongStep.READY, 2),
    (SongStatus.CREATED, RETRY, SongStep.READY, 2),
    (SongStatus.FAILED, RUN, SongStep.REPORT_FAILED, 2),
    (SongStatus.FAILED, RETRY, SongStep.UPLOAD, 3),
    (SongStatus.NEEDS_ATTENTION, RUN, SongStep.REPORT_FAILED, 2),
    (SongStatus.NEEDS_ATTENTION, RETRY, SongStep.REPORT_FAILED, 2),
]


@pytest.mark.parametrize(("status", "mode", "step", "attempt"), SONG_TABLE)
def test_song_decision_table(
    status: SongStatus | None, mode: Mode, step: SongStep, attempt: int
) -> None:
    """Each recorded song status leads to the documented next step and attempt."""
    assert decide_song(status, 2, mode=mode) == (step, attempt)


@pytest.mark.parametrize(
    ("mode", "step"), [(RUN, SongStep.REPORT_FAILED), (RETRY, SongStep.CREATE)]
)
def test_a_song_that_needs_attention_is_created_again_only_when_named(
    mode: Mode, step: SongStep
) -> None:
    """`--resend` re-sends a song's creation that needs attention under `retry` only; it
    changes nothing for a song in any other status."""
    assert decide_song(SongStatus.NEEDS_ATTENTION, 2, mode=mode, resend=True) == (step, 2)
    for status, row_mode, other, attempt in SONG_TABLE:
        if status is not SongStatus.NEEDS_ATTENTION:
            assert decide_song(status, 2, mode=row_mode, resend=True) == (other, attempt)


def test_every_song_status_is_covered() -> None:
    """The song table names every song status."""
    assert {row[0] for row in SONG_TABLE} - {None} == set(SongStatus)


def test_a_creation_separates() -> None:
    """A song's creation is its project's first separation: it takes the separation slots."""
    assert Decision(Action.CREATE, 1).separates and Decision(Action.CREATE, 1).needs_slots


def test_a_rejected_key_is_no_jobs_failure() -> None:
    """CredentialsError stops the run: classifying it as a job's failure is refused."""
    with pytest.raises(ValueError, match="stops the run"):
        fault_of(CredentialsError("rejected"))


def test_separation_verdicts_and_failures_of_earlier_runs() -> None:
    """A cancelled task is cancelled, any other end is failed; a job failed earlier is
    listed again with its reason and how to retry it."""
    assert separation_fault("cancelled") is Fault.SEPARATION_CANCELLED
    assert separation_fault("timed-out") is Fault.SEPARATION_FAILED
    assert reported_again(Status.FAILED, "separation failed: boom") == (
        "separation failed: boom (use `stemsweep retry`)"
    )
    assert (
        reported_again(Status.SKIPPED, None) == "skipped in an earlier run (use `stemsweep retry`)"
    )
