"""Build the comparison report: measure every project, then write report.html, .json and .csv.

Projects are measured one at a time (`project`), each reading its files in blocks: memory
holds one block of each file of one project, whatever the songs' length. Only the measures
are kept for the whole catalogue. The blind test's excerpts (`excerpts`) are cut from a
few projects spread over the catalogue; listeners' ratings, when given, are folded in
(`ratings`).

Every file is written to a temporary name, flushed and renamed, so a reader never sees half
a report. Links in the page and in report.json are relative to the report's folder.
"""

from __future__ import annotations

import csv
import io
import json
import os
import random
import secrets
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from orchestrator.errors import UsageError
from orchestrator.files import write_bytes_atomic as write_atomic
from orchestrator.report import ratings as ratings_module
from orchestrator.report.excerpts import write_trials
from orchestrator.report.html import render
from orchestrator.report.listening import Trial, chosen_projects
from orchestrator.report.project import Output, measure_project
from orchestrator.report.ranking import rank_agreement, rank_by_agreement, rank_by_sdr
from orchestrator.report.summary import (
    ENTRY_FIELDS,
    Entry,
    FailedFile,
    JobRow,
    ProjectInfo,
    Report,
    rounded,
    summarise_models,
    type_order,
)
from orchestrator.report.tree import ORIGINAL, Catalogue, discover

REPORT_NAME = "report.html"
SPECTROGRAM_DIR = "spectrograms"


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


def read_ratings(paths: Sequence[Path]) -> list[ratings_module.Rating]:
    """Every rating of the exported files; UsageError naming the file and what is wrong."""
    found = []
    for path in paths:
        try:
            document = json.loads(Path(path).read_text(encoding="utf-8"))
        except OSError as exc:
            raise UsageError(f"--ratings {path}: cannot read it ({exc.strerror or exc})") from None
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise UsageError(f"--ratings {path}: not JSON ({exc})") from None
        try:
            found += ratings_module.parse(document, name=Path(path).stem)
        except ratings_module.RatingsError as exc:
            raise UsageError(f"--ratings {path}: {exc}") from None
    return found


def build_report(
    trees: Sequence[Path],
    *,
    references: Path | None = None,
    output: Path | None = None,
    ratings: Sequence[Path] = (),
) -> ReportResult:
    """Measure every stem of the trees and write the report; return the paths written.

    `references` is a folder of true stems as `{project}/{type}.{ext}`; without it, the
    manifest's `references` folder that a run recorded in the tree's summary is used. Each
    tree's `_references` folder is used too. `ratings` are files exported by the page's
    blind test, folded into a listening ranking. UsageError when a tree or `references` is
    not a folder, when the trees hold no per-model tree, or when a ratings file is unusable
    (checked before anything is measured or written).
    """
    started = time.perf_counter()
    trees = [Path(t) for t in trees]
    if not trees:
        raise UsageError("report: give at least one output tree")
    for folder in [*trees, *([references] if references is not None else [])]:
        if folder.is_file() and folder.suffix.lower() == ".json":
            raise UsageError(
                f"report: {folder} is a file, not an output tree; give --ratings before each "
                "ratings file"
            )
        if not folder.is_dir():
            raise UsageError(f"report: {folder} is not a folder")
    rated = read_ratings(ratings)
    html_path = output_path(trees[0], output)
    folder = html_path.parent
    catalogue = discover(trees, references=references, exclude=[folder])
    if not catalogue.jobs:
        raise UsageError(
            f"report: no per-model tree in {', '.join(str(t) for t in trees)}: expected "
            "OUT/{model}/{project}/{type}.{ext} (the folder `stemsweep run` writes to)"
        )
    builder = _Builder(catalogue, folder)
    for project in catalogue.projects:
        # Resampled copies of this project's stems live until its excerpts are cut.
        with tempfile.TemporaryDirectory(prefix="stemsweep-report-") as scratch:
            builder.measure(project, Path(scratch))
    report = builder.report()
    if ratings:
        report.ratings = ratings_module.aggregate(rated, types=report.types, models=report.models)
        report.ratings_files = [str(p) for p in ratings]
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
        self.trials: list[Trial] = []
        self.listened = set(chosen_projects(catalogue.projects))
        self.shuffle = random.SystemRandom()  # the listener must not guess the order
        self.out = Output(folder=folder, link=self.link, write=write_atomic)
        self.failed = [
            FailedFile(self.link(p.file), p.reason, p.project, p.model, p.type)
            for p in catalogue.problems
        ]

    def link(self, path: Path) -> str:
        """`path` relative to the report's folder, with forward slashes."""
        return Path(os.path.relpath(path.resolve(), self.folder.resolve())).as_posix()

    def measure(self, project: str, scratch: Path) -> None:
        """Measure one project, and cut its excerpts when it is one of the blind test's."""
        measured = measure_project(project, self.catalogue, self.types, self.out, scratch)
        if project in self.listened:
            first = len(self.trials) + 1
            self.trials += write_trials(measured, self.types, self.out, self.shuffle, first)
        self.projects.append(measured.info)
        self.entries += measured.entries
        self.jobs += measured.jobs
        self.failed += measured.failed

    def report(self) -> Report:
        models = self.catalogue.models
        summaries = summarise_models(models, self.types, self.entries, self.jobs)
        with_references = rank_by_sdr(self.types, self.entries, summaries)
        without = rank_by_agreement(self.types, self.entries, summaries)
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
            rankings=with_references,
            rankings_without_references=without,
            rank_agreement=rank_agreement(with_references, without),
            failed_files=self.failed,
            listening=self.trials,
            report_id=secrets.token_hex(8),
        )


def entries_csv(entries: Sequence[Entry]) -> str:
    """One CSV row per entry, the columns of `Entry`; empty cells for unknown values, notes
    joined with "; "."""
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
    if isinstance(value, list):
        return "; ".join(str(v) for v in value)
    return rounded(value)
