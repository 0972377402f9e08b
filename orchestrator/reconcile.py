"""What a submission whose answer was lost started: decided before its key is re-sent (pure).

A job recorded `submitting` when a run starts had its key committed, and its POST may have
been applied, but no task id came back (a crash, a dropped connection, a 5xx after the
write). Re-sending the same key is safe only while the API remembers the key: it then
answers with the task the first POST started. Youka does not say how long that is; the
manifest's `idempotency_window` (default 24 h) is how long stemsweep assumes. Past it, a
re-sent key may start, and charge, a second separation. So:

    key committed       the project's task history           then
    ------------------  -----------------------------------  -------------------------
    within the window   not read: the key identifies it      re-send the same key
    past it, or when    no task this tree has not seen       re-send the same key
      its time is       exactly one such task, and this      adopt it (poll that task)
      unknown             job is the project's only
                          unconfirmed submission here
                        several such tasks, several          ask: `needs_attention`,
                          unconfirmed submissions, or a        nothing is sent
                          list that may be partial

How a task is identified, and what the contract leaves open: a task carries no model, no
idempotency key and no time (`{id, type, status, error, output}`), so the only thing that
singles out the task a lost POST started is that this tree has never seen its id: every
task id any job of the tree recorded for the project is known (`StateStore.task_ids`). The
contract does not say whether the list holds every task of the project (no paging is
documented; an answer that hints at more pages counts as partial), nor whether tasks
started elsewhere are listed (the project's own creation, a separation made in Youka's app
or by another client of the account): those look exactly like the task of a lost POST.
When there is exactly one, adopting it is still safe for the money and the files: nothing
is charged, and the files are chosen by the job's model as always, so a task adopted by
mistake can only yield the stems that model already made for the project, or none (the job
is then `stranded`, and `retry` separates it once). When it cannot be told apart, nothing
is sent: the job `needs_attention`, with what to check and the command that re-sends its
key deliberately.

`reconcile` is the decision; the engine reads the history and the store (`recovery`).

A song's creation (`POST /projects`) whose answer was lost has no project to read the
history of, and no documented endpoint lists an account's projects: `reconcile_creation`
re-sends its key within the window, and past it asks (the song `needs_attention`). A lost
upload (`POST /uploads`) is re-sent at any age: it is charged nothing and makes no project,
so the worst a forgotten key does is a second file id, the first one left unused.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Protocol


class Verdict(StrEnum):
    RESEND = "resend"  # re-send the committed key
    ADOPT = "adopt"  # the task the key started is `task_id`: poll it
    ASK = "ask"  # cannot be told apart: send nothing, the user decides


class TaskLike(Protocol):
    """What reconciliation reads of a task of the project's history."""

    @property
    def id(self) -> str: ...
    @property
    def status(self) -> str: ...


@dataclass(frozen=True)
class Resolution:
    """What to do with a key whose answer was lost, and why (for the log and the user)."""

    verdict: Verdict
    reason: str
    task_id: str | None = None


def needs_history(key_age: float | None, window: float) -> bool:
    """Whether the project's task history must be read before the key is re-sent: only
    past the window (or when the key's age is unknown), so a resumed run within it makes no
    request more than the re-sent POST."""
    return key_age is None or key_age >= window


def stamp_age(stamp: str | None, now: datetime) -> float | None:
    """Seconds from the ISO-8601 time `stamp` (a key's commit) to `now`; None when it does
    not read as a time with its zone."""
    try:
        then = datetime.fromisoformat((stamp or "").replace("Z", "+00:00"))
    except ValueError:
        return None
    if then.tzinfo is None:
        return None
    return max(0.0, (now - then).total_seconds())


def reconcile_creation(*, key_age: float | None, window: float) -> Resolution:
    """The verdict for a song's creation whose answer was lost (module docstring): re-send
    its key within the window; past it (or at an unknown age), ask."""
    if not needs_history(key_age, window):
        return Resolution(
            Verdict.RESEND,
            f"the creation's key was committed {_ago(key_age)}, within idempotency_window "
            f"({_span(window)}): the API answers it with the project it made, if any",
        )
    return Resolution(
        Verdict.ASK,
        f"the creation's key was committed {_ago(key_age)}, past idempotency_window "
        f"({_span(window)}), and its answer was lost; no documented endpoint lists the "
        "account's projects, so stemsweep cannot tell whether it made one, and a key the "
        "API has forgotten makes (and charges) another",
    )


def reconcile(
    *,
    key_age: float | None,
    window: float,
    unseen: Sequence[TaskLike] = (),
    complete: bool = True,
    unconfirmed: int = 1,
) -> Resolution:
    """The verdict for one job's lost answer (the table in the module docstring).

    `key_age`: seconds since the key was committed (None: unknown); `window`: the manifest's
    `idempotency_window`; `unseen`: the project's tasks whose ids this tree never recorded;
    `complete`: the history answer holds every task (no sign of more pages);
    `unconfirmed`: this tree's jobs of the project whose submission awaits this same
    decision (`submitting`), this one included.
    """
    if not needs_history(key_age, window):
        return Resolution(
            Verdict.RESEND,
            f"the key was committed {_ago(key_age)}, within idempotency_window "
            f"({_span(window)}): the API answers it with the task it started, if any",
        )
    past = f"the key was committed {_ago(key_age)}, past idempotency_window ({_span(window)})"
    if complete and not unseen:
        return Resolution(
            Verdict.RESEND,
            f"{past}, and the project lists no task this tree has not seen: the POST never "
            "started one, so re-sending it starts the only separation",
        )
    if complete and len(unseen) == 1 and unconfirmed == 1:
        return Resolution(
            Verdict.ADOPT,
            f"{past}; the project lists one task this tree has not seen, {unseen[0].id}: "
            "the one its POST started",
            task_id=unseen[0].id,
        )
    if not complete:
        why = "the project's task list may be only a first page"
    elif unconfirmed > 1:
        why = f"{unconfirmed} submissions of this tree on the project await the same answer"
    else:
        why = "more than one of them may be this one"
    shown = ", ".join(f"{t.id} ({t.status})" for t in unseen[:5])
    more = f" and {len(unseen) - 5} more" if len(unseen) > 5 else ""
    return Resolution(
        Verdict.ASK,
        f"{past}; the project lists {len(unseen)} task(s) this tree has not seen"
        + (f": {shown}{more}" if unseen else "")
        + f", and {why}: stemsweep cannot tell which one, if any, this submission started",
    )


def _ago(seconds: float | None) -> str:
    return "at an unknown time" if seconds is None else f"{_span(seconds)} ago"


def _span(seconds: float) -> str:
    """`90` -> `1.5m`, `86400` -> `24h`: how long, roughly, as a manifest writes it."""
    for unit, size in (("h", 3600.0), ("m", 60.0)):
        if seconds >= size:
            return f"{seconds / size:.3g}{unit}"
    return f"{seconds:.3g}s"
