"""The request bodies of `POST /uploads` and `POST /projects`, checked. Pure, no HTTP.

Each check returns the clean values or raises a 422 problem whose `issues` name every bad
field. The formats the simulator can decode are those of libsndfile (shipped in the
soundfile wheel): WAV, FLAC, Ogg Vorbis/Opus, MP3 and AIFF. MP4/AAC (`.m4a`, `.aac`) would
need FFmpeg; rather than add its libraries to every install for the simulator's sake, the
simulator refuses them at `POST /uploads` with 422 `UNSUPPORTED_MEDIA`, before any byte is
sent (a client must handle a refused file anyway: the real API may refuse one too).
"""

from __future__ import annotations

from typing import Any

from orchestrator.simulator.errors import ApiProblem, issue, validation

# Content types accepted by `POST /uploads`, and the format (file extension) each is stored as.
FORMATS = {
    "audio/wav": "wav",
    "audio/x-wav": "wav",
    "audio/wave": "wav",
    "audio/vnd.wave": "wav",
    "audio/flac": "flac",
    "audio/x-flac": "flac",
    "audio/mpeg": "mp3",
    "audio/mp3": "mp3",
    "audio/ogg": "ogg",
    "audio/vorbis": "ogg",
    "audio/opus": "ogg",
    "application/ogg": "ogg",
    "audio/aiff": "aiff",
    "audio/x-aiff": "aiff",
}
# Known audio the simulator cannot decode (it would need FFmpeg).
UNDECODABLE = {"audio/mp4", "audio/x-m4a", "audio/m4a", "audio/aac", "audio/x-aac", "audio/aacp"}
# The Content-Type a stored file is served with, by format.
SERVED_TYPES = {
    "wav": "audio/wav",
    "flac": "audio/flac",
    "mp3": "audio/mpeg",
    "ogg": "audio/ogg",
    "aiff": "audio/aiff",
}
MAX_FILENAME = 255
MIN_TITLE, MAX_TITLE = 2, 200


def media_type(value: str) -> str:
    """A Content-Type without its parameters, lower case: `audio/wav; x=1` -> `audio/wav`."""
    return value.split(";", 1)[0].strip().lower()


def check_upload(body: dict[str, Any], max_bytes: int) -> tuple[str, str, str, int]:
    """(filename, content type, format, length) of a valid `POST /uploads` body."""
    filename, content_type = body.get("filename"), body.get("contentType")
    length = body.get("contentLength")
    problems = []
    if not isinstance(filename, str) or not 0 < len(filename) <= MAX_FILENAME:
        problems.append(issue("filename", f"a file name of 1 to {MAX_FILENAME} characters"))
    kind = media_type(content_type) if isinstance(content_type, str) else ""
    if kind in UNDECODABLE:
        raise ApiProblem(
            422,
            "UNSUPPORTED_MEDIA",
            f"the simulator cannot decode {kind} (MP4/AAC): convert the file to FLAC or WAV, "
            "or use the real API",
            issues=[issue("contentType", f"one of: {', '.join(sorted(FORMATS))}")],
        )
    if kind not in FORMATS:
        problems.append(issue("contentType", f"an audio type, one of: {', '.join(FORMATS)}"))
    if isinstance(length, bool) or not isinstance(length, int) or not 0 < length <= max_bytes:
        problems.append(issue("contentLength", f"the file's size in bytes, 1 to {max_bytes}"))
    if problems:
        raise validation("the upload request has invalid fields; see issues", problems)
    assert isinstance(filename, str) and isinstance(length, int)
    return filename, kind, FORMATS[kind], length


def check_creation(body: dict[str, Any]) -> tuple[str, str, Any]:
    """(title, inputFileId, splitModel as given) of a `POST /projects` body; the model and
    the file are checked against the account by the caller."""
    title, file_id = body.get("title"), body.get("inputFileId")
    problems = []
    if not isinstance(title, str) or not MIN_TITLE <= len(title.strip()) <= MAX_TITLE:
        problems.append(issue("title", f"a title of {MIN_TITLE} to {MAX_TITLE} characters"))
    if not isinstance(file_id, str) or not file_id:
        problems.append(issue("inputFileId", "the inputFileId answered by POST /uploads"))
    if problems:
        raise validation("the project request has invalid fields; see issues", problems)
    assert isinstance(title, str) and isinstance(file_id, str)
    return title.strip(), file_id, body.get("splitModel", "mdx23c")
