"""Synthetic songs for the Youka simulator. Pure and deterministic: the same arguments always
give the same samples, and nothing here touches the network or the disk.

- `synthesize_song(seed, project_id)` makes a short stereo song from three true parts: a
  sung lead (a melody on a scale; a harmonic source with vibrato and vowel formants), backing
  "ooh" harmonies, and an instrumental (chords, a bass line on the chord roots, drums on a
  tempo grid). The voices and instruments are played from wavetables (`wavetable`).
- `references(song)` gives the true parts under Youka's stem type names, for scoring.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Final

import numpy as np
import numpy.typing as npt

from orchestrator.simulator.dsp import Audio, Signal, from_db, frozen, normalise, rms, seeded
from orchestrator.simulator.wavetable import (
    bass_table,
    pad_table,
    pluck_table,
    render,
    soft_voice_table,
    voice_table,
)

PEAK_DBFS: Final = -1.5  # the mix peaks here, leaving headroom for stems with a level error
# RMS levels of the voices relative to the instrumental. Fixed rather than drawn per song, so
# that a model scores the same from song to song.
LEAD_DB: Final = -7.5
BACKING_DB: Final = -12.0

_ADJECTIVES: Final = ("Midnight", "Golden", "Paper", "Silver", "Quiet", "Velvet", "Neon", "Amber")
_NOUNS: Final = ("Harbor", "Lanterns", "Highway", "Summer", "Echoes", "Rivers", "Garden", "Tides")

_MAJOR: Final = (0, 2, 4, 5, 7, 9, 11)
_MINOR: Final = (0, 2, 3, 5, 7, 8, 10)
# Chord progressions as scale degrees (0 = tonic), one chord per bar.
_PROGRESSIONS: Final = ((0, 4, 5, 3), (0, 5, 3, 4), (5, 3, 0, 4), (0, 3, 4, 3), (0, 5, 2, 6))
# Melody rhythms for one bar, as note lengths in eighth notes.
_RHYTHMS: Final = (
    (2, 2, 2, 2),
    (1, 1, 2, 2, 2),
    (3, 1, 2, 2),
    (2, 1, 1, 2, 2),
    (2, 2, 3, 1),
    (1, 1, 1, 1, 2, 2),
    (4, 2, 2),
    (2, 2, 4),
)
_SUNG_VOWELS: Final = "aaaooeeiu"  # open vowels carry a sung line; drawn with these odds


@dataclass(frozen=True, eq=False)
class Song:
    """One synthetic song: three true parts, each (frames, 2) float32 and read-only."""

    project_id: str
    title: str
    artist: str
    sample_rate: int
    lead: Audio
    backing: Audio
    instrumental: Audio
    bpm: float  # the tempo; beats and drum hits fall on its grid from the first sample

    @cached_property
    def vocals(self) -> Audio:
        """Lead plus backing vocals."""
        return frozen(self.lead + self.backing)

    @cached_property
    def mix(self) -> Audio:
        """The song as a listener hears it: all three parts."""
        return frozen(self.lead + self.backing + self.instrumental)


def synthesize_song(
    seed: int, project_id: str, seconds: float = 20.0, sample_rate: int = 44100
) -> Song:
    """Make the song of (seed, project_id); the same arguments always give the same samples."""
    n = round(seconds * sample_rate)
    if n < 1:
        raise ValueError(f"a song needs at least one sample, not {seconds} seconds")
    rng = seeded("song", seed, project_id)
    tonic = int(rng.integers(53, 61))  # F3 to C4; the melody sings a third to a twelfth above
    scale = _MAJOR if rng.random() < 0.6 else _MINOR
    bpm = float(rng.integers(88, 129))
    eighth = 30.0 / bpm
    n_bars = math.ceil(seconds / (8 * eighth))
    progression = _PROGRESSIONS[rng.integers(len(_PROGRESSIONS))]
    roots = [progression[bar % len(progression)] for bar in range(n_bars)]

    melody = _melody(rng, progression, n_bars, eighth)
    lead = _lead_vocal(melody, tonic, scale, n, sample_rate, rng)
    backing = _backing_vocals(roots, eighth, tonic, scale, n, sample_rate)
    instrumental = _instrumental(roots, eighth, tonic, scale, n, sample_rate, rng)

    # Set the balance, then one gain for every part so that the mix peaks at PEAK_DBFS.
    lead = normalise(lead) * from_db(LEAD_DB) * rms(instrumental)
    backing = normalise(backing) * from_db(BACKING_DB) * rms(instrumental)
    ramp = np.arange(n, dtype=np.float32) / np.float32(0.5 * sample_rate)
    fade = np.minimum(np.minimum(ramp, ramp[::-1]), 1)[:, None]
    peak = float(np.max(np.abs((lead + backing + instrumental) * fade)))
    gain = from_db(PEAK_DBFS) / max(peak, 1e-9)
    lead, backing, instrumental = (frozen(p * (gain * fade)) for p in (lead, backing, instrumental))

    adjectives = rng.choice(len(_ADJECTIVES), 2, replace=False)
    nouns = rng.choice(len(_NOUNS), 2)
    return Song(
        project_id=project_id,
        title=f"{_ADJECTIVES[adjectives[0]]} {_NOUNS[nouns[0]]}",
        artist=f"The {_ADJECTIVES[adjectives[1]]} {_NOUNS[nouns[1]]}",
        sample_rate=sample_rate,
        lead=lead,
        backing=backing,
        instrumental=instrumental,
        bpm=bpm,
    )


def references(song: Song) -> dict[str, Audio]:
    """The true parts under Youka's stem type names: what a stem is scored against."""
    return {
        "original": song.mix,
        "vocals": song.vocals,
        "backing_vocals": song.backing,
        "instrumental": song.instrumental,
    }


