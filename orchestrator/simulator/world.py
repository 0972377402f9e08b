"""The simulated account: projects, separation tasks and stems. A state machine, no HTTP.

Every method takes the simulated time `now` from the caller. A task's whole schedule is drawn
when it is submitted (how long it stays `created`, `queued` and `in-progress`, and how it
ends); its status at any instant follows from that schedule. `advance(now)` settles the tasks
that ended by `now`, in the order they ended, and applies their stems to the project, so a
client that sees `completed` always finds the stems on its next project read.

A separation is "in progress" from its accepted submission to its terminal state; the account
cap (`max_in_progress`) and the record's peaks count exactly that.
"""

from __future__ import annotations

import heapq
import math
from collections import Counter
from dataclasses import dataclass
from typing import Any

from orchestrator.simulator import audio
from orchestrator.simulator.audio import MODELS
from orchestrator.simulator.errors import ApiProblem, issue, not_found, validation
from orchestrator.simulator.faults import Dice, FaultRoller
from orchestrator.simulator.profile import Profile
from orchestrator.simulator.record import Record

TASK_TYPE = "stem-separation"
FAILURES = {
    "failed": "the separation failed: the model could not process the input audio",
    "cancelled": "the separation was cancelled by the service",
    "timed-out": "the separation exceeded the service's time limit",
}
# Stem names no client may use as file names as they are (`hostile_names: true`).
HOSTILE_TYPES = (
    "../../evil",
    "a/b",
    "/tmp/stemsweep-evil",
    "..",
    "vocals/../../escape",
    "C:\\evil",
)
HOSTILE_MODELS = ("../evil-model", "/abs/model", "a/b")
HOSTILE_SOURCE = "hostile"
MAX_QUOTE_SECONDS = 1200


@dataclass(slots=True)
class Stem:
    """One stored file of a project. `source` names the audio it holds: `original`, a model
    name, or `hostile` (a decoy with an unsafe name)."""

    id: str
    project_id: str
    type: str
    model: str | None
    fmt: str
    duration: float
    redirect: bool
    source: str


@dataclass(slots=True)
class Task:
    """One separation and its schedule, in simulated seconds."""

    id: str
    project_id: str
    model: str
    submitted_at: float
    queued_at: float
    started_at: float
    done_at: float
    finalized_at: float
    outcome: str
    settled: bool = False
    # For benchmarks: how often clients read this task, and when one first saw it terminal.
    polls: int = 0
    seen_terminal_at: float | None = None

    def status(self, now: float) -> str:
        """The task's status at simulated time `now`."""
        if now < self.queued_at:
            return "created"
        if now < self.started_at:
            return "queued"
        if now < self.done_at:
            return "in-progress"
        if self.outcome != "completed":
            return self.outcome
        return "completed" if now < self.finalized_at else "finalized"

    def view(self, now: float) -> dict[str, Any]:
        """The task object of the API."""
        status = self.status(now)
        return self._view(status)

    def polled(self, now: float) -> dict[str, Any]:
        """The task object for a client's `GET /tasks/{id}`, counted as one poll."""
        status = self.status(now)
        self.polls += 1
        if self.seen_terminal_at is None and now >= self.done_at:
            self.seen_terminal_at = now
        return self._view(status)

    def timing(self) -> dict[str, Any]:
        """When the task was submitted, ended and first seen ended (simulated s); its polls."""
        return {
            "id": self.id,
            "project": self.project_id,
            "model": self.model,
            "outcome": self.outcome,
            "submitted_at": self.submitted_at,
            "done_at": self.done_at,
            "seen_terminal_at": self.seen_terminal_at,
            "polls": self.polls,
        }

    def _view(self, status: str) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": TASK_TYPE,
            "status": status,
            "error": FAILURES.get(status),
            "output": {"projectId": self.project_id},
        }


@dataclass(slots=True)
class Project:
    """A project: its stems (the original first) and its task history."""

    id: str
    stems: list[Stem]
    task_ids: list[str]


def project_id(index: int) -> str:
    """The id of the `index`-th project, counting from 1."""
    return f"prj_{index:04d}"


