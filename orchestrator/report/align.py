"""Bringing a stem onto its project's grid: one sample rate, channel layout, start and length.

Pure. A project's grid is its mix's (or, without a mix, its first reference's) sample rate
and channel count. A stem at another rate is resampled (scipy's polyphase `resample_poly`),
other channel layouts are copied (mono) or downmixed, a detected offset (see `offset`) is
undone, and the stem is cut or zero-padded to the length it is compared over: the
reference's for scores, the mix's for the reference-free measures. `on_grid` does this to
a stream of blocks, `align` to whole arrays; `notes` says in words what was done, for the
report's `notes` column.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Final

import numpy as np
from scipy.signal import resample_poly

from orchestrator.report.metrics import Audio32, Samples, as_frames

LENGTH_NOTE_S: Final = 0.01  # a length difference this large or larger gets a note


def resample(audio: Samples, rate: int, target_rate: int) -> Audio32:
    """`audio` at `target_rate`, by polyphase filtering, one channel at a time."""
    audio = as_frames(audio)
    if rate == target_rate:
        return audio
    g = math.gcd(rate, target_rate)
    up, down = target_rate // g, rate // g
    columns = [
        resample_poly(audio[:, c], up, down).astype(np.float32) for c in range(audio.shape[1])
    ]
    return np.ascontiguousarray(np.stack(columns, axis=1))


def match_channels(audio: Samples, channels: int) -> Audio32:
    """`audio` with `channels` channels: mono is copied to each, anything else downmixed."""
    audio = as_frames(audio)
    have = audio.shape[1]
    if have == channels:
        return audio
    if have == 1:
        mono = audio
    else:  # column by column: mean(axis=1) over a short last axis is slow, BLAS waits on threads
        mono = audio[:, :1].copy()
        for c in range(1, have):
            mono += audio[:, c : c + 1]
        mono *= np.float32(1.0 / have)
    return np.ascontiguousarray(np.repeat(mono, channels, axis=1))


def shifted(audio: Samples, shift: int) -> Audio32:
    """`audio` moved `shift` frames earlier (its first frames dropped), or later when
    negative (zeros in front): undoes a stem that starts `shift` frames late."""
    audio = as_frames(audio)
    if shift >= 0:
        return audio[shift:]
    return np.concatenate([np.zeros((-shift, audio.shape[1]), np.float32), audio])


def fitted(audio: Samples, frames: int) -> Audio32:
    """`audio` cut or zero-padded to exactly `frames` frames."""
    audio = as_frames(audio)
    if len(audio) >= frames:
        return audio[:frames]
    return np.concatenate([audio, np.zeros((frames - len(audio), audio.shape[1]), np.float32)])


def on_grid(
    source: Iterable[Samples], channels: int, size: int, *, shift: int = 0
) -> Iterator[Audio32]:
    """Blocks of exactly `size` frames and `channels` channels from `source`'s blocks (any
    sizes), `shifted` by `shift`, then zeros for ever after the source ends."""
    blocks = iter(source)
    pending: list[Audio32] = []
    have = 0
    if shift < 0:
        pending.append(np.zeros((-shift, channels), np.float32))
        have = -shift
    skip = max(shift, 0)
    exhausted = False
    while True:
        while have < size and not exhausted:
            block = next(blocks, None)
            if block is None:
                exhausted = True
                break
            block = match_channels(block, channels)
            if skip:
                dropped = min(skip, len(block))
                block, skip = block[dropped:], skip - dropped
            if len(block):
                pending.append(block)
                have += len(block)
        if have < size:
            pending.append(np.zeros((size - have, channels), np.float32))
            have = size
        joined = pending[0] if len(pending) == 1 else np.concatenate(pending)
        yield joined[:size]
        pending = [joined[size:]] if have > size else []
        have -= size


@dataclass(frozen=True)
class Aligned:
    """A reference and an estimate of equal shape, and what it took to get there."""

    reference: Audio32
    estimate: Audio32
    length_diff: float  # estimate (its offset undone) minus reference, seconds
    resampled: bool  # the estimate's sample rate differed from the reference's
    channels: int  # the estimate's own channel count


def align(
    reference: Samples,
    reference_rate: int,
    estimate: Samples,
    estimate_rate: int,
    *,
    shift: int = 0,
) -> Aligned:
    """Bring `estimate` to the reference's rate and channels, undo `shift` (frames at the
    reference's rate), then cut or zero-pad it to the reference's length."""
    ref = as_frames(reference)
    own = as_frames(estimate)
    est = match_channels(resample(own, estimate_rate, reference_rate), ref.shape[1])
    return Aligned(
        reference=ref,
        estimate=fitted(shifted(est, shift), len(ref)),
        length_diff=(len(est) - shift - len(ref)) / reference_rate,
        resampled=estimate_rate != reference_rate,
        channels=own.shape[1],
    )


def notes(
    *,
    rate: int,
    grid_rate: int,
    channels: int,
    grid_channels: int,
    length_diff: float | None,
    compared_with: str,
    offset: int,
) -> list[str]:
    """What was done to a stem before it was compared, in words; empty when nothing was.

    `length_diff` is the stem's length minus the length it was compared over, in seconds
    (None: unknown); `compared_with` names that length ("reference", "mix"); `offset` is
    the shift undone, in frames at `grid_rate` (positive: the stem started late).
    """
    said = []
    if rate != grid_rate:
        said.append(f"resampled from {rate} Hz to {grid_rate} Hz")
    if channels != grid_channels:
        if channels == 1:
            said.append(f"mono, copied to {grid_channels} channels")
        elif grid_channels == 1:
            said.append(f"{channels} channels, downmixed to mono")
        else:
            said.append(f"{channels} channels, downmixed and copied to {grid_channels}")
    if length_diff is not None and abs(length_diff) >= LENGTH_NOTE_S:
        if length_diff < 0:
            said.append(f"{-length_diff:.2f} s shorter than the {compared_with}, zero-padded")
        else:
            said.append(f"{length_diff:.2f} s longer than the {compared_with}, cut")
    if offset:
        ms = abs(offset) / grid_rate * 1000
        when = "late" if offset > 0 else "early"
        said.append(f"starts {ms:.1f} ms {when} ({abs(offset)} samples); aligned")
    return said
