"""Simulator profiles: a shipped profile by name, or any YAML file, into a frozen `Profile`.

A profile says how the simulated Youka account behaves: how many projects it has, how long
each model's separation takes, whether `stems[]` accumulates or is replaced, its limits, and
which faults it injects at which rate. Every field has a default (the `DEFAULT_*` constants);
a YAML file names only what it changes. Unknown keys are refused, so a typo never silently
turns a fault off.

The shipped profiles (`default`, `chaos`, `bench`) are package data in
`orchestrator/simulator/profiles/`, read with `importlib.resources` so that a name works
wherever stemsweep is installed; `configs/simulator/` in the source tree holds copies.

Durations are simulated seconds (`--time-scale` compresses them); YAML writes them as a
manifest does (`orchestrator.durations`: `500ms`, `3s`, `1.5m`, `1m30s`, `1h`, `0`, or a
number of seconds). The `Retry-After` values and the slow-body pause are real seconds: they
are what a client actually waits.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any, Literal

import yaml

from orchestrator.durations import parse_duration
from orchestrator.simulator.models import MODELS

# The shipped profiles, NAME.yaml each.
PROFILES: Traversable = files("orchestrator.simulator") / "profiles"


# How long one separation stays `in-progress`, per model, in simulated seconds. Plausible
# cloud figures for a three-to-four minute song: the heavier the model, the longer.
DEFAULT_DURATIONS: dict[str, float] = {
    "mdx23c": 60.0,
    "audioshakeai": 120.0,
    "audioshake_vocals_lead": 90.0,
    "musicai_instrumental_only": 75.0,
    "musicai_lead_backing_other": 150.0,
    "musicai_with_backing_vocals": 100.0,
    "musicai_without_backing_vocals": 90.0,
    "uvr_mdxnet_kara_2": 45.0,
    "bs_roformer": 180.0,
    "mel_band_roformer_instrumental_becruily": 150.0,
    "mel_band_roformer_instrumental_instv7_gabox": 150.0,
    "demucs": 240.0,
}

# What one minute of song costs with each model, as a factor of `credits_per_minute`: the
# commercial models (AudioShake, Music.ai) cost more than the open ones. An assumption: Youka
# publishes no price list; its quote endpoint is the only source of truth.
DEFAULT_CREDIT_MULTIPLIERS: dict[str, float] = {
    "mdx23c": 1.0,
    "audioshakeai": 2.0,
    "audioshake_vocals_lead": 2.0,
    "musicai_instrumental_only": 1.5,
    "musicai_lead_backing_other": 1.5,
    "musicai_with_backing_vocals": 1.5,
    "musicai_without_backing_vocals": 1.5,
    "uvr_mdxnet_kara_2": 1.0,
    "bs_roformer": 1.0,
    "mel_band_roformer_instrumental_becruily": 1.0,
    "mel_band_roformer_instrumental_instv7_gabox": 1.0,
    "demucs": 1.0,
}

DEFAULT_PROJECTS = 6
DEFAULT_SONG_SECONDS = 20.0
DEFAULT_SAMPLE_RATE = 44100
DEFAULT_STEM_BYTES = 64 * 1024
DEFAULT_CREDITS = 1_000_000
DEFAULT_CREDITS_PER_MINUTE = 1.0
DEFAULT_URL_TTL = 3600.0
DEFAULT_UPLOAD_URL_TTL = 900.0
DEFAULT_MAX_UPLOAD_BYTES = 512 * 1024 * 1024  # 20 minutes of 96 kHz 24-bit stereo WAV fit
DEFAULT_INSUFFICIENT_CREDITS_STATUS = 402
DEFAULT_REDIRECT_SHARE = 0.5
DEFAULT_CREATED_TIME = 1.0
DEFAULT_QUEUE_TIME = (2.0, 20.0)
DEFAULT_DURATION_JITTER = 0.25
DEFAULT_FINALIZE_AFTER = 5.0
DEFAULT_LIMIT_RETRY_AFTER = 1.0
DEFAULT_RETRY_AFTER = 1.0
DEFAULT_RETRY_AFTER_SHARE = 0.5
DEFAULT_SLOW_PAUSE = 0.02
DEFAULT_SLOW_CHUNK_BYTES = 64 * 1024

StemsMode = Literal["accumulate", "replace"]


class ProfileError(ValueError):
    """A profile (or simulator setting) that cannot be used; the message says what to fix."""


@dataclass(frozen=True)
class Faults:
    """Fault rates, each the share (0..1) of its opportunities that gets the fault.

    Opportunities, each counted in the record's `fault_opportunities`: `drop_connection`
    every authenticated API call, stem redirect, download and upload PUT; `rate_limit` every
    API call; `error_on_get` every API GET; `error_before_write` every valid write (the
    stem-separation, upload and project POSTs, and upload PUTs with the announced body), and
    `error_after_write` every one applied or replayed; `expired_url` every download and upload
    PUT still going; `truncate_body` and `slow_body` every download still going;
    `task_failure` every new task.
    `retry_after_share` of random 429s carry `Retry-After: retry_after`; `slow_pause` and
    `retry_after` are real seconds.
    """

    rate_limit: float = 0.0
    retry_after_share: float = DEFAULT_RETRY_AFTER_SHARE
    retry_after: float = DEFAULT_RETRY_AFTER
    error_before_write: float = 0.0
    error_after_write: float = 0.0
    error_on_get: float = 0.0
    drop_connection: float = 0.0
    truncate_body: float = 0.0
    slow_body: float = 0.0
    slow_pause: float = DEFAULT_SLOW_PAUSE
    slow_chunk_bytes: int = DEFAULT_SLOW_CHUNK_BYTES
    expired_url: float = 0.0
    task_failure: float = 0.0

    def replace(self, **changes: Any) -> Faults:
        """A copy with `changes` applied and validated."""
        return _valid_faults(dataclasses.replace(self, **changes))


@dataclass(frozen=True)
class Profile:
    """How one simulated Youka account behaves. See `profiles/default.yaml`."""

    name: str = "default"
    projects: int = DEFAULT_PROJECTS
    song_seconds: float = DEFAULT_SONG_SECONDS
    sample_rate: int = DEFAULT_SAMPLE_RATE
    synthesize: bool = True
    stem_bytes: int = DEFAULT_STEM_BYTES
    api_key: str | None = None
    credits: int = DEFAULT_CREDITS
    credits_per_minute: float = DEFAULT_CREDITS_PER_MINUTE
    credit_multipliers: dict[str, float] = field(
        default_factory=lambda: dict(DEFAULT_CREDIT_MULTIPLIERS)
    )
    insufficient_credits_status: int = DEFAULT_INSUFFICIENT_CREDITS_STATUS
    idempotency_key_ttl: float | None = None
    upload_url_ttl: float = DEFAULT_UPLOAD_URL_TTL
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES
    stems_mode: StemsMode = "accumulate"
    url_ttl: float = DEFAULT_URL_TTL
    redirect_share: float = DEFAULT_REDIRECT_SHARE
    created_time: float = DEFAULT_CREATED_TIME
    queue_time: tuple[float, float] = DEFAULT_QUEUE_TIME
    durations: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_DURATIONS))
    duration_jitter: float = DEFAULT_DURATION_JITTER
    finalize_after: float = DEFAULT_FINALIZE_AFTER
    max_in_progress: int | None = None
    requests_per_second: float | None = None
    limit_retry_after: float | None = DEFAULT_LIMIT_RETRY_AFTER
    hostile_names: bool = False
    record_requests: bool = True
    faults: Faults = field(default_factory=Faults)

    def replace(self, **changes: Any) -> Profile:
        """A copy with `changes` applied and validated (`durations` merges into the table)."""
        for table in ("durations", "credit_multipliers"):
            if table in changes:
                changes[table] = {**getattr(self, table), **changes[table]}
        return _valid_profile(dataclasses.replace(self, **changes))

    def duration(self, model: str) -> float:
        """The nominal `in-progress` time of one separation with `model`, simulated seconds."""
        return self.durations[model]

    def separation_cost(self, seconds: float, model: str = "mdx23c") -> int:
        """Credits one separation of a song of `seconds` with `model` costs: per started
        minute, times the model's factor, at least one."""
        minutes = math.ceil(seconds / 60.0)
        factor = self.credit_multipliers[model]
        return max(1, math.ceil(minutes * self.credits_per_minute * factor))


