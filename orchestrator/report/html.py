"""The report as one static HTML page: inline CSS, SVG and a little JS, no network.

Audio and spectrograms are relative links, so the page works from disk next to the tree.
Every string that comes from the trees (model, project and file names, error messages) is
escaped, and every link is percent-encoded (`html_kit`). The sections come from
`html_ranking` (the answer), `html_listen` (the blind test) and `html_tables`.
"""

from __future__ import annotations

from datetime import datetime

from orchestrator.report.assets import CSS, JS, LISTEN_JS
from orchestrator.report.html_kit import esc
from orchestrator.report.html_listen import listening_section
from orchestrator.report.html_ranking import listening_cards, ranking_cards
from orchestrator.report.html_tables import measures_table, models_table, problems, project_block
from orchestrator.report.summary import Report


def _how_to_read(report: Report) -> str:
    scored = any(r.rows for r in report.rankings)
    agreed = any(r.rows for r in report.rankings_without_references)
    if scored:
        first = (
            "each chart ranks the models that delivered a stem type by their median SDR "
            "against the true part over the songs (dB, higher is better; the whisker spans "
            "the middle half of the songs). Green is the best, red 10 dB or more behind it. "
            "Beside them, the same models ranked without the true parts, as a catalogue "
            "without references is, with how far the two rankings agree."
        )
    elif agreed:
        first = (
            "no reference stems were found, so nothing is scored against the truth. Each "
            "chart ranks the models by how well their stems agree with what the other "
            "models and the mix say the part is: a strong hint, not a verdict, because "
            "models that fail alike agree alike."
        )
    else:
        first = "no reference stems were found, and too few models to compare with each other."
    return (
        f"<b>How to read this:</b> {first} Then listen: blind first (the excerpts are "
        "lettered and loudness-matched; your ratings fold back into the ranking), then side "
        "by side, where starting another stem while one plays picks up at the same position."
    )


def _when(iso: str) -> str:
    try:
        return datetime.fromisoformat(iso).strftime("%Y-%m-%d %H:%M UTC")
    except ValueError:
        return iso


def render(report: Report) -> str:
    """The whole page."""
    stems = len(report.entries)
    refs = sum(1 for p in report.projects if any(k != "original" for k in p.references))
    meta = (
        f"{len(report.projects)} projects · {len(report.models)} models · {stems} stems · "
        f"references for {refs} of {len(report.projects)} projects · "
        f"built {esc(_when(report.generated_at))}"
    )
    trees = ", ".join(f"<code>{esc(t)}</code>" for t in report.trees)
    projects = report.projects
    count = len(report.failed_files) + sum(j.status != "done" for j in report.jobs)
    sections = [
        ("ranking", "Ranking", ranking_cards(report) or '<p class="note">No stems found.</p>'),
    ]
    if report.ratings is not None:
        sections.append(("heard", "Ranking by ear", listening_cards(report)))
    sections += [
        ("models", "Models", models_table(report)),
        ("blind", "Listen blind", listening_section(report)),
        ("listen", "Listen side by side", "".join(project_block(report, p) for p in projects)),
        (
            "measures",
            "Every stem",
            '<p class="note">Click a column to sort. Near-silent: share of 50 ms frames below '
            "−60 dBFS. Δ original: stem length minus the original's. Offset: how late the stem "
            "started, undone before comparing. Notes: what was done to a stem before it was "
            "compared (resampled, channels matched, cut or zero-padded, aligned).</p>"
            + measures_table(report),
        ),
        ("problems", f"Problems ({count})", problems(report)),
    ]
    nav = "".join(f'<a href="#{key}">{esc(title)}</a>' for key, title, _ in sections)
    body = "".join(
        f'<section id="{key}"><h2>{esc(title)}</h2>{content}</section>'
        for key, title, content in sections
    )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>stemsweep · model comparison</title>
<link rel="icon" href="data:,">
<style>{CSS}</style></head>
<body><main>
<header><div class="kicker">stemsweep report</div>
<h1>Which model separates this catalogue best?</h1>
<p class="meta">{meta}<br>from {trees}</p>
<p class="howto">{_how_to_read(report)}</p>
<nav>{nav}</nav></header>
{body}
</main><script>{JS}</script><script>{LISTEN_JS}</script></body></html>
"""
