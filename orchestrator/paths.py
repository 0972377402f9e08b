"""Where every file of an output tree goes, and which names may be used on the way.

    {out}/{model}/{project}/{type}.{ext}     a stem: `stem_base` + `file_for`
    {out}/{model}/{project}/job.json         `job_file`
    {out}/{model}/{song}/...                 the same, for a project made from a song file:
                                             its folder is a slug of the file's name
                                             (`song_slug`, `song_folder`)
    {out}/_references/{project}/{type}.{ext} the simulator's true parts: `reference_base`
    {out}/summary.json                       `summary_name` (a shard's own name)
    {out}/songs.json                         `songs_name`: each song's path, digest, title,
                                             project (a shard's own name)

A stem file's path is decided here, whole: its folder and name (`stem_base`) from the job,
its extension (`file_for`) from the response that delivered it, given by the client:
`Content-Type` first, else the audio suffix of the URL that served it, else of the URL
asked for, else `bin`. Youka stores stems as uploaded and does not convert on download, so
the type on disk can only come from the response.

Server-supplied strings (stem types, model names, ids) become path components only through
`safe_path`, which refuses anything but plain names (`is_safe_name`) and checks that the
result stays under the output root (one `lstat` per part). The state files' paths are
`state.py`'s.
"""

from __future__ import annotations

import os
import re
import stat
import unicodedata
from collections.abc import Callable, Mapping
from pathlib import Path, PurePosixPath
from urllib.parse import unquote, urlsplit

from orchestrator.errors import DownloadError
from orchestrator.jobs import Shard

JOB_FILE = "job.json"
SUMMARY_FILE = "summary.json"
SONGS_FILE = "songs.json"
SONG_SLUG_LENGTH = 80
SONG_DIGEST_CHARS = 8  # of the digest, after a slug that is not unique on its own
REFERENCES_DIR = "_references"
MAX_NAME_LENGTH = 128

SAFE_NAME = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9._-]*[A-Za-z0-9_-])?")
"""A plain file name: ASCII letters, digits, `_`, `-` and inner dots; no leading dot or dash,
no trailing dot. Matched with `fullmatch`, and never longer than `MAX_NAME_LENGTH`."""

# Names Windows reserves whatever the extension; refused everywhere so a tree can be copied.
_RESERVED = frozenset(
    {"con", "prn", "aux", "nul"}
    | {f"com{i}" for i in range(1, 10)}
    | {f"lpt{i}" for i in range(1, 10)}
)

_EXTENSION_BY_TYPE = {
    "audio/wav": "wav",
    "audio/x-wav": "wav",
    "audio/wave": "wav",
    "audio/vnd.wave": "wav",
    "audio/flac": "flac",
    "audio/x-flac": "flac",
    "audio/mpeg": "mp3",
    "audio/mp3": "mp3",
    "audio/ogg": "ogg",
    "audio/opus": "opus",
    "audio/mp4": "m4a",
    "audio/x-m4a": "m4a",
    "audio/aac": "m4a",
    "audio/aiff": "aiff",
    "audio/x-aiff": "aiff",
}
AUDIO_SUFFIXES = frozenset({"wav", "flac", "mp3", "ogg", "opus", "m4a", "aac", "aiff"})
FALLBACK_EXTENSION = "bin"


def stem_base(out: Path, model: str, project: str, kind: str) -> Path:
    """`{out}/{model}/{project}/{kind}`, checked by `safe_path`: a stem's path but for the
    extension, which `file_for` adds from the response."""
    return safe_path(out, model, project, kind)


def job_file(out: Path, model: str, project: str) -> Path:
    """`{out}/{model}/{project}/job.json`, checked by `safe_path`."""
    return safe_path(out, model, project, JOB_FILE)


def reference_base(out: Path, project: str, kind: str) -> Path:
    """`{out}/_references/{project}/{kind}`: a true part, but for its extension."""
    return safe_path(out, REFERENCES_DIR, project, kind)


def file_for(base: Path, content_type: str | None, served_by: str, requested: str) -> Path:
    """`base` with the extension of the body that `served_by` answered for `requested`.

    `Content-Type` first, else the audio suffix of the URL that served the body, else of
    the URL first asked for (a redirect may lead to a URL without one), else `bin`.
    """
    ext = extension_for(content_type, served_by)
    if ext == FALLBACK_EXTENSION and served_by != requested:
        ext = extension_for(None, requested)
    return with_extension(base, ext)


def summary_name(shard: Shard | None) -> str:
    """`summary.json`, or `summary-shard-I-of-N.json` for a shard: shards share one tree."""
    return SUMMARY_FILE if shard is None else f"summary-{shard.name}.json"


