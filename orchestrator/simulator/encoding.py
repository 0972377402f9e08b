"""Samples as audio files, for the simulator's stems and originals.

`encode` turns samples into WAV or FLAC bytes; `tiny_wav` makes a WAV of a given size at no
synthesis cost. Pure and deterministic: bytes out, nothing written to the disk.
"""

from __future__ import annotations

import io
import struct
from typing import Final

import numpy as np
import numpy.typing as npt
import soundfile as sf

from orchestrator.simulator.dsp import seeded

CONTENT_TYPES: Final = {"wav": "audio/wav", "flac": "audio/flac"}


def encode(audio: npt.ArrayLike, sample_rate: int, fmt: str) -> bytes:
    """`audio` as a 16-bit WAV or FLAC file; samples beyond +-1 are clipped."""
    if fmt not in CONTENT_TYPES:
        raise ValueError(f"unknown audio format {fmt!r}; known: {', '.join(CONTENT_TYPES)}")
    buffer = io.BytesIO()
    samples = np.clip(np.asarray(audio, dtype=np.float32), -1.0, 1.0)
    sf.write(buffer, samples, sample_rate, format=fmt.upper(), subtype="PCM_16")
    return buffer.getvalue()


def tiny_wav(n_bytes: int, seed: int, sample_rate: int = 44100) -> bytes:
    """A stereo 16-bit WAV of n_bytes (up to 3 fewer) holding quiet noise, at no synthesis cost.

    For stems of an exact size, from a few bytes to many megabytes.
    """
    header_size = 44
    if not header_size <= n_bytes < 2**32:
        raise ValueError(f"a WAV file has {header_size} to 2**32 - 1 bytes, not {n_bytes}")
    data_size = (n_bytes - header_size) // 4 * 4  # whole frames of 2 channels x 16 bits
    # 64 KiB of noise around -50 dBFS, tiled: even many megabytes cost one bytes repetition.
    block = (seeded("tiny_wav", seed).standard_normal(32768) * 100).astype("<i2").tobytes()
    payload = block * (data_size // len(block)) + block[: data_size % len(block)]
    header = struct.pack(
        "<4sI4s4sIHHIIHH4sI",
        b"RIFF", 36 + data_size, b"WAVE",
        b"fmt ", 16, 1, 2, sample_rate, sample_rate * 4, 4, 16,  # PCM, stereo, 16 bits
        b"data", data_size,
    )  # fmt: skip
    return header + payload
