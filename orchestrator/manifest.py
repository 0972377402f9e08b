"""Parse and validate a job manifest into frozen objects (pure: no network).

The objects below are the contract the rest of the package relies on.
`load_manifest` raises `ManifestError` naming the file, the field path and what is allowed.

Validation happens in three steps, each of which can refuse the file:

1. YAML: syntax errors (reported with line and column) and duplicate keys, which PyYAML's
   `safe_load` would silently collapse, are found by `_ManifestLoader`.
2. Schema: strict pydantic models with `extra="forbid"` check every field; all their
   complaints are reported together, one line each, with the field path and its line.
3. Freezing: the validated models become the frozen dataclasses below.

The only I/O is reading the manifest, the `projects_file`s it names and the model
catalogue (`orchestrator.catalog`); there is no network access.
"""

from __future__ import annotations

import difflib
import math
import re
import stat
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import MappingProxyType
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    InstanceOf,
    ValidationError,
    ValidationInfo,
    model_validator,
)

from orchestrator.catalog import model_names
from orchestrator.errors import ManifestError

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

MANIFEST_VERSION = 1
MAX_NAME_LENGTH = 128  # `name` becomes a directory name (`out/{name}`)
MAX_PROJECT_ID_LENGTH = 128
DATE_PLACEHOLDER = "{date}"

# How much of a user's value an error message may quote: enough to recognise it, never a
# whole pasted secret or a 10,000-character line.
MAX_SHOWN_VALUE = 60
# A manifest with thousands of bad project ids gets the first few, then a count.
MAX_REPORTED_PROBLEMS = 20

NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
PROJECT_ID_PATTERN = re.compile(r"[A-Za-z0-9_-]+")
KEY_SCOPE_TEXT_PATTERN = re.compile(r"[A-Za-z0-9._-]*")
PROFILE_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


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
class Sweep:
    """One sweep: project ids (read from `projects_file` when given there) x models.

    `load_manifest` drops repeated ids and models, keeping the first of each, so both
    tuples hold distinct values in manifest order. `projects_file` is the file the ids were
    read from (already joined to the manifest's folder), or None when they were listed inline.
    """

    projects: tuple[str, ...]
    models: tuple[str, ...]
    projects_file: Path | None = None


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


# ---------------------------------------------------------------------------------------
# Small pure helpers, public because the CLI and the report use them too.


def parse_duration(value: object) -> float:
    """Seconds (a positive, finite float) from `3s`, `0.5s`, `250ms`, `10m`, `1h`, `1m30s`,
    or a bare number of seconds (`90`, `2.5`, `"90"`).

    Units are h, m, s and ms, each at most once and largest first. Raises `ValueError`
    for anything else, including zero, negative, infinite and boolean values.
    """
    if isinstance(value, bool):
        raise ValueError(_DURATION_HELP)
    if isinstance(value, int | float):
        try:
            seconds = float(value)
        except OverflowError:  # an integer too large for a float
            raise ValueError(_DURATION_HELP) from None
    elif isinstance(value, str):
        seconds = _parse_duration_text(value.strip())
    else:
        raise ValueError(_DURATION_HELP)
    if not math.isfinite(seconds):
        raise ValueError(_DURATION_HELP)
    if seconds <= 0:
        raise ValueError("must be a positive duration")
    return seconds


def format_duration(seconds: float) -> str:
    """A duration as the manifest would spell it: `250ms`, `3s`, `10m`, `1m30s`, `1h`."""
    if seconds < 1:
        return f"{seconds * 1000:g}ms"
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{hours:g}h" if hours else "", f"{minutes:g}m" if minutes else ""]
    parts.append(f"{secs:g}s" if secs or not (hours or minutes) else "")
    return "".join(parts)


def resolve_key_scope(template: str, now: datetime) -> str:
    """Fill `{date}` in a key scope with the UTC date of `now` as YYYY-MM-DD.

    `now` must be timezone-aware (the run's start time); a naive datetime raises
    `ValueError`, since its date would depend on the machine's time zone. A template without
    `{date}` is returned unchanged.
    """
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("resolve_key_scope needs a timezone-aware datetime")
    return template.replace(DATE_PLACEHOLDER, now.astimezone(UTC).strftime("%Y-%m-%d"))


