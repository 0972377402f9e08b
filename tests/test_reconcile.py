"""The decision for a submission whose answer was lost (`reconcile`), as a table of rows."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from orchestrator.jobs import JobId, Shard
from orchestrator.lifecycle import Status
from orchestrator.reconcile import (
    Verdict,
    needs_history,
    reconcile,
    reconcile_creation,
    stamp_age,
)
from orchestrator.recovery import key_age, resend_command
from orchestrator.state import JobRecord
from orchestrator.wire import parse_task_history


@dataclass(frozen=True)
class T:
    id: str
    status: str = "completed"


WINDOW = 3600.0
ONE, TWO = (T("tsk_1"),), (T("tsk_1"), T("tsk_2", "in-progress"))

# (key age, unseen tasks, list complete, unconfirmed submissions) -> (verdict, adopted task)
TABLE = [
    (10.0, (), True, 1, Verdict.RESEND, None),  # within the window: the key identifies
    (10.0, TWO, True, 1, Verdict.RESEND, None),
    (10.0, ONE, False, 3, Verdict.RESEND, None),
    (WINDOW, (), True, 1, Verdict.RESEND, None),  # past it, nothing started: send
    (WINDOW * 30, (), True, 2, Verdict.RESEND, None),
    (None, (), True, 1, Verdict.RESEND, None),  # an unknown age counts as past
    (WINDOW, ONE, True, 1, Verdict.ADOPT, "tsk_1"),  # the one task it started
    (None, ONE, True, 1, Verdict.ADOPT, "tsk_1"),
    (WINDOW, ONE, True, 2, Verdict.ASK, None),  # two submissions, one task: whose?
    (WINDOW, TWO, True, 1, Verdict.ASK, None),  # two tasks: which?
    (WINDOW, ONE, False, 1, Verdict.ASK, None),  # maybe a first page only
    (WINDOW, (), False, 1, Verdict.ASK, None),
]


@pytest.mark.parametrize(("age", "unseen", "complete", "unconfirmed", "verdict", "task"), TABLE)
def test_reconciliation_table(
    age: float | None,
    unseen: tuple[T, ...],
    complete: bool,
    unconfirmed: int,
    verdict: Verdict,
    task: str | None,
) -> None:
    """Each case of a lost answer gives the documented verdict: re-send within the key
    window or when no task was started, adopt a task only when it is the only candidate for
    the only unconfirmed submission, otherwise ask."""
    found = reconcile(
        key_age=age, window=WINDOW, unseen=unseen, complete=complete, unconfirmed=unconfirmed
    )
    assert (found.verdict, found.task_id) == (verdict, task)
    assert found.reason


def test_every_verdict_is_in_the_table() -> None:
    """No verdict is left without a row."""
    assert {row[4] for row in TABLE} == set(Verdict)


def test_the_history_is_read_only_past_the_window() -> None:
    """Within the window no request is added: the re-sent key finds its task."""
    assert not needs_history(WINDOW - 1, WINDOW)
    assert needs_history(WINDOW, WINDOW) and needs_history(None, WINDOW)


def test_an_ambiguous_answer_names_the_tasks_it_could_be() -> None:
    """The reason lists the unseen tasks with their status, so the user knows what to check."""
    found = reconcile(key_age=2 * WINDOW, window=WINDOW, unseen=TWO)
    assert "tsk_1 (completed), tsk_2 (in-progress)" in found.reason
    assert "past idempotency_window (1h)" in found.reason


@pytest.mark.parametrize(
    ("data", "complete"),
    [
        ([{"id": "t"}], True),
        ({"tasks": [{"id": "t"}]}, True),
        ({"data": [{"id": "t"}], "next": "cursor-2"}, False),
        ({"items": [{"id": "t"}], "hasMore": True}, False),
        ({"tasks": [{"id": "t"}], "total": 3}, False),
        ({"tasks": [{"id": "t"}], "total": 1, "next": None}, True),
    ],
)
def test_a_history_that_may_have_more_pages_is_not_complete(data: object, complete: bool) -> None:
    """A bare list is the whole history; a wrapper that points at more is not."""
    history = parse_task_history(data)
    assert [t.id for t in history.tasks] == ["t"] and history.complete is complete


def row(key_at: str | None, updated_at: str) -> JobRecord:
    return JobRecord(
        "prj_a", "mdx23c", 1, "k", None, Status.SUBMITTING, None, None, None, (), (), (),
        updated_at, key_at,
    )  # fmt: skip


def test_a_keys_age_comes_from_its_commit_time_or_the_rows_last_change() -> None:
    """`key_at` when recorded; a row of an older store has only `updated_at`; nonsense is
    unknown."""
    now = datetime(2025, 1, 2, tzinfo=UTC)
    day = (now - timedelta(days=1)).isoformat().replace("+00:00", "Z")
    hour = (now - timedelta(hours=1)).isoformat().replace("+00:00", "Z")
    assert key_age(row(day, hour), now) == 86400
    assert key_age(row(None, hour), now) == 3600
    assert key_age(row(None, "not a time"), now) is None


def test_the_resend_command_names_the_job_and_where_it_runs() -> None:
    """The command a user is given re-sends exactly that job, in that tree and shard."""
    job = JobId("prj_a", "mdx23c")
    assert resend_command(Path("jobs/x.yaml"), job, shard=None, out=None) == (
        "stemsweep retry jobs/x.yaml --resend prj_a:mdx23c"
    )
    assert resend_command(Path("x.yaml"), job, shard=Shard(1, 4), out=Path("/o")) == (
        "stemsweep retry x.yaml --out /o --shard 1/4 --resend prj_a:mdx23c"
    )


@pytest.mark.parametrize(
    ("age", "verdict"),
    [
        (0.0, Verdict.RESEND),
        (WINDOW - 1, Verdict.RESEND),  # the API still remembers the key
        (WINDOW, Verdict.ASK),  # it may have forgotten it: no endpoint lists projects
        (WINDOW * 30, Verdict.ASK),
        (None, Verdict.ASK),  # an unknown age counts as past
    ],
)
def test_a_lost_creation_is_re_sent_only_within_the_window(
    age: float | None, verdict: Verdict
) -> None:
    """A song's creation whose answer was lost is re-sent within the window; past it (or at
    an unknown age) it is asked about, and the reason says why and names the window."""
    found = reconcile_creation(key_age=age, window=WINDOW)
    assert found.verdict is verdict and found.task_id is None
    if verdict is Verdict.ASK:
        assert "past idempotency_window (1h)" in found.reason
        assert "no documented endpoint lists" in found.reason


def test_a_stamps_age_is_unknown_without_a_zone_or_a_time() -> None:
    """An ISO-8601 UTC stamp gives its age in seconds; one without a zone, or none, is
    unknown, so the key counts as past the window."""
    now = datetime(2025, 1, 2, tzinfo=UTC)
    assert stamp_age("2025-01-01T23:00:00.000Z", now) == 3600
    assert stamp_age("2025-01-01T23:00:00", now) is None
    assert stamp_age(None, now) is None and stamp_age("", now) is None
