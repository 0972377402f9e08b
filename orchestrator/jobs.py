"""Expand a manifest's sweeps into jobs; idempotency keys and shards (pure: no I/O).

A job is one separation: one project re-separated with one model. Sweeps expand to
*unique* (project, model) jobs, streamed one at a time so a 100,000-job manifest never
exists as a list. Every submission of a job carries an idempotency key computed here, from
nothing but the key scope, the job and the attempt number, so any process on any machine
computes the same key for the same submission.

`--shard I/N` splits the jobs among N processes or machines (`Shard`): each takes the jobs
of the projects that hash to it, so shards never overlap and together hold every job.
Keys do not depend on the shard: re-sharding a sweep never changes a job's key.

A song (an audio file of a sweep's `songs`) has no project id until it is created, so it
is named by the BLAKE3 digest of its bytes: `song_ref` (`b3.<hex>`) in its keys, and its
shard is the one that ref hashes to (`Shard.has_song`). Two files with the same bytes are
one song, in one shard; all the models of a song, like those of a project, run in one
shard. Its upload and its creation each carry a key of the scope, the digest and the
song's attempt only (`song_key`): never its path.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from orchestrator.errors import UsageError
from orchestrator.spec import Manifest

KEY_VERSION = "ss1"  # bump when the key format changes, so old and new keys never meet
MAX_KEY_LENGTH = 255  # Youka documents no limit; 255 is what Stripe-like APIs accept
KEY_COMPONENT_PATTERN = re.compile(r"[A-Za-z0-9._-]+")
_DIGEST_MARK = ":h"  # precedes the sha256 of a shortened key; `h` is never part of an attempt
_DIGEST_LENGTH = 64  # hex characters of a sha256


@dataclass(frozen=True, slots=True)
class JobId:
    """One job, one separation to run: `project` re-separated with `model`. The pair names
    the job everywhere: its state row, its idempotency keys, its folder."""

    project: str
    model: str


def iter_jobs(manifest: Manifest) -> Iterator[JobId]:
    """Yield each unique (project, model) job of the manifest once, in manifest order.

    Sweep by sweep; within a sweep, project-major (every model of the first project, then
    of the second...). A pair already produced, by an earlier sweep or earlier in the same
    sweep, is skipped. Jobs are produced lazily: memory grows with the number of distinct
    projects (a set per sweep), never with the number of jobs.
    """
    earlier: list[tuple[frozenset[str], frozenset[str]]] = []  # (projects, models) per sweep
    for sweep in manifest.sweeps:
        models = tuple(dict.fromkeys(sweep.models))
        seen_projects: set[str] = set()
        for project in sweep.projects:
            if project in seen_projects:
                continue
            seen_projects.add(project)
            for model in models:
                # A pair is a repeat exactly when one earlier sweep holds both its halves.
                if not any(project in ps and model in ms for ps, ms in earlier):
                    yield JobId(project, model)
        earlier.append((frozenset(seen_projects), frozenset(models)))


def count_jobs(manifest: Manifest, shard: Shard | None = None) -> int:
    """The number of jobs `iter_jobs` yields (those of `shard`), counted without keeping them."""
    return sum(1 for _ in select_shard(iter_jobs(manifest), shard))


def idempotency_key(scope: str, project: str, model: str, attempt: int) -> str:
    """The `Idempotency-Key` of one submission: `ss1:{scope}:{project}:{model}:{attempt}`.

    For example `idempotency_key("catalogue-compare", "prj_a", "mdx23c", 1)` is
    `ss1:catalogue-compare:prj_a:mdx23c:1`. `scope` is the manifest's resolved key scope
    (its name by default, `{date}` filled in), `attempt` counts submissions of the job from 1:
    a retry after a failed separation uses attempt + 1, a repeated request of the same
    submission reuses the same key.

    The key is a pure function of its inputs (no clock, no randomness, no `hash()`), so it
    is the same in every process and on every machine, and distinct inputs give distinct
    keys: no component may contain `:`, so the parts can be read back unambiguously.
    Keys are at most 255 characters of `[A-Za-z0-9._:-]`. A longer key is shortened to
    its first 189 characters followed by `:h` and the 64 hex digits of the sha256 of the
    full key; its last part starts with `h`, so it never equals an unshortened key, whose
    last part is the attempt number.

    Raises `ValueError` when a component is empty or has a character outside
    `[A-Za-z0-9._-]`, or when `attempt` is not an integer >= 1.
    """
    for label, component in (("scope", scope), ("project", project), ("model", model)):
        if not KEY_COMPONENT_PATTERN.fullmatch(component):
            raise ValueError(f"idempotency key {label} must match [A-Za-z0-9._-]+: {component!r}")
    if isinstance(attempt, bool) or not isinstance(attempt, int) or attempt < 1:
        raise ValueError(f"attempt must be an integer >= 1, not {attempt!r}")
    key = f"{KEY_VERSION}:{scope}:{project}:{model}:{attempt}"
    if len(key) <= MAX_KEY_LENGTH:
        return key
    digest = hashlib.sha256(key.encode("ascii")).hexdigest()
    keep = MAX_KEY_LENGTH - len(_DIGEST_MARK) - _DIGEST_LENGTH
    return f"{key[:keep]}{_DIGEST_MARK}{digest}"


SONG_REF_PREFIX = "b3."  # a project id never holds a dot: a song's ref is never a project's id
SONG_STEPS = ("upload", "create")


def song_ref(digest: str) -> str:
    """How a song is named before it has a project: `b3.` and the hex digest of its bytes."""
    return f"{SONG_REF_PREFIX}{digest}"


def song_key(scope: str, digest: str, step: str, attempt: int) -> str:
    """The `Idempotency-Key` of a song's `upload` or `create` request.

    `ss1:{scope}:b3.{digest}:{step}:{attempt}`: a pure function of the key scope, the
    BLAKE3 hex digest of the song's bytes and the song's attempt, so a crash, a renamed
    file or another machine gives the same key, and the API answers the same upload or
    project. It never equals a separation's key (a project id has no dot, and `upload` and
    `create` are no model's names). Shortened as `idempotency_key` shortens keys.
    """
    if step not in SONG_STEPS:
        raise ValueError(f"a song's step is one of {SONG_STEPS}, not {step!r}")
    return idempotency_key(scope, song_ref(digest), step, attempt)


def shard_of(project: str, shards: int) -> int:
    """The shard (0 to `shards` - 1) that runs every job of `project`.

    The first 8 bytes of sha256(`project`), big-endian, modulo `shards`: stable across
    processes and machines, and a project's shard depends on that project alone, so adding
    projects or models to a manifest never moves existing jobs to another shard.

    A shard takes whole projects, not single (project, model) jobs: `limits.per_project`
    can then hold across shards, which matters because a new separation may replace a
    project's `stems[]` while another job of that project is still downloading them.
    """
    if shards < 1:
        raise ValueError(f"the number of shards must be >= 1, not {shards}")
    digest = hashlib.sha256(project.encode()).digest()
    return int.from_bytes(digest[:8], "big") % shards


def in_shard(job: JobId, index: int, count: int) -> bool:
    """Whether `job` belongs to shard `index` (0-based) of `count`."""
    return shard_of(job.project, count) == index


@dataclass(frozen=True, slots=True)
class Shard:
    """Shard `index` (0-based) of `count`: the jobs of the projects `shard_of` gives it.

    `str(Shard(0, 4))` is `0/4`, as `--shard` spells it; `name` (`shard-0-of-4`) is what
    the shard's state and summary files are named after.
    """

    index: int
    count: int

    def __post_init__(self) -> None:
        if not 0 <= self.index < self.count:
            raise ValueError(f"shard index must be in [0, {self.count}), not {self.index}")

    @classmethod
    def parse(cls, text: str) -> Shard:
        """`Shard` from `I/N`; `UsageError` as in `parse_shard`."""
        return cls(*parse_shard(text))

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    @property
    def name(self) -> str:
        return f"shard-{self.index}-of-{self.count}"

    def __contains__(self, job: JobId) -> bool:
        return in_shard(job, self.index, self.count)

    def has_project(self, project: str) -> bool:
        """Whether the jobs of `project` are this shard's."""
        return shard_of(project, self.count) == self.index

    def has_song(self, digest: str) -> bool:
        """Whether the song with these bytes (its BLAKE3 hex digest) is this shard's, with
        every job of the project it becomes."""
        return shard_of(song_ref(digest), self.count) == self.index


