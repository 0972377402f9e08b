"""Parse and validate a job manifest into frozen objects (pure: no network).

The objects below are the contract the rest of the package relies on.
`load_manifest` raises `ManifestError` naming the file, the field path and what is allowed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_BASE_URL = "https://api.youka.io/api/v1"
DEFAULT_MAX_IN_FLIGHT = 8
DEFAULT_PER_PROJECT = 1
DEFAULT_REQUESTS_PER_SECOND = 5.0
DEFAULT_POLL_INITIAL = 3.0
DEFAULT_POLL_MAX = 60.0
DEFAULT_POLL_TIMEOUT = 30 * 60.0
DEFAULT_REQUEST_ATTEMPTS = 6
DEFAULT_TASK_RETRIES = 0
DEFAULT_TYPES = ("instrumental", "vocals", "backing_vocals")  # every type but original


@dataclass(frozen=True)
class SimulatorSpec:
    """Run against an in-process simulator instead of the real API."""

    profile: str = "default"
    seed: int = 0
    time_scale: float = 1.0


@dataclass(frozen=True)
class ApiSpec:
    base_url: str = DEFAULT_BASE_URL
    simulator: SimulatorSpec | None = None


@dataclass(frozen=True)
class Limits:
    max_in_flight: int = DEFAULT_MAX_IN_FLIGHT
    per_project: int = DEFAULT_PER_PROJECT
    per_model: Mapping[str, int] = field(default_factory=dict)
    requests_per_second: float = DEFAULT_REQUESTS_PER_SECOND


@dataclass(frozen=True)
class PollSpec:
    """Seconds, as floats."""

    initial: float = DEFAULT_POLL_INITIAL
    max: float = DEFAULT_POLL_MAX
    timeout: float = DEFAULT_POLL_TIMEOUT


@dataclass(frozen=True)
class RetrySpec:
    requests: int = DEFAULT_REQUEST_ATTEMPTS
    tasks: int = DEFAULT_TASK_RETRIES


@dataclass(frozen=True)
class Sweep:
    """One sweep: project ids (read from `projects_file` when given there) x models."""

    projects: tuple[str, ...]
    models: tuple[str, ...]


@dataclass(frozen=True)
class Manifest:
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
    references: Path | None = None


def load_manifest(path: Path) -> Manifest:
    """Read, validate and freeze a manifest; raise `ManifestError` on any problem."""
    raise NotImplementedError
