"""Synthetic songs and simulated stem separations for the Youka simulator.

Pure and deterministic: the same arguments always give the same samples, and nothing here
touches the network or the disk.

- `synthesize_song(seed, project_id)` makes a short stereo song from three true parts: a
  sung lead (a melody on a scale; a harmonic source with vibrato and vowel formants), backing
  "ooh" harmonies, and an instrumental (chords, a bass line on the chord roots, drums on a
  tempo grid).
- `separate(song, model, seed)` plays one of the twelve Youka split models: each derives its
  stems from the true parts with its own imperfections, all listed in `MODEL_SPECS`.
- `references(song)` gives the true parts under Youka's stem type names, for scoring.
- `encode` turns samples into WAV or FLAC bytes; `tiny_wav` makes a WAV of a given size at no
  synthesis cost.
"""

from __future__ import annotations

import hashlib
import io
import math
import struct
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import soundfile as sf

Audio = npt.NDArray[np.float32]  # (frames, 2); full scale is +-1
Signal = npt.NDArray[np.floating[Any]]  # samples on their way to Audio

CONTENT_TYPES: Final = {"wav": "audio/wav", "flac": "audio/flac"}
STEM_TYPES: Final = ("vocals", "backing_vocals", "instrumental")

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
# Formants of sung vowels: centre (Hz), bandwidth (Hz), level (dB).
_VOWELS: Final = {
    "a": ((800, 1150, 2900, 3900), (80, 90, 120, 130), (0, -6, -32, -20)),
    "e": ((400, 1600, 2700, 3300), (60, 80, 120, 150), (0, -20, -15, -40)),
    "i": ((270, 2140, 2950, 3900), (60, 90, 100, 120), (0, -12, -26, -26)),
    "o": ((450, 800, 2830, 3800), (70, 80, 100, 130), (0, -11, -22, -22)),
    "u": ((325, 700, 2700, 3800), (50, 60, 170, 180), (0, -16, -35, -40)),
}
_SUNG_VOWELS: Final = "aaaooeeiu"  # open vowels carry a sung line; drawn with these odds

_TABLE_SIZE: Final = 8192  # samples in one period of a wavetable; a power of two


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
        return _frozen(self.lead + self.backing)

    @cached_property
    def mix(self) -> Audio:
        """The song as a listener hears it: all three parts."""
        return _frozen(self.lead + self.backing + self.instrumental)


def synthesize_song(
    seed: int, project_id: str, seconds: float = 20.0, sample_rate: int = 44100
) -> Song:
    """Make the song of (seed, project_id); the same arguments always give the same samples."""
    n = round(seconds * sample_rate)
    if n < 1:
        raise ValueError(f"a song needs at least one sample, not {seconds} seconds")
    rng = _rng("song", seed, project_id)
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
    lead = _normalise(lead) * _db(LEAD_DB) * _rms(instrumental)
    backing = _normalise(backing) * _db(BACKING_DB) * _rms(instrumental)
    ramp = np.arange(n, dtype=np.float32) / np.float32(0.5 * sample_rate)
    fade = np.minimum(np.minimum(ramp, ramp[::-1]), 1)[:, None]
    gain = _db(PEAK_DBFS) / max(float(np.max(np.abs((lead + backing + instrumental) * fade))), 1e-9)
    lead, backing, instrumental = (
        _frozen(p * (gain * fade)) for p in (lead, backing, instrumental)
    )

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
# Composition. A note is (start s, length s, MIDI pitch, vowel); the vowel only matters to
# voices.

