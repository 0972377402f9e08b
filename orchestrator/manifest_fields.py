"""The rules of a manifest's single fields, as annotated types for its schema (`manifest`).

Each rule raises `ValueError` with a message that says what is allowed; pydantic puts the
field path in front of it. Names and project ids become folder names and parts of
idempotency keys, so their alphabets are small; a model must be one of the catalogue's
twelve; durations follow `orchestrator.durations` and must be positive; `projects_file` is
read here, relative to the manifest's folder, and so are the headers of `songs`
(`orchestrator.songfiles`).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

from pydantic import AfterValidator, BeforeValidator, InstanceOf, ValidationInfo

from orchestrator.catalog import model_names
from orchestrator.connection import ENV_API_KEY
from orchestrator.durations import parse_duration
from orchestrator.manifest_yaml import MAX_LIST_FILE_BYTES, read_text, show
from orchestrator.songfiles import SongError, find_songs, read_songs
from orchestrator.spec import DATE_PLACEHOLDER, DEFAULT_BASE_URL, SongFile

MAX_NAME_LENGTH = 128  # `name` becomes a directory name (`out/{name}`)
MAX_PROJECT_ID_LENGTH = 128
MAX_KEY_SCOPE_LENGTH = 128  # with `{date}` filled in; keys stay readable (`jobs.idempotency_key`)

NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
PROJECT_ID_PATTERN = re.compile(r"[A-Za-z0-9_-]+")
KEY_SCOPE_TEXT_PATTERN = re.compile(r"[A-Za-z0-9._-]*")
PROFILE_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def _check_name(value: str) -> str:
    if not NAME_PATTERN.fullmatch(value) or len(value) > MAX_NAME_LENGTH:
        raise ValueError(
            f"{show(value)} is not a valid name: start with a letter or digit, then letters, "
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
        raise ValueError(f"{show(value)} is not a safe project id: {_PROJECT_ID_RULE}")
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
    raise ValueError(f"unknown model {show(value)}; {hint}")


def expand_all_models(value: object) -> object:
    """`all` -> every model of the catalogue; a list is left to the per-item rule."""
    if value == "all":
        return list(model_names())
    if isinstance(value, str):
        raise ValueError(f"must be `all` or a list of model names (got {show(value)})")
    return value


def _check_key_scope(value: str) -> str:
    text = value.replace(DATE_PLACEHOLDER, "")
    if "{" in text or "}" in text:
        raise ValueError(f"{show(value)}: the only placeholder allowed in key_scope is {{date}}")
    if not value or not KEY_SCOPE_TEXT_PATTERN.fullmatch(text):
        raise ValueError(
            f"{show(value)} is not a valid key scope: use letters, digits, '.', '_', '-' "
            "and the placeholder {date}"
        )
    resolved = len(text) + value.count(DATE_PLACEHOLDER) * len("YYYY-MM-DD")
    if resolved > MAX_KEY_SCOPE_LENGTH:
        raise ValueError(
            f"{show(value)} is too long a key scope: at most {MAX_KEY_SCOPE_LENGTH} characters "
            "with {date} filled in"
        )
    return value


def _check_base_url(value: str) -> str:
    problem = "must be an http(s) URL with a host, like " + DEFAULT_BASE_URL
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError:
        raise ValueError(f"{problem} (got {show(value)})") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{problem} (got {show(value)})")
    if parts.username is not None or parts.password is not None:
        # Never echo it: the part before `@` may be a credential.
        raise ValueError(f"must not carry credentials; the key comes only from {ENV_API_KEY}")
    if parts.query or parts.fragment:
        raise ValueError(f"must not have a query or fragment (got {show(value)})")
    return value.rstrip("/")


def _check_profile(value: str) -> str:
    if not PROFILE_PATTERN.fullmatch(value):
        raise ValueError(f"{show(value)} is not a profile name: letters, digits, '.', '_' and '-'")
    return value


def positive_duration(value: object) -> float:
    """A duration of the manifest: `orchestrator.durations`' grammar, and more than zero."""
    try:
        seconds = parse_duration(value)
    except ValueError as exc:
        raise ValueError(f"{exc} (got {show(value)})") from None
    if seconds <= 0:
        raise ValueError(f"must be a positive duration (got {show(value)})")
    return seconds


def _check_non_empty(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be empty")
    return value


def simulator_switch(value: object) -> object:
    """`false` -> no simulator, `true` -> the default simulator, a mapping -> as given."""
    if value is None or value is False:
        return None
    if value is True:
        return {}
    if isinstance(value, Mapping):
        return value
    raise ValueError(
        f"must be false, true, or a mapping {{profile, seed, time_scale}} (got {show(value)})"
    )


@dataclass(frozen=True)
class ProjectsFile:
    """A `projects_file` as read: its path (joined to the manifest's folder) and its ids."""

    path: Path
    ids: tuple[str, ...]


def read_projects_file(value: object, info: ValidationInfo) -> ProjectsFile | None:
    """Read `projects_file` relative to the manifest's folder: one id per line, `#` comments."""
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"must be the path of a file of project ids (got {show(value)})")
    base = info.context["base_dir"] if info.context else Path(".")
    path = base / value
    text = read_text(path, limit=MAX_LIST_FILE_BYTES, what="projects_file")
    ids: list[str] = []
    bad: list[str] = []
    for number, line in enumerate(text.splitlines(), start=1):
        project = line.split("#", 1)[0].strip()
        if not project:
            continue
        if _is_project_id(project):
            ids.append(project)
        else:
            bad.append(f"line {number}: {show(project)}")
    if bad:
        shown = "; ".join(bad[:5]) + (f"; and {len(bad) - 5} more" if len(bad) > 5 else "")
        raise ValueError(f"{path}: unsafe project ids ({shown}); {_PROJECT_ID_RULE}")
    if not ids:
        raise ValueError(f"{path} lists no project ids (one per line, # starts a comment)")
    return ProjectsFile(path=path, ids=tuple(ids))


@dataclass(frozen=True)
class SongList:
    """A sweep's `songs` as read: every file found, its header checked, in manifest order."""

    files: tuple[SongFile, ...]


def read_song_list(value: object, info: ValidationInfo) -> SongList | None:
    """Find a sweep's songs relative to the manifest's folder and read their headers."""
    if value is None:
        return None
    base = info.context["base_dir"] if info.context else Path(".")
    try:
        return SongList(tuple(read_songs(find_songs(value, base))))
    except SongError as exc:
        raise ValueError(str(exc)) from None


# The field types of the schema: each a type with its rule.
Name = Annotated[str, AfterValidator(_check_name)]
ProjectId = Annotated[str, AfterValidator(_check_project_id)]
ModelName = Annotated[str, AfterValidator(_check_model)]
Duration = Annotated[float, BeforeValidator(positive_duration)]
NonEmptyStr = Annotated[str, AfterValidator(_check_non_empty)]
KeyScope = Annotated[str, AfterValidator(_check_key_scope)]
BaseUrl = Annotated[str, AfterValidator(_check_base_url)]
ProfileName = Annotated[str, AfterValidator(_check_profile)]
ProjectsFileField = Annotated[InstanceOf[ProjectsFile] | None, BeforeValidator(read_projects_file)]
SongsField = Annotated[InstanceOf[SongList] | None, BeforeValidator(read_song_list)]
