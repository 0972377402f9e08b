# Over 400 lines on purpose: one state machine, read whole; its keys and entities stand apart.
"""The simulated account: projects, tasks, stems, uploads, keys, credits. A state machine, no HTTP.

Every method takes the simulated time `now` from the caller. A task's whole schedule is drawn
when it is accepted (how long it stays `created`, `queued` and `in-progress`, and how it
ends); its status at any instant follows from that schedule. `advance(now)` settles the tasks
that ended by `now`, in the order they ended, and applies their stems to the project, so a
client that sees `completed` always finds the stems on its next project read.

A separation is "in progress" from its accepted submission (or project creation) to its
terminal state; the account cap (`max_in_progress`) and the record's peaks count exactly that.
Credits are charged when a separation or creation is accepted, never for a replay.

Every change is noted in `changes`, which a state folder saves (`saving.py`).
"""

from __future__ import annotations

import heapq
import math
from collections import Counter
from typing import Any

from orchestrator.simulator.entities import (
    CREATION,
    FAILURES,
    Changes,
    Project,
    Stem,
    Task,
    Upload,
)
from orchestrator.simulator.errors import ApiProblem, issue, not_found, validation
from orchestrator.simulator.faults import Dice, FaultRoller
from orchestrator.simulator.keys import KeyBook, KeyEntry, Seen
from orchestrator.simulator.models import MODELS, model_format, model_stem_types
from orchestrator.simulator.profile import Profile
from orchestrator.simulator.record import Record

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
UPLOAD_SOURCE = "upload"
MAX_SONG_SECONDS = 1200  # as the quote's cap: 20 minutes


def project_id(index: int) -> str:
    """The id of the `index`-th project, counting from 1."""
    return f"prj_{index:04d}"