# ---------------------------------------------------------------------------------------
# Composition: notes on a tempo grid, voiced and mixed.


def _melody(
    rng: np.random.Generator, progression: Sequence[int], n_bars: int, eighth: float
) -> list[tuple[float, float, int, str, bool]]:
    """A phrase over one round of chords, repeated with small changes.

    Returns (start s, length s, scale degree, vowel, starts with a consonant) per sung note.
    """
    phrase: list[tuple[int, int, int | None]] = []  # (start, length) in eighths, degree or rest
    degree = int(rng.integers(4, 9))
    for bar, root in enumerate(progression):
        rhythm = _RHYTHMS[rng.integers(len(_RHYTHMS))]
        chord = {(root + k) % 7 for k in (0, 2, 4)}
        position = 0
        for i, length in enumerate(rhythm):
            if position in (0, 4):  # strong beats land on the nearest chord tone
                degree = min(
                    (d for d in range(2, 12) if d % 7 in chord), key=lambda d: abs(d - degree)
                )
            else:
                degree = int(np.clip(degree + rng.choice([-2, -1, -1, 1, 1, 2]), 2, 11))
            breath = bar % 2 == 1 and i == len(rhythm) - 1  # every second bar ends in a rest
            rest = breath or rng.random() < 0.08
            phrase.append((bar * 8 + position, length, None if rest else degree))
            position += length

    notes = []
    for repeat in range(math.ceil(n_bars / len(progression))):
        for start, length, sung in phrase:
            if sung is None:
                continue
            if repeat > 0 and rng.random() < 0.25:  # vary the repeats a little
                sung = int(np.clip(sung + rng.choice([-1, 1]), 2, 11))
            vowel = _SUNG_VOWELS[rng.integers(len(_SUNG_VOWELS))]
            consonant = bool(rng.random() < 0.5)
            begin = (repeat * 8 * len(progression) + start) * eighth
            notes.append((begin, length * eighth, sung, vowel, consonant))
    return notes