_UNIT_SECONDS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
_UNIT_ORDER = tuple(_UNIT_SECONDS)  # largest first
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?|\.\d+)(ms|h|m|s)")
_PLAIN_NUMBER = re.compile(r"\d+(?:\.\d+)?|\.\d+")
_DURATION_HELP = "must be a duration like 3s, 0.5s, 250ms, 10m, 1h, 1m30s, or a number of seconds"


def _parse_duration_text(text: str) -> float:
    if _PLAIN_NUMBER.fullmatch(text):
        return float(text)
    total, position, used = 0.0, 0, list[str]()
    for match in _DURATION_PART.finditer(text):
        number, unit = match.groups()
        # Units must be contiguous, distinct and largest first: `1m30s`, not `30s1m`.
        if match.start() != position or (
            used and _UNIT_ORDER.index(unit) <= _UNIT_ORDER.index(used[-1])
        ):
            raise ValueError(_DURATION_HELP)
        total += float(number) * _UNIT_SECONDS[unit]
        position = match.end()
        used.append(unit)
    if not used or position != len(text):
        raise ValueError(_DURATION_HELP)
    return total


def _show(value: object) -> str:
    """A value as an error message may quote it: short, and never anything like a key."""
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, str) and re.search(r"yk_|bearer\s", value, re.IGNORECASE):
        return "a value that looks like an API key (not shown)"
    text = repr(value)
    if len(text) > MAX_SHOWN_VALUE:
        text = text[: MAX_SHOWN_VALUE - 1] + "…"
    return text


# ---------------------------------------------------------------------------------------
# Field validators. Each raises ValueError with a message that says what is allowed.


def _check_name(value: str) -> str:
    if not NAME_PATTERN.fullmatch(value) or len(value) > MAX_NAME_LENGTH:
        raise ValueError(
            f"{_show(value)} is not a valid name: start with a letter or digit, then letters, "
            f"digits, '.', '_' or '-', at most {MAX_NAME_LENGTH} characters"
        )
    return value


_PROJECT_ID_RULE = (
    f"use only letters, digits, '_' and '-', at most {MAX_PROJECT_ID_LENGTH} characters"
)


def _is_project_id(value: str) -> bool:
    """Whether `value` is safe as a project id, and so as a path component and in a key."""
    return bool(PROJECT_ID_PATTERN.fullmatch(value)) and len(value) <= MAX_PROJECT_ID_LENGTH


def _check_project_id(value: str) -> str:
    if not _is_project_id(value):
        raise ValueError(f"{_show(value)} is not a safe project id: {_PROJECT_ID_RULE}")
    return value


def _check_model(value: str) -> str:
    known = model_names()
    if value in known:
        return value
    if value == "all":
        raise ValueError("`all` stands alone: write `models: all`, not a list containing it")
    close = difflib.get_close_matches(value, known, n=1)
    if close:
        hint = f"did you mean {close[0]!r}? (`stemsweep models` lists all twelve)"
    else:
        hint = "allowed: " + ", ".join(known)
    raise ValueError(f"unknown model {_show(value)}; {hint}")


def _expand_all_models(value: object) -> object:
    if value == "all":
        return list(model_names())
    if isinstance(value, str):
        raise ValueError(f"must be `all` or a list of model names (got {_show(value)})")
    return value


def _check_key_scope(value: str) -> str:
    text = value.replace(DATE_PLACEHOLDER, "")
    if "{" in text or "}" in text:
        raise ValueError(f"{_show(value)}: the only placeholder allowed in key_scope is {{date}}")
    if not value or not KEY_SCOPE_TEXT_PATTERN.fullmatch(text):
        raise ValueError(
            f"{_show(value)} is not a valid key scope: use letters, digits, '.', '_', '-' "
            "and the placeholder {date}"
        )
    return value


