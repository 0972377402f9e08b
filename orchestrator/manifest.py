"""Parse and validate a job manifest into the frozen objects of `orchestrator.spec`.

`load_manifest` raises `ManifestError` naming the file, the field path and what is allowed.
This is the only module that knows the manifest's schema (pydantic); the rest of the
package reads the frozen objects.

Validation happens in three steps, each of which can refuse the file:

1. YAML (`manifest_yaml`): syntax errors (reported with line and column) and duplicate
   keys, which PyYAML's `safe_load` would silently collapse.
2. Schema: strict pydantic models with `extra="forbid"` check every field (the rules of
   single fields are in `manifest_fields`); all their complaints are reported together,
   one line each, with the field path and its line.
3. Freezing: the validated models become the frozen dataclasses of `spec`.

The only I/O is reading the manifest, the `projects_file`s it names, the headers of the
song files it lists, and the model catalogue (`orchestrator.catalog`); there is no network
access.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator

from orchestrator.durations import format_duration
from orchestrator.errors import ManifestError
from orchestrator.manifest_fields import (
    BaseUrl,
    Duration,
    KeyScope,
    ModelName,
    Name,
    NonEmptyStr,
    ProfileName,
    ProjectId,
    ProjectsFileField,
    SongsField,
    expand_all_models,
    simulator_switch,
)
from orchestrator.manifest_yaml import (
    MAX_MANIFEST_BYTES,
    FieldPath,
    format_path,
    line_of,
    parse_yaml,
    read_text,
    show,
)
from orchestrator.spec import (
    DEFAULT_BASE_URL,
    DEFAULT_IDEMPOTENCY_WINDOW,
    DEFAULT_MAX_IN_FLIGHT,
    DEFAULT_OUTPUT,
    DEFAULT_PER_PROJECT,
    DEFAULT_POLL_INITIAL,
    DEFAULT_POLL_MAX,
    DEFAULT_POLL_TIMEOUT,
    DEFAULT_REQUEST_ATTEMPTS,
    DEFAULT_REQUESTS_PER_SECOND,
    DEFAULT_SIMULATOR_PROFILE,
    DEFAULT_SIMULATOR_SEED,
    DEFAULT_SIMULATOR_TIME_SCALE,
    DEFAULT_TASK_RETRIES,
    DEFAULT_TYPES,
    STEM_TYPES,
    ApiSpec,
    Limits,
    Manifest,
    PollSpec,
    RetrySpec,
    SimulatorSpec,
    StemType,
    Sweep,
)

MANIFEST_VERSION = 1
# A manifest with thousands of bad project ids gets the first few, then a count.
MAX_REPORTED_PROBLEMS = 20


# ---------------------------------------------------------------------------------------
# The schema: strict models, unknown keys refused. Defaults are `spec`'s constants.


class _Strict(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True, allow_inf_nan=False)


class _Simulator(_Strict):
    profile: ProfileName = DEFAULT_SIMULATOR_PROFILE
    seed: Annotated[int, Field(ge=0)] = DEFAULT_SIMULATOR_SEED
    time_scale: Annotated[float, Field(gt=0)] = DEFAULT_SIMULATOR_TIME_SCALE


class _Api(_Strict):
    base_url: BaseUrl = DEFAULT_BASE_URL
    simulator: Annotated[_Simulator | None, BeforeValidator(simulator_switch)] = None


class _Limits(_Strict):
    max_in_flight: Annotated[int, Field(gt=0)] = DEFAULT_MAX_IN_FLIGHT
    per_project: Annotated[int, Field(gt=0)] = DEFAULT_PER_PROJECT
    per_model: dict[ModelName, Annotated[int, Field(gt=0)]] = Field(default_factory=dict)
    requests_per_second: Annotated[float, Field(gt=0)] = DEFAULT_REQUESTS_PER_SECOND
    max_credits: Annotated[int, Field(gt=0)] | None = None


class _Poll(_Strict):
    initial: Duration = DEFAULT_POLL_INITIAL
    max: Duration = DEFAULT_POLL_MAX
    timeout: Duration = DEFAULT_POLL_TIMEOUT

    @model_validator(mode="after")
    def _initial_within_max(self) -> _Poll:
        if self.initial > self.max:
            raise ValueError(
                f"initial ({format_duration(self.initial)}) must not exceed "
                f"max ({format_duration(self.max)})"
            )
        return self


class _Retries(_Strict):
    requests: Annotated[int, Field(ge=1)] = DEFAULT_REQUEST_ATTEMPTS
    tasks: Annotated[int, Field(ge=0)] = DEFAULT_TASK_RETRIES


class _Download(_Strict):
    types: Annotated[list[StemType], Field(min_length=1)] = Field(
        default_factory=lambda: list(DEFAULT_TYPES)
    )


class _Sweep(_Strict):
    projects: Annotated[list[ProjectId], Field(min_length=1)] | None = None
    projects_file: ProjectsFileField = None
    songs: SongsField = None
    models: Annotated[list[ModelName], Field(min_length=1), BeforeValidator(expand_all_models)]

    @model_validator(mode="after")
    def _one_source_of_projects(self) -> _Sweep:
        if self.projects is not None and self.projects_file is not None:
            raise ValueError("give either projects or projects_file, not both")
        if self.projects is None and self.projects_file is None and self.songs is None:
            raise ValueError(
                "needs projects (a list of ids), projects_file (a file of ids) or songs "
                "(audio files: a folder, a glob or a list of paths)"
            )
        return self


class _Manifest(_Strict):
    version: Literal[1]
    name: Name
    api: _Api = Field(default_factory=_Api)
    output: NonEmptyStr = DEFAULT_OUTPUT
    key_scope: KeyScope | None = None
    limits: _Limits = Field(default_factory=_Limits)
    poll: _Poll = Field(default_factory=_Poll)
    retries: _Retries = Field(default_factory=_Retries)
    download: _Download = Field(default_factory=_Download)
    sweeps: Annotated[list[_Sweep], Field(min_length=1)]
    references: NonEmptyStr | None = None
    idempotency_window: Duration = DEFAULT_IDEMPOTENCY_WINDOW


# Which model a mapping at a given path is, to list its keys when an unknown one appears.
_SECTIONS: dict[tuple[str, ...], type[BaseModel]] = {
    (): _Manifest,
    ("api",): _Api,
    ("api", "simulator"): _Simulator,
    ("limits",): _Limits,
    ("poll",): _Poll,
    ("retries",): _Retries,
    ("download",): _Download,
    ("sweeps", "*"): _Sweep,
}


# ---------------------------------------------------------------------------------------
# Messages.


def _describe(error: Mapping[str, Any]) -> str:
    """One pydantic error as a sentence that says what is allowed."""
    kind = error["type"]
    loc = error["loc"]
    if kind == "missing":
        if loc == ("version",):
            return f"required (this stemsweep reads manifest version {MANIFEST_VERSION})"
        return "required"
    if kind == "extra_forbidden":
        section = tuple("*" if isinstance(p, int) else p for p in loc[:-1])
        allowed = list(_SECTIONS[section].model_fields) if section in _SECTIONS else []
        close = difflib.get_close_matches(str(loc[-1]), allowed, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        return f"unknown key; {hint}allowed: {', '.join(allowed)}"
    if kind in ("value_error", "assertion_error"):
        return str(error["ctx"]["error"])
    if kind == "too_short":
        return "must not be empty"
    if kind in ("model_type", "dict_type", "model_attributes_type"):
        message = "must be a mapping"
    elif kind == "list_type":
        message = "must be a list"
    elif kind == "greater_than_equal":
        message = f"must be at least {error['ctx']['ge']}"
    elif kind == "literal_error" and loc == ("version",):
        message = f"must be {MANIFEST_VERSION}, the only manifest version this stemsweep reads"
    elif kind == "literal_error" and loc[:2] == ("download", "types"):
        message = "must be one of " + ", ".join(STEM_TYPES)
    else:
        message = str(error["msg"]).replace("Input should be", "must be")
    hint = ""
    if kind == "string_type" and isinstance(error["input"], int | float):
        hint = "; put it in quotes"
    elif kind == "string_type" and isinstance(error["input"], Mapping):
        hint = "; put it in quotes, since YAML reads a bare {...} as a mapping"
    return f"{message} (got {show(error['input'])}){hint}"


def _schema_errors(path: Path, exc: ValidationError, lines: Mapping[FieldPath, int]) -> str:
    rows = []
    for error in exc.errors(include_url=False):
        # Dict keys are reported as (..., key, '[key]'): the key itself is the field.
        loc: FieldPath = tuple(p for p in error["loc"] if p != "[key]")
        if error["type"] == "invalid_key":  # a key like `1:` or `true:` in a section
            loc, message = loc[:-1], f"unknown key {show(loc[-1])}; keys are field names"
        else:
            message = _describe({**error, "loc": loc})
        line = line_of(loc, lines)
        where = format_path(loc) + (f" (line {line})" if line else "")
        rows.append(f"{where}: {message}")
    if len(rows) == 1:
        return f"{path}: {rows[0]}"
    shown = rows[:MAX_REPORTED_PROBLEMS]
    if len(rows) > len(shown):
        shown.append(f"... and {len(rows) - len(shown)} more")
    return f"{path}: {len(rows)} problems:\n" + "\n".join("  " + row for row in shown)


# ---------------------------------------------------------------------------------------
# Loading.


def load_manifest(path: Path) -> Manifest:
    """Read, validate and freeze a manifest; raise `ManifestError` on any problem.

    The message names the file, the field path (`limits.max_in_flight`,
    `sweeps[1].models[2]`), its line, and what is allowed; several problems are reported
    together, one per line. Reads the manifest and its `projects_file`s; nothing else.
    """
    path = Path(path)
    try:
        text = read_text(path, limit=MAX_MANIFEST_BYTES, what="manifest")
    except ValueError as exc:
        raise ManifestError(f"manifest {exc}") from None
    data, lines = parse_yaml(path, text)
    if data is None:
        raise ManifestError(f"{path}: the manifest is empty; it needs version, name and sweeps")
    if not isinstance(data, dict):
        raise ManifestError(
            f"{path}: must be a mapping with version, name and sweeps (got {show(data)})"
        )
    version = data.get("version", MANIFEST_VERSION)
    if type(version) is not int or version != MANIFEST_VERSION:
        # A manifest of another version is another schema: its other fields are noise.
        line = lines.get(("version",))
        where = f"version (line {line})" if line else "version"
        raise ManifestError(
            f"{path}: {where}: must be {MANIFEST_VERSION}, the only manifest version this "
            f"stemsweep reads (got {show(version)})"
        )
    try:
        model = _Manifest.model_validate(data, context={"base_dir": path.parent})
    except ValidationError as exc:
        raise ManifestError(_schema_errors(path, exc, lines)) from None
    return _freeze(path, model)


def _freeze(path: Path, model: _Manifest) -> Manifest:
    simulator = model.api.simulator
    return Manifest(
        path=path,
        version=model.version,
        name=model.name,
        api=ApiSpec(
            base_url=model.api.base_url,
            simulator=None
            if simulator is None
            else SimulatorSpec(
                profile=simulator.profile,
                seed=simulator.seed,
                time_scale=simulator.time_scale,
            ),
        ),
        output=Path(model.output.replace("{name}", model.name)),
        key_scope=model.key_scope if model.key_scope is not None else model.name,
        limits=Limits(
            max_in_flight=model.limits.max_in_flight,
            per_project=model.limits.per_project,
            per_model=MappingProxyType(dict(model.limits.per_model)),
            requests_per_second=model.limits.requests_per_second,
            max_credits=model.limits.max_credits,
        ),
        poll=PollSpec(initial=model.poll.initial, max=model.poll.max, timeout=model.poll.timeout),
        retries=RetrySpec(requests=model.retries.requests, tasks=model.retries.tasks),
        download_types=tuple(dict.fromkeys(model.download.types)),
        sweeps=tuple(_freeze_sweep(sweep) for sweep in model.sweeps),
        references=None if model.references is None else path.parent / model.references,
        idempotency_window=model.idempotency_window,
    )


def _freeze_sweep(sweep: _Sweep) -> Sweep:
    source = sweep.projects_file
    projects = source.ids if source is not None else tuple(sweep.projects or ())
    songs = {song.path: song for song in (sweep.songs.files if sweep.songs else ())}
    return Sweep(
        projects=tuple(dict.fromkeys(projects)),
        models=tuple(dict.fromkeys(sweep.models)),
        projects_file=source.path if source is not None else None,
        songs=tuple(songs.values()),
    )
