"""Signal measures of the comparison report: pure accumulators fed block by block.

Nothing here reads or writes files. Audio is a `(frames, channels)` float array with full
scale at +-1; a 1-D array is read as mono. Every measure is an accumulator that takes the
track in consecutive blocks (`add`) and gives its value at the end, so no track is ever
held whole; each also has a function of a whole array (`sdr(reference, estimate)`...)
that feeds it in blocks, for tests and small arrays. Sums run in float64.

With a reference (the true part), on arrays already aligned (see `align`):
- `Scores.sdr`: the Music Demixing / Sound Demixing challenge SDR over the whole track,
  10 log10(sum s^2 / sum (s - s_hat)^2) over all samples and channels. The estimate is
  brought to the reference's length first, zero-padded when short (museval's
  `pad_or_truncate`): a stem that covers a tenth of the song scores as one.
- `Scores.si_sdr`: scale-invariant SDR per channel, averaged over the channels where the
  reference is not silent (a hard-panned part has one): a silent reference channel has no
  scale to be invariant to, and scoring it would read -80 dB whatever the estimate.

Without a reference (what most catalogues have), `StemMeter`: integrated loudness
(ITU-R BS.1770, `loudness`), sample peak, clipped share, share of near-silence, length;
and `Residual`: how far the sum of a model's stems is from the mix.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Final

import numpy as np
import numpy.typing as npt

from orchestrator.report.loudness import MAX_CHANNELS, LoudnessMeter

Samples = npt.NDArray[np.floating]
Audio32 = npt.NDArray[np.float32]
Mono = npt.NDArray[np.float64]

# The challenge adds this to both sums, so that silence never divides by zero.
SDR_DELTA: Final = 1e-7
# SI-SDR as asteroid computes it: eps in the projection, the ratio and the log. A silent
# estimate then scores 10 log10(SI_SDR_EPS) = -80 dB instead of 0/0.
SI_SDR_EPS: Final = 1e-8
# A reference channel this far below the loudest one is silent for SI-SDR (a hard pan).
SILENT_CHANNEL_DB: Final = -60.0
CLIP_LEVEL: Final = 0.999  # |sample| at or above this counts as clipped (-0.009 dBFS)
SILENCE_DBFS: Final = -60.0  # a frame whose RMS is below this is near-silence
SILENCE_FRAME_S: Final = 0.05
BLOCK_FRAMES: Final = 1 << 15  # frames per block fed by the whole-array functions


def as_frames(audio: npt.ArrayLike) -> Audio32:
    """`audio` as a float32 `(frames, channels)` array (mono input gets one channel)."""
    array = np.asarray(audio, dtype=np.float32)
    if array.ndim == 1:
        array = array[:, None]
    if array.ndim != 2:
        raise ValueError(f"audio must be (frames,) or (frames, channels), not {array.shape}")
    return array


def blocks(*arrays: Samples) -> Iterator[tuple[Audio32, ...]]:
    """Aligned blocks of `BLOCK_FRAMES` frames of equally long arrays."""
    frames = [as_frames(a) for a in arrays]
    for start in range(0, len(frames[0]), BLOCK_FRAMES):
        yield tuple(a[start : start + BLOCK_FRAMES] for a in frames)


def _check_shapes(reference: Samples, estimate: Samples) -> None:
    if reference.shape != estimate.shape:
        raise ValueError(f"align first: reference {reference.shape}, estimate {estimate.shape}")


# ---------------------------------------------------------------------------------------
# Scores against a reference.


class Scores:
    """SDR and SI-SDR of an estimate against its reference, fed in aligned blocks."""

    def __init__(self) -> None:
        self.error = 0.0  # sum (s - s_hat)^2
        self.ss: npt.NDArray[np.float64] | None = None  # per channel: sum s^2
        self.se: npt.NDArray[np.float64] | None = None  # sum s s_hat
        self.ee: npt.NDArray[np.float64] | None = None  # sum s_hat^2

    def add(self, reference: Samples, estimate: Samples) -> None:
        """Take the next blocks: equal shapes, the estimate already aligned."""
        _check_shapes(reference, estimate)
        s = reference.astype(np.float64)
        e = estimate.astype(np.float64)
        if self.ss is None or self.se is None or self.ee is None:
            self.ss, self.se, self.ee = (np.zeros(s.shape[1]) for _ in range(3))
        self.error += float(np.sum((s - e) ** 2))
        # Column dot products: einsum reads each array once, without a temporary.
        self.ss += np.einsum("ij,ij->j", s, s)
        self.se += np.einsum("ij,ij->j", s, e)
        self.ee += np.einsum("ij,ij->j", e, e)

    def sdr(self) -> float:
        """Challenge SDR in dB over all samples and channels; a silent estimate scores 0 dB."""
        signal = float(np.sum(self.ss)) if self.ss is not None else 0.0
        return 10.0 * math.log10((signal + SDR_DELTA) / (self.error + SDR_DELTA))

    def si_sdr(self) -> float | None:
        """SI-SDR in dB, averaged over the reference's non-silent channels; None if all are."""
        if self.ss is None or self.se is None or self.ee is None:
            return None
        loudest = float(np.max(self.ss))
        audible = self.ss > max(loudest * 10 ** (SILENT_CHANNEL_DB / 10), 0.0)
        if not np.any(audible):
            return None
        ss, se, ee = self.ss[audible], self.se[audible], self.ee[audible]
        scale = se / (ss + SI_SDR_EPS)  # the projection of the estimate onto the reference
        target = scale**2 * ss
        # sum (e - scale s)^2, expanded; rounding can take a near-perfect one below zero.
        noise = np.maximum(ee - 2 * scale * se + scale**2 * ss, 0.0)
        ratio = target / (noise + SI_SDR_EPS)
        return float(np.mean(10.0 * np.log10(ratio + SI_SDR_EPS)))