def _check_base_url(value: str) -> str:
    problem = "must be an http(s) URL with a host, like " + DEFAULT_BASE_URL
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError:
        raise ValueError(f"{problem} (got {_show(value)})") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{problem} (got {_show(value)})")
    if parts.username is not None or parts.password is not None:
        # Never echo it: the part before `@` may be a credential.
        raise ValueError("must not carry credentials; the key comes only from YOUKA_API_KEY")
    if parts.query or parts.fragment:
        raise ValueError(f"must not have a query or fragment (got {_show(value)})")
    return value.rstrip("/")


def _check_profile(value: str) -> str:
    if not PROFILE_PATTERN.fullmatch(value):
        raise ValueError(f"{_show(value)} is not a profile name: letters, digits, '.', '_' and '-'")
    return value


def _duration_field(value: object) -> float:
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise ValueError(f"{exc} (got {_show(value)})") from None


def _check_non_empty(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be empty")
    return value


def _simulator_switch(value: object) -> object:
    """`false` -> no simulator, `true` -> the default simulator, a mapping -> as given."""
    if value is None or value is False:
        return None
    if value is True:
        return {}
    if isinstance(value, Mapping):
        return value
    raise ValueError(
        f"must be false, true, or a mapping {{profile, seed, time_scale}} (got {_show(value)})"
    )


@dataclass(frozen=True)
class _ProjectsFile:
    path: Path
    ids: tuple[str, ...]


def _read_projects_file(value: object, info: ValidationInfo) -> _ProjectsFile | None:
    """Read `projects_file` relative to the manifest's folder: one id per line, `#` comments."""
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"must be the path of a file of project ids (got {_show(value)})")
    base = info.context["base_dir"] if info.context else Path(".")
    path = base / value
    text = _read_text(path)
    ids: list[str] = []
    bad: list[str] = []
    for number, line in enumerate(text.splitlines(), start=1):
        project = line.split("#", 1)[0].strip()
        if not project:
            continue
        if _is_project_id(project):
            ids.append(project)
        else:
            bad.append(f"line {number}: {_show(project)}")
    if bad:
        shown = "; ".join(bad[:5]) + (f"; and {len(bad) - 5} more" if len(bad) > 5 else "")
        raise ValueError(f"{path}: unsafe project ids ({shown}); {_PROJECT_ID_RULE}")
    if not ids:
        raise ValueError(f"{path} lists no project ids (one per line, # starts a comment)")
    return _ProjectsFile(path=path, ids=tuple(ids))


def _read_text(path: Path) -> str:
    """The text of a file, or ValueError saying in plain words why it cannot be read."""
    try:
        mode = path.stat().st_mode
        if stat.S_ISDIR(mode):
            raise IsADirectoryError
        if not stat.S_ISREG(mode):  # a FIFO or a device could block or never end
            raise ValueError(f"{path} is not a regular file")
        return path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise ValueError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise ValueError(f"{path} is a directory, not a file") from None
    except PermissionError:
        raise ValueError(f"{path}: not readable (permission denied)") from None
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    except OSError as exc:
        raise ValueError(f"{path}: cannot read ({exc.strerror or type(exc).__name__})") from None


# ---------------------------------------------------------------------------------------
# The schema: strict models, unknown keys refused. Defaults are the constants above.

Name = Annotated[str, AfterValidator(_check_name)]
ProjectId = Annotated[str, AfterValidator(_check_project_id)]
ModelName = Annotated[str, AfterValidator(_check_model)]
Duration = Annotated[float, BeforeValidator(_duration_field)]
NonEmptyStr = Annotated[str, AfterValidator(_check_non_empty)]


class _Strict(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True, allow_inf_nan=False)


class _Simulator(_Strict):
    profile: Annotated[str, AfterValidator(_check_profile)] = DEFAULT_SIMULATOR_PROFILE
    seed: Annotated[int, Field(ge=0)] = DEFAULT_SIMULATOR_SEED
    time_scale: Annotated[float, Field(gt=0)] = DEFAULT_SIMULATOR_TIME_SCALE


class _Api(_Strict):
    base_url: Annotated[str, AfterValidator(_check_base_url)] = DEFAULT_BASE_URL
    simulator: Annotated[_Simulator | None, BeforeValidator(_simulator_switch)] = None