def select_shard(jobs: Iterable[JobId], shard: Shard | None) -> Iterator[JobId]:
    """The jobs of `shard` among `jobs`, in their order (every job when `shard` is None)."""
    if shard is None:
        yield from jobs
    else:
        yield from (job for job in jobs if job in shard)


_SHARD_PATTERN = re.compile(r"\s*(\d{1,9})\s*/\s*(\d{1,9})\s*")


def parse_shard(text: str) -> tuple[int, int]:
    """`"I/N"` (as in `run --shard I/N`) -> `(I, N)`, with 0 <= I < N.

    I is 0-based, to match Kubernetes' `JOB_COMPLETION_INDEX`: `--shard 0/4` to
    `--shard 3/4` together run every job exactly once. Raises `UsageError` otherwise.
    """
    match = _SHARD_PATTERN.fullmatch(text)
    shown = text if len(text) <= 20 else text[:19] + "…"
    if not match:
        raise UsageError(f"--shard must be I/N, like 0/4 (shard I of N, 0-based), got {shown!r}")
    index, count = int(match[1]), int(match[2])
    if count < 1:
        raise UsageError(f"--shard {shown}: N must be at least 1")
    if index >= count:
        raise UsageError(
            f"--shard {shown}: I must be between 0 and {count - 1} "
            "(0-based, like Kubernetes' JOB_COMPLETION_INDEX)"
        )
    return index, count
