"""The page's answer: the best model per stem type, and the rankings behind it.

Three rankings, each per stem type, side by side when they exist: against the true stems
(median SDR), without them (agreement with the other models, for every catalogue), and by
ear (the blind test's ratings, when `--ratings` folded them in). Each names the models it
leaves out and why, and the notes on the stems it compared.
"""

from __future__ import annotations

from orchestrator.report.html_charts import Bar, bar_chart
from orchestrator.report.html_kit import esc, models_text, name, number, spoken
from orchestrator.report.ratings import ListeningResults
from orchestrator.report.summary import RankAgreement, Ranking, Report

AGREEMENT_EXPLAINED = (
    "<b>What it measures:</b> each model's stem against the part as the <i>other</i> models "
    "and the mix estimate it: the median of their stems, sample by sample, with the share of "
    "the rest of the mix they all leak removed (dB, like an SDR; higher is better). Bleed: "
    "the rest of the mix left in the stem, against its part. <b>What it cannot see:</b> a "
    "failure most models share (models that fail alike agree alike), and what the ear hears "
    "but the waveform does not show. Check the top of it by ear, below."
)


def _notes(ranking: Ranking) -> list[str]:
    """The notes under a ranking's chart: who is left out and why, what was adjusted."""
    notes = []
    if ranking.not_delivered:
        notes.append(f"Not delivered by: {models_text(ranking.not_delivered)}.")
    for model, reason in ranking.undecodable.items():
        notes.append(f"Could not decode <b>{name(model)}</b>'s stems: {esc(reason)}.")
    if ranking.unscored and ranking.why_unscored:
        notes.append(f"Not scored ({esc(ranking.why_unscored)}): {models_text(ranking.unscored)}.")
    if ranking.partial:
        most = max(r.projects for r in ranking.rows)
        parts = [f"<b>{name(m)}</b> ({n} of {most})" for m, n in ranking.partial.items()]
        notes.append(f"Scored on fewer songs: {', '.join(parts)}.")
    for model, said in ranking.notes.items():
        notes.append(
            f'<span class="warn">Adjusted before comparing</span> <b>{name(model)}</b>: '
            f"{esc('; '.join(said))}."
        )
    return notes


def _card(title: str, unit: str, chart: str, notes: list[str]) -> str:
    return (
        f'<div class="card"><h3>{esc(title)} <span class="unit">{unit}</span></h3>{chart}'
        + "".join(f'<p class="note">{n}</p>' for n in notes)
        + "</div>"
    )


def _chart(ranking: Ranking, unit: str) -> str:
    bars = []
    for r in ranking.rows:
        text = f"{number(r.score)} {unit}"
        if ranking.measure == "sdr":
            text += f" · SI {number(r.si_sdr)}"
        elif r.bleed_db is not None:
            text += f" · bleed {number(r.bleed_db, 0)}"
        bars.append(Bar(r.model, r.score, text, r.q1, r.q3))
    return bar_chart(bars)


def _verdict(ranking: Ranking, how: str) -> str:
    top = ranking.rows[0]
    if len(ranking.rows) > 1:
        second = ranking.rows[1]
        lead = top.score - second.score
        spread = max(top.q3 - top.q1, second.q3 - second.q1)
        near = lead < 0.5 or lead < spread / 2
        verdict = "a near tie with" if near else f"{number(lead)} dB ahead of"
        detail = f"{verdict} <b>{name(second.model)}</b>"
    else:
        detail = "the only model that delivered it"
    return (
        f'<div class="verdict"><div class="kicker">best {esc(spoken(ranking.type))}</div>'
        f'<div class="winner">{name(top.model)}</div>'
        f'<div class="score">{number(top.score)} <span>{how}</span></div>'
        f'<div class="sub">{detail}</div></div>'
    )


def verdicts(report: Report) -> str:
    """One tile per stem type: the best model against the references, or without them."""
    tiles = []
    without = {r.type: r for r in report.rankings_without_references}
    for ranking in report.rankings:
        if ranking.rows:
            tiles.append(_verdict(ranking, "dB SDR"))
        elif (other := without.get(ranking.type)) is not None and other.rows:
            tiles.append(_verdict(other, "dB agreement, no reference"))
    return f'<div class="verdicts">{"".join(tiles)}</div>' if tiles else ""


def _agreement_line(found: RankAgreement | None) -> str:
    if found is None:
        return (
            "No true stems here to check it against: see README.md for how well it "
            "predicted the true ranking on the simulator's songs."
        )
    return (
        f"<b>On this catalogue</b>, against the ranking by the true stems: Spearman "
        f"ρ = {number(found.spearman, 2)}, Kendall τ = {number(found.kendall, 2)} "
        f"({found.models} models; 1 is the same order)."
    )


