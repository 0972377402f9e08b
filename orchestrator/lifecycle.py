"""What to do next for one job, or one song, from what the state records (pure: no I/O).

A job is one (project, model) pair. Its recorded status moves like this:

    (no row) ──> submitting ──> submitted ──> succeeded ──> done
                 key committed   task id       separation      every wanted file
                 before the      known         ok, download    downloaded and
                 POST is sent                  pending         recorded
                     │               │              │
                     │               ├─> failed / cancelled    (the server's verdict)
                     │               ├─> timed_out             (our poll deadline; task id kept)
                     │               │                          └─> resume polling the same task
                     │               │                                                  │
                     ├─> failed      (the server refused the POST for good)             │
                     │                                              succeeded <─────────┘
                     └─> (crash, or the answer lost) the next run reconciles (`reconcile`):
                           within `idempotency_window` of the key: re-POST with the SAME
                             key, and the API answers with the task of the first POST;
                           past it: read the project's task history, and re-send when no
                             task was started, adopt the one task it started (-> submitted),
                             or ──> needs_attention: nothing is sent until the user says so
                                    (`retry --resend PROJECT:MODEL` re-sends the same key)
    (no row) ──> skipped      the project could not be read (e.g. not found): no key was
                              sent, no credit spent
    succeeded ──> download_failed ──> (next run or retry) download again, never separate again
    succeeded ──> stranded    the project no longer lists the model's stems (a later
                              separation replaced them): `run` reports it; `retry` separates
                              it again as attempt + 1 (a new separation, which costs credits)

`decide` maps (recorded row, files intact?, mode) to an `Action`:

| recorded status          | `run`                       | `retry`                         |
|--------------------------|-----------------------------|---------------------------------|
| none, `pending`          | submit (attempt 1 / as is)  | same                            |
| `skipped`                | report failed               | submit (same attempt: unused)   |
| `submitting`             | reconcile (1)               | same                            |
| `submitted`, `timed_out` | resume polling the task     | same                            |
| `succeeded`              | download only               | same                            |
| `download_failed`        | download only               | same                            |
| `stranded`               | report: use `retry`         | submit attempt + 1 (a new key)  |
| `done`, files intact     | skip                        | skip                            |
| `done`, files damaged    | download only               | same                            |
| `failed`, `cancelled`    | report failed               | submit attempt + 1 (a new key)  |
| `needs_attention`        | report: what to check       | same; `--resend`: the same key  |

(1) find the task the key started (`reconcile`), then re-send the same key, poll that
task, or ask the user (`needs_attention`). A task carries no model, key or time, so it is
identified only as the one task of the project the tree has never seen, for the project's
one unconfirmed submission; a task started elsewhere looks the same (what the contract
leaves open: `reconcile`'s docstring, README "Idempotency keys").

After a successful separation, `select_stems` picks the files to fetch.

Downloads cost no credits, so both modes repeat them; separations do, so only `retry`
starts a new one for a job whose separation failed or whose stems are gone, and only the
user's `--resend` re-sends a key whose task could not be told apart. Within one run,
`retries.tasks` allows that many automatic re-submissions of a failed separation
(`failures.may_resubmit`).

A song (a file of a sweep's `songs`) becomes a project before its jobs can run: it is
uploaded (`POST /uploads`, then the PUT of its bytes), then created (`POST /projects` with
its first model: that creation's task is the job of that model, polled and downloaded like
any other). `decide_song` maps the song's recorded status to its next step:

| song status     | `run`                                   | `retry`                     |
|-----------------|-----------------------------------------|-----------------------------|
| none            | upload (attempt 1), then create         | same                        |
| uploading       | upload with the same key (a fresh URL)  | same                        |
|                 | (3)                                     |                             |
| uploaded        | create (a new key)                      | same                        |
| creating        | create with the same key (4)            | same; past the window,      |
|                 |                                         | `--resend`: the same key    |
| created         | none: its jobs are the project's (5)    | same                        |
| failed          | report failed                           | upload, attempt + 1         |
| needs_attention | report: what to check                   | same; `--resend`: create    |
|                 |                                         | with the same key           |

(3) at any age of the key: an upload is charged nothing and makes no project, so past the
    API's memory of keys the worst a re-sent key does is a second file id, the first one
    left unused.
(4) within `idempotency_window` of the creation's key (`reconcile.reconcile_creation`); past
    it the API may have forgotten the key, and no documented endpoint lists an account's
    projects, so a lost creation cannot be told apart: the song is `needs_attention`, and
    nothing is sent until `retry --resend FOLDER:MODEL` names its creation's job.
(5) a song rebuilt from job.json files without its creation's (`state_rebuild`): the job of
    its first model, when it has no row, is reported `needs_attention` (it may be the
    creation's, already separated and charged) until `retry --resend PROJECT:MODEL` names it.

What a failure within a run does to a job (the status it ends the run with, what the state
is told, the reason the summary gives) is the table of `orchestrator.failures`.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Generic, Protocol, TypeVar


class Status(StrEnum):
    """A job's recorded status (the `jobs.status` column)."""

    PENDING = "pending"
    SUBMITTING = "submitting"
    SUBMITTED = "submitted"
    SUCCEEDED = "succeeded"
    DONE = "done"
    DOWNLOAD_FAILED = "download_failed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    TIMED_OUT = "timed_out"
    SKIPPED = "skipped"
    STRANDED = "stranded"  # separated, but the project no longer lists the model's stems
    NEEDS_ATTENTION = "needs_attention"  # a lost answer whose task cannot be told apart


