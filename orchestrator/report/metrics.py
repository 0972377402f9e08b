"""Signal measures of the comparison report: pure functions of sample arrays.

Nothing here reads or writes files. Audio is a `(frames, channels)` float array with full
scale at +-1; a 1-D array is read as mono.

With a reference (the true part):
- `sdr`: the Music Demixing / Sound Demixing challenge SDR over the whole track,
  10 log10(sum s^2 / sum (s - s_hat)^2) over all samples and channels.
- `si_sdr`: scale-invariant SDR per channel, then averaged over channels.
- `align`: brings an estimate to the reference's sample rate, channel layout and length.

Without a reference (what most catalogues have):
- `integrated_lufs` (ITU-R BS.1770 through pyloudnorm), `sample_peak_dbfs`, `clipped_share`,
  `silence_share`, and `residual_db`: how far the sum of a model's stems is from the mix.

Sums run over blocks of frames in float64, so a long float32 track needs no float64 copy and
the sums keep their precision.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt
import pyloudnorm
from scipy.signal import resample_poly

Samples = npt.NDArray[np.floating]
Audio32 = npt.NDArray[np.float32]

# The challenge adds this to both sums, so that silence never divides by zero.
SDR_DELTA: Final = 1e-7
# SI-SDR as asteroid computes it: eps in the projection, the ratio and the log. A silent
# estimate then scores 10 log10(SI_SDR_EPS) = -80 dB instead of 0/0.
SI_SDR_EPS: Final = 1e-8
CLIP_LEVEL: Final = 0.999  # |sample| at or above this counts as clipped (-0.009 dBFS)
SILENCE_DBFS: Final = -60.0  # a frame whose RMS is below this is near-silence
SILENCE_FRAME_S: Final = 0.05
BLOCK_FRAMES: Final = 1 << 16  # frames per block of the float64 sums


def as_frames(audio: npt.ArrayLike) -> Audio32:
    """`audio` as a float32 `(frames, channels)` array (mono input gets one channel)."""
    array = np.asarray(audio, dtype=np.float32)
    if array.ndim == 1:
        array = array[:, None]
    if array.ndim != 2:
        raise ValueError(f"audio must be (frames,) or (frames, channels), not {array.shape}")
    return array


def _blocks(*arrays: Samples) -> Iterator[tuple[npt.NDArray[np.float64], ...]]:
    """Aligned float64 blocks of equally long arrays."""
    frames = len(arrays[0])
    for start in range(0, frames, BLOCK_FRAMES):
        yield tuple(a[start : start + BLOCK_FRAMES].astype(np.float64) for a in arrays)


# ---------------------------------------------------------------------------------------
# Alignment: one sample rate, one channel layout, one length.


def resample(audio: Samples, rate: int, target_rate: int) -> Audio32:
    """`audio` at `target_rate`, by polyphase filtering (scipy's `resample_poly`)."""
    audio = as_frames(audio)
    if rate == target_rate:
        return audio
    g = math.gcd(rate, target_rate)
    out = resample_poly(audio, target_rate // g, rate // g, axis=0)
    return np.ascontiguousarray(out, dtype=np.float32)


def match_channels(audio: Samples, channels: int) -> Audio32:
    """`audio` with `channels` channels: mono is copied to each, anything else downmixed."""
    audio = as_frames(audio)
    have = audio.shape[1]
    if have == channels:
        return audio
    # A matrix product downmixes far faster than mean(axis=1) on (frames, channels).
    mono = audio if have == 1 else (audio @ np.full((have, 1), 1.0 / have, np.float32))
    return np.ascontiguousarray(np.repeat(mono, channels, axis=1))


def fit(audio: Samples, rate: int, *, target_rate: int, channels: int, frames: int) -> Audio32:
    """`audio` resampled, re-channelled and cut or zero-padded to exactly `frames` frames."""
    out = match_channels(resample(audio, rate, target_rate), channels)
    if len(out) >= frames:
        return out[:frames]
    return np.concatenate([out, np.zeros((frames - len(out), channels), np.float32)])


@dataclass(frozen=True)
class Aligned:
    """A reference and an estimate of equal shape, and what it took to get there."""

    reference: Audio32
    estimate: Audio32
    length_diff: float  # estimate minus reference, seconds (at the reference's rate)
    resampled: bool  # the estimate's sample rate differed from the reference's


def align(
    reference: Samples, reference_rate: int, estimate: Samples, estimate_rate: int
) -> Aligned:
    """Bring `estimate` to the reference's rate and channels; trim both to the shorter."""
    ref = as_frames(reference)
    est = match_channels(resample(estimate, estimate_rate, reference_rate), ref.shape[1])
    frames = min(len(ref), len(est))
    return Aligned(
        reference=ref[:frames],
        estimate=est[:frames],
        length_diff=(len(est) - len(ref)) / reference_rate,
        resampled=estimate_rate != reference_rate,
    )


# ---------------------------------------------------------------------------------------
# Scores against a reference (arrays already aligned: same shape).


def _check_shapes(reference: Samples, estimate: Samples) -> None:
    if reference.shape != estimate.shape:
        raise ValueError(f"align first: reference {reference.shape}, estimate {estimate.shape}")


def sdr(reference: Samples, estimate: Samples) -> float:
    """Challenge SDR in dB over all samples and channels; a silent estimate scores 0 dB."""
    ref, est = as_frames(reference), as_frames(estimate)
    _check_shapes(ref, est)
    signal = error = 0.0
    for s, e in _blocks(ref, est):
        signal += float(np.sum(s * s))
        error += float(np.sum((s - e) ** 2))
    return 10.0 * math.log10((signal + SDR_DELTA) / (error + SDR_DELTA))


def si_sdr(reference: Samples, estimate: Samples) -> float:
    """Scale-invariant SDR in dB, per channel then averaged; a silent estimate is -80 dB."""
    ref, est = as_frames(reference), as_frames(estimate)
    _check_shapes(ref, est)
    channels = ref.shape[1]
    ss = np.zeros(channels)
    se = np.zeros(channels)
    for s, e in _blocks(ref, est):
        # The diagonal of s.T @ e holds the per-channel dot products (BLAS, fast).
        ss += np.diag(s.T @ s)
        se += np.diag(s.T @ e)
    scale = se / (ss + SI_SDR_EPS)  # the projection of the estimate onto the reference
    target = scale**2 * ss
    noise = np.zeros(channels)
    for s, e in _blocks(ref, est):
        residual = e - scale * s
        noise += np.diag(residual.T @ residual)
    ratio = target / (noise + SI_SDR_EPS)
    return float(np.mean(10.0 * np.log10(ratio + SI_SDR_EPS)))


# ---------------------------------------------------------------------------------------
# Reference-free measures.


def energy(audio: Samples) -> float:
    """Sum of squares over all samples and channels."""
    return sum(float(np.sum(a * a)) for (a,) in _blocks(as_frames(audio)))


def residual_db(original: Samples, stems_sum: Samples) -> float:
    """Energy of (original - sum of stems) relative to the original's, in dB.

    -40 dB: the stems add up to the mix; 0 dB: as much is missing as the mix holds. Arrays
    must be aligned (see `fit`).
    """
    orig, total = as_frames(original), as_frames(stems_sum)
    _check_shapes(orig, total)
    error = sum(float(np.sum((o - t) ** 2)) for o, t in _blocks(orig, total))
    return 10.0 * math.log10((error + SDR_DELTA) / (energy(orig) + SDR_DELTA))


def integrated_lufs(audio: Samples, rate: int) -> float | None:
    """Integrated loudness in LUFS (ITU-R BS.1770-4, gated); None when silent or too short.

    BS.1770 defines up to five channels; more are downmixed to stereo first.
    """
    frames = as_frames(audio)
    if frames.shape[1] > 5:
        frames = match_channels(frames, 2)
    meter = pyloudnorm.Meter(rate)
    if len(frames) < meter.block_size * rate:
        return None  # shorter than one 400 ms gating block
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        # float32 in: pyloudnorm copies and filters it at that precision, which moves the
        # result by less than 1e-6 LU and takes a third less time than float64.
        value = float(meter.integrated_loudness(frames))
    return value if math.isfinite(value) else None


def sample_peak_dbfs(audio: Samples) -> float | None:
    """The largest |sample| in dBFS; None for digital silence."""
    frames = as_frames(audio)
    # max and -min instead of max(abs): no temporary copy of a long track.
    peak = max(float(frames.max()), -float(frames.min())) if frames.size else 0.0
    return 20.0 * math.log10(peak) if peak > 0 else None


def clipped_share(audio: Samples) -> float:
    """Share of samples at or beyond full scale (|x| >= CLIP_LEVEL), 0..1."""
    frames = as_frames(audio)
    if not frames.size:
        return 0.0
    clipped = sum(
        int(np.count_nonzero(np.abs(frames[start : start + BLOCK_FRAMES]) >= CLIP_LEVEL))
        for start in range(0, len(frames), BLOCK_FRAMES)
    )
    return clipped / frames.size


def silence_share(
    audio: Samples,
    rate: int,
    *,
    frame_seconds: float = SILENCE_FRAME_S,
    threshold_dbfs: float = SILENCE_DBFS,
) -> float:
    """Share of `frame_seconds` frames whose RMS (over all channels) is below the threshold."""
    frames = as_frames(audio)
    size = max(1, round(frame_seconds * rate))
    count = len(frames) // size
    if count == 0:
        return 1.0 if sample_peak_dbfs(frames) is None else 0.0
    power = np.empty(count)
    step = max(1, BLOCK_FRAMES // size)  # frames of audio per float64 block, whole windows
    for first in range(0, count, step):
        last = min(count, first + step)
        block = frames[first * size : last * size].astype(np.float64)
        power[first:last] = np.mean(block.reshape(last - first, -1) ** 2, axis=1)
    threshold = 10.0 ** (threshold_dbfs / 10.0)  # RMS in dBFS, compared as power
    return float(np.count_nonzero(power < threshold)) / count


def duration(audio: Samples, rate: int) -> float:
    """Length in seconds."""
    return len(as_frames(audio)) / rate