def ranking_cards(report: Report) -> str:
    """Per stem type, the ranking against the true stems beside the one without them; then
    the residual chart."""
    cards = []
    unscored = []
    without = {r.type: r for r in report.rankings_without_references}
    agreement = {a.type: a for a in report.rank_agreement}
    for ranking in report.rankings:
        other = without.get(ranking.type)
        if ranking.rows:
            notes = _notes(ranking)
            if other is not None and not other.rows and other.why_unscored:
                notes.append(f"No ranking without references: {esc(other.why_unscored)}.")
            cards.append(
                _card(
                    spoken(ranking.type),
                    "median SDR, dB · whisker: middle half of the songs",
                    _chart(ranking, "dB"),
                    notes,
                )
            )
        else:
            unscored.append(ranking.type)
        if other is not None and (other.rows or not ranking.rows):
            notes = _notes(other)
            if other.rows:
                notes.append(_agreement_line(agreement.get(other.type)))
            cards.append(
                _card(
                    f"{spoken(other.type)}, no reference",
                    "median agreement with the other models, dB",
                    _chart(other, "dB") if other.rows else "",
                    notes,
                )
            )
    residuals = sorted(
        (Bar(s.model, s.residual_db, f"{number(s.residual_db)} dB")
         for s in report.summaries if s.residual_db is not None),
        key=lambda b: b.value,
    )  # fmt: skip
    if residuals:
        cards.append(
            _card(
                "stems add up to the mix",
                "median residual, dB, lower is better",
                bar_chart(residuals, residual=True),
                [
                    "Energy of (original − sum of the model's stems) against the original. "
                    "No reference needed; a model that returns only some stem types leaves "
                    "the rest in the residual, so this says more about what a model returns "
                    "than how well."
                ],
            )
        )
    intro = f'<p class="note explain">{AGREEMENT_EXPLAINED}</p>'
    if unscored:
        intro += (
            '<p class="note">No true stems for '
            + ", ".join(f"<b>{esc(spoken(t))}</b>" for t in unscored)
            + ": give <code>--references DIR</code> (<code>DIR/{project}/{type}.wav</code>) "
            "to score them against the truth.</p>"
        )
    if not cards:
        return ""
    return verdicts(report) + intro + f'<div class="grid">{"".join(cards)}</div>'


def listening_cards(report: Report) -> str:
    """The blind test's results, when ratings were folded in, next to the measured scores."""
    results = report.ratings
    if results is None:
        return ""
    if not results.rankings:
        return (
            '<div class="card"><p class="note">The ratings given hold no rating of a model '
            "and stem type of this report.</p></div>"
        )
    sdr = {(s.model, t): v for s in report.summaries for t, v in s.sdr.items()}
    agree = {(s.model, t): v for s in report.summaries for t, v in s.agreement.items()}
    cards = []
    for ranking in results.rankings:
        rows = []
        for r in ranking.rows:
            interval = (
                f"{number(r.ci_low, 0)}–{number(r.ci_high, 0)}" if r.ci_low is not None else "–"
            )
            rows.append(
                f'<tr><th class="model">{name(r.model)}</th>'
                f'<td class="num"><b>{number(r.mean, 0)}</b></td>'
                f'<td class="num">{interval}</td><td class="num">{r.ratings}</td>'
                f'<td class="num">{number(sdr.get((r.model, ranking.type)))}</td>'
                f'<td class="num">{number(agree.get((r.model, ranking.type)))}</td></tr>'
            )
        checks = []
        if ranking.reference_mean is not None:
            checks.append(f"hidden reference rated {number(ranking.reference_mean, 0)}")
        if ranking.anchor_mean is not None:
            checks.append(f"low anchor {number(ranking.anchor_mean, 0)}")
        cards.append(
            f'<div class="card"><h3>{esc(spoken(ranking.type))} <span class="unit">by ear, '
            "mean rating 0–100</span></h3>"
            '<table class="listened"><thead><tr><th>model</th><th class="num">mean</th>'
            '<th class="num">95% CI</th><th class="num">ratings</th>'
            '<th class="num">SDR</th><th class="num">agreement</th></tr></thead>'
            f"<tbody>{''.join(rows)}</tbody></table>"
            + (f'<p class="note">{esc("; ".join(checks))}.</p>' if checks else "")
            + "</div>"
        )
    return _listeners(results) + f'<div class="grid">{"".join(cards)}</div>'


def _listeners(results: ListeningResults) -> str:
    parts = [f"{len(results.listeners)} listener(s): {esc(', '.join(results.listeners))}."]
    for excluded in results.excluded:
        parts.append(f"Left out: <b>{esc(excluded.listener)}</b>, {esc(excluded.reason)}.")
    if results.ignored:
        parts.append(f"{results.ignored} rating(s) of models or stem types not in this report.")
    return f'<p class="note">{" ".join(parts)}</p>'
