"""The objects of a simulated account, as plain data: stems, tasks, projects, uploads.

Each has `row()` (JSON-ready) and `from_row()`, which is how a state folder keeps them.
`Changes` notes which objects changed since the last save, so a save writes only those.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

SEPARATION = "stem-separation"
CREATION = "project-creation"
FAILURES = {
    "failed": "the separation failed: the model could not process the input audio",
    "cancelled": "the separation was cancelled by the service",
    "timed-out": "the separation exceeded the service's time limit",
}
KINDS = ("project", "task", "stem", "upload", "key")


@dataclass(slots=True)
class Stem:
    """One stored file of a project. `source` names the audio it holds: `original` (the
    synthesized song), `upload` (the project's uploaded file, as it was sent), a model name,
    or `hostile` (a decoy with an unsafe name)."""

    id: str
    project_id: str
    type: str
    model: str | None
    fmt: str
    duration: float
    redirect: bool
    source: str

    def row(self) -> dict[str, Any]:
        return _plain(self)

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Stem:
        return cls(**row)


@dataclass(slots=True)
class Task:
    """One separation (a re-separation, or a new project's first) and its schedule, in
    simulated seconds. `cost` is the credits it was charged; `rekeyed` says its key had been
    used before, for an earlier task, and forgotten since."""

    id: str
    project_id: str
    model: str
    submitted_at: float
    queued_at: float
    started_at: float
    done_at: float
    finalized_at: float
    outcome: str
    kind: str = SEPARATION
    cost: int = 0
    rekeyed: bool = False
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
        return self._view(self.status(now))

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
            "kind": self.kind,
            "outcome": self.outcome,
            "submitted_at": self.submitted_at,
            "done_at": self.done_at,
            "seen_terminal_at": self.seen_terminal_at,
            "polls": self.polls,
        }

    def _view(self, status: str) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": self.kind,
            "status": status,
            "error": FAILURES.get(status),
            "output": {"projectId": self.project_id},
        }

    def row(self) -> dict[str, Any]:
        return _plain(self)

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Task:
        return cls(**row)


@dataclass(slots=True)
class Project:
    """A project: its stems (the original first), its task history, the length of its song.

    A project created from an uploaded file has its `title` and `upload` (the file's id); a
    synthesized one takes its title from its song.
    """

    id: str
    stems: list[Stem]
    task_ids: list[str]
    seconds: float
    title: str | None = None
    upload: str | None = None

    def row(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "stems": [s.id for s in self.stems],
            "task_ids": list(self.task_ids),
            "seconds": self.seconds,
            "title": self.title,
            "upload": self.upload,
        }

    @classmethod
    def from_row(cls, row: dict[str, Any], stems: dict[str, Stem]) -> Project:
        return cls(
            id=row["id"],
            stems=[stems[sid] for sid in row["stems"]],
            task_ids=list(row["task_ids"]),
            seconds=row["seconds"],
            title=row["title"],
            upload=row["upload"],
        )


@dataclass(slots=True)
class Upload:
    """A file announced by `POST /uploads`, and what its `PUT`s delivered.

    `received` once bytes of the announced length and type were stored; `seconds` is their
    decoded duration, or `media_error` says why they do not decode.
    """

    id: str
    filename: str
    content_type: str
    fmt: str
    length: int
    created_at: float
    received: bool = False
    sha256: str | None = None
    seconds: float | None = None
    media_error: str | None = None
    puts: int = 0
    used: bool = False
    rekeyed: bool = False

    def row(self) -> dict[str, Any]:
        return _plain(self)

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Upload:
        return cls(**row)


def _plain(obj: Any) -> dict[str, Any]:
    """The fields of a slotted dataclass of plain values (faster than `dataclasses.asdict`,
    which deep-copies every value: it was most of the cost of saving a world)."""
    return {name: getattr(obj, name) for name in obj.__slots__}


@dataclass
class Changes:
    """What changed since the last save: ids by kind, removed ids by kind, and whether any
    change must be saved before the client hears of it (`durable`) or may wait (`soft`:
    poll counts)."""

    touched: dict[str, set[str]] = field(default_factory=lambda: {k: set() for k in KINDS})
    removed: dict[str, set[str]] = field(default_factory=lambda: {k: set() for k in KINDS})
    durable: bool = False

    def touch(self, kind: str, ident: str, *, durable: bool = True) -> None:
        self.touched[kind].add(ident)
        self.removed[kind].discard(ident)
        self.durable = self.durable or durable

    def remove(self, kind: str, ident: str) -> None:
        self.touched[kind].discard(ident)
        self.removed[kind].add(ident)
        self.durable = True

    def pending(self) -> bool:
        return any(self.touched.values()) or any(self.removed.values())

    def clear(self) -> None:
        for ids in (*self.touched.values(), *self.removed.values()):
            ids.clear()
        self.durable = False