class _Limits(_Strict):
    max_in_flight: Annotated[int, Field(gt=0)] = DEFAULT_MAX_IN_FLIGHT
    per_project: Annotated[int, Field(gt=0)] = DEFAULT_PER_PROJECT
    per_model: dict[ModelName, Annotated[int, Field(gt=0)]] = Field(default_factory=dict)
    requests_per_second: Annotated[float, Field(gt=0)] = DEFAULT_REQUESTS_PER_SECOND


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
    projects_file: Annotated[
        InstanceOf[_ProjectsFile] | None, BeforeValidator(_read_projects_file)
    ] = None
    models: Annotated[list[ModelName], Field(min_length=1), BeforeValidator(_expand_all_models)]

    @model_validator(mode="after")
    def _one_source_of_projects(self) -> _Sweep:
        if self.projects is not None and self.projects_file is not None:
            raise ValueError("give either projects or projects_file, not both")
        if self.projects is None and self.projects_file is None:
            raise ValueError("needs projects (a list of ids) or projects_file (a file of ids)")
        return self


class _Manifest(_Strict):
    version: Literal[1]
    name: Name
    api: _Api = Field(default_factory=_Api)
    output: NonEmptyStr = DEFAULT_OUTPUT
    key_scope: Annotated[str, AfterValidator(_check_key_scope)] | None = None
    limits: _Limits = Field(default_factory=_Limits)
    poll: _Poll = Field(default_factory=_Poll)
    retries: _Retries = Field(default_factory=_Retries)
    download: _Download = Field(default_factory=_Download)
    sweeps: Annotated[list[_Sweep], Field(min_length=1)]
    references: NonEmptyStr | None = None


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
# YAML: a safe loader that refuses duplicate keys, and the line of every field.

FieldPath = tuple[str | int, ...]


class _DuplicateKeyError(Exception):
    def __init__(self, path: FieldPath, key: object, first_line: int, line: int) -> None:
        super().__init__(key)
        self.path, self.key, self.first_line, self.line = path, key, first_line, line


class _ManifestLoader(yaml.SafeLoader):
    """`yaml.SafeLoader` that raises `_DuplicateKeyError` instead of keeping the last value."""

    node_paths: dict[int, FieldPath]

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # `<<: *defaults` may be overridden by the keys next to it
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            try:
                if key in seen:
                    path = self.node_paths.get(id(node), ())
                    raise _DuplicateKeyError(path, key, seen[key], line)
                seen[key] = line
            except TypeError:
                continue  # an unhashable key: the base constructor reports it
        return super().construct_mapping(node, deep=deep)


def _field_lines(root: yaml.Node) -> tuple[dict[FieldPath, int], dict[int, FieldPath]]:
    """The 1-based line of every field path, and the path of every mapping node."""
    lines: dict[FieldPath, int] = {(): root.start_mark.line + 1}
    node_paths: dict[int, FieldPath] = {}
    visited: set[int] = set()
    stack: list[tuple[yaml.Node, FieldPath]] = [(root, ())]
    while stack:
        node, path = stack.pop()
        if id(node) in visited:  # an alias: already walked under its anchor's path
            continue
        visited.add(id(node))
        children: list[tuple[yaml.Node, FieldPath, int]] = []
        if isinstance(node, yaml.MappingNode):
            node_paths[id(node)] = path
            children = [
                (value, (*path, key.value), key.start_mark.line + 1)
                for key, value in node.value
                if isinstance(key, yaml.ScalarNode)
            ]
        elif isinstance(node, yaml.SequenceNode):
            children = [
                (item, (*path, index), item.start_mark.line + 1)
                for index, item in enumerate(node.value)
            ]
        for _, child_path, line in children:
            lines.setdefault(child_path, line)
        # Reversed, so nodes are walked in document order and an anchor before its aliases.
        stack.extend((child, child_path) for child, child_path, _ in reversed(children))
    return lines, node_paths


