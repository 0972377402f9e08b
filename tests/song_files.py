"""Song files for tests: synthesized mixes in every format a sweep reads, and checks of the
tree a song sweep leaves."""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import soundfile

from orchestrator.simulator import synth

SUBTYPES = {"ogg": "VORBIS", "mp3": "MPEG_LAYER_III"}


def write_song(path: Path, *, seed: int = 0, seconds: float = 2.0) -> Path:
    """A synthesized song's mix at `path`, encoded as its suffix says (wav, flac, ogg, mp3,
    aiff); `seed` makes songs with other bytes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    song = synth.synthesize_song(seed, f"prj_{seed:04d}", seconds)
    fmt = path.suffix.lstrip(".").lower()
    soundfile.write(
        path,
        song.mix,
        song.sample_rate,
        format=fmt.upper(),
        subtype=SUBTYPES.get(fmt, "PCM_16"),
    )
    return path


def _atom(name: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", 8 + len(payload)) + name + payload


def write_m4a(path: Path, *, seconds: float = 2.0, title: str | None = None) -> Path:
    """A minimal MP4 audio file: an `ftyp` box, a sound track of `seconds`, some data."""
    rate = 44100
    ftyp = _atom(b"ftyp", b"M4A " + struct.pack(">I", 0) + b"M4A mp42isom")
    mvhd = _atom(b"mvhd", b"\0" * 12 + struct.pack(">II", rate, int(seconds * rate)) + b"\0" * 80)
    mdhd = _atom(b"mdhd", b"\0" * 12 + struct.pack(">II", rate, int(seconds * rate)) + b"\0" * 4)
    hdlr = _atom(b"hdlr", b"\0" * 8 + b"soun" + b"\0" * 12 + b"SoundHandler\0")
    moov = _atom(b"moov", mvhd + _atom(b"trak", _atom(b"mdia", mdhd + hdlr)))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(ftyp + moov + _atom(b"mdat", bytes(range(256)) * 8))
    if title is not None:
        from mutagen.mp4 import MP4

        tagged = MP4(path)
        tagged["\xa9nam"] = [title]
        tagged.save()
    return path


def write_aac(path: Path, *, frames: int = 200) -> Path:
    """An ADTS stream: `frames` AAC-LC frame headers at 44.1 kHz, stereo, with filler."""
    payload = bytes(185)
    length = 7 + len(payload)
    header = bytes(
        [
            0xFF,
            0xF1,  # sync, MPEG-4, layer 0, no CRC
            (1 << 6) | (4 << 2) | (2 >> 2),  # AAC LC, 44100 Hz, channels (high bit)
            ((2 & 3) << 6) | (length >> 11),
            (length >> 3) & 0xFF,
            ((length & 7) << 5) | 0x1F,
            0xFC,
        ]
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes((header + payload) * frames)
    return path


def song_jobs(out: Path) -> dict[tuple[str, str], dict[str, Any]]:
    """Every job.json of a tree, by (model, folder)."""
    return {
        (p.parent.parent.name, p.parent.name): json.loads(p.read_text())
        for p in out.glob("*/*/job.json")
    }


def check_song_tree(out: Path) -> int:
    """Assert every job.json's files are whole (size and BLAKE3); return how many files."""
    import blake3

    files = 0
    for path in out.glob("*/*/job.json"):
        job = json.loads(path.read_text())
        for stem in job["stems"]:
            file = path.parent / stem["file"]
            assert file.stat().st_size == stem["bytes"], file
            assert blake3.blake3(file.read_bytes()).hexdigest() == stem["blake3"], file
            files += 1
    return files
