# A little over 400 lines, on purpose: the state diagram, the decision table and the failure
# table are the documentation of the policy, and are read with the code they describe (the
# tests check them row by row).
"""What to do next for one job, and what a failure within a run does to it (pure: no I/O).

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
(`may_resubmit`).

When a step fails within a run, `on_failure` says which status the job ends the run with
and what the state store is told; the reason the summary gives is next to each row of
`FAILURES` (`fault_of` tells which failure an error is):

| step      | failure                          | status          | the state is told       |
|-----------|----------------------------------|-----------------|-------------------------|
| read      | a retryable API error            | pending         | nothing                 |
| read      | any other API error              | skipped         | mark_skipped            |
| read      | over the ceiling, or no price    | not_started     | nothing                 |
| reconcile | the task history not read        | submitting      | nothing                 |
| reconcile | its task cannot be told apart    | needs_attention | mark_needs_attention    |
| submit    | a retryable API error            | submitting      | record_error (same key) |
| submit    | too few credits (402)            | not_started     | mark_unsent (2)         |
| submit    | any other API error              | failed          | mark_finished           |
| poll      | an API error ends polling        | failed (1)      | mark_finished           |
| poll      | past `poll.timeout`              | timed_out       | mark_finished (task id) |
| poll      | the separation failed            | failed (1)      | mark_finished           |
| poll      | the separation was cancelled     | cancelled (1)   | mark_finished           |
| fetch     | an API error reading the project | download_failed | mark_download_failed    |
| fetch     | no stems of the model listed     | stranded        | mark_download_failed    |
| fetch     | the stem URLs kept expiring      | download_failed | mark_download_failed    |
| fetch     | a file not fetched or written    | download_failed | mark_download_failed    |
| upload    | a retryable error (POST or PUT)  | pending         | nothing (same key)      |
| upload    | the file refused, for good       | failed          | mark_song_failed        |
| create    | over the ceiling, or no price    | not_started     | nothing                 |
| create    | a retryable API error            | submitting      | nothing (same key)      |
| create    | too few credits (402)            | not_started     | mark_unsent (2)         |
| create    | any other API error              | failed          | mark_song_failed        |
| any       | any other stemsweep error        | as recorded     | nothing (`UNEXPECTED`)  |

(1) submitted again within the run while `retries.tasks` allows it (`may_resubmit`).
(2) the API started nothing: the reservation is released, and the next run submits the
    next attempt, under a new key (an API may remember the refusal under the old one).

`not_started` is no recorded status: the job keeps the row it had (or none), and the next
run submits it, once the ceiling or the balance allows. Once a job ends `not_started` for
the ceiling or for too few credits, every later submission of the run does too, without a
request (`Budget` in `orchestrator.budget`).

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

A key the API rejects (`CredentialsError`), an API that answered nothing for long
(`ApiUnavailableError`) or a state that cannot be written (`StateError`) is no job's
failure: the run stops.
Every row leaves a state the next run resumes from without paying twice: nothing recorded
before the key means a fresh start; `submitting` is reconciled before its key is re-sent;
a task id kept means polling the same task again; `download_failed` downloads again, never
separates; `stranded` and `needs_attention` wait for the user's `retry`.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Generic, Protocol, TypeVar

from orchestrator.errors import (
    ApiError,
    CredentialsError,
    DownloadError,
    ExpiredUrlError,
    InsufficientCreditsError,
    RetryableApiError,
    RetryableDownloadError,
    StemsweepError,
)


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


class Outcome(StrEnum):
    """How a job may end a run without a recorded status of its own."""

    NOT_STARTED = "not_started"  # the ceiling, or too few credits: nothing was submitted


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


def may_resubmit(resubmits_so_far: int, task_retries: int) -> bool:
    """Whether a separation that failed in this run is submitted again (`retries.tasks`)."""
    return resubmits_so_far < task_retries


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


# --- failures within a run ------------------------------------------------------------


class Step(StrEnum):
    """Where on its way a job failed."""

    READ = "read"  # reading the project, before the key is committed
    RECONCILE = "reconcile"  # finding the task of a key whose answer was lost
    SUBMIT = "submit"  # the POST that carries the committed key
    UPLOAD = "upload"  # a song's bytes: announced, then PUT to the signed URL
    CREATE = "create"  # a project made from a song: its first separation
    POLL = "poll"  # waiting for the task to end
    FETCH = "fetch"  # after the separation: the project read again, its files received


class Fault(StrEnum):
    """What went wrong, as far as the failure policy is concerned."""

    UNSURE = "unsure"  # a retryable API error, after the client's retries: it may have worked
    REFUSED = "refused"  # any other API error: the API said no, for good
    TIMED_OUT = "timed_out"  # our poll deadline passed; the task may still end well
    SEPARATION_FAILED = "separation_failed"  # the server's verdict (failed, timed-out)
    SEPARATION_CANCELLED = "separation_cancelled"
    AMBIGUOUS = "ambiguous"  # the task of a lost answer cannot be told apart (`reconcile`)
    NO_STEMS = "no_stems"  # the project lists no stems of the job's model
    URLS_EXPIRED = "urls_expired"  # every project read gave URLs the storage host refused
    FILES = "files"  # a file could not be fetched, verified or written
    NO_CREDITS = "no_credits"  # the API said the account has too few credits (402)
    OVER_BUDGET = "over_budget"  # the ceiling: `limits.max_credits` would be passed, or no price
    OTHER = "other"  # any other stemsweep error


class Record(StrEnum):
    """What the state store is told about a failed job."""

    NOTHING = "nothing"
    SKIPPED = "mark_skipped"  # no key was sent
    ERROR = "record_error"  # the status stays: the next run repeats the step, same key
    FINISHED = "mark_finished"  # the attempt is over, with the status
    DOWNLOAD_FAILED = "mark_download_failed"  # with the status (download_failed, stranded)
    NEEDS_ATTENTION = "mark_needs_attention"
    UNSENT = "mark_unsent"  # nothing started: the reservation released, the next attempt next
    SONG_FAILED = "mark_song_failed"  # the song is refused for good (`retry` uploads it again)


@dataclass(frozen=True)
class Consequence:
    """What a failure does to a job: the status it ends the run with (None: as recorded),
    what the state is told, and why, as a template of the failure's facts (`explain`).

    `stored` is what the state records as the job's error when it is not the reason itself;
    `resubmit`: the separation may be submitted again within the run (`retries.tasks`).
    """

    status: Status | Outcome | None
    record: Record
    reason: str
    stored: str | None = None
    resubmit: bool = False

    def explain(self, **facts: object) -> str:
        """The reason, with `facts` (error, task, timeout, model, rounds) filled in."""
        return self.reason.format_map(facts)

    def stored_error(self, **facts: object) -> str:
        """What the state records as the job's error."""
        return (self.stored or self.reason).format_map(facts)