def sdr(reference: Samples, estimate: Samples) -> float:
    """Challenge SDR of two aligned whole arrays (see `Scores.sdr`)."""
    scores = Scores()
    _check_shapes(as_frames(reference), as_frames(estimate))
    for s, e in blocks(reference, estimate):
        scores.add(s, e)
    return scores.sdr()


def si_sdr(reference: Samples, estimate: Samples) -> float | None:
    """SI-SDR of two aligned whole arrays (see `Scores.si_sdr`)."""
    scores = Scores()
    _check_shapes(as_frames(reference), as_frames(estimate))
    for s, e in blocks(reference, estimate):
        scores.add(s, e)
    return scores.si_sdr()


# ---------------------------------------------------------------------------------------
# Reference-free measures.


class Residual:
    """Energy of (mix - sum of a model's stems) against the mix's, fed in aligned blocks."""

    def __init__(self) -> None:
        self.error = 0.0
        self.mix = 0.0

    def add(self, mix: Samples, stems_sum: Samples) -> None:
        """Take the next blocks of the mix and of the sum of the stems (equal shapes)."""
        _check_shapes(mix, stems_sum)
        m = mix.astype(np.float64)
        self.error += float(np.sum((m - stems_sum) ** 2))
        self.mix += float(np.sum(m * m))

    def db(self) -> float:
        """-40 dB: the stems add up to the mix; 0 dB: as much is missing as the mix holds."""
        return 10.0 * math.log10((self.error + SDR_DELTA) / (self.mix + SDR_DELTA))


def residual_db(original: Samples, stems_sum: Samples) -> float:
    """`Residual.db` of two aligned whole arrays."""
    residual = Residual()
    _check_shapes(as_frames(original), as_frames(stems_sum))
    for o, t in blocks(original, stems_sum):
        residual.add(o, t)
    return residual.db()


def energy(audio: Samples) -> float:
    """Sum of squares over all samples and channels."""
    return sum(float(np.sum(a.astype(np.float64) ** 2)) for (a,) in blocks(audio))


