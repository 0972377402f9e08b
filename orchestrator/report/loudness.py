"""Integrated loudness (ITU-R BS.1770-4) of audio that arrives in blocks.

Pure. `LoudnessMeter` gives the value `pyloudnorm.Meter(rate).integrated_loudness` gives
for the whole track (to a few millionths of an LU), without ever holding the track: the
K-weighting filters (pyloudnorm's own, with the same parameters) run block by block with
their state carried over, and the gating blocks of 400 ms every 100 ms are summed from
running totals kept only at their boundaries (ten numbers a second per channel).

pyloudnorm copies the track and filters each channel into float arrays as long as the
track; on a four-minute stereo stem that is several hundred megabytes, which is why the
report does not call it on whole tracks.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Final

import numpy as np
import numpy.typing as npt
from pyloudnorm.iirfilter import IIRfilter
from scipy.signal import lfilter, lfilter_zi

BLOCK_S: Final = 0.4  # gating block, seconds
OVERLAP: Final = 0.75
ABSOLUTE_GATE: Final = -70.0  # LUFS
RELATIVE_GATE: Final = -10.0  # LU below the absolutely gated loudness
CHANNEL_GAINS: Final = (1.0, 1.0, 1.0, 1.41, 1.41)  # L, R, C, Ls, Rs
MAX_CHANNELS: Final = 5  # BS.1770 weights five channels; the caller downmixes more


def k_weighting(rate: int) -> list[tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], float]]:
    """The two K-weighting stages as (b, a, gain), exactly as pyloudnorm builds them."""
    stages = (
        IIRfilter(4.0, 1 / np.sqrt(2), 1500.0, rate, "high_shelf"),
        IIRfilter(0.0, 0.5, 38.0, rate, "high_pass"),
    )
    return [(np.asarray(f.b), np.asarray(f.a), float(f.passband_gain)) for f in stages]


class LoudnessMeter:
    """Feed `(frames, channels)` blocks in order with `add`; `lufs()` gives the loudness."""

    def __init__(self, rate: int, channels: int) -> None:
        if not 1 <= channels <= MAX_CHANNELS:
            raise ValueError(f"BS.1770 weights 1 to {MAX_CHANNELS} channels, not {channels}")
        self.rate = rate
        self.channels = channels
        self.frames = 0
        self._stages = k_weighting(rate)
        # lfilter's initial state for a signal that starts from silence: zeros.
        self._state = [np.zeros((len(lfilter_zi(b, a)), channels)) for b, a, _ in self._stages]
        self._total = np.zeros(channels)  # sum of squares of the filtered signal so far
        self._block = BLOCK_S * rate
        step = 1.0 - OVERLAP
        # Block j spans [int(T_g (j step) rate), int(T_g (j step + 1) rate)), as pyloudnorm
        # computes it; both bounds grow with j, so each list is filled in order.
        self._lower = lambda j: int(BLOCK_S * (j * step) * rate)
        self._upper = lambda j: int(BLOCK_S * (j * step + 1) * rate)
        self._at_lower: list[npt.NDArray[np.float64]] = []
        self._at_upper: list[npt.NDArray[np.float64]] = []

    def add(self, block: npt.NDArray[np.floating]) -> None:
        """Take the next `(frames, channels)` block."""
        if block.ndim != 2 or block.shape[1] != self.channels:
            raise ValueError(f"expected (frames, {self.channels}), got {block.shape}")
        if not len(block):
            return
        filtered = block.astype(np.float64)
        for k, (b, a, gain) in enumerate(self._stages):
            filtered, self._state[k] = lfilter(b, a, filtered, axis=0, zi=self._state[k])
            if gain != 1.0:
                filtered *= gain
        start, end = self.frames, self.frames + len(block)
        running = np.cumsum(filtered * filtered, axis=0)
        running += self._total
        self._record(self._at_lower, self._lower, start, end, running)
        self._record(self._at_upper, self._upper, start, end, running)
        self._total = running[-1].copy()
        self.frames = end

    def _record(
        self,
        found: list[npt.NDArray[np.float64]],
        bound: Callable[[int], int],
        start: int,
        end: int,
        running: npt.NDArray[np.float64],
    ) -> None:
        """Keep the running total at every block boundary in (start, end]."""
        while True:
            index = bound(len(found))
            if index > end:
                return
            if index <= start:  # boundary 0, or one passed on an empty add
                found.append(self._total.copy() if index == start else np.zeros(self.channels))
            else:
                found.append(running[index - start - 1].copy())

    def _prefix(self, found: list[npt.NDArray[np.float64]], j: int) -> npt.NDArray[np.float64]:
        """The running total at boundary j, or the total when j lies past the end."""
        return found[j] if j < len(found) else self._total

    def lufs(self) -> float | None:
        """Integrated loudness in LUFS; None when shorter than one block or silent."""
        if self.frames < self._block:
            return None
        seconds = self.frames / self.rate
        step = 1.0 - OVERLAP
        count = int(np.round((seconds - BLOCK_S) / (BLOCK_S * step))) + 1
        z = np.array(
            [
                (self._prefix(self._at_upper, j) - self._prefix(self._at_lower, j)) / self._block
                for j in range(count)
            ]
        )  # (blocks, channels): mean square per gating block
        gains = np.array(CHANNEL_GAINS[: self.channels])
        with np.errstate(divide="ignore"):
            loudness = -0.691 + 10.0 * np.log10(z @ gains)
        gated = loudness >= ABSOLUTE_GATE
        if not np.any(gated):
            return None
        relative = -0.691 + 10.0 * math.log10(float(z[gated].mean(axis=0) @ gains)) + RELATIVE_GATE
        kept = (loudness > relative) & (loudness > ABSOLUTE_GATE)
        if not np.any(kept):
            return None
        value = -0.691 + 10.0 * math.log10(float(z[kept].mean(axis=0) @ gains))
        return value if math.isfinite(value) else None
