"""What the report says, as plain data: entries per stem, jobs, per-model medians, rankings.

Pure: built from measured entries and jobs, rendered by `html`, written as JSON and CSV by
`build`. Comparisons use the same stem set for every model: a ranking of a stem type holds
only the models that delivered it, and names the others.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Final

REPORT_VERSION: Final = 1  # of report.json's layout
# Stem types in the order the page shows them; others follow alphabetically.
TYPE_ORDER: Final = ("instrumental", "vocals", "backing_vocals")


@dataclass
class Entry:
    """One stem of one model on one project, and its measures (None: not measurable)."""

    project: str
    model: str
    type: str
    file: str  # relative to the report's directory, with forward slashes
    format: str
    sdr: float | None = None
    si_sdr: float | None = None
    lufs: float | None = None
    duration: float | None = None  # seconds
    duration_delta: float | None = None  # seconds, stem minus original
    length_diff: float | None = None  # seconds, stem minus reference (scored part)
    resampled: bool | None = None  # scored after resampling to the reference's rate
    peak_dbfs: float | None = None
    clipped_share: float | None = None  # 0..1
    silence_share: float | None = None  # 0..1
    residual_db: float | None = None  # of the model's whole stem set on this project
    sample_rate: int | None = None
    channels: int | None = None
    spectrogram: str | None = None  # PNG, relative to the report's directory
    error: str | None = None  # why the file could not be decoded


ENTRY_FIELDS: Final = tuple(f.name for f in fields(Entry))


@dataclass
class JobRow:
    """One (project, model) job: its outcome and the stem types it lacks."""

    project: str
    model: str
    status: str  # done, failed, other
    raw_status: str | None
    seconds: float | None
    types: list[str]
    missing: list[str]
    residual_db: float | None
    error: str | None
    directory: str


@dataclass
class ProjectInfo:
    """A project's original mix and reference stems, as links relative to the report."""

    project: str
    original: str | None = None
    original_duration: float | None = None
    references: dict[str, str] = field(default_factory=dict)  # type -> file
    spectrograms: dict[str, str] = field(default_factory=dict)  # type -> PNG


@dataclass
class ModelSummary:
    """Per-model aggregates: medians over the model's projects."""

    model: str
    jobs: int
    done: int
    failed: int
    other: int
    median_seconds: float | None
    types_delivered: list[str]
    sdr: dict[str, float | None]
    si_sdr: dict[str, float | None]
    lufs: dict[str, float | None]
    scored: dict[str, int]  # projects with a score, per stem type
    residual_db: float | None


@dataclass
class RankRow:
    """One model's place in the ranking of one stem type."""

    model: str
    sdr: float
    si_sdr: float | None
    projects: int


@dataclass
class Ranking:
    """The models that delivered one stem type, best median SDR first."""

    type: str
    rows: list[RankRow]
    not_delivered: list[str]  # models with jobs that never delivered this type
    unscored: list[str]  # delivered it, but no reference to score against
    partial: dict[str, int]  # model -> projects scored, where fewer than the others


@dataclass
class FailedFile:
    """A file that could not be used, and why."""

    file: str
    reason: str
    project: str | None
    model: str | None
    type: str | None


@dataclass
class Report:
    """The whole report; `to_json` is what report.json holds."""

    generated_at: str
    trees: list[str]
    reference_dirs: list[str]
    types: list[str]
    models: list[str]
    projects: list[ProjectInfo]
    entries: list[Entry]
    jobs: list[JobRow]
    summaries: list[ModelSummary]
    rankings: list[Ranking]
    failed_files: list[FailedFile]
    build_seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict: entries, jobs, `models` (per-model medians), rankings, failures.

        Paths of files (`file`, `spectrogram`, ...) are relative to the report's folder.
        Measures are rounded to six significant digits.
        """
        data = {
            "version": REPORT_VERSION,
            "generated_at": self.generated_at,
            "trees": self.trees,
            "references": self.reference_dirs,
            "types": self.types,
            "projects": [asdict(p) for p in self.projects],
            "models": {s.model: _without(asdict(s), "model") for s in self.summaries},
            "rankings": [asdict(r) for r in self.rankings],
            "entries": [asdict(e) for e in self.entries],
            "jobs": [asdict(j) for j in self.jobs],
            "failed_files": [asdict(f) for f in self.failed_files],
            "build_seconds": self.build_seconds,
        }
        return {k: rounded(v) for k, v in data.items()}


def rounded(value: Any) -> Any:
    """`value` with every float rounded to six significant digits, recursively."""
    if isinstance(value, float):
        return float(f"{value:.6g}")
    if isinstance(value, dict):
        return {k: rounded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [rounded(v) for v in value]
    return value


def _without(data: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in data.items() if k != key}


def median(values: Iterable[float | None]) -> float | None:
    """The median of the known values; None when there are none."""
    known = [v for v in values if v is not None]
    return float(statistics.median(known)) if known else None


def type_order(types: Iterable[str]) -> list[str]:
    """Stem types in page order: TYPE_ORDER first, then the rest alphabetically."""
    rank = {t: i for i, t in enumerate(TYPE_ORDER)}
    return sorted(set(types), key=lambda t: (rank.get(t, len(rank)), t))


def summarise_models(
    models: Sequence[str], types: Sequence[str], entries: Sequence[Entry], jobs: Sequence[JobRow]
) -> list[ModelSummary]:
    """Per-model counts, median separation time, and medians per stem type."""
    summaries = []
    for model in models:
        mine = [j for j in jobs if j.model == model]
        stems = [e for e in entries if e.model == model and e.error is None]
        delivered = type_order(e.type for e in entries if e.model == model)

        def per_type(measure: str, stems: list[Entry] = stems) -> dict[str, float | None]:
            return {t: median(getattr(e, measure) for e in stems if e.type == t) for t in types}

        summaries.append(
            ModelSummary(
                model=model,
                jobs=len(mine),
                done=sum(j.status == "done" for j in mine),
                failed=sum(j.status == "failed" for j in mine),
                other=sum(j.status == "other" for j in mine),
                median_seconds=median(j.seconds for j in mine),
                types_delivered=delivered,
                sdr=per_type("sdr"),
                si_sdr=per_type("si_sdr"),
                lufs=per_type("lufs"),
                scored={t: sum(e.type == t and e.sdr is not None for e in stems) for t in types},
                residual_db=median(j.residual_db for j in mine),
            )
        )
    return summaries


def rank(
    types: Sequence[str], summaries: Sequence[ModelSummary], entries: Sequence[Entry]
) -> list[Ranking]:
    """One ranking per stem type, over the models that delivered it, by median SDR."""
    delivered: Mapping[str, set[str]] = {
        t: {e.model for e in entries if e.type == t} for t in types
    }
    rankings = []
    for kind in types:
        rows = [
            RankRow(s.model, sdr, s.si_sdr.get(kind), s.scored.get(kind, 0))
            for s in summaries
            if (sdr := s.sdr.get(kind)) is not None
        ]
        rows.sort(key=lambda r: (-r.sdr, r.model))
        most = max((r.projects for r in rows), default=0)
        rankings.append(
            Ranking(
                type=kind,
                rows=rows,
                not_delivered=[s.model for s in summaries if s.model not in delivered[kind]],
                unscored=[
                    s.model
                    for s in summaries
                    if s.model in delivered[kind] and s.sdr.get(kind) is None
                ],
                partial={r.model: r.projects for r in rows if r.projects < most},
            )
        )
    return rankings
