"""Reading audio files in blocks, with the reason when one does not decode.

The report never holds a whole track except to resample one (`resampled_copy`): every
measure takes blocks of `BLOCK` frames. Files are decoded by libsndfile (through
soundfile): WAV, FLAC, Ogg, MP3 (libsndfile 1.1 and later) and the other formats of
`tree.AUDIO_SUFFIXES`.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import numpy as np
import soundfile as sf

from orchestrator.report.align import resample
from orchestrator.report.metrics import Audio32

BLOCK: Final = 1 << 15  # frames per block: 0.74 s at 44.1 kHz, 256 KiB of stereo float32


class AudioDecodeError(Exception):
    """A file that could not be decoded; the message says why, in a few words."""


@dataclass(frozen=True)
class Info:
    """What a file's header says."""

    rate: int
    channels: int
    frames: int


def _reason(exc: BaseException) -> str:
    """A short reason: libsndfile's own words without the path it prefixes."""
    if isinstance(exc, sf.LibsndfileError):
        text = str(exc.error_string)
    elif isinstance(exc, OSError) and exc.strerror:
        text = exc.strerror
    else:
        text = str(exc) or type(exc).__name__
    return text.strip().rstrip(".")


def probe(path: Path) -> Info:
    """The file's rate, channels and frames; AudioDecodeError when it cannot be opened as
    audio or holds no frames."""
    try:
        with sf.SoundFile(str(path)) as f:
            info = Info(rate=int(f.samplerate), channels=int(f.channels), frames=int(f.frames))
    except (sf.LibsndfileError, RuntimeError, OSError, ValueError, TypeError) as exc:
        raise AudioDecodeError(f"not readable as audio: {_reason(exc)}") from exc
    if info.frames <= 0:
        raise AudioDecodeError("no audio frames")
    return info


def read_blocks(path: Path, size: int = BLOCK) -> Generator[Audio32, None, None]:
    """The file's float32 `(frames, channels)` blocks, in order; AudioDecodeError (saying
    where) when decoding fails part way or a sample is not finite."""
    position = 0
    try:
        with sf.SoundFile(str(path)) as f:
            rate = f.samplerate
            while True:
                try:
                    block = f.read(size, dtype="float32", always_2d=True)
                except (sf.LibsndfileError, RuntimeError, OSError, ValueError) as exc:
                    raise AudioDecodeError(
                        f"decoding stopped at {position / rate:.2f} s: {_reason(exc)}"
                    ) from exc
                if not len(block):
                    return
                if not np.all(np.isfinite(block)):
                    raise AudioDecodeError(
                        f"samples are not finite (NaN or infinity) at {position / rate:.2f} s"
                    )
                position += len(block)
                yield block
    except (sf.LibsndfileError, RuntimeError, OSError, ValueError, TypeError) as exc:
        raise AudioDecodeError(f"not readable as audio: {_reason(exc)}") from exc


def read_all(path: Path) -> tuple[Audio32, int]:
    """The whole file as one array, and its rate (for resampling one stem at a time)."""
    rate = probe(path).rate
    blocks = list(read_blocks(path))
    return np.concatenate(blocks) if len(blocks) > 1 else blocks[0], rate


def resampled_copy(path: Path, rate: int, folder: Path) -> tuple[Path, int]:
    """Write `path` resampled to `rate` as a float WAV in `folder`; its path and frames.

    The one place a whole stem is held: scipy's polyphase resampler needs the track (its
    channels one at a time), and the copy is then read in blocks like any other file.
    """
    samples, own = read_all(path)
    out = resample(samples, own, rate)
    del samples
    folder.mkdir(parents=True, exist_ok=True)
    copy = folder / f"{len(list(folder.iterdir()))}.wav"
    sf.write(str(copy), out, rate, subtype="FLOAT")
    return copy, len(out)


def read_range(path: Path, start: int, frames: int) -> Audio32:
    """Frames [start, start + frames) of the file; zeros where that lies outside it.

    libsndfile seeks to the exact frame, MP3 included.
    """
    try:
        with sf.SoundFile(str(path)) as f:
            channels = f.channels
            out = np.zeros((frames, channels), np.float32)
            first = max(start, 0)
            if first < f.frames and start + frames > 0:
                f.seek(first)
                got = f.read(start + frames - first, dtype="float32", always_2d=True)
                out[first - start : first - start + len(got)] = got
    except (sf.LibsndfileError, RuntimeError, OSError, ValueError, TypeError) as exc:
        raise AudioDecodeError(f"not readable as audio: {_reason(exc)}") from exc
    if not np.all(np.isfinite(out)):
        raise AudioDecodeError("samples are not finite (NaN or infinity)")
    return out
