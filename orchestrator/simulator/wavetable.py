"""One voice of notes, rendered from wavetables, and the timbres the songs are played with.
Pure: arrays in, arrays out.

One period of each note's waveform is held in a table and read at a per-sample phase, so the
cost does not grow with the number of harmonics. A timbre builds those tables from a note's
fundamental (and vowel): a sung voice through vowel formants, a pad, a pluck, a bass.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Final

import numpy as np
import numpy.typing as npt

from orchestrator.simulator.dsp import Signal, from_db

# A note is (start s, length s, MIDI pitch, vowel); the vowel only matters to voices.
Note = tuple[float, float, float, str]
# Builds one wavetable per note from (fundamental Hz per note, vowel per note, sample rate).
Timbre = Callable[[Signal, list[str], int], Signal]

_TABLE_SIZE: Final = 8192  # samples in one period of a wavetable; a power of two
# Formants of sung vowels: centre (Hz), bandwidth (Hz), level (dB).
_VOWELS: Final = {
    "a": ((800, 1150, 2900, 3900), (80, 90, 120, 130), (0, -6, -32, -20)),
    "e": ((400, 1600, 2700, 3300), (60, 80, 120, 150), (0, -20, -15, -40)),
    "i": ((270, 2140, 2950, 3900), (60, 90, 100, 120), (0, -12, -26, -26)),
    "o": ((450, 800, 2830, 3800), (70, 80, 100, 130), (0, -11, -22, -22)),
    "u": ((325, 700, 2700, 3800), (50, 60, 170, 180), (0, -16, -35, -40)),
}


def render(
    notes: list[Note],
    n: int,
    sr: int,
    timbre: Timbre,
    *,
    attack: float,
    release: float,
    decay: float | None = None,
    vibrato: tuple[float, float] = (0.0, 0.0),
    glide: float = 0.0,
) -> tuple[Signal, Signal, npt.NDArray[np.intp]]:
    """One monophonic voice: its samples, seconds since the current note began, note index.

    Notes are in time order and each ends by the next one's start. The envelope rises over
    `attack` s and falls to zero over the note's last `release` s; `decay` adds an
    exponential fall (plucks); vibrato is (depth in semitones, rate in Hz); `glide` is the
    time taken to slide from one pitch to the next.
    """
    start, length, midi = (np.array([note[k] for note in notes]) for k in range(3))
    first = np.clip(np.round(start * sr).astype(np.intp), 0, n)
    last = np.clip(np.round((start + length) * sr).astype(np.intp), 0, n)
    # The note sounding at each sample (the first note also covers any silence before it).
    index = np.repeat(np.arange(len(notes)), np.diff(np.append(first, n)))
    index = np.concatenate([np.zeros(first[0], np.intp), index])
    clock = np.arange(n, dtype=np.float32)
    since = (clock - first[index].astype(np.float32)) / np.float32(sr)
    until = (last[index].astype(np.float32) - clock) / np.float32(sr)

    f0 = 440.0 * 2 ** ((midi - 69) / 12)
    freq: Signal = f0[index]
    if glide:
        freq = _smooth(freq, round(glide * sr))
    depth, rate = vibrato
    if depth:
        # 2**(x/12) ~ 1 + x ln2/12 for a fraction of a semitone, without a per-sample power.
        swing = np.sin(np.float32(2 * np.pi * rate / sr) * clock) * _unit(since / 0.3)
        freq = freq * (1 + depth * math.log(2) / 12 * swing)
    cycles = np.cumsum(freq) * (_TABLE_SIZE / sr)  # float64, so the phase never drifts
    # A table this long, read at the nearest sample, costs one gather per sample and errs by
    # about -50 dB: inaudible under the music, and cheaper than interpolating.
    position = cycles.astype(np.int64) & (_TABLE_SIZE - 1)
    tables = timbre(f0, [note[3] for note in notes], sr).astype(np.float32)
    wave = tables.ravel()[index * _TABLE_SIZE + position]

    envelope = _unit(since / np.float32(attack)) * _unit(until / np.float32(release))
    if decay is not None:
        envelope *= np.exp(np.maximum(since, 0) / np.float32(-decay))
    return wave * envelope, since, index


def _tables(amplitudes: Signal) -> Signal:
    """One period per row from harmonic amplitudes (column k is harmonic k + 1), unit RMS."""
    spectrum = np.zeros((len(amplitudes), _TABLE_SIZE // 2 + 1), complex)
    spectrum[:, 1 : amplitudes.shape[1] + 1] = -1j * amplitudes
    tables = np.fft.irfft(spectrum, n=_TABLE_SIZE, axis=1)
    return np.asarray(tables / np.sqrt(np.mean(tables**2, axis=1, keepdims=True)))


def _harmonics(f0: Signal, sr: int, count: int = 200) -> tuple[Signal, Signal]:
    """Harmonic numbers, and their frequencies per note (inf above 0.45 sr, to leave out)."""
    k = np.arange(1, count + 1, dtype=float)
    freq = f0[:, None] * k
    return k, np.where(freq < 0.45 * sr, freq, np.inf)


def _formants(freq: Signal, vowels: list[str]) -> Signal:
    """The vocal tract's gain at each harmonic: a sum of resonances per vowel."""
    gain = np.zeros_like(freq)
    for row, vowel in enumerate(vowels):
        for centre, width, level in zip(*_VOWELS[vowel], strict=True):
            # Twice the nominal bandwidth, so a high voice, whose harmonics are far apart,
            # still has one near each formant and its vowels stay distinct.
            gain[row] += from_db(level) / np.sqrt(1 + ((freq[row] - centre) / width) ** 2)
    return np.where(np.isfinite(freq), gain + 0.01, 0.0)  # a floor, but none above Nyquist


def voice_table(f0: Signal, vowels: list[str], sr: int) -> Signal:
    """A sung voice: each note's vowel shapes its harmonics."""
    k, freq = _harmonics(f0, sr)
    return _tables(_formants(freq, vowels) / k)  # a -6 dB/octave source through the formants


def soft_voice_table(f0: Signal, vowels: list[str], sr: int) -> Signal:
    """A soft sung voice, for backing "ooh"s."""
    k, freq = _harmonics(f0, sr)
    return _tables(_formants(freq, vowels) / k**1.5)  # a breathier, darker source


def pad_table(f0: Signal, vowels: list[str], sr: int) -> Signal:
    """A held chord pad."""
    k, freq = _harmonics(f0, sr)
    return _tables(1 / k / (1 + (freq / 2500) ** 4))  # a sawtooth, low-passed


def pluck_table(f0: Signal, vowels: list[str], sr: int) -> Signal:
    """A plucked string, brighter than the pad."""
    k, freq = _harmonics(f0, sr)
    return _tables(1 / k / (1 + (freq / 5000) ** 2))


def bass_table(f0: Signal, vowels: list[str], sr: int) -> Signal:
    """A round bass: a dozen harmonics, the upper ones faint."""
    k, freq = _harmonics(f0, sr, count=12)
    return _tables(1 / k**2 / (1 + (freq / 800) ** 2))


def _unit(x: Signal) -> Signal:
    """`x` clipped to [0, 1]; faster than np.clip on large arrays."""
    return np.minimum(np.maximum(x, 0), 1)


def _smooth(x: Signal, width: int) -> Signal:
    """Moving average over `width` samples."""
    if width <= 1:
        return x
    total = np.cumsum(np.concatenate([np.full(width, x[0]), x]))
    return np.asarray((total[width:] - total[:-width]) / width)