class World:
    """The account's state. One instance per simulator, used from the event loop only."""

    def __init__(self, profile: Profile, dice: Dice, record: Record) -> None:
        self.profile = profile
        self._dice = dice
        self._faults = FaultRoller(dice, record)
        self._record = record
        self.balance = profile.credits
        self.projects: dict[str, Project] = {}
        self.tasks: dict[str, Task] = {}
        self.stems: dict[str, Stem] = {}
        self._keys: dict[str, tuple[str, str]] = {}
        self._ends: list[tuple[float, int, str]] = []
        self._active_by_project: Counter[str] = Counter()
        self._active_by_model: Counter[str] = Counter()
        self._active_total = 0
        for index in range(1, profile.projects + 1):
            pid = project_id(index)
            original = self._new_stem(pid, "original", None, "wav", source="original")
            self.projects[pid] = Project(id=pid, stems=[original], task_ids=[])

    # -- reads -------------------------------------------------------------------------

    def project(self, pid: str) -> Project:
        """The project `pid`, or a 404 problem naming it."""
        project = self.projects.get(pid)
        if project is None:
            raise not_found("project", pid, "GET /_sim/projects lists the simulator's projects")
        return project

    def task(self, tid: str) -> Task:
        """The task `tid`, or a 404 problem naming it."""
        task = self.tasks.get(tid)
        if task is None:
            raise not_found("task", tid, "use the taskId returned by the stem-separation POST")
        return task

    @property
    def in_progress(self) -> int:
        """Separations submitted and not yet terminal, whole account."""
        return self._active_total

    # -- time --------------------------------------------------------------------------

    def advance(self, now: float) -> None:
        """Settle every task that ended by `now`, in the order they ended."""
        ends = self._ends
        while ends and ends[0][0] <= now:
            _, _, tid = heapq.heappop(ends)
            self._settle(self.tasks[tid])

    def _settle(self, task: Task) -> None:
        task.settled = True
        self._active_total -= 1
        self._active_by_project[task.project_id] -= 1
        self._active_by_model[task.model] -= 1
        self._record.task_settled(task.outcome)
        if task.outcome == "completed":
            self._add_stems(self.projects[task.project_id], task.model)

    def _add_stems(self, project: Project, model: str) -> None:
        fmt = audio.model_format(model) if self.profile.synthesize else "wav"
        new = [
            self._new_stem(project.id, kind, model, fmt, source=model)
            for kind in audio.model_stem_types(model)
        ]
        if self.profile.hostile_names:
            kind = self._dice.choice("hostile_type", HOSTILE_TYPES)
            other = self._dice.choice("hostile_model", HOSTILE_MODELS)
            new.append(self._new_stem(project.id, kind, model, "wav", source=HOSTILE_SOURCE))
            new.append(self._new_stem(project.id, "vocals", other, "wav", source=HOSTILE_SOURCE))
        if self.profile.stems_mode == "replace":
            for stem in project.stems:
                if stem.model is not None:
                    del self.stems[stem.id]
            project.stems = [s for s in project.stems if s.model is None]
        project.stems.extend(new)

    def _new_stem(self, pid: str, kind: str, model: str | None, fmt: str, *, source: str) -> Stem:
        stem = Stem(
            id=f"stm_{self._dice.token('stem_id')}",
            project_id=pid,
            type=kind,
            model=model,
            fmt=fmt,
            duration=self.profile.song_seconds,
            redirect=self._dice.random("redirect") < self.profile.redirect_share,
            source=source,
        )
        self.stems[stem.id] = stem
        return stem

    # -- writes ------------------------------------------------------------------------

    def check_submission(self, pid: str, model: Any) -> str:
        """Validate a submission's project and model; the model name when both are valid."""
        self.project(pid)
        if not isinstance(model, str) or model not in MODELS:
            raise validation(
                f"splitModel {model!r} is not a split model; use one of: {', '.join(MODELS)}",
                [issue("splitModel", f"must be one of: {', '.join(MODELS)}")],
            )
        return model

    def replayed(self, key: str | None, fingerprint: str) -> Task | None:
        """The task an earlier submission with `key` created, if its payload was the same.

        Raises a 409 problem when the key was used with a different payload.
        """
        if key is None or key not in self._keys:
            return None
        seen, tid = self._keys[key]
        if seen != fingerprint:
            self._record.conflict()
            raise ApiProblem(
                409,
                "CONFLICT",
                f"Idempotency-Key {key!r} was already used with a different request "
                "(method, path or body); send a new key for a different request",
            )
        self._record.replay()
        return self.tasks[tid]

    def submit(self, pid: str, model: str, key: str | None, fingerprint: str, now: float) -> Task:
        """Accept a new separation of project `pid` with `model` (validated) at `now`."""
        self.advance(now)
        cap = self.profile.max_in_progress
        if cap is not None and self._active_total >= cap:
            retry_after = self.profile.limit_retry_after
            self._record.throttled("account_cap", retry_after=retry_after is not None)
            raise ApiProblem(
                429,
                "TOO_MANY_REQUESTS",
                f"the account already has {cap} separations in progress, its limit; "
                "submit again when one has finished",
                headers=retry_after_header(retry_after),
            )
        cost = self.profile.separation_cost(self.profile.song_seconds)
        if self.balance < cost:
            raise ApiProblem(
                402,
                "INSUFFICIENT_CREDITS",
                f"this separation costs {cost} credits and the balance is {self.balance}; "
                "add credits to the account",
            )
        self.balance -= cost
        task = self._schedule(pid, model, now)
        self.tasks[task.id] = task
        self.projects[pid].task_ids.append(task.id)
        if key is not None:
            self._keys[key] = (fingerprint, task.id)
        heapq.heappush(self._ends, (task.done_at, len(self.tasks), task.id))
        self._active_total += 1
        self._active_by_project[pid] += 1
        self._active_by_model[model] += 1
        self._record.separation(pid, model)
        self._record.in_progress(
            self._active_total, self._active_by_project[pid], model, self._active_by_model[model]
        )
        return task

    def _schedule(self, pid: str, model: str, now: float) -> Task:
        p, dice = self.profile, self._dice
        queued_at = now + p.created_time
        started_at = queued_at + dice.uniform("queue_time", *p.queue_time)
        jitter = dice.uniform("duration_jitter", 1 - p.duration_jitter, 1 + p.duration_jitter)
        done_at = started_at + p.duration(model) * jitter
        outcome = "completed"
        if self._faults.roll("task_failure", p.faults.task_failure):
            outcome = dice.choice("failure_kind", sorted(FAILURES))
            if outcome == "failed":  # a model error shows up part way through
                done_at = started_at + (done_at - started_at) * dice.uniform("failed_at", 0.1, 1)
        return Task(
            id=f"tsk_{dice.token('task_id')}",
            project_id=pid,
            model=model,
            submitted_at=now,
            queued_at=queued_at,
            started_at=started_at,
            done_at=done_at,
            finalized_at=done_at + p.finalize_after,
            outcome=outcome,
        )

    def quote(self, model: Any, duration: Any) -> dict[str, Any]:
        """The price of one separation, as `POST /projects/quote` answers it."""
        problems = []
        if not isinstance(model, str) or model not in MODELS:
            problems.append(issue("splitModel", f"must be one of: {', '.join(MODELS)}"))
        if duration is None:
            duration = self.profile.song_seconds
        elif (
            isinstance(duration, bool)
            or not isinstance(duration, int | float)
            or not 0 < duration <= MAX_QUOTE_SECONDS
        ):
            problems.append(
                issue("durationSeconds", f"must be a number of seconds in (0, {MAX_QUOTE_SECONDS}]")
            )
        if problems:
            raise validation("the quote request has invalid fields; see issues", problems)
        cost = self.profile.separation_cost(float(duration))
        return {
            "creditsRequired": cost,
            "availableBalance": self.balance,
            "sufficientBalance": self.balance >= cost,
            "durationSeconds": duration,
            "breakdown": {"split": cost, "sync": 0},
        }


def retry_after_header(seconds: float | None) -> dict[str, str]:
    """`Retry-After` in whole seconds (at least 1), or no header when `seconds` is None."""
    if seconds is None:
        return {}
    return {"Retry-After": str(max(1, math.ceil(seconds)))}
