"""The API's answers as stemsweep reads them: shapes and their parsing (pure: no I/O).

Parsing is tolerant where the API may vary (extra and missing fields, `taskId` or `id`,
`in_progress` or `in-progress`, a task list bare or wrapped) and strict where a wrong
reading would cost something: a stem without a usable `type` and `url` is left out, a
task or project that is not a JSON object is a `ValueError` (the client reports it as an
`ApiError`). Ids are bounded (`MAX_ID_LENGTH`), as idempotency keys are: they are stored,
written to job.json and sent back in URLs; a longer one is refused (a stem with one is
left out). Error envelopes (`{"error": {"code", "message", "issues"}}`) become the
parts of a message; `Retry-After` becomes seconds.

A song's upload (`POST /uploads` -> `{inputFileId, uploadUrl}`), a project made from it
(`POST /projects` -> `{projectId, taskId, ...}`) and a quote (`POST /projects/quote` ->
`{creditsRequired, availableBalance, ...}`) are parsed strictly: without their ids or a
price, the answer is a `ValueError`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

MAX_ID_LENGTH = 255  # task, stem and project ids; Youka's look like `tsk_...`, `stm_...`
TERMINAL_OK = frozenset({"completed", "finalized"})
TERMINAL_FAILED = frozenset({"failed", "cancelled", "timed-out"})

_STATUS_ALIASES = {"canceled": "cancelled", "timedout": "timed-out", "inprogress": "in-progress"}


@dataclass(frozen=True)
class Task:
    """One execution record (`GET /tasks/{id}`). Unknown statuses count as not terminal."""

    id: str
    status: str
    error: str | None
    project_id: str | None

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL_OK or self.status in TERMINAL_FAILED

    @property
    def succeeded(self) -> bool:
        return self.status in TERMINAL_OK


@dataclass(frozen=True)
class TaskHistory:
    """A project's tasks (`GET /projects/{id}/tasks`); `complete`: no sign of more pages."""

    tasks: tuple[Task, ...]
    complete: bool


@dataclass(frozen=True)
class Stem:
    """One entry of `project.stems[]`; `model` and `duration` are None when not sent."""

    id: str
    type: str
    model: str | None
    url: str
    duration: float | None


@dataclass(frozen=True)
class Project:
    """The durable state of a project, reduced to what a sweep needs."""

    id: str
    title: str
    stems: tuple[Stem, ...]


def normalize_status(raw: object) -> str:
    """`in_progress`, `IN-PROGRESS` and `in-progress` all become `in-progress`."""
    text = str(raw).strip().lower().replace("_", "-").replace(" ", "-") if raw else "unknown"
    return _STATUS_ALIASES.get(text.replace("-", ""), text)


def _text_or_none(value: object) -> str | None:
    if isinstance(value, str) and value:
        return value
    if isinstance(value, Mapping):
        message = value.get("message")
        return str(message) if message else json.dumps(value, default=str)[:500]
    return None if value is None or value == "" else str(value)