def songs_name(shard: Shard | None) -> str:
    """`songs.json`, or `songs-shard-I-of-N.json` for a shard."""
    return SONGS_FILE if shard is None else f"songs-{shard.name}.json"


def own_folders(
    shard: Shard | None, songs: Mapping[str, bool] | None = None
) -> Callable[[PurePosixPath], bool] | None:
    """Which folders of the tree a run may clean of partial files (None: all of them).

    A shard owns the second-level folders of its projects, `{model}/{project}` and
    `_references/{project}`, and nothing else: the root and the other shards' folders may
    hold partial files that another process is writing. `songs` maps the folder of every
    song of the manifest to whether it is this shard's (a song's shard is its digest's).
    """
    if shard is None:
        return None
    songs = songs or {}

    def mine(folder: PurePosixPath) -> bool:
        if len(folder.parts) != 2:
            return False
        name = folder.parts[1]
        return songs[name] if name in songs else shard.has_project(name)

    return mine


def song_slug(filename: str) -> str:
    """A safe folder name from a song file's name: its stem in lower-case ASCII letters,
    digits, `.`, `_` and `-`, at most 80 characters (`My Song (live).flac` ->
    `my-song-live`); `song` when nothing is left of it."""
    text = unicodedata.normalize("NFKD", PurePosixPath(filename).stem)
    text = text.encode("ascii", "ignore").decode("ascii").lower()
    text = re.sub(r"[^a-z0-9._-]+", "-", text)
    text = re.sub(r"-{2,}", "-", text).strip("-._")[:SONG_SLUG_LENGTH].strip("-._")
    if not text:
        return "song"
    return text if is_safe_name(text) else f"{text}-song"  # a reserved name, like `con`


def song_folder(slug: str, digest: str, *, unique: bool) -> str:
    """A song's folder: its slug when no other song or project of the manifest has it, else
    the slug and the first 8 hex digits of its digest (`song-3fa9c2d1`)."""
    return slug if unique else f"{slug}-{digest[:SONG_DIGEST_CHARS]}"


def is_safe_name(name: str) -> bool:
    """True when `name` can be used as one path component as it is."""
    return (
        isinstance(name, str)
        and 0 < len(name) <= MAX_NAME_LENGTH
        and SAFE_NAME.fullmatch(name) is not None
        and name.split(".", 1)[0].lower() not in _RESERVED
    )


def safe_path(root: Path, *parts: str) -> Path:
    """`root/part/...`, refusing unsafe parts and any result that would leave `root`.

    Each part must be a plain name (`is_safe_name`): not empty, `.` or `..`, no separator,
    not absolute, no NUL, not too long. When one of them is a symlink already on disk, the
    joined path is resolved (following it) and must still lie under the resolved root.
    """
    for part in parts:
        if not is_safe_name(part):
            raise DownloadError(f"unsafe name from the server: {_shown(part)}")
    path = root.joinpath(*parts)
    # Plain names cannot climb out of `root`: only a symlink among the parts already on disk
    # can. One lstat per part finds one, and only then is the path resolved and checked.
    # (Resolving every path walked the root's own components each time: some thirty lstat
    # calls per job, a measurable share of a run's CPU.)
    below = root
    for part in parts:
        below = below / part
        try:
            mode = os.lstat(below).st_mode
        except OSError:
            break  # missing (or under a file): nothing further down exists to follow
        if stat.S_ISLNK(mode):
            if not path.resolve().is_relative_to(root.resolve()):
                raise DownloadError(f"path leaves the output folder: {_shown(os.fspath(path))}")
            break
    return path


def _shown(name: object) -> str:
    text = repr(name)
    return text if len(text) <= 60 else text[:57] + "..."


def extension_for(content_type: str | None, url: str) -> str:
    """The file extension for a body: from `Content-Type`, else the URL's audio suffix, else bin.

    Youka stores stems as uploaded and does not convert on download, so the type on disk can
    only come from the response.
    """
    if content_type:
        media_type = content_type.split(";", 1)[0].strip().lower()
        if media_type in _EXTENSION_BY_TYPE:
            return _EXTENSION_BY_TYPE[media_type]
    try:
        path = unquote(urlsplit(url).path)
    except ValueError:
        return FALLBACK_EXTENSION
    suffix = PurePosixPath(path).suffix.lower().lstrip(".")
    return suffix if suffix in AUDIO_SUFFIXES else FALLBACK_EXTENSION


def with_extension(dest: Path, ext: str) -> Path:
    """`dest` with `.ext` appended to its name (a dot already in the name is kept)."""
    if not re.fullmatch(r"[a-z0-9]{1,8}", ext):
        raise DownloadError(f"unusable file extension: {_shown(ext)}")
    return dest.with_name(f"{dest.name}.{ext}")
