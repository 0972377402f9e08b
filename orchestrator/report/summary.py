"""What the report says, as plain data: entries per stem, jobs, per-model medians, rankings.

Pure: built from measured entries and jobs (rankings by `ranking`), rendered by `html`,
written as JSON and CSV by `build`.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Final

from orchestrator.report.listening import Trial
from orchestrator.report.ratings import ListeningResults

REPORT_VERSION: Final = 2  # of report.json's layout (2: rankings rows have `score`)
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
    length_diff: float | None = None  # seconds, stem minus reference (or mix), offset undone
    resampled: bool | None = None  # compared after resampling to the project's rate
    offset_ms: float | None = None  # how late the stem started (negative: early); undone
    agreement: float | None = None  # dB, against the part estimated from the other models
    bleed_db: float | None = None  # the rest of the mix in the stem, against its part
    peak_dbfs: float | None = None
    clipped_share: float | None = None  # 0..1
    silence_share: float | None = None  # 0..1
    residual_db: float | None = None  # of the model's whole stem set on this project
    sample_rate: int | None = None
    channels: int | None = None
    spectrogram: str | None = None  # PNG, relative to the report's directory
    error: str | None = None  # why the file could not be decoded
    notes: list[str] = field(default_factory=list)  # what was done before comparing it


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
    """Per-model aggregates: medians over the model's projects, and their quartiles."""

    model: str
    jobs: int
    done: int
    failed: int
    other: int
    median_seconds: float | None
    types_delivered: list[str]
    sdr: dict[str, float | None]
    sdr_iqr: dict[str, list[float] | None]  # [first quartile, third quartile] per type
    si_sdr: dict[str, float | None]
    agreement: dict[str, float | None]
    agreement_iqr: dict[str, list[float] | None]
    lufs: dict[str, float | None]
    scored: dict[str, int]  # projects with an SDR, per stem type
    residual_db: float | None


@dataclass
class RankRow:
    """One model's place in a ranking of one stem type: the median of the ranking's measure
    over its projects, and the interquartile range (q1 to q3) of that measure."""

    model: str
    score: float
    q1: float
    q3: float
    projects: int
    sdr: float | None = None  # median SDR, in a ranking against references
    si_sdr: float | None = None  # median SI-SDR, in a ranking against references
    bleed_db: float | None = None  # median bleed, in a ranking without references
    residual_db: float | None = None  # the model's median residual (all its stems)


@dataclass
class Ranking:
    """The models that delivered one stem type, best first, by `measure` ("sdr": against the
    references; "agreement": without them)."""

    type: str
    measure: str
    rows: list[RankRow]
    not_delivered: list[str]  # models with jobs that never delivered this type
    unscored: list[str]  # delivered and decoded, yet not scored (see `why_unscored`)
    why_unscored: str | None
    undecodable: dict[str, str]  # model -> why none of its stems of this type decoded
    partial: dict[str, int]  # model -> projects scored, where fewer than the others
    notes: dict[str, list[str]]  # model -> what was done to its stems before comparing


@dataclass
class RankAgreement:
    """How far the ranking without references agrees with the one against references."""

    type: str
    spearman: float
    kendall: float
    models: int


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
    rankings_without_references: list[Ranking]
    rank_agreement: list[RankAgreement]
    failed_files: list[FailedFile]
    listening: list[Trial] = field(default_factory=list)
    ratings: ListeningResults | None = None
    ratings_files: list[str] = field(default_factory=list)
    report_id: str = ""
    build_seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict: entries, jobs, `models` (per-model medians), both rankings and
        how far they agree, the listening test's trials and folded ratings, failures.

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
            "rankings_without_references": [asdict(r) for r in self.rankings_without_references],
            "rank_agreement": [asdict(r) for r in self.rank_agreement],
            "report_id": self.report_id,
            "listening": [asdict(t) for t in self.listening],
            "ratings": asdict(self.ratings) if self.ratings is not None else None,
            "ratings_files": self.ratings_files,
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
    """Per-model counts, median separation time, and medians (and quartiles) per stem type."""
    summaries = []
    for model in models:
        mine = [j for j in jobs if j.model == model]
        stems = [e for e in entries if e.model == model and e.error is None]
        delivered = type_order(e.type for e in entries if e.model == model)

        def values(measure: str, kind: str, stems: list[Entry] = stems) -> list[float]:
            return [v for e in stems if e.type == kind and (v := getattr(e, measure)) is not None]

        def per_type(measure: str) -> dict[str, float | None]:
            return {t: median(values(measure, t)) for t in types}

        def spread(measure: str) -> dict[str, list[float] | None]:
            return {t: interquartile(values(measure, t)) for t in types}

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
                sdr_iqr=spread("sdr"),
                si_sdr=per_type("si_sdr"),
                agreement=per_type("agreement"),
                agreement_iqr=spread("agreement"),
                lufs=per_type("lufs"),
                scored={t: len(values("sdr", t)) for t in types},
                residual_db=median(j.residual_db for j in mine),
            )
        )
    return summaries


def interquartile(values: Sequence[float]) -> list[float] | None:
    """[first quartile, third quartile] of `values` (linear interpolation); None if empty."""
    if not values:
        return None
    ordered = sorted(values)

    def at(q: float) -> float:
        position = (len(ordered) - 1) * q
        low = int(position)
        high = min(low + 1, len(ordered) - 1)
        return ordered[low] + (ordered[high] - ordered[low]) * (position - low)

    return [at(0.25), at(0.75)]
