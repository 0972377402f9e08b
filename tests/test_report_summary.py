"""Per-model medians and rankings over the same stem set, as plain tables."""

from __future__ import annotations

from orchestrator.report.summary import (
    Entry,
    JobRow,
    median,
    rank,
    rounded,
    summarise_models,
    type_order,
)


def stem(project: str, model: str, kind: str, sdr: float | None) -> Entry:
    return Entry(project, model, kind, f"{model}/{project}/{kind}.wav", "wav", sdr=sdr)


def job(project: str, model: str, status: str = "done", seconds: float | None = None) -> JobRow:
    return JobRow(project, model, status, status, seconds, [], [], None, None, "")


MODELS = ["a", "b", "c", "d"]
ENTRIES = [
    stem("p1", "a", "vocals", 10.0),
    stem("p2", "a", "vocals", 12.0),
    stem("p1", "b", "vocals", 14.0),
    stem("p1", "c", "instrumental", 16.0),
    stem("p2", "c", "instrumental", 15.0),
    stem("p1", "d", "vocals", None),
]
JOBS = [
    job("p1", "a", seconds=30.0),
    job("p2", "a", seconds=50.0),
    job("p1", "b", seconds=20.0),
    job("p2", "b", "failed"),
    job("p1", "c"),
    job("p2", "c"),
    job("p1", "d"),
]


def test_rankings_hold_only_the_models_that_delivered_the_type() -> None:
    """A ranking sorts scorers by median SDR and names non-deliverers, unscored and partial ones."""
    types = type_order(e.type for e in ENTRIES)
    summaries = summarise_models(MODELS, types, ENTRIES, JOBS)
    vocals = next(r for r in rank(types, summaries, ENTRIES) if r.type == "vocals")
    assert [(r.model, r.sdr, r.projects) for r in vocals.rows] == [("b", 14.0, 1), ("a", 11.0, 2)]
    assert vocals.not_delivered == ["c"]
    assert vocals.unscored == ["d"]
    assert vocals.partial == {"b": 1}


def test_model_summary_counts_jobs_and_takes_medians() -> None:
    """Counts per outcome, the median of known job times, and medians per stem type."""
    types = type_order(e.type for e in ENTRIES)
    a, b, c, _ = summarise_models(MODELS, types, ENTRIES, JOBS)
    assert (a.jobs, a.done, a.failed, a.median_seconds) == (2, 2, 0, 40.0)
    assert (b.jobs, b.done, b.failed, b.median_seconds) == (2, 1, 1, 20.0)
    assert c.median_seconds is None
    assert a.sdr == {"instrumental": None, "vocals": 11.0}
    assert c.types_delivered == ["instrumental"]


def test_helpers() -> None:
    """Medians skip unknowns; types follow the page order; JSON floats keep 6 digits."""
    assert median([None, 3.0, 1.0]) == 2.0
    assert median([None]) is None
    assert type_order(["zz", "vocals", "backing_vocals", "instrumental"]) == [
        "instrumental",
        "vocals",
        "backing_vocals",
        "zz",
    ]
    assert rounded({"x": [1.23456789, None, "s"], "y": 1.5e-7}) == {
        "x": [1.23457, None, "s"],
        "y": 1.5e-7,
    }
