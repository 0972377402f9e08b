"""Song files on disk: finding them, reading their headers, and their digests.

A sweep's `songs:` is a folder (searched recursively for audio files), a glob
(`music/*.flac`, `**` allowed) or a list of such paths, relative to the manifest's folder.
Every file found is checked before any request: its header must decode as one of the
formats below, read with mutagen (a pure-Python reader of audio headers and tags; the core
installs no audio stack), which also gives its duration and its title tag.

    suffix   container                      checked                       uploaded as
    .wav     RIFF/WAVE                      fmt chunk, frames             audio/wav
    .flac    FLAC                           STREAMINFO                    audio/flac
    .mp3     MPEG audio (ID3 tags or none)  a run of valid frame headers  audio/mpeg
    .ogg     Ogg Vorbis, Opus or FLAC       the codec's first packets     audio/ogg
    .m4a     MP4                            an `ftyp` box, then the moov  audio/mp4
    .aac     ADTS (or ADIF)                 three ADTS frame headers      audio/aac
    .aiff    AIFF/AIFC                      COMM chunk                    audio/aiff

The format is what the header says, whatever the suffix: a WAV named `.mp3` is uploaded as
`audio/wav`. A file with no audio (0 s) is refused too. What the simulator cannot decode
(MP4/AAC) is still a song here: the API refuses it, for that song only.

`file_digest` is the BLAKE3 of a file's bytes: a song's identity (two files with the same
bytes are one song), from which its idempotency keys and its shard are computed.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import blake3
import mutagen

from orchestrator.spec import SongFile

SONG_SUFFIXES = (".wav", ".flac", ".mp3", ".ogg", ".m4a", ".aac", ".aiff")
MIN_TITLE, MAX_TITLE = 2, 200  # what `POST /projects` accepts
MAX_LISTED = 10  # bad files named in one message before a count
_GLOB_CHARS = frozenset("*?[")

# mutagen's class of the file -> (format, Content-Type of the upload).
_FORMATS: dict[str, tuple[str, str]] = {
    "WAVE": ("wav", "audio/wav"),
    "FLAC": ("flac", "audio/flac"),
    "MP3": ("mp3", "audio/mpeg"),
    "EasyMP3": ("mp3", "audio/mpeg"),
    "OggVorbis": ("ogg", "audio/ogg"),
    "OggOpus": ("ogg", "audio/ogg"),
    "OggFLAC": ("ogg", "audio/ogg"),
    "OggSpeex": ("ogg", "audio/ogg"),
    "MP4": ("m4a", "audio/mp4"),
    "EasyMP4": ("m4a", "audio/mp4"),
    "AAC": ("aac", "audio/aac"),
    "AIFF": ("aiff", "audio/aiff"),
}
# Where each kind of tag keeps the title: ID3 (MP3, WAV, AIFF), Vorbis comments, MP4.
_TITLE_KEYS = ("TIT2", "title", "\xa9nam")


class SongError(ValueError):
    """A song input that cannot be used; the message names the file and what to fix."""


def find_songs(value: object, base: Path) -> list[Path]:
    """The audio files `value` (a path, a glob, or a list of them) names, relative to `base`.

    A folder is searched recursively for files with a song suffix, a glob is expanded
    (files with a song suffix only), a file is taken as it is. Each item's files are sorted
    by path; repeated files are kept once, at their first place. Raises `SongError` naming
    every path that does not exist and every folder or glob that finds no song.
    """
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items:
        raise SongError("must be a folder, a glob or a list of paths of audio files")
    found: dict[Path, None] = {}
    problems: list[str] = []
    for item in items:
        if not isinstance(item, str) or not item.strip():
            problems.append(f"{item!r} is not a path")
            continue
        path = base / item
        if _GLOB_CHARS & set(item):
            matches = [
                Path(p)
                for p in glob.glob(str(path), recursive=True)
                if _is_song_name(Path(p)) and Path(p).is_file()
            ]
            if not matches:
                problems.append(f"{path}: the glob matches no audio file ({_suffixes()})")
            found.update(dict.fromkeys(sorted(matches)))
        elif path.is_dir():
            songs = sorted(p for p in path.rglob("*") if _is_song_name(p) and p.is_file())
            if not songs:
                problems.append(f"{path}: the folder holds no audio file ({_suffixes()})")
            found.update(dict.fromkeys(songs))
        elif path.is_file():
            found[path] = None
        else:
            problems.append(f"{path}: no such file or folder")
    if problems:
        raise SongError(_listed(problems))
    return list(found)


def read_songs(paths: Sequence[Path]) -> list[SongFile]:
    """Every file's header read (`read_song`); `SongError` naming every file that is not audio."""
    songs: list[SongFile] = []
    problems: list[str] = []
    for path in paths:
        try:
            songs.append(read_song(path))
        except SongError as exc:
            problems.append(str(exc))
    if problems:
        raise SongError(_listed(problems))
    return songs