def load_profile(spec: str | Path | Profile = "default") -> Profile:
    """A profile by name (a shipped one: `profiles/NAME.yaml`), by path, or as given."""
    if isinstance(spec, Profile):
        return spec
    path = _locate(spec)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ProfileError(f"{path}: not valid YAML: {exc}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ProfileError(f"{path}: a profile is a mapping of settings, got {type(data).__name__}")
    try:
        return profile_from_mapping(data, name=Path(path.name).stem)
    except ProfileError as exc:
        raise ProfileError(f"{path}: {exc}") from None


def profile_from_mapping(data: dict[str, Any], *, name: str = "custom") -> Profile:
    """Build and validate a profile from plain data, as read from YAML."""
    data = dict(data)
    faults = _valid_faults(_build(Faults, data.pop("faults", None) or {}, prefix="faults."))
    data.setdefault("name", name)
    profile = _build(Profile, data, prefix="")
    return _valid_profile(dataclasses.replace(profile, faults=faults))


def dump_profile(profile: Profile) -> str:
    """`profile` as YAML that `load_profile` reads back into an equal profile.

    For handing a profile built in code to a simulator in another process:
    `stemsweep simulate --profile PATH`.
    """
    data = dataclasses.asdict(profile)
    data["queue_time"] = list(profile.queue_time)
    return yaml.safe_dump(data, sort_keys=False)


def _duration(value: Any, *, where: str) -> float:
    """Seconds from a duration as `orchestrator.durations` reads it; ProfileError otherwise."""
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise ProfileError(f"{where}: {exc}, got {value!r}") from None


# Fields read as durations, and how each plain-data value is converted.
_DURATION_FIELDS = {
    "url_ttl",
    "created_time",
    "finalize_after",
    "limit_retry_after",
    "retry_after",
    "slow_pause",
    "idempotency_key_ttl",
    "upload_url_ttl",
}


def shipped_profiles() -> list[str]:
    """The names of the profiles shipped with stemsweep, sorted."""
    names = (p.name for p in PROFILES.iterdir())
    return sorted(name.removesuffix(".yaml") for name in names if name.endswith(".yaml"))


def _locate(spec: str | Path) -> Traversable:
    path = Path(spec)
    if path.suffix in (".yaml", ".yml") or path.parent != Path("."):
        if not path.is_file():
            raise ProfileError(f"profile file {path} does not exist")
        return path
    named = PROFILES / f"{spec}.yaml"
    if not named.is_file():
        known = shipped_profiles()
        raise ProfileError(
            f"unknown profile {spec!r}: use one of {', '.join(known)} or a path to a YAML file"
        )
    return named


def _build(cls: type[Any], data: Any, *, prefix: str) -> Any:
    if not isinstance(data, dict):
        raise ProfileError(f"{prefix.rstrip('.') or 'profile'}: expected a mapping")
    known = {f.name for f in dataclasses.fields(cls)} - {"faults"}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ProfileError(
            f"unknown setting {prefix}{unknown[0]}; known settings of "
            f"{prefix.rstrip('.') or 'a profile'}: {', '.join(sorted(known))}"
        )
    values = {key: _convert(key, value, where=prefix + key) for key, value in data.items()}
    return cls(**values)


def _convert(key: str, value: Any, *, where: str) -> Any:
    if key in _DURATION_FIELDS:
        return None if value is None else _duration(value, where=where)
    if key == "queue_time":
        if not isinstance(value, list | tuple) or len(value) != 2:
            raise ProfileError(f"{where}: expected [shortest, longest], e.g. [2s, 20s]")
        low, high = (_duration(v, where=where) for v in value)
        return (low, high)
    if key == "durations":
        if not isinstance(value, dict):
            raise ProfileError(f"{where}: expected a mapping of model to duration")
        parsed = {str(m): _duration(d, where=f"{where}.{m}") for m, d in value.items()}
        return {**DEFAULT_DURATIONS, **parsed}
    if key == "credit_multipliers":
        if not isinstance(value, dict):
            raise ProfileError(f"{where}: expected a mapping of model to factor")
        return {**DEFAULT_CREDIT_MULTIPLIERS, **{str(m): f for m, f in value.items()}}
    return value


_SHARES = (
    "rate_limit",
    "retry_after_share",
    "error_before_write",
    "error_after_write",
    "error_on_get",
    "drop_connection",
    "truncate_body",
    "slow_body",
    "expired_url",
    "task_failure",
)


def _valid_faults(faults: Faults) -> Faults:
    """`faults`, once its types and ranges are checked."""
    for name in _SHARES:
        _check_share(f"faults.{name}", getattr(faults, name))
    _check_number("faults.retry_after", faults.retry_after, minimum=0.0)
    _check_number("faults.slow_pause", faults.slow_pause, minimum=0.0)
    _check_int("faults.slow_chunk_bytes", faults.slow_chunk_bytes, minimum=1)
    return faults


def _valid_profile(p: Profile) -> Profile:
    """`p`, once its types and ranges are checked."""
    _check_int("projects", p.projects, minimum=1)
    _check_number("song_seconds", p.song_seconds, minimum=0.1)
    _check_int("sample_rate", p.sample_rate, minimum=8000)
    _check_int("stem_bytes", p.stem_bytes, minimum=64)
    _check_int("credits", p.credits, minimum=0)
    _check_number("credits_per_minute", p.credits_per_minute, minimum=0.0)
    _check_number("url_ttl", p.url_ttl, minimum=0.001)
    _check_share("redirect_share", p.redirect_share)
    _check_number("created_time", p.created_time, minimum=0.0)
    _check_number("finalize_after", p.finalize_after, minimum=0.0)
    _check_share("duration_jitter", p.duration_jitter)
    for name in ("synthesize", "hostile_names", "record_requests"):
        if not isinstance(getattr(p, name), bool):
            raise ProfileError(f"{name}: expected true or false, got {getattr(p, name)!r}")
    if p.stems_mode not in ("accumulate", "replace"):
        raise ProfileError(f"stems_mode: expected accumulate or replace, got {p.stems_mode!r}")
    if p.api_key is not None and (not isinstance(p.api_key, str) or not p.api_key):
        raise ProfileError("api_key: expected a non-empty string, or leave it out")
    low, high = p.queue_time
    if not 0 <= low <= high:
        raise ProfileError(f"queue_time: expected 0 <= shortest <= longest, got [{low}, {high}]")
    unknown = sorted(set(p.durations) - set(MODELS))
    if unknown:
        raise ProfileError(f"durations: unknown model {unknown[0]!r}; models: {', '.join(MODELS)}")
    for model, seconds in p.durations.items():
        _check_number(f"durations.{model}", seconds, minimum=0.0)
    unknown = sorted(set(p.credit_multipliers) - set(MODELS))
    if unknown:
        raise ProfileError(
            f"credit_multipliers: unknown model {unknown[0]!r}; models: {', '.join(MODELS)}"
        )
    for model, factor in p.credit_multipliers.items():
        _check_number(f"credit_multipliers.{model}", factor, minimum=0.0)
    if p.insufficient_credits_status not in (402, 403):
        raise ProfileError(
            "insufficient_credits_status: expected 402 or 403, "
            f"got {p.insufficient_credits_status!r}"
        )
    if p.idempotency_key_ttl is not None:
        _check_number("idempotency_key_ttl", p.idempotency_key_ttl, minimum=0.001)
    _check_number("upload_url_ttl", p.upload_url_ttl, minimum=0.001)
    _check_int("max_upload_bytes", p.max_upload_bytes, minimum=1)
    if p.max_in_progress is not None:
        _check_int("max_in_progress", p.max_in_progress, minimum=1)
    if p.requests_per_second is not None:
        _check_number("requests_per_second", p.requests_per_second, minimum=0.001)
    if p.limit_retry_after is not None:
        _check_number("limit_retry_after", p.limit_retry_after, minimum=0.0)
    if not isinstance(p.faults, Faults):
        raise ProfileError("faults: expected a mapping of fault rates")
    _valid_faults(p.faults)
    return p


def _check_number(where: str, value: Any, *, minimum: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < minimum:
        raise ProfileError(f"{where}: expected a number >= {minimum:g}, got {value!r}")


def _check_int(where: str, value: Any, *, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ProfileError(f"{where}: expected a whole number >= {minimum}, got {value!r}")


def _check_share(where: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise ProfileError(f"{where}: expected a share between 0 and 1, got {value!r}")
