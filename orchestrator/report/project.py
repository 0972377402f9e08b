"""Measure one project: every stem on its own, then every stem against the others at once.

A project's files are read in blocks, never whole (see `stream`), in three steps:

1. The anchors: the mix (the reference `original`, or the first model folder's) and the
   reference stems, each scanned once: its spectrogram, length, energy over time, and a few
   windows to find offsets against. The first file of the project that decodes sets its
   grid (sample rate and channels); a file at another rate is resampled to it first.
2. Each model's stems, one file at a time: the stem's own measures at its own rate
   (`metrics.StemMeter`, spectrogram), then its offset against its reference, or the mix
   without one (`offset`). A stem that does not decode gets the reason and is left out.
3. One joint pass over the grid, every file of the project open at once and one block of
   each in memory: SDR and SI-SDR against the references (the estimate cut or zero-padded
   to the reference's length), each stem type's leave-one-out agreement (`consensus`), and
   each model's residual against the mix.

Memory holds one block of each of the project's files and the per-stretch sums, whatever
the songs' length, except while a stem at another sample rate is resampled (that stem,
whole).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from orchestrator.report.align import notes, on_grid
from orchestrator.report.consensus import MIN_MODELS, Consensus
from orchestrator.report.listening import EnergyProfile
from orchestrator.report.metrics import Audio32, Mono, Residual, Scores, StemMeter, WindowTap
from orchestrator.report.offset import MAX_OFFSET_S, WINDOW, Anchor, window_starts
from orchestrator.report.spectrogram import SpectrogramTap
from orchestrator.report.stream import (
    BLOCK,
    AudioDecodeError,
    Info,
    probe,
    read_blocks,
    resampled_copy,
)
from orchestrator.report.summary import Entry, FailedFile, JobRow, ProjectInfo, type_order
from orchestrator.report.tree import ORIGINAL, Catalogue, Job

REFERENCE_KEY = "_references"  # spectrogram folder of a project's references and mix


@dataclass(frozen=True)
class Output:
    """Where a project's files go: `link` makes a path relative to the report's folder,
    `write` writes a file atomically."""

    folder: Path
    link: Callable[[Path], str]
    write: Callable[[Path, bytes], None]


@dataclass
class Source:
    """A decodable file of the project on the grid: `path` is the file or its resampled
    copy, `frames` its length at the grid's rate, `shift` the offset to undo (frames)."""

    path: Path
    info: Info  # the file's own header
    frames: int
    shift: int = 0
    profile: list[float] = field(default_factory=list)  # energy per second
    windows: list[Mono] = field(default_factory=list)  # where offsets are measured
    anchor: Anchor | None = None  # the windows, ready for offsets against this file

    @property
    def length(self) -> int:
        """Frames on the grid once the offset is undone."""
        return self.frames - self.shift


@dataclass
class Measured:
    """What one project adds to the report, and its files on the grid for the excerpts."""

    info: ProjectInfo
    entries: list[Entry]
    jobs: list[JobRow]
    failed: list[FailedFile]
    grid: Info | None = None
    mix: Source | None = None
    references: dict[str, Source] = field(default_factory=dict)
    stems: dict[tuple[str, str], Source] = field(default_factory=dict)  # (model, type)


def measure_project(
    project: str, catalogue: Catalogue, types: list[str], out: Output, scratch: Path
) -> Measured:
    """The three steps for one project (see the module docstring)."""
    return _Project(project, catalogue, types, out, scratch).run()