_READ = "project could not be read: {error}"
_BUDGET = "budget: {error}"
_SONG = "song {song}: {error}"
_HISTORY = "the project's task history could not be read (the next run tries again): {error}"
STRANDED_REASON = (
    "the project lists no stems of {model} (replaced by a later separation?): "
    "`stemsweep retry` separates it again, a new separation that costs credits"
)
_SEPARATION = "separation {error}"
_POLL = "task {task} could not be polled: {error}"
FAILURES: Mapping[tuple[Step, Fault], Consequence] = {
    (Step.READ, Fault.UNSURE): Consequence(Status.PENDING, Record.NOTHING, _READ),
    (Step.READ, Fault.REFUSED): Consequence(
        Status.SKIPPED, Record.SKIPPED, _READ, stored="{error}"
    ),
    (Step.RECONCILE, Fault.UNSURE): Consequence(Status.SUBMITTING, Record.NOTHING, _HISTORY),
    (Step.RECONCILE, Fault.REFUSED): Consequence(Status.SUBMITTING, Record.NOTHING, _HISTORY),
    (Step.RECONCILE, Fault.AMBIGUOUS): Consequence(
        Status.NEEDS_ATTENTION, Record.NEEDS_ATTENTION, "{error}"
    ),
    (Step.SUBMIT, Fault.UNSURE): Consequence(
        Status.SUBMITTING,
        Record.ERROR,
        "submission not confirmed, the next run finds its task or re-sends the same key: {error}",
    ),
    (Step.SUBMIT, Fault.REFUSED): Consequence(
        Status.FAILED, Record.FINISHED, "submission refused: {error}"
    ),
    (Step.READ, Fault.OVER_BUDGET): Consequence(Outcome.NOT_STARTED, Record.NOTHING, _BUDGET),
    (Step.SUBMIT, Fault.OVER_BUDGET): Consequence(Outcome.NOT_STARTED, Record.NOTHING, _BUDGET),
    (Step.SUBMIT, Fault.NO_CREDITS): Consequence(Outcome.NOT_STARTED, Record.UNSENT, _BUDGET),
    (Step.UPLOAD, Fault.UNSURE): Consequence(
        Status.PENDING, Record.NOTHING, _SONG + " (the next run sends it again)"
    ),
    (Step.UPLOAD, Fault.REFUSED): Consequence(Status.FAILED, Record.SONG_FAILED, _SONG),
    (Step.UPLOAD, Fault.FILES): Consequence(Status.FAILED, Record.SONG_FAILED, _SONG),
    (Step.CREATE, Fault.OVER_BUDGET): Consequence(Outcome.NOT_STARTED, Record.NOTHING, _BUDGET),
    (Step.CREATE, Fault.NO_CREDITS): Consequence(Outcome.NOT_STARTED, Record.UNSENT, _BUDGET),
    (Step.CREATE, Fault.UNSURE): Consequence(
        Status.SUBMITTING,
        Record.NOTHING,
        _SONG + " (creation not confirmed, the next run re-sends the same key)",
    ),
    (Step.CREATE, Fault.REFUSED): Consequence(Status.FAILED, Record.SONG_FAILED, _SONG),
    (Step.POLL, Fault.UNSURE): Consequence(Status.FAILED, Record.FINISHED, _POLL, resubmit=True),
    (Step.POLL, Fault.REFUSED): Consequence(Status.FAILED, Record.FINISHED, _POLL, resubmit=True),
    (Step.POLL, Fault.TIMED_OUT): Consequence(
        Status.TIMED_OUT,
        Record.FINISHED,
        "task {task} not finished after {timeout:g}s (the next run resumes polling it)",
    ),
    (Step.POLL, Fault.SEPARATION_FAILED): Consequence(
        Status.FAILED, Record.FINISHED, _SEPARATION, resubmit=True
    ),
    (Step.POLL, Fault.SEPARATION_CANCELLED): Consequence(
        Status.CANCELLED, Record.FINISHED, _SEPARATION, resubmit=True
    ),
    (Step.FETCH, Fault.UNSURE): Consequence(Status.DOWNLOAD_FAILED, Record.DOWNLOAD_FAILED, _READ),
    (Step.FETCH, Fault.REFUSED): Consequence(Status.DOWNLOAD_FAILED, Record.DOWNLOAD_FAILED, _READ),
    (Step.FETCH, Fault.NO_STEMS): Consequence(
        Status.STRANDED, Record.DOWNLOAD_FAILED, STRANDED_REASON
    ),
    (Step.FETCH, Fault.URLS_EXPIRED): Consequence(
        Status.DOWNLOAD_FAILED,
        Record.DOWNLOAD_FAILED,
        "stem URLs kept expiring after {rounds} project reads: {error}",
    ),
    (Step.FETCH, Fault.FILES): Consequence(
        Status.DOWNLOAD_FAILED, Record.DOWNLOAD_FAILED, "{error}"
    ),
}
UNEXPECTED = Consequence(None, Record.NOTHING, "{error}")
"""Any other stemsweep error, at any step: the job keeps its recorded status."""


