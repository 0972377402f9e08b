"""A validated manifest as frozen objects, their defaults, and the key scope's date (pure).

These objects are the contract the rest of the package relies on: `manifest.load_manifest`
builds them from a YAML file (the only module that knows the schema and pydantic); jobs,
backoff, scheduling, the engine and the runner read them. Durations are seconds, as floats
(`orchestrator.durations` reads them from YAML).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

StemType = Literal["original", "instrumental", "vocals", "backing_vocals"]
STEM_TYPES: tuple[StemType, ...] = ("original", "instrumental", "vocals", "backing_vocals")

DEFAULT_BASE_URL = "https://api.youka.io/api/v1"
DEFAULT_MAX_IN_FLIGHT = 8
DEFAULT_PER_PROJECT = 1
DEFAULT_REQUESTS_PER_SECOND = 5.0
DEFAULT_POLL_INITIAL = 3.0
DEFAULT_POLL_MAX = 60.0
DEFAULT_POLL_TIMEOUT = 30 * 60.0
DEFAULT_REQUEST_ATTEMPTS = 6
DEFAULT_TASK_RETRIES = 0
# Every type: the report needs the original mix for its residual and its ranking without
# references.
DEFAULT_TYPES: tuple[StemType, ...] = STEM_TYPES
DEFAULT_OUTPUT = "out/{name}"  # `{name}` is replaced by the manifest's name
DEFAULT_SIMULATOR_PROFILE = "default"
DEFAULT_SIMULATOR_SEED = 0
DEFAULT_SIMULATOR_TIME_SCALE = 1.0
DEFAULT_MAX_CREDITS: int | None = None  # no ceiling: no quote is asked for
DATE_PLACEHOLDER = "{date}"
DEFAULT_IDEMPOTENCY_WINDOW = 24 * 3600.0
"""How long the API is assumed to remember an idempotency key (Youka documents none; Stripe
keeps keys 24 hours): within it a lost answer is resolved by re-sending the key."""


@dataclass(frozen=True)
class SimulatorSpec:
    """Run against an in-process simulator instead of the real API."""

    profile: str = DEFAULT_SIMULATOR_PROFILE
    seed: int = DEFAULT_SIMULATOR_SEED
    time_scale: float = DEFAULT_SIMULATOR_TIME_SCALE


@dataclass(frozen=True)
class ApiSpec:
    """Where the API is: `base_url` (no trailing slash), or an in-process simulator."""

    base_url: str = DEFAULT_BASE_URL
    simulator: SimulatorSpec | None = None


@dataclass(frozen=True)
class Limits:
    """Concurrency and pacing caps that hold at every instant of a run.

    `per_model` maps a model name to its own cap (a read-only mapping; models not named
    there have none beyond `max_in_flight`).
    """

    max_in_flight: int = DEFAULT_MAX_IN_FLIGHT
    per_project: int = DEFAULT_PER_PROJECT
    per_model: Mapping[str, int] = field(default_factory=dict)
    requests_per_second: float = DEFAULT_REQUESTS_PER_SECOND
    max_credits: int | None = DEFAULT_MAX_CREDITS  # a ceiling on what one output tree spends


@dataclass(frozen=True)
class PollSpec:
    """Seconds, as floats."""

    initial: float = DEFAULT_POLL_INITIAL
    max: float = DEFAULT_POLL_MAX
    timeout: float = DEFAULT_POLL_TIMEOUT


@dataclass(frozen=True)
class RetrySpec:
    """`requests`: attempts per HTTP call (>= 1); `tasks`: automatic re-submissions of a
    failed separation (>= 0), each with a new idempotency key."""

    requests: int = DEFAULT_REQUEST_ATTEMPTS
    tasks: int = DEFAULT_TASK_RETRIES


@dataclass(frozen=True)
class SongFile:
    """An audio file a sweep lists, as its header reads: `path` (joined to the manifest's
    folder), `format` (wav, flac, mp3, ogg, m4a, aac, aiff) and the `content_type` it is
    uploaded with, its `size` in bytes, its decoded `duration` in seconds, and the `title`
    its project gets (from the file's tags, else its file name)."""

    path: Path
    format: str
    content_type: str
    size: int
    duration: float
    title: str


@dataclass(frozen=True)
class Sweep:
    """One sweep: project ids (read from `projects_file` when given there) and song files,
    x models.

    `load_manifest` drops repeated ids, files and models, keeping the first of each, so the
    tuples hold distinct values in manifest order. `projects_file` is the file the ids were
    read from (already joined to the manifest's folder), or None when they were listed inline.
    A sweep may hold songs only (`projects` empty), projects only, or both.
    """

    projects: tuple[str, ...]
    models: tuple[str, ...]
    projects_file: Path | None = None
    songs: tuple[SongFile, ...] = ()


@dataclass(frozen=True)
class Manifest:
    """A validated manifest. `download_types` are the stem types to save, in order."""

    path: Path  # the manifest file; `projects_file` and `references` are relative to its folder
    # `output` is relative to the current directory, like any command-line output path
    version: int
    name: str
    api: ApiSpec
    output: Path
    key_scope: str  # template; may contain {date}
    limits: Limits
    poll: PollSpec
    retries: RetrySpec
    download_types: tuple[str, ...]
    sweeps: tuple[Sweep, ...]
    references: Path | None = None  # already joined to the manifest's folder
    idempotency_window: float = DEFAULT_IDEMPOTENCY_WINDOW  # seconds


def resolve_key_scope(template: str, now: datetime) -> str:
    """Fill `{date}` in a key scope with the UTC date of `now` as YYYY-MM-DD.

    `now` must be timezone-aware (the run's start time); a naive datetime raises
    `ValueError`, since its date would depend on the machine's time zone. A template without
    `{date}` is returned unchanged.
    """
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("resolve_key_scope needs a timezone-aware datetime")
    return template.replace(DATE_PLACEHOLDER, now.astimezone(UTC).strftime("%Y-%m-%d"))