def read_song(path: Path) -> SongFile:
    """A song's format, size, duration and title, from its header; `SongError` when the file
    cannot be read or is not audio of a known format."""
    try:
        size = path.stat().st_size
        audio = mutagen.File(path)
    except (mutagen.MutagenError, OSError) as exc:
        raise SongError(f"{path}: not a readable audio file ({_reason(exc)})") from None
    if audio is None or type(audio).__name__ not in _FORMATS:
        raise SongError(f"{path}: not audio of a known format ({_suffixes()})")
    fmt, content_type = _FORMATS[type(audio).__name__]
    if fmt == "m4a" and not _starts_with_ftyp(path):
        raise SongError(f"{path}: not an MP4 file (no ftyp box at its start)")
    duration = float(getattr(audio.info, "length", 0.0) or 0.0)
    if not duration > 0:
        raise SongError(f"{path}: holds no audio (its header says 0 seconds)")
    return SongFile(
        path=path,
        format=fmt,
        content_type=content_type,
        size=size,
        duration=duration,
        title=title_for(path, audio.tags),
    )


def title_for(path: Path, tags: Any) -> str:
    """The title tag when there is one of at least 2 characters, else the file's name
    without its suffix (with it, when the name alone is shorter); at most 200 characters."""
    title = _tag_title(tags)
    if title is None or len(title) < MIN_TITLE:
        title = path.stem.strip() if len(path.stem.strip()) >= MIN_TITLE else path.name
    return title[:MAX_TITLE].strip()


def file_digest(path: Path) -> str:
    """The BLAKE3 of the file's bytes, 64 hex digits (as `b3sum` prints them). OSError."""
    hasher = blake3.blake3()
    if os.path.getsize(path) > 0:
        hasher.update_mmap(path)  # read through the page cache, hashed without a copy
    return str(hasher.hexdigest())


def _tag_title(tags: Any) -> str | None:
    if tags is None:
        return None
    for key in _TITLE_KEYS:
        try:
            value = tags.get(key)
        except (KeyError, ValueError, TypeError):
            continue
        if value is None:
            continue
        value = getattr(value, "text", value)  # an ID3 frame holds its strings in `text`
        if isinstance(value, list | tuple):
            value = value[0] if value else None
        if value is not None and str(value).strip():
            return " ".join(str(value).split())
    return None


def _starts_with_ftyp(path: Path) -> bool:
    with path.open("rb") as f:
        return f.read(8)[4:8] == b"ftyp"


def _is_song_name(path: Path) -> bool:
    return path.suffix.lower() in SONG_SUFFIXES and not path.name.startswith(".")


def _suffixes() -> str:
    return " ".join(SONG_SUFFIXES)


def _reason(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text[:120]


def _listed(problems: Iterable[str]) -> str:
    rows = list(problems)
    shown = rows[:MAX_LISTED]
    if len(rows) > len(shown):
        shown.append(f"... and {len(rows) - len(shown)} more")
    return "; ".join(shown)