_Note = tuple[float, float, float, str]
# Builds one wavetable per note from (fundamental Hz per note, vowel per note, sample rate).
_Timbre = Callable[[Signal, list[str], int], Signal]


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
    voice, since, index = _render(
        notes, n, sr, _voice_table, attack=0.03, release=0.06, vibrato=(0.3, 5.6), glide=0.04
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
        voice, _, _ = _render(
            notes, n, sr, _soft_voice_table, attack=0.2, release=0.3, vibrato=(0.15, 5), glide=0.08
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
            tone, _, _ = _render(notes, n, sr, _pluck_table, attack=0.005, release=0.02, decay=0.35)
        else:
            tone, _, _ = _render(notes, n, sr, _pad_table, attack=0.25, release=0.3)
        chords += _pan(tone, pan)

    pattern = ((0, 3, 4, 6), (0, 2, 4, 6), (0, 4), (0, 3, 6))[rng.integers(4)]
    notes = []
    for bar, root in enumerate(roots):
        for hit, nxt in zip(pattern, (*pattern[1:], 8), strict=True):
            length = (nxt - hit) * eighth * 0.9  # detached, so each note is heard
            notes.append(((bar * 8 + hit) * eighth, length, _midi(tonic - 24, scale, root), ""))
    bass, _, _ = _render(notes, n, sr, _bass_table, attack=0.005, release=0.03, decay=0.5)

    chords = _normalise(_room(chords, sr, wet=0.3))
    drums = _db(1.0) * _drums(eighth, n, sr, rng)  # a touch above chords and bass: it drives
    return chords + _normalise(_pan(bass, 0.0)) + drums


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
    return _normalise(out)


def _place(sound: Signal, onsets: npt.NDArray[np.intp], gains: Signal, n: int) -> Signal:
    """`sound` added at every onset (times its gain), in one vectorised scatter."""
    track = np.zeros(n + len(sound))
    np.add.at(track, onsets[:, None] + np.arange(len(sound)), gains[:, None] * sound)
    return track[:n]


# ---------------------------------------------------------------------------------------
# Sound: one period of each note's waveform in a table, read at a per-sample phase, so the
# cost does not grow with the number of harmonics.


def _render(
    notes: list[_Note],
    n: int,
    sr: int,
    timbre: _Timbre,
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
            gain[row] += _db(level) / np.sqrt(1 + ((freq[row] - centre) / width) ** 2)
    return np.where(np.isfinite(freq), gain + 0.01, 0.0)  # a floor, but none above Nyquist


def _voice_table(f0: Signal, vowels: list[str], sr: int) -> Signal:
    k, freq = _harmonics(f0, sr)
    return _tables(_formants(freq, vowels) / k)  # a -6 dB/octave source through the formants


def _soft_voice_table(f0: Signal, vowels: list[str], sr: int) -> Signal:
    k, freq = _harmonics(f0, sr)
    return _tables(_formants(freq, vowels) / k**1.5)  # a breathier, darker source


def _pad_table(f0: Signal, vowels: list[str], sr: int) -> Signal:
    k, freq = _harmonics(f0, sr)
    return _tables(1 / k / (1 + (freq / 2500) ** 4))  # a sawtooth, low-passed


def _pluck_table(f0: Signal, vowels: list[str], sr: int) -> Signal:
    k, freq = _harmonics(f0, sr)
    return _tables(1 / k / (1 + (freq / 5000) ** 2))


def _bass_table(f0: Signal, vowels: list[str], sr: int) -> Signal:
    k, freq = _harmonics(f0, sr, count=12)
    return _tables(1 / k**2 / (1 + (freq / 800) ** 2))


# ---------------------------------------------------------------------------------------
# Simulated separation.

_PARTS: Final = ("lead", "backing", "instrumental")
# Which stems a family of models returns, each as the true parts it is made from. None means
# "the mix minus this model's instrumental estimate": instrumental models invert for vocals.
_LAYOUTS: Final[Mapping[str, Mapping[str, tuple[str, ...] | None]]] = {
    "vocals": {"vocals": ("lead", "backing"), "instrumental": ("instrumental",)},
    "karaoke": {"vocals": ("lead",), "instrumental": ("instrumental", "backing")},
    "lead": {"vocals": ("lead",)},
    "inst": {"instrumental": ("instrumental",)},
    "lead+backing": {
        "vocals": ("lead",),
        "backing_vocals": ("backing",),
        "instrumental": ("instrumental",),
    },
    "inst+inverted": {"instrumental": ("instrumental",), "vocals": None},
}
NO_STEM: Final = math.nan  # the leak of a kind of stem the model does not estimate


@dataclass(frozen=True)
class ModelSpec:
    """How one simulated split model turns the true parts into stems."""

    layout: str  # a key of _LAYOUTS: which stems it returns and what each holds
    fmt: str  # the file format it stores: "wav" or "flac"
    vocal_leak_db: float  # level of the other parts left in a vocal stem, dB
    inst_leak_db: float  # level of the vocal parts left in an instrumental stem, dB
    cutoff_hz: float  # band limit: the response is -3 dB here and falls steeply above
    noise_db: float  # artefact noise following the stem's envelope, dB below the stem's RMS
    level_db: float  # gain error of every stem, dB
    smear_ms: float = 0.0  # pre- and post-echo at -26 dB this far away (0 = none)


# Every model's imperfections, in one place. Calibrated so that the SDRs the report measures
# on these songs come out near the public figures in youka-api.md (quoted per model) and rank
# the models the same way. Noise dominates the instrumental's error, leakage the vocals'.
# Columns: layout, format, vocal leak, instrumental leak, cutoff, noise, level error, smear.
MODEL_SPECS: Final[Mapping[str, ModelSpec]] = {
    # The default, balanced: close behind bs_roformer (public: vocals 10.2, instrumental 16.5).
    "mdx23c": ModelSpec("vocals", "wav", -17.2, -27.0, 17500, 16.0, -0.4),
    # AudioShake's general model: no public figures; assumed a little above mdx23c on vocals
    # and below it on the instrumental.
    "audioshakeai": ModelSpec("vocals", "flac", -18.6, -27.0, 19000, 16.1, 0.4),
    # AudioShake's lead model: as clean as audioshakeai, but the backing vocals are left out.
    "audioshake_vocals_lead": ModelSpec("lead", "flac", -18.6, NO_STEM, 19000, 16.1, 0.4),
    # Music.ai instrumental only: a little behind the mel-band instrumental models.
    "musicai_instrumental_only": ModelSpec("inst", "wav", NO_STEM, -28.0, 16000, 15.0, 0.3),
    # Music.ai lead / backing / other: more leakage and smearing, since it also splits the
    # voices apart; the quiet backing stem is the hardest of all.
    "musicai_lead_backing_other": ModelSpec(
        "lead+backing", "flac", -17.0, -26.0, 16000, 16.0, -0.6, 3.0
    ),
    # Music.ai with backing vocals: all the vocals together, slightly below mdx23c.
    "musicai_with_backing_vocals": ModelSpec("vocals", "wav", -17.0, -26.0, 16000, 15.2, -0.5),
    # Music.ai without backing vocals: the lead alone; the backing goes to the instrumental.
    "musicai_without_backing_vocals": ModelSpec("karaoke", "wav", -17.0, -26.0, 16000, 15.2, -0.5),
    # UVR karaoke: the lead alone (public: about 5 dB against all vocals); its instrumental
    # keeps the backing vocals. Band-limited at 17.5 kHz like the MDX-Net models.
    "uvr_mdxnet_kara_2": ModelSpec("karaoke", "wav", -16.5, -25.0, 17500, 15.5, -0.7),
    # The strongest open model of the twelve (public: vocals 10.9, instrumental 17.2).
    "bs_roformer": ModelSpec("vocals", "wav", -18.6, -29.0, 20000, 16.8, -0.2),
    # Instrumental-focused (public: instrumental 16.5): a strong, full-band instrumental. Its
    # vocals are the mix minus that estimate, so they carry all of its error.
    "mel_band_roformer_instrumental_becruily": ModelSpec(
        "inst+inverted", "wav", NO_STEM, -29.0, 20000, 16.5, -0.2
    ),
    "mel_band_roformer_instrumental_instv7_gabox": ModelSpec(
        "inst+inverted", "wav", NO_STEM, -28.0, 20000, 16.4, 0.3
    ),
    # Demucs (htdemucs_ft): clearly weaker (public: vocals 8.4, instrumental 14.0), with
    # smeared transients.
    "demucs": ModelSpec("vocals", "wav", -14.8, -24.0, 16000, 15.8, -0.8, 6.0),
}
MODELS: Final = tuple(MODEL_SPECS)


def model_spec(model: str) -> ModelSpec:
    """The simulated behaviour of `model`; KeyError naming the known models otherwise."""
    try:
        return MODEL_SPECS[model]
    except KeyError:
        raise KeyError(f"unknown split model {model!r}; known: {', '.join(MODELS)}") from None


def model_stem_types(model: str) -> tuple[str, ...]:
    """The stem types `model` returns, in the order of STEM_TYPES."""
    layout = _LAYOUTS[model_spec(model).layout]
    return tuple(stem for stem in STEM_TYPES if stem in layout)


def model_format(model: str) -> str:
    """The file format `model`'s stems are stored in: "wav" or "flac"."""
    return model_spec(model).fmt


def separate(song: Song, model: str, seed: int) -> dict[str, Audio]:
    """The stems `model` makes of `song`, by stem type; the same for the same arguments.

    Each stem is its true parts at the model's level error, plus the other parts at its leak
    level, plus noise that follows the stem, band-limited and smeared as the model is.
    """
    spec = model_spec(model)
    parts = {"lead": song.lead, "backing": song.backing, "instrumental": song.instrumental}
    layout = _LAYOUTS[spec.layout]
    stems: dict[str, Audio] = {}
    for stem, made_of in layout.items():
        if made_of is None:
            continue
        leak = spec.inst_leak_db if stem == "instrumental" else spec.vocal_leak_db
        target = sum((parts[p] for p in made_of), np.zeros_like(song.mix))
        others = sum((parts[p] for p in _PARTS if p not in made_of), np.zeros_like(song.mix))
        estimate = _db(spec.level_db) * (target + _db(leak) * others)
        rng = _rng("separate", seed, song.project_id, model, stem)
        estimate += _artefacts(target, spec.noise_db, rng)
        stems[stem] = _filter(estimate, spec, song.sample_rate)
    if "vocals" in layout and layout["vocals"] is None:
        stems["vocals"] = _frozen(song.mix - stems["instrumental"])
    return {stem: stems[stem] for stem in model_stem_types(model)}


def _artefacts(target: Audio, noise_db: float, rng: np.random.Generator) -> Signal:
    """Noise `noise_db` below the target's RMS that swells and fades with the target."""
    frame = 1024
    frames = len(target) // frame
    if frames == 0:
        return np.zeros_like(target)
    power = np.mean(np.square(target[: frames * frame].reshape(frames, -1)), axis=1)
    centres = (np.arange(frames) + 0.5) * frame
    envelope = np.interp(np.arange(len(target)), centres, np.sqrt(power)).astype(np.float32)
    # Uniform noise scaled to unit variance: as good as Gaussian here, and much cheaper.
    noise = rng.random(target.shape, dtype=np.float32) - np.float32(0.5)
    noise *= (envelope * np.float32(_db(-noise_db) * math.sqrt(12)))[:, None]
    return noise


def _filter(audio: Signal, spec: ModelSpec, sr: int) -> Audio:
    """Band-limit (and smear) `audio` as the model does, with a zero-phase response."""
    size = _fft_size(len(audio))  # the zero padding also keeps echoes from wrapping around
    freq = np.fft.rfftfreq(size, 1 / sr)
    response = 1 / np.sqrt(1 + (freq / spec.cutoff_hz) ** 16)
    if spec.smear_ms:
        # An echo at -26 dB before and after: the pre-echo of mask-based separation.
        response *= 1 + 0.1 * np.cos(2 * np.pi * freq * spec.smear_ms / 1000)
    spectrum = np.fft.rfft(audio.T.astype(np.float32), n=size, axis=1)
    spectrum *= response.astype(np.float32)
    return _frozen(np.fft.irfft(spectrum, n=size, axis=1)[:, : len(audio)].T)


# ---------------------------------------------------------------------------------------
# Encoding.


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
    block = (_rng("tiny_wav", seed).standard_normal(32768) * 100).astype("<i2").tobytes()
    payload = block * (data_size // len(block)) + block[: data_size % len(block)]
    header = struct.pack(
        "<4sI4s4sIHHIIHH4sI",
        b"RIFF", 36 + data_size, b"WAVE",
        b"fmt ", 16, 1, 2, sample_rate, sample_rate * 4, 4, 16,  # PCM, stereo, 16 bits
        b"data", data_size,
    )  # fmt: skip
    return header + payload


# ---------------------------------------------------------------------------------------
# Small helpers.


def _rng(*key: object) -> np.random.Generator:
    """A generator seeded from the key's text: stable across processes, unlike hash()."""
    digest = hashlib.blake2b("\x1f".join(map(str, key)).encode(), digest_size=16).digest()
    return np.random.default_rng(int.from_bytes(digest, "little"))


def _db(db: float) -> float:
    return float(10 ** (db / 20))


def _rms(x: Signal) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))


def _normalise(x: Signal) -> Signal:
    return x / max(_rms(x), 1e-12)


def _unit(x: Signal) -> Signal:
    """`x` clipped to [0, 1]; faster than np.clip on large arrays."""
    return np.minimum(np.maximum(x, 0), 1)


def _frozen(x: Signal) -> Audio:
    out = np.ascontiguousarray(x, dtype=np.float32)
    out.flags.writeable = False
    return out


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


def _smooth(x: Signal, width: int) -> Signal:
    """Moving average over `width` samples."""
    if width <= 1:
        return x
    total = np.cumsum(np.concatenate([np.full(width, x[0]), x]))
    return np.asarray((total[width:] - total[:-width]) / width)


def _band(noise: Signal, sr: int, low: float, high: float) -> Signal:
    """Only the part of `noise` between `low` and `high` Hz."""
    spectrum = np.fft.rfft(noise)
    freq = np.fft.rfftfreq(len(noise), 1 / sr)
    spectrum[(freq < low) | (freq > high)] = 0
    return np.fft.irfft(spectrum, n=len(noise))


def _fft_size(n: int) -> int:
    """The smallest 2^a 3^b 5^c >= n: pocketfft is several times faster on such lengths."""
    best = 1 << max(n - 1, 0).bit_length()
    power5 = 1
    while power5 < best:
        power35 = power5
        while power35 < best:
            # The smallest power of two that lifts power35 to n or above.
            size = power35 << max(0, -(-n // power35) - 1).bit_length()
            best = min(best, size)
            power35 *= 3
        power5 *= 5
    return best