class World:
    """The account's state. One instance per simulator, used from the event loop only."""

    def __init__(self, profile: Profile, dice: Dice, record: Record, *, empty: bool = False):
        self.profile = profile
        self._dice = dice
        self._faults = FaultRoller(dice, record)
        self._record = record
        self.changes = Changes()
        self.balance = profile.credits
        self.projects: dict[str, Project] = {}
        self.tasks: dict[str, Task] = {}
        self.stems: dict[str, Stem] = {}
        self.uploads: dict[str, Upload] = {}
        self.keys = KeyBook(profile.idempotency_key_ttl)
        self._ends: list[tuple[float, int, str]] = []
        self._active_by_project: Counter[str] = Counter()
        self._active_by_model: Counter[str] = Counter()
        self._active_total = 0
        if empty:
            return
        for index in range(1, profile.projects + 1):
            pid = project_id(index)
            original = self._new_stem(pid, "original", None, "wav", source="original")
            self._add_project(Project(pid, [original], [], profile.song_seconds))

    @classmethod
    def restore(
        cls, profile: Profile, dice: Dice, record: Record, rows: dict[str, dict[str, Any]]
    ) -> World:
        """The world saved as `rows` (by kind, then id), with its tasks in progress resumed."""
        world = cls(profile, dice, record, empty=True)
        world.stems = {sid: Stem.from_row(r) for sid, r in rows["stem"].items()}
        world.tasks = {tid: Task.from_row(r) for tid, r in rows["task"].items()}
        world.uploads = {fid: Upload.from_row(r) for fid, r in rows["upload"].items()}
        world.keys.entries = {k: KeyEntry.from_row(r) for k, r in rows["key"].items()}
        for pid, row in rows["project"].items():
            world.projects[pid] = Project.from_row(row, world.stems)
        for n, task in enumerate(world.tasks.values()):
            if not task.settled:
                heapq.heappush(world._ends, (task.done_at, n, task.id))
                world._count_active(task, +1)
        return world

    def rows(self, kind: str) -> dict[str, Any]:
        """The objects of `kind` by id, for saving (keys: the key book's entries)."""
        tables: dict[str, dict[str, Any]] = {
            "project": self.projects,
            "task": self.tasks,
            "stem": self.stems,
            "upload": self.uploads,
            "key": self.keys.entries,
        }
        return tables[kind]

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

    def poll(self, tid: str, now: float) -> dict[str, Any]:
        """The task `tid` as a client's poll sees it (counted, saved lazily)."""
        task = self.task(tid)
        view = task.polled(now)
        self.changes.touch("task", tid, durable=False)
        return view

    def decoded_upload(self, file_id: str) -> Upload:
        """The upload `file_id` once its bytes arrived and decode as a song of at most 20
        minutes; else a 404 or 422 problem saying what is missing."""
        upload = self.uploads.get(file_id)
        if upload is None:
            raise not_found("input file", file_id, "use the inputFileId answered by POST /uploads")
        if not upload.received:
            raise validation(
                f"input file {file_id!r} has no bytes yet: PUT them to its uploadUrl first",
                [issue("inputFileId", "upload the file's bytes before using it")],
            )
        if upload.media_error is not None or upload.seconds is None:
            raise ApiProblem(
                422,
                "UNSUPPORTED_MEDIA",
                f"input file {file_id!r} ({upload.filename}): {upload.media_error}",
                issues=[issue("inputFileId", "a file that decodes as audio")],
            )
        if upload.seconds > MAX_SONG_SECONDS:
            raise validation(
                f"input file {file_id!r} lasts {upload.seconds:.0f} s; songs are limited to "
                f"{MAX_SONG_SECONDS} s",
                [issue("inputFileId", f"a song of at most {MAX_SONG_SECONDS} seconds")],
            )
        return upload

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
        self.changes.touch("task", task.id)
        self._count_active(task, -1)
        self._record.task_settled(task.outcome)
        if task.outcome == "completed":
            self._add_stems(self.projects[task.project_id], task.model)

    def _count_active(self, task: Task, step: int) -> None:
        self._active_total += step
        self._active_by_project[task.project_id] += step
        self._active_by_model[task.model] += step

    def _add_stems(self, project: Project, model: str) -> None:
        fmt = model_format(model) if self.profile.synthesize or project.upload else "wav"
        new = [
            self._new_stem(project.id, kind, model, fmt, source=model, seconds=project.seconds)
            for kind in model_stem_types(model)
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
                    self.changes.remove("stem", stem.id)
            project.stems = [s for s in project.stems if s.model is None]
        project.stems.extend(new)
        self.changes.touch("project", project.id)

    def _new_stem(
        self, pid: str, kind: str, model: str | None, fmt: str, *, source: str, seconds: float = 0
    ) -> Stem:
        stem = Stem(
            id=self._fresh_id("stm_", "stem_id", self.stems),
            project_id=pid,
            type=kind,
            model=model,
            fmt=fmt,
            duration=seconds or self.profile.song_seconds,
            redirect=self._dice.random("redirect") < self.profile.redirect_share,
            source=source,
        )
        self.stems[stem.id] = stem
        self.changes.touch("stem", stem.id)
        return stem

    def _fresh_id(self, prefix: str, purpose: str, taken: dict[str, Any]) -> str:
        while True:  # a clash needs 2**64 draws, or a seed reused across generations
            ident = f"{prefix}{self._dice.token(purpose)}"
            if ident not in taken:
                return ident

    def _add_project(self, project: Project) -> None:
        self.projects[project.id] = project
        self.changes.touch("project", project.id)

    # -- idempotency -------------------------------------------------------------------

    def remembered(self, key: str | None, fingerprint: str, now: float) -> KeyEntry | None:
        """The entry of `key` when this request replays its first use; None to do the work.

        Raises a 409 problem when the key was used with a different request.
        """
        seen, entry = self.keys.look(key, fingerprint, now)
        if seen is Seen.CONFLICT:
            self._record.conflict()
            raise ApiProblem(
                409,
                "CONFLICT",
                f"Idempotency-Key {key!r} was already used with a different request "
                "(method, path or body); send a new key for a different request",
            )
        if seen is Seen.REPLAY:
            self._record.replay()
            return entry
        return None

    def _bind(self, key: str | None, fingerprint: str, kind: str, ref: str, now: float) -> bool:
        """Remember `key`; True when it had been used before and forgotten."""
        if key is None:
            return False
        expired = key in self.keys.entries
        if expired:
            self._record.expired_key_reused()
        self.keys.bind(key, fingerprint, kind, ref, now)
        self.changes.touch("key", key)
        return expired

    # -- writes ------------------------------------------------------------------------

    def check_model(self, model: Any) -> str:
        """`model` when it is one of the twelve split models, else a 422 problem."""
        if not isinstance(model, str) or model not in MODELS:
            raise validation(
                f"splitModel {model!r} is not a split model; use one of: {', '.join(MODELS)}",
                [issue("splitModel", f"must be one of: {', '.join(MODELS)}")],
            )
        return model

    def check_submission(self, pid: str, model: Any) -> str:
        """Validate a submission's project and model; the model name when both are valid."""
        self.project(pid)
        return self.check_model(model)

    def submit(self, pid: str, model: str, key: str | None, fingerprint: str, now: float) -> Task:
        """Accept a new separation of project `pid` with `model` (validated) at `now`."""
        self.advance(now)
        project = self.projects[pid]
        cost = self._admit(model, project.seconds)
        task = self._start(project, model, now, cost)
        task.rekeyed = self._bind(key, fingerprint, "task", task.id, now)
        return task

    def create_project(
        self, upload: Upload, title: str, model: str, key: str | None, fingerprint: str, now: float
    ) -> Task:
        """Accept a new project made from `upload` (received, decodable), and its first
        separation with `model`; the task."""
        self.advance(now)
        assert upload.seconds is not None
        cost = self._admit(model, upload.seconds)
        pid = project_id(len(self.projects) + 1)
        original = self._new_stem(
            pid, "original", None, upload.fmt, source=UPLOAD_SOURCE, seconds=upload.seconds
        )
        project = Project(pid, [original], [], upload.seconds, title=title, upload=upload.id)
        self._add_project(project)
        upload.used = True
        self.changes.touch("upload", upload.id)
        task = self._start(project, model, now, cost, kind=CREATION)
        task.rekeyed = self._bind(key, fingerprint, "project", task.id, now)
        self._record.creation(upload.sha256 or "")
        return task

    def announce_upload(
        self, fields: tuple[str, str, str, int], key: str | None, fingerprint: str, now: float
    ) -> Upload:
        """Register a file to be uploaded: (filename, content type, format, length)."""
        filename, content_type, fmt, length = fields
        upload = Upload(
            id=self._fresh_id("file_", "file_id", self.uploads),
            filename=filename,
            content_type=content_type,
            fmt=fmt,
            length=length,
            created_at=now,
        )
        self.uploads[upload.id] = upload
        self.changes.touch("upload", upload.id)
        upload.rekeyed = self._bind(key, fingerprint, "upload", upload.id, now)
        self._record.upload_announced()
        return upload

    def _admit(self, model: str, seconds: float) -> int:
        """Check the account cap and the balance for a new separation; charge it; its cost."""
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
        cost = self.profile.separation_cost(seconds, model)
        if self.balance < cost:
            self._record.insufficient_credits()
            raise ApiProblem(
                self.profile.insufficient_credits_status,
                "INSUFFICIENT_CREDITS",
                f"this separation costs {cost} credits and the balance is {self.balance}; "
                "add credits to the account",
            )
        self.balance -= cost
        self._record.charged(cost)
        return cost

    def _start(
        self, project: Project, model: str, now: float, cost: int, *, kind: str | None = None
    ) -> Task:
        task = self._schedule(project.id, model, now)
        task.cost = cost
        if kind is not None:
            task.kind = kind
        self.tasks[task.id] = task
        project.task_ids.append(task.id)
        self.changes.touch("task", task.id)
        self.changes.touch("project", project.id)
        heapq.heappush(self._ends, (task.done_at, len(self.tasks), task.id))
        self._count_active(task, +1)
        pid = project.id
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
            id=self._fresh_id("tsk_", "task_id", self.tasks),
            project_id=pid,
            model=model,
            submitted_at=now,
            queued_at=queued_at,
            started_at=started_at,
            done_at=done_at,
            finalized_at=done_at + p.finalize_after,
            outcome=outcome,
        )


def retry_after_header(seconds: float | None) -> dict[str, str]:
    """`Retry-After` in whole seconds (at least 1), or no header when `seconds` is None."""
    if seconds is None:
        return {}
    return {"Retry-After": str(max(1, math.ceil(seconds)))}