def _number_or_none(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def parse_task(data: object, fallback_id: str = "") -> Task:
    """A `Task` from a task object; tolerant of extra and missing fields."""
    if not isinstance(data, Mapping):
        raise ValueError("a task is not a JSON object")
    output = data.get("output")
    project_id = output.get("projectId") if isinstance(output, Mapping) else None
    project_id = project_id or data.get("projectId")
    task_id = str(data.get("id") or data.get("taskId") or fallback_id)
    if len(task_id) > MAX_ID_LENGTH:
        raise ValueError(f"a task id is longer than {MAX_ID_LENGTH} characters")
    return Task(
        id=task_id,
        status=normalize_status(data.get("status")),
        error=_text_or_none(data.get("error")),
        project_id=str(project_id) if project_id else None,
    )


def parse_stem(data: object) -> Stem | None:
    """A `Stem`, or None for an entry without a usable `type` and `url`."""
    if not isinstance(data, Mapping):
        return None
    kind, url = data.get("type"), data.get("url")
    if not isinstance(kind, str) or not isinstance(url, str) or not url:
        return None
    model = data.get("model")
    stem_id = str(data.get("id") or "")
    if len(stem_id) > MAX_ID_LENGTH:
        return None
    return Stem(
        id=stem_id,
        type=kind,
        model=model if isinstance(model, str) and model else None,
        url=url,
        duration=_number_or_none(data.get("duration")),
    )


def parse_project(data: object, fallback_id: str = "") -> Project:
    """A `Project` from a project object; stems that cannot be used are left out."""
    if not isinstance(data, Mapping):
        raise ValueError("a project is not a JSON object")
    raw_stems = data.get("stems")
    stems = (parse_stem(item) for item in (raw_stems if isinstance(raw_stems, list) else ()))
    title = data.get("title")
    return Project(
        id=str(data.get("id") or fallback_id),
        title=title if isinstance(title, str) else "",
        stems=tuple(stem for stem in stems if stem is not None),
    )


def task_id_of(data: Mapping[str, Any]) -> str | None:
    """The task id of a submission's answer (`taskId`, or `id`), or None (also for one
    longer than `MAX_ID_LENGTH`)."""
    task_id = data.get("taskId") or data.get("id")
    if not task_id or len(str(task_id)) > MAX_ID_LENGTH:
        return None
    return str(task_id)


# Fields of a wrapped list that say more items exist than this answer holds.
_MORE_PAGES = ("next", "nextCursor", "next_cursor", "nextPage", "next_page", "hasMore", "has_more")


def task_list(data: object) -> list[object]:
    """The items of a task list: a bare JSON array, or one under `tasks`, `data`, ..."""
    return _task_items(data)[0]


def parse_task_history(data: object) -> TaskHistory:
    """A project's task history. A bare array is the whole history; a wrapped one is not
    when the wrapper has a truthy `next`, `hasMore` (and the like) or a `total` beyond it."""
    items, wrapper = _task_items(data)
    complete = True
    if wrapper is not None:
        total = wrapper.get("total")
        complete = not any(wrapper.get(field) for field in _MORE_PAGES) and not (
            isinstance(total, int) and total > len(items)
        )
    return TaskHistory(tuple(parse_task(item) for item in items), complete)


def _task_items(data: object) -> tuple[list[object], Mapping[str, Any] | None]:
    if isinstance(data, list):
        return data, None
    if isinstance(data, Mapping):
        for field in ("tasks", "data", "items", "results"):
            if isinstance(data.get(field), list):
                return list(data[field]), data
    raise ValueError("a task list is neither a JSON array nor an object holding one")


def parse_retry_after(
    value: str | None, *, date: str | None = None, now: datetime | None = None
) -> float | None:
    """Seconds to wait from a `Retry-After` header (delay-seconds or an HTTP date), or None.

    An HTTP date is measured against the response's own `Date` header when there is one, so a
    skewed local clock does not matter; otherwise against `now` (the wall clock by default).
    """
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        return max(0.0, seconds) if seconds == seconds else None  # NaN is no answer
    try:
        when = parsedate_to_datetime(text)
        reference = parsedate_to_datetime(date) if date else (now or datetime.now(UTC))
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    if reference.tzinfo is None:
        reference = reference.replace(tzinfo=UTC)
    return max(0.0, (when - reference).total_seconds())


def envelope(payload: bytes) -> tuple[str | None, str | None, list[Any]]:
    """(code, message, issues) from `{"error": {...}}`; the start of the body when not JSON."""
    try:
        data = json.loads(payload) if payload else None
    except ValueError:
        text = payload[:200].decode("utf-8", "replace").strip()
        return None, text or None, []
    error = data.get("error") if isinstance(data, Mapping) else None
    if isinstance(error, str):
        return None, error, []
    if not isinstance(error, Mapping):
        return None, None, []
    code, message, issues = error.get("code"), error.get("message"), error.get("issues")
    return (
        str(code) if code else None,
        str(message) if message else None,
        list(issues) if isinstance(issues, list) else [],
    )


def describe_issues(issues: Iterable[Any]) -> str:
    parts = []
    for issue in list(issues)[:10]:
        if isinstance(issue, Mapping):
            path = issue.get("path")
            where = ".".join(map(str, path)) if isinstance(path, list) else str(path or "")
            text = str(issue.get("message") or "")
            parts.append(f"{where}: {text}" if where else text)
        else:
            parts.append(str(issue))
    return "; ".join(p for p in parts if p)


@dataclass(frozen=True)
class UploadSlot:
    """`POST /uploads`: the file's id, and the signed URL to PUT its bytes to."""

    input_file_id: str
    upload_url: str


@dataclass(frozen=True)
class Created:
    """`POST /projects`: the new project, and the task of its first separation."""

    project_id: str
    task_id: str


@dataclass(frozen=True)
class Quote:
    """`POST /projects/quote`: what one separation costs, and the balance it would draw on
    (None when the answer does not say)."""

    credits: int
    balance: int | None
    sufficient: bool | None


def _non_empty(data: Mapping[str, Any], *fields: str) -> str:
    for field in fields:
        value = data.get(field)
        if isinstance(value, str) and value:
            return value
    raise ValueError(f"the answer holds no {fields[0]}")


def parse_upload_slot(data: object) -> UploadSlot:
    """An `UploadSlot` from the answer of `POST /uploads`."""
    if not isinstance(data, Mapping):
        raise ValueError("the answer is not a JSON object")
    return UploadSlot(_non_empty(data, "inputFileId", "id"), _non_empty(data, "uploadUrl", "url"))


def parse_created(data: object) -> Created:
    """A `Created` from the answer of `POST /projects` (`projectId`, `taskId`)."""
    if not isinstance(data, Mapping):
        raise ValueError("the answer is not a JSON object")
    task_id = task_id_of(data)
    if not task_id:
        raise ValueError("the answer holds no taskId")
    return Created(_non_empty(data, "projectId"), task_id)


def parse_quote(data: object) -> Quote:
    """A `Quote` from the answer of `POST /projects/quote`: `creditsRequired` a number >= 0."""
    if not isinstance(data, Mapping):
        raise ValueError("the answer is not a JSON object")
    credits = _number_or_none(data.get("creditsRequired"))
    if credits is None or credits < 0:
        raise ValueError("the answer holds no creditsRequired")
    balance = _number_or_none(data.get("availableBalance"))
    sufficient = data.get("sufficientBalance")
    return Quote(
        credits=int(-(-credits // 1)),  # a fraction of a credit counts as one
        balance=None if balance is None else int(balance),
        sufficient=sufficient if isinstance(sufficient, bool) else None,
    )
