"""Build the comparison report: measure every stem, then write report.html, .json and .csv.

Memory stays bounded by one stem set: projects are processed one at a time; for each, its
references (and original mix) are decoded once, then each model's stems one file at a time,
measured and dropped. Only the measures are kept for the whole catalogue.

Every file is written to a temporary name, flushed and renamed, so a reader never sees half
a report. Links in the page and in report.json are relative to the report's folder.
"""

from __future__ import annotations

import csv
import io
import json
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from orchestrator.errors import UsageError
from orchestrator.files import write_bytes_atomic as write_atomic
from orchestrator.report import metrics
from orchestrator.report.html import render
from orchestrator.report.spectrogram import spectrogram_png
from orchestrator.report.summary import (
    ENTRY_FIELDS,
    Entry,
    FailedFile,
    JobRow,
    ProjectInfo,
    Report,
    rank,
    rounded,
    summarise_models,
    type_order,
)
from orchestrator.report.tree import (
    ORIGINAL,
    AudioDecodeError,
    Catalogue,
    Decoded,
    Job,
    discover,
    load_audio,
)

REPORT_NAME = "report.html"
SPECTROGRAM_DIR = "spectrograms"
REFERENCE_KEY = "_references"  # spectrogram folder of a project's references and original


@dataclass(frozen=True)
class ReportResult:
    """The files a report build wrote, and what it found."""

    html: Path
    json: Path
    csv: Path
    spectrograms: Path
    entries: int
    failed_files: int
    seconds: float


def output_path(first_tree: Path, output: Path | None) -> Path:
    """Where report.html goes: `output` (a file, or a folder to hold report.html), or
    `{first tree}/report/report.html`."""
    if output is None:
        return first_tree / "report" / REPORT_NAME
    if output.is_dir() or not output.suffix:
        return output / REPORT_NAME
    return output


def build_report(
    trees: Sequence[Path], *, references: Path | None = None, output: Path | None = None
) -> ReportResult:
    """Measure every stem of the trees and write the report; return the paths written.

    `references` is a folder of true stems as `{project}/{type}.{ext}`; without it, the
    manifest's `references` folder that a run recorded in the tree's summary is used. Each
    tree's `_references` folder is used too. UsageError when a tree or `references` is not
    a folder.
    """
    started = time.perf_counter()
    trees = [Path(t) for t in trees]
    if not trees:
        raise UsageError("report: give at least one output tree")
    for folder in [*trees, *([references] if references is not None else [])]:
        if not folder.is_dir():
            raise UsageError(f"report: {folder} is not a folder")
    html_path = output_path(trees[0], output)
    folder = html_path.parent
    catalogue = discover(trees, references=references, exclude=[folder])
    builder = _Builder(catalogue, folder)
    for project in catalogue.projects:
        builder.measure_project(project)
    report = builder.report()
    report.build_seconds = time.perf_counter() - started

    json_path = html_path.with_suffix(".json")
    csv_path = html_path.with_suffix(".csv")
    write_atomic(json_path, (json.dumps(report.to_json(), indent=2) + "\n").encode())
    write_atomic(csv_path, entries_csv(report.entries).encode())
    write_atomic(html_path, render(report).encode())
    return ReportResult(
        html=html_path,
        json=json_path,
        csv=csv_path,
        spectrograms=folder / SPECTROGRAM_DIR,
        entries=len(report.entries),
        failed_files=len(report.failed_files),
        seconds=time.perf_counter() - started,
    )