class _Project:
    """One project's files and what has been measured of them so far."""

    def __init__(
        self, project: str, catalogue: Catalogue, types: list[str], out: Output, scratch: Path
    ) -> None:
        self.project = project
        self.types = types
        self.out = out
        self.scratch = scratch
        self.jobs = [
            job for m in catalogue.models if (job := catalogue.jobs.get((project, m))) is not None
        ]
        self.refs = {
            k: p
            for k, p in catalogue.references.get(project, {}).items()
            if k == ORIGINAL or k in types  # no model delivered another type
        }
        self.measured = Measured(ProjectInfo(project), [], [], [])
        self.grid: Info

    def run(self) -> Measured:
        """The grid from the first file that decodes, then the three steps."""
        candidates = [
            *([self.refs[ORIGINAL]] if ORIGINAL in self.refs else []),
            *(j.stems[ORIGINAL] for j in self.jobs if ORIGINAL in j.stems),
            *(self.refs[k] for k in type_order(k for k in self.refs if k != ORIGINAL)),
            *(j.stems[k] for j in self.jobs for k in type_order(j.stems) if k != ORIGINAL),
        ]
        grid = _first_decodable(candidates)
        if grid is None:  # nothing decodes: every stem gets its reason
            self.stems()
            return self.measured
        self.grid = self.measured.grid = grid
        self.anchors()
        self.stems()
        self.joint()
        return self.measured

    # -- helpers -----------------------------------------------------------------------

    def fail(self, path: Path, reason: str, model: str | None, kind: str) -> None:
        link = self.out.link(path)
        self.measured.failed.append(FailedFile(link, reason, self.project, model, kind))

    def spectrogram(self, tap: SpectrogramTap, rate: int, *parts: str) -> str:
        path = self.out.folder.joinpath("spectrograms", *parts[:-1], f"{parts[-1]}.png")
        self.out.write(path, tap.png(rate))
        return self.out.link(path)

    def scan(self, path: Path, model: str | None, kind: str) -> tuple[Source, str] | None:
        """An anchor (reference or mix) on the grid, scanned once; None if it fails."""
        try:
            info = probe(path)
            grid_path, frames = self._on_grid_rate(path, info)
            spectrogram = SpectrogramTap(frames)
            margin = round(MAX_OFFSET_S * self.grid.rate)
            windows = WindowTap(window_starts(frames, margin=margin), WINDOW)
            profile = EnergyProfile(self.grid.rate)
            for block in read_blocks(grid_path):
                spectrogram.add(block)
                windows.add(block)
                profile.add(block)
        except AudioDecodeError as exc:
            self.fail(path, str(exc), model, kind)
            return None
        png = self.spectrogram(spectrogram, self.grid.rate, self.project, REFERENCE_KEY, kind)
        source = Source(grid_path, info, frames, profile=profile.seconds, windows=windows.windows)
        source.anchor = Anchor(windows.windows, round(MAX_OFFSET_S * self.grid.rate))
        return source, png

    def _on_grid_rate(self, path: Path, info: Info) -> tuple[Path, int]:
        if info.rate == self.grid.rate:
            return path, info.frames
        return resampled_copy(path, self.grid.rate, self.scratch)

    # -- step 1 -------------------------------------------------------------------------

    def anchors(self) -> None:
        """Step 1: the mix (the first that decodes) and each reference stem."""
        info = self.measured.info
        places: list[tuple[Path, str | None]] = []
        if ORIGINAL in self.refs:
            places.append((self.refs[ORIGINAL], None))
        places += [(j.stems[ORIGINAL], j.model) for j in self.jobs if ORIGINAL in j.stems]
        for path, model in places:  # the first mix that decodes
            scanned = self.scan(path, model, ORIGINAL)
            if scanned is not None:
                self.measured.mix, info.spectrograms[ORIGINAL] = scanned
                info.original = self.out.link(path)
                info.original_duration = scanned[0].info.frames / scanned[0].info.rate
                if model is None:
                    info.references[ORIGINAL] = info.original
                break
        for kind in type_order(k for k in self.refs if k != ORIGINAL):
            scanned = self.scan(self.refs[kind], None, kind)
            if scanned is not None:
                self.measured.references[kind], info.spectrograms[kind] = scanned
                info.references[kind] = self.out.link(self.refs[kind])

    # -- step 2 -------------------------------------------------------------------------

    def stems(self) -> None:
        """Step 2: each model's stems, one file at a time, and a row per job."""
        for job in self.jobs:
            kinds = type_order(k for k in job.stems if k != ORIGINAL)
            entries = [self.stem(job, kind) for kind in kinds]
            self.measured.entries.extend(entries)
            self.measured.jobs.append(
                JobRow(
                    project=job.project,
                    model=job.model,
                    status=job.status,
                    raw_status=job.raw_status,
                    seconds=job.seconds,
                    types=kinds,
                    missing=[t for t in self.types if t not in job.stems],
                    residual_db=None,
                    error=job.error,
                    directory=self.out.link(job.directory),
                )
            )

    def stem(self, job: Job, kind: str) -> Entry:
        """Measure one stem on its own and find its offset; keep its Source if it decodes."""
        path = job.stems[kind]
        entry = Entry(job.project, job.model, kind, self.out.link(path), path.suffix[1:].lower())
        reference = self.measured.references.get(kind)
        anchor = reference or self.measured.mix
        try:
            info = probe(path)  # raises when nothing decodes, so the grid is set below
            meter = StemMeter(info.rate, info.channels)
            spectrogram = SpectrogramTap(info.frames)
            profile = EnergyProfile(info.rate)
            margin = round(MAX_OFFSET_S * self.grid.rate)
            starts = window_starts(anchor.frames, margin=margin) if anchor else []
            windows = WindowTap(starts, WINDOW, margin)
            same_rate = info.rate == self.grid.rate
            for block in read_blocks(path):
                meter.add(block)
                spectrogram.add(block)
                profile.add(block)
                if same_rate:
                    windows.add(block)
            grid_path, frames = self._on_grid_rate(path, info)
            if not same_rate:
                for block in read_blocks(grid_path):
                    windows.add(block)
        except AudioDecodeError as exc:
            entry.error = str(exc)
            self.fail(path, entry.error, job.model, kind)
            return entry
        source = Source(grid_path, info, frames, profile=profile.seconds)
        if anchor is not None and anchor.anchor is not None:
            lag = anchor.anchor.lag(windows.windows)
            source.shift = lag.frames if lag is not None else 0
        self.measured.stems[(job.model, kind)] = source
        rate = self.grid.rate
        entry.sample_rate, entry.channels, entry.duration = info.rate, info.channels, meter.duration
        if self.measured.info.original_duration is not None:
            entry.duration_delta = entry.duration - self.measured.info.original_duration
        entry.lufs, entry.peak_dbfs = meter.lufs(), meter.peak_dbfs()
        entry.clipped_share, entry.silence_share = meter.clipped_share(), meter.silence_share()
        entry.spectrogram = self.spectrogram(spectrogram, info.rate, job.project, job.model, kind)
        entry.resampled = not same_rate
        entry.offset_ms = source.shift / rate * 1000
        if anchor is not None:
            entry.length_diff = (source.length - anchor.frames) / rate
        entry.notes = notes(
            rate=info.rate,
            grid_rate=rate,
            channels=info.channels,
            grid_channels=self.grid.channels,
            length_diff=entry.length_diff,
            compared_with="reference" if reference is not None else "mix",
            offset=source.shift,
        )
        return entry

    # -- step 3 -------------------------------------------------------------------------

    def joint(self) -> None:
        """Step 3: every file of the project at once, block by block."""
        measured = self.measured
        stems, refs, mix = measured.stems, measured.references, measured.mix
        by_type = {t: [m for m in self._models() if (m, t) in stems] for t in self.types}
        scores = {key: Scores() for key in stems if key[1] in refs}
        consensus = {
            t: Consensus(models, with_mix=mix is not None)
            for t, models in by_type.items()
            if len(models) >= MIN_MODELS
        }
        kinds_of = {m: [k for (model, k) in stems if model == m] for m in self._models()}
        residual = {
            j.model: Residual()
            for j in self.jobs
            if mix is not None and kinds_of[j.model] and all(e.error is None for e in self._of(j))
        }
        lengths = {t: mix.frames if mix else max(stems[m, t].length for m in by_type[t])
                   for t in consensus}  # fmt: skip
        spans = [mix.frames] if mix is not None else [s.length for s in stems.values()]
        total = max([*spans, *(r.frames for r in refs.values()), 0])
        broken: dict[tuple[str, str], str] = {}
        with contextlib.ExitStack() as stack:
            streams: dict[object, Iterator[Audio32]] = {}
            for key, source in [*stems.items(), *(((None, t), r) for t, r in refs.items())]:
                streams[key] = self._stream(stack, source, key, broken)
            if mix is not None:
                streams["mix"] = self._stream(stack, mix, "mix", broken)
            for start in range(0, total, BLOCK):
                block = {key: next(it) for key, it in streams.items()}
                y = block.get("mix")
                for (model, kind), score in scores.items():
                    if n := _valid(refs[kind].frames, start):
                        score.add(block[(None, kind)][:n], block[(model, kind)][:n])
                for kind, agree in consensus.items():
                    if n := _valid(lengths[kind], start):
                        stems_n = [block[(m, kind)][:n] for m in by_type[kind]]
                        agree.add(stems_n, y[:n] if y is not None else None)
                if y is not None and mix is not None and (n := _valid(mix.frames, start)):
                    for model, acc_r in residual.items():
                        parts = [block[(model, k)][:n] for k in kinds_of[model]]
                        acc_r.add(y[:n], np.sum(parts, axis=0))
        self._settle(scores, consensus, residual, broken)

    def _stream(
        self,
        stack: contextlib.ExitStack,
        source: Source,
        key: object,
        broken: dict[tuple[str, str], str],
    ) -> Iterator[Audio32]:
        reader = read_blocks(source.path)
        stack.callback(reader.close)  # the file closes even if the pass stops early
        grid = on_grid(reader, self.grid.channels, BLOCK, shift=source.shift)
        return _guarded(grid, self.grid.channels, key, broken)

    def _models(self) -> list[str]:
        return [j.model for j in self.jobs]

    def _of(self, job: Job) -> list[Entry]:
        return [e for e in self.measured.entries if e.model == job.model]

    def _settle(
        self,
        scores: dict[tuple[str, str], Scores],
        consensus: dict[str, Consensus],
        residual: dict[str, Residual],
        broken: dict[tuple[str, str], str],
    ) -> None:
        """Write the joint pass's results into the entries and job rows."""
        agreement = {(m, t): a for t, acc in consensus.items() for m, a in acc.results().items()}
        for entry in self.measured.entries:
            key = (entry.model, entry.type)
            if key in broken:
                entry.error = broken[key]
                source = self.measured.stems.pop(key)
                self.fail(source.path, entry.error, entry.model, entry.type)
                continue
            if key in scores:
                entry.sdr, entry.si_sdr = scores[key].sdr(), scores[key].si_sdr()
            if key in agreement:
                entry.agreement, entry.bleed_db = agreement[key].score, agreement[key].bleed_db
        for job in self.measured.jobs:
            if job.model in residual and not any(k[0] == job.model for k in broken):
                job.residual_db = residual[job.model].db()
                for entry in self.measured.entries:
                    if entry.model == job.model:
                        entry.residual_db = job.residual_db


def _valid(length: int, start: int) -> int:
    """Frames of the block at `start` that lie within `length`."""
    return max(0, min(BLOCK, length - start))


def _guarded(
    blocks: Iterable[Audio32], channels: int, key: object, broken: dict[tuple[str, str], str]
) -> Iterator[Audio32]:
    """`blocks`, then zeros once decoding fails part way (the reason goes to `broken`)."""
    try:
        yield from blocks
    except AudioDecodeError as exc:
        if isinstance(key, tuple) and key[0] is not None:
            broken[key] = str(exc)
    while True:
        yield np.zeros((BLOCK, channels), np.float32)


def _first_decodable(paths: Iterable[Path]) -> Info | None:
    for path in paths:
        with contextlib.suppress(AudioDecodeError):
            return probe(path)
    return None
