"""Rankings per stem type: against the references, without them, and how far they agree.

Pure. Comparisons use the same stem set for every model: a ranking of a stem type holds only
the models that delivered it, and names the others; a model whose stems of that type did
not decode is named with the reason, not counted as unscored.

- `rank_by_sdr`: median SDR against the true stems over the projects (the challenges'
  measure), with the interquartile range over projects.
- `rank_by_agreement`: median agreement with the other models anchored to the mix (see
  `consensus`), for every catalogue, references or not.
- `rank_agreement`: Spearman's rho and Kendall's tau between the two, wherever both exist:
  how well the ranking without references predicted the true one on this catalogue.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Final

import numpy as np
from scipy.stats import kendalltau, spearmanr

from orchestrator.report.consensus import MIN_MODELS
from orchestrator.report.summary import (
    Entry,
    ModelSummary,
    RankAgreement,
    Ranking,
    RankRow,
    median,
)

MAX_NOTES: Final = 6  # distinct notes listed per model and stem type

Measure = Callable[[Entry], float | None]


def quartiles(values: Sequence[float]) -> tuple[float, float, float]:
    """First quartile, median and third quartile (linear interpolation, like numpy's)."""
    q1, q2, q3 = np.percentile(np.asarray(values, dtype=np.float64), [25, 50, 75])
    return float(q1), float(q2), float(q3)


def _ranking(
    kind: str,
    measure: str,
    value: Measure,
    entries: Sequence[Entry],
    summaries: Sequence[ModelSummary],
    why_unscored: str,
) -> Ranking:
    mine = [e for e in entries if e.type == kind]
    residuals = {s.model: s.residual_db for s in summaries}
    rows, unscored, undecodable, notes = [], [], {}, {}
    for summary in summaries:
        model = summary.model
        stems = [e for e in mine if e.model == model]
        if not stems:
            continue
        decoded = [e for e in stems if e.error is None]
        if not decoded:
            undecodable[model] = stems[0].error or "could not decode"
            continue
        said = sorted({n for e in decoded for n in e.notes})
        if said:
            notes[model] = said[:MAX_NOTES]
        values = [v for e in decoded if (v := value(e)) is not None]
        if not values:
            unscored.append(model)
            continue
        q1, q2, q3 = quartiles(values)
        rows.append(
            RankRow(
                model=model,
                score=q2,
                q1=q1,
                q3=q3,
                projects=len(values),
                sdr=median(e.sdr for e in decoded) if measure == "sdr" else None,
                si_sdr=median(e.si_sdr for e in decoded) if measure == "sdr" else None,
                bleed_db=median(e.bleed_db for e in decoded) if measure == "agreement" else None,
                residual_db=residuals.get(model),
            )
        )
    rows.sort(key=lambda r: (-r.score, r.model))
    most = max((r.projects for r in rows), default=0)
    delivered = {e.model for e in mine}
    return Ranking(
        type=kind,
        measure=measure,
        rows=rows,
        not_delivered=[s.model for s in summaries if s.model not in delivered],
        unscored=unscored,
        why_unscored=why_unscored if unscored else None,
        undecodable=undecodable,
        partial={r.model: r.projects for r in rows if r.projects < most},
        notes=notes,
    )


def rank_by_sdr(
    types: Sequence[str], entries: Sequence[Entry], summaries: Sequence[ModelSummary]
) -> list[Ranking]:
    """One ranking per stem type by median SDR against the references."""
    return [
        _ranking(t, "sdr", lambda e: e.sdr, entries, summaries, "no reference to score against")
        for t in types
    ]


def rank_by_agreement(
    types: Sequence[str], entries: Sequence[Entry], summaries: Sequence[ModelSummary]
) -> list[Ranking]:
    """One ranking per stem type by median agreement with the other models (no reference)."""
    why = f"fewer than {MIN_MODELS} models delivered it on a song: no consensus to compare with"
    return [_ranking(t, "agreement", lambda e: e.agreement, entries, summaries, why) for t in types]


def rank_agreement(
    with_references: Sequence[Ranking], without: Sequence[Ranking]
) -> list[RankAgreement]:
    """Per stem type ranked both ways over at least MIN_MODELS common models: the rank
    correlations of the two rankings' scores."""
    out = []
    truth = {r.type: {row.model: row.score for row in r.rows} for r in with_references}
    for ranking in without:
        true_scores = truth.get(ranking.type, {})
        common = [row for row in ranking.rows if row.model in true_scores]
        if len(common) < MIN_MODELS:
            continue
        predicted = [row.score for row in common]
        actual = [true_scores[row.model] for row in common]
        rho = float(spearmanr(actual, predicted).statistic)
        tau = float(kendalltau(actual, predicted).statistic)
        if np.isfinite(rho) and np.isfinite(tau):
            out.append(RankAgreement(ranking.type, rho, tau, len(common)))
    return out