class _Builder:
    """Measures projects one at a time and collects the rows of the report."""

    def __init__(self, catalogue: Catalogue, folder: Path) -> None:
        self.catalogue = catalogue
        self.folder = folder
        self.types = type_order(
            kind for job in catalogue.jobs.values() for kind in job.stems if kind != ORIGINAL
        )
        self.entries: list[Entry] = []
        self.jobs: list[JobRow] = []
        self.projects: list[ProjectInfo] = []
        self.failed = [
            FailedFile(self.link(p.file), p.reason, p.project, p.model, p.type)
            for p in catalogue.problems
        ]

    def link(self, path: Path) -> str:
        """`path` relative to the report's folder, with forward slashes."""
        return Path(os.path.relpath(path.resolve(), self.folder.resolve())).as_posix()

    def decode(self, path: Path, project: str, model: str | None, kind: str) -> Decoded | str:
        """The decoded file, or the reason it does not decode (also listed as failed)."""
        try:
            return load_audio(path)
        except AudioDecodeError as exc:
            self.failed.append(FailedFile(self.link(path), str(exc), project, model, kind))
            return str(exc)

    def spectrogram(self, audio: Decoded, *parts: str) -> str:
        path = self.folder.joinpath(SPECTROGRAM_DIR, *parts[:-1], f"{parts[-1]}.png")
        write_atomic(path, spectrogram_png(audio.samples, audio.rate))
        return self.link(path)

    def measure_project(self, project: str) -> None:
        """Decode the project's references once, then each model's stems one by one."""
        info = ProjectInfo(project)
        refs: dict[str, Decoded] = {}
        for kind, path in sorted(self.catalogue.references.get(project, {}).items()):
            if kind != ORIGINAL and kind not in self.types:
                continue  # no model delivered this type: nothing to score against it
            decoded = self.decode(path, project, None, kind)
            if isinstance(decoded, Decoded):
                refs[kind] = decoded
                info.references[kind] = self.link(path)
                info.spectrograms[kind] = self.spectrogram(decoded, project, REFERENCE_KEY, kind)
        original = refs.get(ORIGINAL)
        if original is not None:
            info.original = info.references[ORIGINAL]
        else:  # no reference mix: the first model folder that holds the original will do
            for model in self.catalogue.models:
                job = self.catalogue.jobs.get((project, model))
                if job is not None and ORIGINAL in job.stems:
                    found = self.decode(job.stems[ORIGINAL], project, model, ORIGINAL)
                    if isinstance(found, Decoded):
                        original = found
                        info.original = self.link(job.stems[ORIGINAL])
                        info.spectrograms[ORIGINAL] = self.spectrogram(
                            original, project, REFERENCE_KEY, ORIGINAL
                        )
                        break
        if original is not None:
            info.original_duration = metrics.duration(original.samples, original.rate)
        self.projects.append(info)
        for model in self.catalogue.models:
            job = self.catalogue.jobs.get((project, model))
            if job is not None:
                self.measure_job(job, refs, original, info.original_duration)

    def measure_job(
        self,
        job: Job,
        refs: dict[str, Decoded],
        original: Decoded | None,
        original_duration: float | None,
    ) -> None:
        """Measure one model's stems of one project; sum them to compare with the mix."""
        total = np.zeros_like(original.samples) if original is not None else None
        entries = [
            self.measure_file(job, kind, refs.get(kind), original, original_duration, total)
            for kind in type_order(k for k in job.stems if k != ORIGINAL)
        ]
        complete = all(e.error is None for e in entries)  # else the residual would mislead
        residual = None
        if original is not None and total is not None and entries and complete:
            residual = metrics.residual_db(original.samples, total)
        for entry in entries:
            entry.residual_db = residual
        self.entries.extend(entries)
        self.jobs.append(
            JobRow(
                project=job.project,
                model=job.model,
                status=job.status,
                raw_status=job.raw_status,
                seconds=job.seconds,
                types=[e.type for e in entries],
                missing=[t for t in self.types if t not in job.stems],
                residual_db=residual,
                error=job.error,
                directory=self.link(job.directory),
            )
        )

    def measure_file(
        self,
        job: Job,
        kind: str,
        reference: Decoded | None,
        original: Decoded | None,
        original_duration: float | None,
        total: metrics.Audio32 | None,
    ) -> Entry:
        """Decode and measure one stem, and add it into `total` (the sum of the job's stems).

        The samples are dropped on return: only one stem is decoded at a time.
        """
        path = job.stems[kind]
        entry = Entry(job.project, job.model, kind, self.link(path), path.suffix[1:].lower())
        audio = self.decode(path, job.project, job.model, kind)
        if isinstance(audio, str):
            entry.error = audio
            return entry
        measure_stem(entry, audio, reference, original_duration)
        entry.spectrogram = self.spectrogram(audio, job.project, job.model, kind)
        if original is not None and total is not None:
            total += metrics.fit(
                audio.samples,
                audio.rate,
                target_rate=original.rate,
                channels=original.samples.shape[1],
                frames=len(original.samples),
            )
        return entry

    def report(self) -> Report:
        models = self.catalogue.models
        summaries = summarise_models(models, self.types, self.entries, self.jobs)
        return Report(
            generated_at=datetime.now(UTC).isoformat(timespec="seconds"),
            trees=[str(t) for t in self.catalogue.trees],
            reference_dirs=[str(d) for d in self.catalogue.reference_dirs],
            types=self.types,
            models=models,
            projects=self.projects,
            entries=self.entries,
            jobs=self.jobs,
            summaries=summaries,
            rankings=rank(self.types, summaries, self.entries),
            failed_files=self.failed,
        )


def measure_stem(
    entry: Entry, audio: Decoded, reference: Decoded | None, original_duration: float | None
) -> None:
    """Fill `entry` with the reference-free measures, and the scores when a reference exists."""
    samples, rate = audio.samples, audio.rate
    entry.sample_rate = rate
    entry.channels = samples.shape[1]
    entry.duration = metrics.duration(samples, rate)
    if original_duration is not None:
        entry.duration_delta = entry.duration - original_duration
    entry.lufs = metrics.integrated_lufs(samples, rate)
    entry.peak_dbfs = metrics.sample_peak_dbfs(samples)
    entry.clipped_share = metrics.clipped_share(samples)
    entry.silence_share = metrics.silence_share(samples, rate)
    if reference is not None:
        aligned = metrics.align(reference.samples, reference.rate, samples, rate)
        entry.sdr = metrics.sdr(aligned.reference, aligned.estimate)
        entry.si_sdr = metrics.si_sdr(aligned.reference, aligned.estimate)
        entry.length_diff = aligned.length_diff
        entry.resampled = aligned.resampled


def entries_csv(entries: Sequence[Entry]) -> str:
    """One CSV row per entry, the columns of `Entry`; empty cells for unknown values."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=ENTRY_FIELDS, lineterminator="\n")
    writer.writeheader()
    for entry in entries:
        writer.writerow({name: _csv_value(getattr(entry, name)) for name in ENTRY_FIELDS})
    return buffer.getvalue()


def _csv_value(value: object) -> object:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return rounded(value)
