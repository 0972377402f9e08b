"""The blind listening test: which excerpts, in which order, at which level.

Pure. A trial is one song and one stem type: an excerpt of every model's stem of that type,
named only by a letter, in a shuffled order, with a slider each (0 to 100, MUSHRA-like,
ITU-R BS.1534). Where a reference exists, the trial also holds it twice: open, as the
"reference" to compare with, and hidden among the letters, with a low anchor (the reference
low-passed at 3.5 kHz): a listener who rates the hidden reference below 90 too often is
left out of the results (see `ratings`). Without a reference, the mix is there to listen to.

Excerpts are the same `EXCERPT_S` seconds of every stem: where the stems of that type
(or the reference) are loudest, so there is something to hear. They are matched in
loudness (BS.1770), so that louder never passes for better: each is brought to one level,
the same for the whole trial, low enough that no excerpt peaks above `PEAK_DBFS`.
"""

from __future__ import annotations

import math
import random
import string
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final

import numpy as np
import numpy.typing as npt

EXCERPT_S: Final = 8.0
SONGS: Final = 6  # songs in the test, spread over the catalogue: about 20 minutes to rate
TARGET_LUFS: Final = -23.0  # EBU R 128's programme level
PEAK_DBFS: Final = -1.0
ANCHOR_HZ: Final = 3500.0  # BS.1534's low anchor
REFERENCE: Final = "reference"
ANCHOR: Final = "anchor"


@dataclass
class Item:
    """One excerpt of a trial: a model's stem, or the hidden reference or the anchor."""

    code: str  # the letter the listener sees
    model: str | None  # None for the hidden reference and the anchor
    role: str  # "model", REFERENCE or ANCHOR
    file: str = ""  # the excerpt, relative to the report
    gain_db: float = 0.0  # applied to the excerpt to match loudness


@dataclass
class Trial:
    """One song and stem type to rate."""

    id: str
    project: str
    type: str
    start: float  # seconds into the song
    seconds: float
    items: list[Item]
    reference: str | None = None  # the open reference excerpt, relative to the report
    mix: str | None = None  # the mix excerpt, to listen to when there is no reference
    notes: list[str] = field(default_factory=list)


def chosen_projects(projects: Sequence[str], count: int = SONGS) -> list[str]:
    """`count` projects spread evenly over `projects` (all of them when there are fewer)."""
    if len(projects) <= count:
        return list(projects)
    step = len(projects) / count
    return [projects[math.floor(i * step + step / 2)] for i in range(count)]


class EnergyProfile:
    """Energy per second of a track (sum of squares over its channels), fed in blocks."""

    def __init__(self, rate: int) -> None:
        self.rate = rate
        self.seconds: list[float] = []
        self._position = 0

    def add(self, block: npt.NDArray[np.floating]) -> None:
        """Take the next `(frames, channels)` block."""
        block64 = np.asarray(block, np.float64)
        per_frame = np.einsum("fc,fc->f", block64, block64)
        done = 0
        while done < len(per_frame):
            second = self._position // self.rate
            take = min(len(per_frame) - done, (second + 1) * self.rate - self._position)
            if second == len(self.seconds):
                self.seconds.append(0.0)
            self.seconds[second] += float(per_frame[done : done + take].sum())
            done += take
            self._position += take


def summed(profiles: Sequence[Sequence[float]]) -> list[float]:
    """Profiles added second by second (the longest one's length)."""
    total = [0.0] * max((len(p) for p in profiles), default=0)
    for profile in profiles:
        for i, value in enumerate(profile):
            total[i] += value
    return total


def loudest_window(profile: Sequence[float], seconds: float) -> int:
    """The whole second where a window of `seconds` over `profile` (energy per second)
    holds the most energy; 0 when the track is shorter than the window."""
    width = max(1, math.ceil(seconds))
    if len(profile) <= width:
        return 0
    best, best_start = -1.0, 0
    total = sum(profile[:width])
    for start in range(len(profile) - width + 1):
        if start:
            total += profile[start + width - 1] - profile[start - 1]
        if total > best:
            best, best_start = total, start
    return best_start


def letters(count: int) -> list[str]:
    """A, B, ... Z, then AA, AB, ...: one code per item."""
    out = []
    for i in range(count):
        code, n = "", i
        while True:
            code = string.ascii_uppercase[n % 26] + code
            n = n // 26 - 1
            if n < 0:
                break
        out.append(code)
    return out


def design(
    trial_id: str,
    project: str,
    kind: str,
    models: Sequence[str],
    *,
    start: float,
    seconds: float,
    with_reference: bool,
    shuffle: random.Random,
) -> Trial:
    """A trial of `models`' stems (plus hidden reference and anchor when `with_reference`),
    in an order drawn from `shuffle`, lettered in that order."""
    entries: list[tuple[str | None, str]] = [(m, "model") for m in models]
    if with_reference:
        entries += [(None, REFERENCE), (None, ANCHOR)]
    shuffle.shuffle(entries)
    items = [
        Item(code=code, model=model, role=role)
        for code, (model, role) in zip(letters(len(entries)), entries, strict=True)
    ]
    return Trial(trial_id, project, kind, start, seconds, items)


def matching_gains(loudness: Sequence[float | None], peaks: Sequence[float | None]) -> list[float]:
    """Gains (dB) bringing excerpts of these loudnesses (LUFS) and sample peaks (dBFS) to one
    common level: TARGET_LUFS, or lower when one of them would peak above PEAK_DBFS.
    An excerpt without a loudness (silent, or too short) keeps its level."""
    target = TARGET_LUFS
    for lufs, peak in zip(loudness, peaks, strict=True):
        if lufs is not None and peak is not None:
            target = min(target, lufs + (PEAK_DBFS - peak))
    return [0.0 if lufs is None else target - lufs for lufs in loudness]