def _midi(tonic: int, scale: Sequence[int], degree: int) -> float:
    return float(tonic + 12 * (degree // 7) + scale[degree % 7])


def _lead_vocal(
    melody: list[tuple[float, float, int, str, bool]],
    tonic: int,
    scale: Sequence[int],
    n: int,
    sr: int,
    rng: np.random.Generator,
) -> Signal:
    """The sung melody, slightly left of centre, in a small room."""
    notes = [(s, d, _midi(tonic, scale, g), v) for s, d, g, v, _ in melody]
    voice, since, index = render(
        notes, n, sr, voice_table, attack=0.03, release=0.06, vibrato=(0.3, 5.6), glide=0.04
    )
    # Consonants: a short burst of high-passed noise where a syllable starts with one.
    consonant = np.array([c for *_, c in melody])
    burst = np.where((since >= 0) & consonant[index], np.exp(-since / 0.015), 0.0)
    voice += 0.25 * burst * np.diff(rng.standard_normal(n + 1))
    return _room(_pan(voice, -0.1), sr, wet=0.25)


def _backing_vocals(
    roots: Sequence[int], eighth: float, tonic: int, scale: Sequence[int], n: int, sr: int
) -> Signal:
    """Two "ooh" voices holding the third and the fifth of each chord, panned wide."""
    out = np.zeros((n, 2), np.float32)
    for step, pan in ((2, -0.7), (4, 0.7)):
        notes = [
            (bar * 8 * eighth, 8 * eighth, _midi(tonic, scale, 7 + root + step), "u")
            for bar, root in enumerate(roots)
        ]
        voice, _, _ = render(
            notes, n, sr, soft_voice_table, attack=0.2, release=0.3, vibrato=(0.15, 5), glide=0.08
        )
        out += _pan(voice, pan)
    return _room(out, sr, wet=0.4)


def _instrumental(
    roots: Sequence[int],
    eighth: float,
    tonic: int,
    scale: Sequence[int],
    n: int,
    sr: int,
    rng: np.random.Generator,
) -> Signal:
    """Chords (a pad, or plucked on a rhythm), a bass line on the chord roots, and drums."""
    plucked = rng.random() < 0.5
    hits = (0, 2, 3, 4, 6) if plucked else (0,)  # eighths of the bar where the chord sounds
    chords = np.zeros((n, 2), np.float32)
    for voice, pan in ((0, -0.4), (2, 0.0), (4, 0.4)):
        notes = []
        for bar, root in enumerate(roots):
            midi = _midi(tonic, scale, root + voice)
            midi = tonic - 5 + (midi - tonic + 5) % 12  # a close voicing below the melody
            for hit, nxt in zip(hits, (*hits[1:], 8), strict=True):
                notes.append(((bar * 8 + hit) * eighth, (nxt - hit) * eighth, midi, ""))
        if plucked:
            tone, _, _ = render(notes, n, sr, pluck_table, attack=0.005, release=0.02, decay=0.35)
        else:
            tone, _, _ = render(notes, n, sr, pad_table, attack=0.25, release=0.3)
        chords += _pan(tone, pan)

    pattern = ((0, 3, 4, 6), (0, 2, 4, 6), (0, 4), (0, 3, 6))[rng.integers(4)]
    notes = []
    for bar, root in enumerate(roots):
        for hit, nxt in zip(pattern, (*pattern[1:], 8), strict=True):
            length = (nxt - hit) * eighth * 0.9  # detached, so each note is heard
            notes.append(((bar * 8 + hit) * eighth, length, _midi(tonic - 24, scale, root), ""))
    bass, _, _ = render(notes, n, sr, bass_table, attack=0.005, release=0.03, decay=0.5)

    chords = normalise(_room(chords, sr, wet=0.3))
    # The drums a touch above chords and bass: they drive.
    drums = from_db(1.0) * _drums(eighth, n, sr, rng)
    return chords + normalise(_pan(bass, 0.0)) + drums


def _drums(eighth: float, n: int, sr: int, rng: np.random.Generator) -> Signal:
    """Kick, snare (a band-passed noise burst over a tone) and hi-hat on the eighth grid."""
    grid = np.arange(0.0, n / sr, eighth)
    beat = np.arange(len(grid)) % 8  # eighth-note position in the bar
    t = np.arange(round(0.35 * sr)) / sr
    # A sine gliding from 150 Hz down to 50 Hz: the phase is the integral of that frequency.
    kick = np.sin(2 * np.pi * (50 * t + 4 * (1 - np.exp(-t / 0.04)))) * np.exp(-t / 0.2)
    t = t[: round(0.2 * sr)]
    snare = _band(rng.standard_normal(len(t)), sr, 1000, 8000) * np.exp(-t / 0.07)
    snare += 0.5 * np.sin(2 * np.pi * 190 * t) * np.exp(-t / 0.04)
    t = t[: round(0.06 * sr)]
    hat = _band(rng.standard_normal(len(t)), sr, 7000, 16000) * np.exp(-t / 0.02)

    kick_on = ((0, 4), (0, 3, 4), (0, 4, 5))[rng.integers(3)]
    out = np.zeros((n, 2), np.float32)
    for sound, on, level, pan in (
        (kick, np.isin(beat, kick_on), 1.0, 0.0),
        (snare, np.isin(beat, (2, 6)), 0.5, 0.1),
        (hat, np.ones(len(grid), bool), 0.15, -0.3),
    ):
        accent = np.where(beat % 2 == 0, 1.0, 0.6) * rng.uniform(0.85, 1.0, len(grid))
        onsets = np.round(grid[on] * sr).astype(np.intp)
        track = _place(sound / np.max(np.abs(sound)), onsets, accent[on], n)
        out += _pan(track * level, pan)
    return normalise(out)


def _place(sound: Signal, onsets: npt.NDArray[np.intp], gains: Signal, n: int) -> Signal:
    """`sound` added at every onset (times its gain), in one vectorised scatter."""
    track = np.zeros(n + len(sound))
    np.add.at(track, onsets[:, None] + np.arange(len(sound)), gains[:, None] * sound)
    return track[:n]


# ---------------------------------------------------------------------------------------
# Small helpers.


def _pan(mono: Signal, position: float) -> Signal:
    """Equal-power pan from -1 (left) to +1 (right); the centre keeps the mono level."""
    angle = (position + 1) * np.pi / 4
    gains = np.array([np.cos(angle), np.sin(angle)], np.float32) * np.float32(np.sqrt(2))
    out = np.empty((len(mono), 2), np.float32)
    for channel in (0, 1):  # one long loop per channel: an outer product is ten times slower
        np.multiply(mono, gains[channel], out=out[:, channel], casting="same_kind")
    return out


def _room(stereo: Signal, sr: int, wet: float) -> Signal:
    """A few early reflections crossing sides: width and space, without a reverb tail."""
    out = stereo.copy()
    taps = ((0.011, 0, 1), (0.017, 1, 0), (0.029, 0, 0), (0.037, 1, 1), (0.053, 0, 1))
    for i, (delay, source, dest) in enumerate(taps):
        d = round(delay * sr)
        out[d:, dest] += wet * 0.8**i * stereo[:-d, source]
    return out


def _band(noise: Signal, sr: int, low: float, high: float) -> Signal:
    """Only the part of `noise` between `low` and `high` Hz."""
    spectrum = np.fft.rfft(noise)
    freq = np.fft.rfftfreq(len(noise), 1 / sr)
    spectrum[(freq < low) | (freq > high)] = 0
    return np.fft.irfft(spectrum, n=len(noise))
