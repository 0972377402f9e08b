"""How many samples late (or early) a stem starts against its reference or its mix.

Pure. A decoder can add delay: an MP3 without its encoder header (LAME's gapless info)
decodes 1,105 samples late at 44.1 kHz, and a stem compared sample by sample 25 ms late
scores about -3 dB instead of its real score. Tools also trim or pad the start.

The lag is found by cross-correlation, from a few windows rather than the whole track:
`WINDOWS` windows of `WINDOW` frames, spread evenly over the anchor (the reference, or the
mix without one), each correlated through the FFT against the stem's frames around the
same place, `max_lag` either side; the correlations of all windows are added, and the lag
is where their sum peaks, unless no lag does clearly better than none (`TIE`). A stem whose
best correlation is weak (`MIN_STRENGTH`: it shares little with the anchor, like silence or
another part) is left where it is. Memory stays a few hundred kilobytes whatever the track's
length.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np

from orchestrator.report.metrics import Mono, WindowTap

WINDOWS: Final = 8
WINDOW: Final = 1 << 14  # frames per window (0.37 s at 44.1 kHz)
# The largest offset looked for, either way: decoders add tens of milliseconds (LAME MP3
# 1,105 samples, AAC 2,112), which leaves room for trimmed or padded starts.
MAX_OFFSET_S: Final = 0.25
# Normalised correlation below which a peak is not trusted. A vocal stem against its mix
# peaks near 0.4, a quiet backing stem near 0.25; unrelated audio stays below 0.05.
MIN_STRENGTH: Final = 0.1
# A lag is a candidate only if the stem's energy in the windows at that lag is within this
# factor of its energy there unshifted.
MIN_COVER: Final = 0.5
# A stem stays where it is unless some lag correlates this much better than none: periodic
# music (a held note, a loop) correlates almost as well one period away.
TIE: Final = 0.01

__all__ = ["Anchor", "Lag", "WindowTap", "estimate_lag", "window_starts"]


def window_starts(
    frames: int, *, margin: int, count: int = WINDOWS, length: int = WINDOW
) -> list[int]:
    """Where the windows of an anchor of `frames` frames start: evenly spread, whole, and
    far enough apart (`length` + 2 `margin`) that no frame of a stem, shifted by up to
    `margin`, falls in two of them: on a short song there are fewer windows."""
    count = max(1, min(count, frames // (length + 2 * margin)))
    if frames <= length:
        return [0]
    centres = ((i + 0.5) * frames / count for i in range(count))
    return [min(max(0, round(c - length / 2)), frames - length) for c in centres]


@dataclass(frozen=True)
class Lag:
    """The stem starts `frames` frames late (negative: early); `strength` is the normalised
    correlation at that lag, 0..1."""

    frames: int
    strength: float


class Anchor:
    """An anchor's windows, transformed once, to find the lag of many stems against it."""

    def __init__(self, windows: list[Mono], max_lag: int) -> None:
        self.max_lag = max_lag
        self.length = len(windows[0]) if windows else 0
        self.size = 1 << (2 * self.length + 2 * max_lag - 1).bit_length()
        self.spectra = [np.conj(np.fft.rfft(a, self.size)) for a in windows]
        # einsum rather than `a @ a`: BLAS calls wait on OpenBLAS's threads, which on a busy
        # machine cost milliseconds each instead of microseconds.
        self.energy = sum(float(np.einsum("i,i->", a, a)) for a in windows)

    def lag(self, stem: list[Mono]) -> Lag | None:
        """The lag at which `stem`'s windows (each `max_lag` longer on both sides) best
        match the anchor's; None when nothing correlates (`MIN_STRENGTH`) or either side
        is silent."""
        if not self.spectra or len(stem) != len(self.spectra):
            return None
        max_lag, length = self.max_lag, self.length
        if any(len(s) != length + 2 * max_lag for s in stem):
            raise ValueError("each stem window must be the anchor's plus max_lag on both sides")
        lags = 2 * max_lag + 1
        total = np.zeros(lags)
        stem_energy = np.zeros(lags)  # per lag: the stem's energy under the anchor's windows
        for spectrum, s in zip(self.spectra, stem, strict=True):
            # corr[k] = sum_n a[n] s[n + max_lag + k], for k in -max_lag..max_lag.
            total += np.fft.irfft(np.fft.rfft(s, self.size) * spectrum, self.size)[:lags]
            running = np.concatenate([[0.0], np.cumsum(s * s)])
            stem_energy += running[length : length + lags] - running[:lags]
        at_zero = float(stem_energy[max_lag])
        if self.energy <= 0 or at_zero <= 0:
            return None  # nothing of the stem where the anchor's windows are: no evidence
        # Normalised per lag: how much of the stem falls in the windows changes with the lag
        # (a short stem, a silent start), and must not pass for a better match. Lags that
        # bring much less or much more of the stem into the windows than no shift does are
        # not candidates at all.
        enough = (stem_energy >= MIN_COVER * at_zero) & (stem_energy * MIN_COVER <= at_zero)
        score = np.where(
            enough, total / np.sqrt(self.energy * np.where(enough, stem_energy, 1.0)), 0.0
        )
        best = int(np.argmax(score))
        if score[max_lag] >= score[best] * (1 - TIE):
            best = max_lag
        strength = float(score[best])
        if strength < MIN_STRENGTH:
            return None
        return Lag(frames=best - max_lag, strength=min(strength, 1.0))


def estimate_lag(anchor: list[Mono], stem: list[Mono], max_lag: int) -> Lag | None:
    """`Anchor(anchor, max_lag).lag(stem)`: the lag of one stem against one anchor."""
    return Anchor(anchor, max_lag).lag(stem)
