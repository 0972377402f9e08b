"""The pure decisions: what to do next for a job or a song, which stems to take."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from orchestrator.lifecycle import (
    Action,
    Decision,
    Mode,
    Recorded,
    SongStatus,
    SongStep,
    Status,
    decide,
    decide_song,
    reported_again,
    select_stems,
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


def test_a_job_failed_in_an_earlier_run_is_listed_again_with_how_to_retry_it() -> None:
    """A job failed earlier is listed again with its reason and how to retry it."""
    assert reported_again(Status.FAILED, "separation failed: boom") == (
        "separation failed: boom (use `stemsweep retry`)"
    )
    assert (
        reported_again(Status.SKIPPED, None) == "skipped in an earlier run (use `stemsweep retry`)"
    )
