"""Small spectrogram images of stems, as PNG bytes, without a plotting library.

The image is a fixed size whatever the track's length: `width` columns, each the magnitude
spectrum of one Hann window, on a log-frequency axis from 40 Hz up to 20 kHz (or Nyquist).
Levels are absolute (dBFS, a full-scale sine at 0 dB), so a quieter stem looks darker and
two models' stems can be compared by eye. The windows are collected as the track's blocks
stream past (`SpectrogramTap`): the track is never held whole.
"""

from __future__ import annotations

import struct
import zlib
from typing import Final

import numpy as np
import numpy.typing as npt

from orchestrator.report.metrics import Samples, WindowTap, as_frames

WIDTH: Final = 320
HEIGHT: Final = 72
WINDOW: Final = 2048
LOW_HZ: Final = 40.0
HIGH_HZ: Final = 20000.0
FLOOR_DB: Final = -85.0
CEILING_DB: Final = -15.0

# The "magma" colour map, by a few anchors (dark purple to pale yellow), interpolated.
_ANCHORS: Final = np.array(
    [
        [0, 0, 4],
        [28, 16, 68],
        [79, 18, 123],
        [129, 37, 129],
        [181, 54, 122],
        [229, 80, 100],
        [251, 135, 97],
        [254, 194, 135],
        [252, 253, 191],
    ],
    dtype=np.float64,
)


def _palette(size: int = 256) -> npt.NDArray[np.uint8]:
    positions = np.linspace(0.0, 1.0, len(_ANCHORS))
    steps = np.linspace(0.0, 1.0, size)
    channels = [np.interp(steps, positions, _ANCHORS[:, c]) for c in range(3)]
    return np.round(np.stack(channels, axis=1)).astype(np.uint8)


PALETTE: Final = _palette()


def window_starts(frames: int, *, width: int = WIDTH) -> list[int]:
    """Where the `width` windows of a track of `frames` frames start, evenly spread; a track
    shorter than one window is read as zero-padded to it."""
    last = max(frames, WINDOW) - WINDOW
    return [int(s) for s in np.linspace(0, last, width).astype(np.intp)]


class SpectrogramTap(WindowTap):
    """The windows of a spectrogram of a track of `frames` frames, collected from its
    blocks fed in order (see `WindowTap`); `png(rate)` draws it."""

    def __init__(self, frames: int) -> None:
        super().__init__(window_starts(frames), WINDOW)

    def png(self, rate: int) -> bytes:
        """The PNG of the spectrogram, WIDTH x HEIGHT pixels."""
        return encode_png(colourise(levels_of(np.stack(self.windows), rate)))


def levels(
    audio: Samples, rate: int, *, width: int = WIDTH, height: int = HEIGHT
) -> npt.NDArray[np.float64]:
    """Spectrogram of a whole array in dBFS, `(height, width)`, low frequencies at the bottom."""
    samples = as_frames(audio)
    tap = WindowTap(window_starts(len(samples), width=width), WINDOW)
    tap.add(samples)
    return levels_of(np.stack(tap.windows), rate, height=height)


def levels_of(
    windows: npt.NDArray[np.float64], rate: int, *, height: int = HEIGHT
) -> npt.NDArray[np.float64]:
    """Spectrogram in dBFS, `(height, len(windows))`, of mono windows of WINDOW frames."""
    width = len(windows)
    window = np.hanning(WINDOW)
    frames = windows * window
    spectrum = np.abs(np.fft.rfft(frames, axis=1)) / (window.sum() / 2)  # full-scale sine = 1
    freqs = np.fft.rfftfreq(WINDOW, 1.0 / rate)
    high = min(HIGH_HZ, rate / 2)
    edges = np.geomspace(LOW_HZ, high, height + 1)
    # Per row: the strongest bin in its band, or, where bands are narrower than a bin, the
    # magnitude interpolated at the band's centre (the low rows of a log axis).
    first = np.searchsorted(freqs, edges[:-1])
    last = np.searchsorted(freqs, edges[1:])
    filled = last > first
    rows = np.empty((height, width))
    if np.any(filled):
        # Bands are contiguous, so each filled band ends where the next filled one starts.
        rows[filled] = np.maximum.reduceat(spectrum[:, : last[filled][-1]], first[filled], axis=1).T
    centres = np.sqrt(edges[:-1] * edges[1:])[~filled]
    upper = np.clip(np.searchsorted(freqs, centres), 1, len(freqs) - 1)
    weight = (centres - freqs[upper - 1]) / (freqs[upper] - freqs[upper - 1])
    rows[~filled] = (spectrum[:, upper - 1] * (1 - weight) + spectrum[:, upper] * weight).T
    db = 20.0 * np.log10(np.maximum(rows, 1e-12))
    return np.asarray(db[::-1], dtype=np.float64)


def colourise(db: npt.NDArray[np.float64]) -> npt.NDArray[np.uint8]:
    """dBFS levels to RGB pixels `(height, width, 3)` through the palette."""
    scaled = (np.clip(db, FLOOR_DB, CEILING_DB) - FLOOR_DB) / (CEILING_DB - FLOOR_DB)
    return PALETTE[np.round(scaled * (len(PALETTE) - 1)).astype(np.intp)]


def encode_png(pixels: npt.NDArray[np.uint8]) -> bytes:
    """An 8-bit RGB PNG of `(height, width, 3)` pixels (no filtering, zlib level 9)."""
    height, width, depth = pixels.shape
    if depth != 3:
        raise ValueError("pixels must be (height, width, 3)")

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    rows = np.concatenate(
        [np.zeros((height, 1), np.uint8), pixels.reshape(height, width * 3)], axis=1
    )  # filter byte 0 ("none") in front of every row
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows.tobytes(), 9))
        + chunk(b"IEND", b"")
    )


def spectrogram_png(audio: Samples, rate: int) -> bytes:
    """The PNG of a whole array's spectrogram, WIDTH x HEIGHT pixels."""
    return encode_png(colourise(levels(audio, rate)))