class SongStatus(StrEnum):
    """A song's recorded status (the `songs.status` column)."""

    UPLOADING = "uploading"  # the upload's key committed; its file id, once answered
    UPLOADED = "uploaded"  # the bytes are stored
    CREATING = "creating"  # the creation's key (and its reservation) committed
    CREATED = "created"  # its project and first task are known
    FAILED = "failed"  # refused for good (the file, or its creation)
    NEEDS_ATTENTION = "needs_attention"  # a lost creation past the window: the user decides


class SongStep(StrEnum):
    UPLOAD = "upload"  # announce (with the recorded key, if any) and PUT, then create
    CREATE = "create"  # create (with the recorded key, if any)
    READY = "ready"  # the project exists: nothing left to do for the song itself
    REPORT_FAILED = "report_failed"


def decide_song(
    status: SongStatus | None, attempt: int, *, mode: Mode, resend: bool = False
) -> tuple[SongStep, int]:
    """A song's next step and the attempt it belongs to (the song table above); `resend`:
    the user named its creation's job with `retry --resend`."""
    if status is None or status is SongStatus.UPLOADING:
        return SongStep.UPLOAD, attempt
    if status in (SongStatus.UPLOADED, SongStatus.CREATING):
        return SongStep.CREATE, attempt
    if status is SongStatus.CREATED:
        return SongStep.READY, attempt
    if status is SongStatus.NEEDS_ATTENTION:
        if resend and mode is Mode.RETRY:
            return SongStep.CREATE, attempt
        return SongStep.REPORT_FAILED, attempt
    if mode is Mode.RETRY:
        return SongStep.UPLOAD, attempt + 1
    return SongStep.REPORT_FAILED, attempt


class Mode(StrEnum):
    """`run` finishes what is unfinished; `retry` also gives failed separations another go."""

    RUN = "run"
    RETRY = "retry"


class Action(StrEnum):
    SKIP_DONE = "skip_done"
    SUBMIT = "submit"
    CREATE = "create"  # a song's upload and creation: its project's first separation
    RECONCILE = "reconcile"  # a key whose answer was lost: find its task, then go on
    RESUBMIT_SAME_KEY = "resubmit_same_key"
    RESUME_POLL = "resume_poll"
    DOWNLOAD_ONLY = "download_only"
    REPORT_FAILED = "report_failed"


@dataclass(frozen=True)
class Recorded:
    """The part of a job's state row that decisions depend on."""

    status: Status
    attempt: int
    key: str | None = None
    task_id: str | None = None


@dataclass(frozen=True)
class Decision:
    """The next action for a job; `attempt` is the attempt that action belongs to."""

    action: Action
    attempt: int

    @property
    def separates(self) -> bool:
        """Whether the action has (or may have) a separation in flight on the server."""
        return self.action in (
            Action.SUBMIT,
            Action.RECONCILE,
            Action.RESUBMIT_SAME_KEY,
            Action.RESUME_POLL,
            Action.CREATE,
        )

    @property
    def needs_slots(self) -> bool:
        """Whether the action does API work for the job (and so takes scheduling slots)."""
        return self.action not in (Action.SKIP_DONE, Action.REPORT_FAILED)