def on_failure(step: Step, fault: Fault) -> Consequence:
    """What `fault` at `step` does to a job (the table in the module docstring)."""
    return FAILURES.get((step, fault), UNEXPECTED)


def fault_of(error: StemsweepError) -> Fault:
    """The failure an error is, for `on_failure`. A `CredentialsError` is none: it stops
    the run, and raises `ValueError` here."""
    if isinstance(error, CredentialsError):
        raise ValueError("a rejected key stops the run; it is no job's failure")
    if isinstance(error, RetryableApiError):
        return Fault.UNSURE
    if isinstance(error, InsufficientCreditsError):
        return Fault.NO_CREDITS
    if isinstance(error, ApiError):
        return Fault.REFUSED
    if isinstance(error, DownloadError):
        return Fault.FILES
    return Fault.OTHER


def upload_fault(error: StemsweepError) -> Fault:
    """The failure an error of a song's upload is: a file error worth retrying (a 5xx, a
    dropped connection, a URL that kept expiring) is unsure, like a retryable API error."""
    if isinstance(error, RetryableDownloadError | ExpiredUrlError):
        return Fault.UNSURE
    return fault_of(error)


def separation_fault(task_status: str) -> Fault:
    """The failure a separation that ended without success is: cancelled, or failed."""
    return Fault.SEPARATION_CANCELLED if task_status == "cancelled" else Fault.SEPARATION_FAILED


def reported_again(status: Status, error: str | None) -> str:
    """Why a job that failed in an earlier run is listed again (not retried): `stranded`
    and `needs_attention` ones say what to do in their own reason."""
    reason = error or f"{status} in an earlier run"
    if status in (Status.STRANDED, Status.NEEDS_ATTENTION):
        return reason
    return f"{reason} (use `stemsweep retry`)"
