"""Per-model medians and rankings over the same stem set, as plain tables."""

from __future__ import annotations

from orchestrator.report.ranking import quartiles, rank_agreement, rank_by_agreement, rank_by_sdr
from orchestrator.report.summary import (
    Entry,
    JobRow,
    interquartile,
    median,
    rounded,
    summarise_models,
    type_order,
)

UNREADABLE = "not readable as audio: Format not recognised"


def stem(
    project: str,
    model: str,
    kind: str,
    sdr: float | None,
    *,
    error: str | None = None,
    notes: tuple[str, ...] = (),
) -> Entry:
    entry = Entry(project, model, kind, f"{model}/{project}/{kind}.wav", "wav", sdr=sdr)
    entry.error, entry.notes = error, list(notes)
    return entry


def job(project: str, model: str, status: str = "done", seconds: float | None = None) -> JobRow:
    return JobRow(project, model, status, status, seconds, [], [], None, None, "")


MODELS = ["a", "b", "c", "d", "e"]
ENTRIES = [
    stem("p1", "a", "vocals", 10.0),
    stem("p2", "a", "vocals", 12.0, notes=("resampled from 48000 Hz to 44100 Hz",)),
    stem("p1", "b", "vocals", 14.0),
    stem("p1", "c", "instrumental", 16.0),
    stem("p2", "c", "instrumental", 15.0),
    stem("p1", "d", "vocals", None),
    stem("p1", "e", "vocals", None, error=UNREADABLE),
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
    """A ranking sorts scorers by median SDR with quartiles, and names non-deliverers,
    unscored, undecodable (with the reason) and partial ones, and the notes on stems."""
    types = type_order(e.type for e in ENTRIES)
    summaries = summarise_models(MODELS, types, ENTRIES, JOBS)
    vocals = next(r for r in rank_by_sdr(types, ENTRIES, summaries) if r.type == "vocals")
    assert [(r.model, r.score, r.q1, r.q3, r.projects) for r in vocals.rows] == [
        ("b", 14.0, 14.0, 14.0, 1),
        ("a", 11.0, 10.5, 11.5, 2),
    ]
    assert vocals.measure == "sdr" and vocals.rows[1].sdr == 11.0
    assert vocals.not_delivered == ["c"]
    assert vocals.unscored == ["d"] and vocals.why_unscored == "no reference to score against"
    assert vocals.undecodable == {"e": UNREADABLE}  # not "no reference": it did not decode
    assert vocals.partial == {"b": 1}
    assert vocals.notes == {"a": ["resampled from 48000 Hz to 44100 Hz"]}


def test_the_ranking_without_references_has_the_same_shape_and_agrees_or_not() -> None:
    """Agreement scores rank like SDRs do; rank_agreement gives rho and tau over common models."""
    entries = []
    for model, sdr, agreement in (("a", 9.0, 8.0), ("b", 12.0, 9.5), ("c", 15.0, 11.0)):
        for project in ("p1", "p2"):
            e = stem(project, model, "vocals", sdr)
            e.agreement = agreement
            entries.append(e)
    summaries = summarise_models(["a", "b", "c"], ["vocals"], entries, [])
    truth = rank_by_sdr(["vocals"], entries, summaries)
    (without,) = rank_by_agreement(["vocals"], entries, summaries)
    assert without.measure == "agreement"
    assert [(r.model, r.score) for r in without.rows] == [("c", 11.0), ("b", 9.5), ("a", 8.0)]
    (agreed,) = rank_agreement(truth, [without])
    assert (agreed.type, agreed.spearman, agreed.kendall, agreed.models) == ("vocals", 1.0, 1.0, 3)
    entries[0].agreement = entries[1].agreement = 20.0  # "a" now claims first place
    (swapped,) = rank_by_agreement(["vocals"], entries, summaries)
    (disagreed,) = rank_agreement(truth, [swapped])
    assert disagreed.spearman == -0.5 and round(disagreed.kendall, 6) == -0.333333


def test_too_few_models_give_no_agreement_ranking_and_say_why() -> None:
    """A type delivered by fewer than three models is unscored without references, with why."""
    entries = [stem("p1", m, "backing_vocals", None) for m in ("a", "b")]
    summaries = summarise_models(["a", "b"], ["backing_vocals"], entries, [])
    (ranking,) = rank_by_agreement(["backing_vocals"], entries, summaries)
    assert ranking.rows == [] and ranking.unscored == ["a", "b"]
    assert ranking.why_unscored is not None and "fewer than 3 models" in ranking.why_unscored


def test_model_summary_counts_jobs_and_takes_medians() -> None:
    """Counts per outcome, the median of known job times, and medians per stem type."""
    types = type_order(e.type for e in ENTRIES)
    a, b, c, *_ = summarise_models(MODELS, types, ENTRIES, JOBS)
    assert (a.jobs, a.done, a.failed, a.median_seconds) == (2, 2, 0, 40.0)
    assert (b.jobs, b.done, b.failed, b.median_seconds) == (2, 1, 1, 20.0)
    assert c.median_seconds is None
    assert a.sdr == {"instrumental": None, "vocals": 11.0}
    assert a.sdr_iqr == {"instrumental": None, "vocals": [10.5, 11.5]}
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
    assert interquartile([4.0, 1.0, 2.0, 3.0]) == [1.75, 3.25] == list(quartiles([1, 2, 3, 4]))[::2]
    assert interquartile([]) is None
