"""Listeners' ratings from the page's blind test, folded into a ranking per stem type.

Pure: documents in, results out (`build` reads the files). A ratings document is what the
page exports (`FORMAT`, version 1):

    {"format": "stemsweep-ratings", "version": 1, "report": "...", "listener": "alice",
     "exported_at": "...", "trials": [{"trial": "t001", "project": "prj_0001",
     "type": "vocals", "ratings": [{"code": "A", "role": "model", "model": "mdx23c",
     "score": 71}, {"code": "D", "role": "reference", "model": null, "score": 100}]}]}

Per stem type and model: the mean of every rating from every kept listener over every song,
with its 95% confidence interval (Student's t over those ratings). A listener who rated the
hidden reference below 90 in more than 15% of the trials that held one is left out, as
ITU-R BS.1534-3 (MUSHRA) screens assessors; the report names them. When two documents rate
the same trial for the same listener, the later one on the command line wins.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from scipy.stats import t as student_t

FORMAT: Final = "stemsweep-ratings"
VERSION: Final = 1
SCREEN_SCORE: Final = 90.0  # the hidden reference should score at least this...
SCREEN_SHARE: Final = 0.15  # ...in all but this share of the trials that hold it
CONFIDENCE: Final = 0.95


class RatingsError(ValueError):
    """A ratings document that cannot be used; the message says what to fix."""


class _Rating(BaseModel):
    model_config = ConfigDict(extra="ignore")
    code: str = ""
    role: Literal["model", "reference", "anchor"] = "model"
    model: str | None = None
    score: float = Field(ge=0, le=100)


class _Trial(BaseModel):
    model_config = ConfigDict(extra="ignore")
    trial: str = ""
    project: str
    type: str
    ratings: list[_Rating]


class _Document(BaseModel):
    model_config = ConfigDict(extra="ignore")
    format: Literal["stemsweep-ratings"]
    version: Literal[1]
    report: str = ""
    listener: str = ""
    exported_at: str = ""
    trials: list[_Trial]


@dataclass(frozen=True)
class Rating:
    """One score given by one listener to one excerpt."""

    listener: str
    project: str
    type: str
    role: str  # "model", "reference", "anchor"
    model: str | None
    score: float


def parse(document: Any, *, name: str) -> list[Rating]:
    """The ratings of one exported document; RatingsError naming each problem otherwise.

    `name` (the file) is the listener when the document names none.
    """
    try:
        doc = _Document.model_validate(document)
    except ValidationError as exc:
        problems = [
            f"{'.'.join(str(p) for p in e['loc']) or 'document'}: {e['msg']}" for e in exc.errors()
        ]
        raise RatingsError(
            f"not a stemsweep ratings file ({'; '.join(problems[:5])}); export it from the "
            "report's blind listening test"
        ) from None
    listener = doc.listener.strip() or name
    out = []
    for trial in doc.trials:
        for r in trial.ratings:
            if r.role == "model" and not r.model:
                raise RatingsError(f"trial {trial.trial or trial.project}: a rating names no model")
            out.append(Rating(listener, trial.project, trial.type, r.role, r.model, r.score))
    return out


@dataclass
class ListenRow:
    """One model's ratings for one stem type."""

    model: str
    mean: float
    ci_low: float | None  # 95% confidence interval of the mean; None from one rating
    ci_high: float | None
    ratings: int
    listeners: int


@dataclass
class ListenRanking:
    """The models of one stem type by mean rating, best first."""

    type: str
    rows: list[ListenRow]
    reference_mean: float | None  # how the hidden reference was rated (near 100 is right)
    anchor_mean: float | None


@dataclass
class Excluded:
    """A listener left out of the results, and why."""

    listener: str
    reason: str


@dataclass
class ListeningResults:
    """Every stem type's listening ranking, and who was counted."""

    rankings: list[ListenRanking]
    listeners: list[str]
    excluded: list[Excluded] = field(default_factory=list)
    ignored: int = 0  # ratings of models or stem types this report does not hold


def _deduplicated(ratings: Sequence[Rating]) -> list[Rating]:
    """The later rating of the same excerpt by the same listener replaces the earlier."""
    latest: dict[tuple[str, str, str, str, str | None], Rating] = {}
    for r in ratings:
        latest[(r.listener, r.project, r.type, r.role, r.model)] = r
    return list(latest.values())


def screened(ratings: Sequence[Rating]) -> tuple[list[str], list[Excluded]]:
    """Listeners kept and left out by the hidden-reference rule (see the module docstring)."""
    listeners = list(dict.fromkeys(r.listener for r in ratings))
    kept, excluded = [], []
    for listener in listeners:
        hidden = [r.score for r in ratings if r.listener == listener and r.role == "reference"]
        low = sum(score < SCREEN_SCORE for score in hidden)
        if hidden and low / len(hidden) > SCREEN_SHARE:
            excluded.append(
                Excluded(
                    listener,
                    f"rated the hidden reference below {SCREEN_SCORE:g} in {low} of "
                    f"{len(hidden)} trials",
                )
            )
        else:
            kept.append(listener)
    return kept, excluded


def mean_interval(scores: Sequence[float]) -> tuple[float, float | None, float | None]:
    """The mean and its CONFIDENCE interval by Student's t; no interval from one score."""
    mean = statistics.fmean(scores)
    if len(scores) < 2:
        return mean, None, None
    half = float(student_t.ppf((1 + CONFIDENCE) / 2, len(scores) - 1)) * (
        statistics.stdev(scores) / math.sqrt(len(scores))
    )
    return mean, mean - half, mean + half


def aggregate(
    ratings: Sequence[Rating], *, types: Sequence[str], models: Sequence[str]
) -> ListeningResults:
    """Rankings per stem type of `types`, over `models`, from every kept listener."""
    unique = _deduplicated(ratings)
    kept, excluded = screened(unique)
    counted = [r for r in unique if r.listener in kept]
    known = [r for r in counted if r.type in types and (r.role != "model" or r.model in models)]
    rankings = []
    for kind in types:
        mine = [r for r in known if r.type == kind]
        rows = []
        for model in models:
            scores = [r.score for r in mine if r.role == "model" and r.model == model]
            if not scores:
                continue
            mean, low, high = mean_interval(scores)
            listeners = len({r.listener for r in mine if r.model == model})
            rows.append(ListenRow(model, mean, low, high, len(scores), listeners))
        if not rows:
            continue
        rows.sort(key=lambda row: (-row.mean, row.model))
        roles = {
            role: [r.score for r in mine if r.role == role] for role in ("reference", "anchor")
        }
        rankings.append(
            ListenRanking(
                type=kind,
                rows=rows,
                reference_mean=statistics.fmean(roles["reference"]) if roles["reference"] else None,
                anchor_mean=statistics.fmean(roles["anchor"]) if roles["anchor"] else None,
            )
        )
    return ListeningResults(
        rankings=rankings,
        listeners=kept,
        excluded=excluded,
        ignored=len(counted) - len(known),
    )