class StemMeter:
    """A stem's own measures, fed its `(frames, channels)` blocks in order."""

    def __init__(self, rate: int, channels: int, *, loudness: bool = True) -> None:
        self.rate = rate
        self.channels = channels
        self.frames = 0
        self.peak = 0.0
        self.clipped = 0
        # Near-silence: frames of SILENCE_FRAME_S; a partial frame waits for the next block.
        self._frame = max(1, round(SILENCE_FRAME_S * rate))
        self._carry = np.zeros((0, channels), np.float64)
        self._quiet = 0
        self._counted = 0
        self._threshold = 10.0 ** (SILENCE_DBFS / 10.0)  # RMS in dBFS, compared as power
        # BS.1770 defines up to five channels; more are downmixed to stereo first.
        self._loudness = (
            LoudnessMeter(rate, channels if channels <= MAX_CHANNELS else 2) if loudness else None
        )

    def add(self, block: Samples) -> None:
        """Take the next block."""
        if not len(block):
            return
        self.frames += len(block)
        # max and -min instead of max(abs): no temporary copy.
        self.peak = max(self.peak, float(block.max()), -float(block.min()))
        self.clipped += int(np.count_nonzero(np.abs(block) >= CLIP_LEVEL))
        joined = np.concatenate([self._carry, block.astype(np.float64)])
        whole = len(joined) // self._frame
        if whole:
            frames = joined[: whole * self._frame].reshape(whole, -1)
            power = np.einsum("ij,ij->i", frames, frames) / frames.shape[1]
            self._quiet += int(np.count_nonzero(power < self._threshold))
            self._counted += whole
        self._carry = joined[whole * self._frame :]
        if self._loudness is not None:
            if self.channels > MAX_CHANNELS:
                block = block @ np.full((self.channels, 2), 1.0 / self.channels, np.float32)
            self._loudness.add(block)

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return self.frames / self.rate

    def lufs(self) -> float | None:
        """Integrated loudness in LUFS; None when silent, shorter than 400 ms, or not measured."""
        return self._loudness.lufs() if self._loudness is not None else None

    def peak_dbfs(self) -> float | None:
        """The largest |sample| in dBFS; None for digital silence."""
        return 20.0 * math.log10(self.peak) if self.peak > 0 else None

    def clipped_share(self) -> float:
        """Share of samples at or beyond full scale (|x| >= CLIP_LEVEL), 0..1."""
        samples = self.frames * self.channels
        return self.clipped / samples if samples else 0.0

    def silence_share(self) -> float:
        """Share of SILENCE_FRAME_S frames whose RMS over all channels is below -60 dBFS.

        Shorter than one frame: 1.0 for digital silence, else 0.0.
        """
        if self._counted == 0:
            return 1.0 if self.peak == 0 else 0.0
        return self._quiet / self._counted


def measure(audio: Samples, rate: int, *, loudness: bool = True) -> StemMeter:
    """A `StemMeter` fed a whole array."""
    frames = as_frames(audio)
    meter = StemMeter(rate, frames.shape[1], loudness=loudness)
    for (block,) in blocks(frames):
        meter.add(block)
    return meter


def integrated_lufs(audio: Samples, rate: int) -> float | None:
    """Integrated loudness of a whole array (see `StemMeter.lufs`)."""
    return measure(audio, rate).lufs()


def sample_peak_dbfs(audio: Samples) -> float | None:
    """Sample peak of a whole array in dBFS; None for digital silence."""
    return measure(audio, 1, loudness=False).peak_dbfs()


def clipped_share(audio: Samples) -> float:
    """Clipped share of a whole array, 0..1."""
    return measure(audio, 1, loudness=False).clipped_share()


def silence_share(audio: Samples, rate: int) -> float:
    """Share of near-silent 50 ms frames of a whole array (see `StemMeter.silence_share`)."""
    return measure(audio, rate, loudness=False).silence_share()


class WindowTap:
    """Collects the mono downmix of frames [start - margin, start + length + margin) for each
    start, from blocks fed in order; frames before 0 or after the end read as zeros."""

    def __init__(self, starts: list[int], length: int, margin: int = 0) -> None:
        self.starts = starts
        self.length = length
        self.margin = margin
        self.windows = [np.zeros(length + 2 * margin) for _ in starts]
        self._position = 0

    def add(self, block: Samples) -> None:
        """Take the next `(frames, channels)` block."""
        first, last = self._position, self._position + len(block)
        self._position = last
        for start, window in zip(self.starts, self.windows, strict=True):
            low, high = start - self.margin, start + self.length + self.margin
            if high <= first or low >= last:
                continue
            a, b = max(low, first), min(high, last)
            # Only the frames a window needs are downmixed, column by column (mean(axis=1)
            # over a short last axis is slow).
            part = block[a - first : b - first]
            mono = part[:, 0].astype(np.float64)
            for c in range(1, part.shape[1]):
                mono += part[:, c]
            window[a - low : b - low] = mono / part.shape[1]


def duration(audio: Samples, rate: int) -> float:
    """Length in seconds."""
    return len(as_frames(audio)) / rate