def _parse_yaml(path: Path, text: str) -> tuple[object, dict[FieldPath, int]]:
    loader = _ManifestLoader(text)
    try:
        root = loader.get_single_node()
        if root is None:
            return None, {}
        lines, loader.node_paths = _field_lines(root)
        return loader.construct_document(root), lines
    except _DuplicateKeyError as dup:
        where = _format_path((*dup.path, str(dup.key)))
        raise ManifestError(
            f"{path}: {where} (line {dup.line}): duplicate key {_show(dup.key)}, "
            f"first given on line {dup.first_line}; give each key once"
        ) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = exc.problem or exc.context or "cannot parse"
        if len(problem) > 2 * MAX_SHOWN_VALUE:
            problem = problem[: 2 * MAX_SHOWN_VALUE - 1] + "…"
        # PyYAML notices a problem where it stops making sense, often a line after the
        # mistake; `context` names the construct that was open, and where it began.
        if exc.context and exc.context_mark and mark and exc.context_mark.line != mark.line:
            problem += f" ({exc.context}, which started on line {exc.context_mark.line + 1})"
        raise ManifestError(f"{path}: {where}YAML syntax error: {problem}") from None
    except yaml.YAMLError as exc:  # e.g. a control character the reader refuses
        problem = str(exc).splitlines()[0][: 2 * MAX_SHOWN_VALUE]
        raise ManifestError(f"{path}: not valid YAML: {problem}") from None
    except RecursionError:  # PyYAML composes nested collections recursively
        raise ManifestError(f"{path}: not a manifest: collections nested too deeply") from None
    finally:
        loader.dispose()


# ---------------------------------------------------------------------------------------
# Messages.


def _format_path(loc: Sequence[str | int]) -> str:
    """`('sweeps', 1, 'models', 2)` -> `sweeps[1].models[2]`."""
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else part
    return text or "(top level)"


def _line_of(loc: FieldPath, lines: Mapping[FieldPath, int]) -> int | None:
    """The line of `loc`, or of its nearest ancestor that appears in the file."""
    for end in range(len(loc), 0, -1):
        if loc[:end] in lines:
            return lines[loc[:end]]
    return None


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
    return f"{message} (got {_show(error['input'])}){hint}"


def _schema_errors(path: Path, exc: ValidationError, lines: Mapping[FieldPath, int]) -> str:
    rows = []
    for error in exc.errors(include_url=False):
        # Dict keys are reported as (..., key, '[key]'): the key itself is the field.
        loc: FieldPath = tuple(p for p in error["loc"] if p != "[key]")
        if error["type"] == "invalid_key":  # a key like `1:` or `true:` in a section
            loc, message = loc[:-1], f"unknown key {_show(loc[-1])}; keys are field names"
        else:
            message = _describe({**error, "loc": loc})
        line = _line_of(loc, lines)
        where = _format_path(loc) + (f" (line {line})" if line else "")
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
        text = _read_text(path)
    except ValueError as exc:
        raise ManifestError(f"manifest {exc}") from None
    data, lines = _parse_yaml(path, text)
    if data is None:
        raise ManifestError(f"{path}: the manifest is empty; it needs version, name and sweeps")
    if not isinstance(data, dict):
        raise ManifestError(
            f"{path}: must be a mapping with version, name and sweeps (got {_show(data)})"
        )
    version = data.get("version", MANIFEST_VERSION)
    if type(version) is not int or version != MANIFEST_VERSION:
        # A manifest of another version is another schema: its other fields are noise.
        line = lines.get(("version",))
        where = f"version (line {line})" if line else "version"
        raise ManifestError(
            f"{path}: {where}: must be {MANIFEST_VERSION}, the only manifest version this "
            f"stemsweep reads (got {_show(version)})"
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
        ),
        poll=PollSpec(initial=model.poll.initial, max=model.poll.max, timeout=model.poll.timeout),
        retries=RetrySpec(requests=model.retries.requests, tasks=model.retries.tasks),
        download_types=tuple(dict.fromkeys(model.download.types)),
        sweeps=tuple(_freeze_sweep(sweep) for sweep in model.sweeps),
        references=None if model.references is None else path.parent / model.references,
    )


def _freeze_sweep(sweep: _Sweep) -> Sweep:
    source = sweep.projects_file
    projects = source.ids if source is not None else tuple(sweep.projects or ())
    return Sweep(
        projects=tuple(dict.fromkeys(projects)),
        models=tuple(dict.fromkeys(sweep.models)),
        projects_file=source.path if source is not None else None,
    )
