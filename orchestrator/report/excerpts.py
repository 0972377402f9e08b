"""The blind test's excerpts of one project: cut, matched in loudness, written as FLAC.

Each excerpt is read on its own from its file (libsndfile seeks to the exact frame, MP3
included), its offset undone like in the scores. Loudness is measured first (one excerpt in
memory at a time), then each is read again, brought to the trial's common level
(`listening.matching_gains`) and written as 16-bit FLAC: lossless, so the test hears
what the models made, at about half the size of WAV. File names are the letters the
listener sees, so a link never tells which model made an excerpt.
"""

from __future__ import annotations

import io
import random
from collections.abc import Callable, Sequence

import numpy as np
import soundfile as sf
from scipy.signal import butter, sosfiltfilt

from orchestrator.report.align import match_channels
from orchestrator.report.listening import (
    ANCHOR,
    ANCHOR_HZ,
    EXCERPT_S,
    REFERENCE,
    Item,
    Trial,
    design,
    loudest_window,
    matching_gains,
    summed,
)
from orchestrator.report.metrics import Audio32, measure
from orchestrator.report.project import Measured, Output
from orchestrator.report.stream import AudioDecodeError, read_range

LISTENING_DIR = "listening"
MIX = "mix"  # the role of the mix excerpt, played when there is no reference


def write_trials(
    measured: Measured,
    types: Sequence[str],
    out: Output,
    shuffle: random.Random,
    first_id: int,
) -> list[Trial]:
    """A trial per stem type that at least two models delivered on this project, its
    excerpts written under `{report folder}/listening/{trial id}/`."""
    grid = measured.grid
    if grid is None:
        return []
    rate, channels = grid.rate, grid.channels
    lengths = [s.length for s in measured.stems.values()]
    if measured.mix is not None:
        lengths.append(measured.mix.frames)
    frames = min(round(EXCERPT_S * rate), max(lengths, default=0))
    trials: list[Trial] = []
    for kind in types:
        models = [m for (m, t) in measured.stems if t == kind]
        if len(models) < 2 or frames <= 0:
            continue
        ref = measured.references.get(kind)
        profile = ref.profile if ref else summed([measured.stems[m, kind].profile for m in models])
        second = loudest_window(profile, EXCERPT_S)
        start = second * rate
        trial = design(
            f"t{first_id + len(trials):03d}",
            measured.info.project,
            kind,
            models,
            start=float(second),
            seconds=frames / rate,
            with_reference=ref is not None,
            shuffle=shuffle,
        )

        extra: list[Item] = []
        if ref is not None:
            extra.append(Item(code="reference", model=None, role=REFERENCE))
        elif measured.mix is not None:
            extra.append(Item(code="mix", model=None, role=MIX))
        reader = _Reader(measured, kind, start, frames, channels)
        everything = [*trial.items, *extra]
        try:
            _write(trial, everything, reader.read, rate, out)
        except AudioDecodeError:
            continue  # a file changed since it was measured: no trial rather than a wrong one
        for item in extra:
            if item.role == REFERENCE:
                trial.reference = item.file
            else:
                trial.mix = item.file
        trials.append(trial)
    return trials


class _Reader:
    """Reads the excerpt of one trial's item: a model's stem (its offset undone), the
    reference, the anchor made from it, or the mix."""

    def __init__(self, measured: Measured, kind: str, start: int, frames: int, channels: int):
        self.measured = measured
        self.kind = kind
        self.start = start
        self.frames = frames
        self.channels = channels

    def read(self, item: Item) -> Audio32:
        measured = self.measured
        if item.role == "model":
            assert item.model is not None
            source = measured.stems[item.model, self.kind]
        elif item.role == MIX:
            assert measured.mix is not None
            source = measured.mix
        else:
            source = measured.references[self.kind]
        raw = read_range(source.path, self.start + source.shift, self.frames)
        excerpt = match_channels(raw, self.channels)
        return _low_passed(excerpt, source_rate(measured)) if item.role == ANCHOR else excerpt


def source_rate(measured: Measured) -> int:
    """The project's grid rate."""
    assert measured.grid is not None
    return measured.grid.rate


def _write(
    trial: Trial,
    items: list[Item],
    read: Callable[[Item], Audio32],
    rate: int,
    out: Output,
) -> None:
    """Measure every excerpt's loudness, then write each at the trial's common level."""
    loudness, peaks = [], []
    for item in items:
        meter = measure(read(item), rate)
        loudness.append(meter.lufs())
        peaks.append(meter.peak_dbfs())
    gains = matching_gains(loudness, peaks)
    folder = out.folder / LISTENING_DIR / trial.id
    for item, gain in zip(items, gains, strict=True):
        audio = np.clip(read(item) * np.float32(10 ** (gain / 20)), -1.0, 1.0)
        buffer = io.BytesIO()
        sf.write(buffer, audio, rate, format="FLAC", subtype="PCM_16")
        path = folder / f"{item.code}.flac"
        out.write(path, buffer.getvalue())
        item.file = out.link(path)
        item.gain_db = gain


def _low_passed(audio: Audio32, rate: int) -> Audio32:
    """`audio` through a zero-phase 3.5 kHz low-pass: BS.1534's low anchor."""
    cutoff = min(ANCHOR_HZ, 0.45 * rate)
    sos = butter(8, cutoff, fs=rate, output="sos")
    return np.ascontiguousarray(sosfiltfilt(sos, audio, axis=0), dtype=np.float32)