def decide(
    recorded: Recorded | None, *, files_ok: bool, mode: Mode, resend: bool = False
) -> Decision:
    """The next action for a job; `files_ok`: every recorded file exists with its digest;
    `resend`: the user asked to re-send this job's key (`retry --resend`)."""
    if recorded is None:
        return Decision(Action.SUBMIT, 1)
    status, attempt = recorded.status, recorded.attempt
    if status is Status.PENDING:
        return Decision(Action.SUBMIT, attempt)
    if status in (Status.SUBMITTING, Status.SUBMITTED, Status.TIMED_OUT) and not recorded.key:
        return Decision(Action.SUBMIT, attempt)  # cannot happen: the key comes first
    if status is Status.SUBMITTING or (
        status in (Status.SUBMITTED, Status.TIMED_OUT) and recorded.task_id is None
    ):  # (the second cannot happen: the task id is written with the status)
        return Decision(Action.RECONCILE, attempt)
    if status in (Status.SUBMITTED, Status.TIMED_OUT):
        return Decision(Action.RESUME_POLL, attempt)
    if status is Status.NEEDS_ATTENTION:
        if resend and mode is Mode.RETRY and recorded.key:
            return Decision(Action.RESUBMIT_SAME_KEY, attempt)
        return Decision(Action.REPORT_FAILED, attempt)
    if status is Status.STRANDED:
        if mode is Mode.RETRY:
            return Decision(Action.SUBMIT, attempt + 1)
        return Decision(Action.REPORT_FAILED, attempt)
    if status in (Status.SUCCEEDED, Status.DOWNLOAD_FAILED):
        return Decision(Action.DOWNLOAD_ONLY, attempt)
    if status is Status.DONE:
        return Decision(Action.SKIP_DONE if files_ok else Action.DOWNLOAD_ONLY, attempt)
    if status is Status.SKIPPED:
        if mode is Mode.RETRY:
            return Decision(Action.SUBMIT, attempt)
        return Decision(Action.REPORT_FAILED, attempt)
    # FAILED, CANCELLED: the server ran (or refused) this attempt's separation.
    if mode is Mode.RETRY:
        return Decision(Action.SUBMIT, attempt + 1)
    return Decision(Action.REPORT_FAILED, attempt)


class StemLike(Protocol):
    """What stem selection reads of a project's stem."""

    @property
    def id(self) -> str: ...
    @property
    def type(self) -> str: ...
    @property
    def model(self) -> str | None: ...


S = TypeVar("S", bound=StemLike)
ORIGINAL = "original"  # the stem type of the project's own audio


@dataclass(frozen=True)
class Selection(Generic[S]):
    """The stems to download for a job, and the wanted types it cannot have."""

    chosen: tuple[S, ...]  # one per wanted type, in the order of `wanted`
    missing: tuple[str, ...]  # wanted types the model did not deliver
    unsafe: tuple[str, ...]  # the model's stem types that are not safe as file names
    delivered: int  # how many stems the project lists for the model at all


def select_stems(
    stems: Sequence[S],
    *,
    model: str,
    wanted: Sequence[str],
    known_ids: Collection[str],
    is_safe: Callable[[str], bool],
) -> Selection[S]:
    """Pick a job's stems from a project's `stems[]`, by model and type, never by position.

    Only stems whose `model` is the job's model count. When `stems[]` accumulates, several
    sets of that model may be listed: the stems that appeared after the job's submission
    (ids not in `known_ids`, the model's stem ids read before submitting) win, and among
    equals the one listed last. When `stems[]` was replaced, every id is new and the rule
    takes what is there. A type that is not a safe file name is never chosen; it is
    reported in `unsafe`. The `original` type is the project's own upload, listed without a
    model, unless the model lists an original of its own.
    """
    mine = [s for s in stems if s.model == model]
    best: dict[str, S] = {}
    for stem in mine:
        current = best.get(stem.type)
        if current is None or (stem.id not in known_ids) >= (current.id not in known_ids):
            best[stem.type] = stem
    if ORIGINAL not in best:
        uploads = [s for s in stems if s.model is None and s.type == ORIGINAL]
        if uploads:
            best[ORIGINAL] = uploads[-1]
    unsafe = tuple(sorted({s.type for s in mine if not is_safe(s.type)}))
    chosen = tuple(best[t] for t in wanted if t in best and is_safe(t))
    missing = tuple(t for t in wanted if t not in best or not is_safe(t))
    return Selection(chosen=chosen, missing=missing, unsafe=unsafe, delivered=len(mine))


def reported_again(status: Status, error: str | None) -> str:
    """Why a job that failed in an earlier run is listed again (not retried): `stranded`
    and `needs_attention` ones say what to do in their own reason."""
    reason = error or f"{status} in an earlier run"
    if status in (Status.STRANDED, Status.NEEDS_ATTENTION):
        return reason
    return f"{reason} (use `stemsweep retry`)"
