"""The blind listening test on the page: trials of lettered excerpts with a slider each.

The model behind each letter is in the page's data only (a JSON block, never shown): the
page writes a name into the trial when the listener asks to reveal it. Ratings stay in the
browser (localStorage, per report) until exported as a JSON file, which
`stemsweep report --ratings FILE...` folds into the report.
"""

from __future__ import annotations

from typing import Any

from orchestrator.report.html_kit import esc, href, json_script, name, spoken
from orchestrator.report.listening import ANCHOR_HZ, EXCERPT_S, Trial
from orchestrator.report.summary import Report

SCALE = "0–20 bad · 20–40 poor · 40–60 fair · 60–80 good · 80–100 excellent"


def listening_data(report: Report) -> dict[str, Any]:
    """What the page's script needs: the report's id and each trial's letters and models."""
    return {
        "report": report.report_id,
        "trials": [
            {
                "id": t.id,
                "project": t.project,
                "type": t.type,
                "items": [{"code": i.code, "role": i.role, "model": i.model} for i in t.items],
            }
            for t in report.listening
        ],
    }


def _trial(trial: Trial) -> str:
    context = ""
    if trial.reference:
        context = (
            '<div class="context"><span>reference (the true part)</span>'
            f'<audio controls preload="none" src="{href(trial.reference)}"></audio></div>'
        )
    elif trial.mix:
        context = (
            '<div class="context"><span>the mix</span>'
            f'<audio controls preload="none" src="{href(trial.mix)}"></audio></div>'
        )
    rows = "".join(
        f'<tr><th class="code">{esc(item.code)}</th>'
        f'<td><audio controls preload="none" src="{href(item.file)}"></audio></td>'
        f'<td class="slider"><input type="range" class="rating" min="0" max="100" step="1"'
        f' value="50" data-trial="{esc(trial.id)}" data-code="{esc(item.code)}"'
        f' aria-label="rating of {esc(item.code)}"><output>–</output></td>'
        f'<td class="name" data-name="{esc(item.code)}" hidden></td></tr>'
        for item in trial.items
    )
    return (
        f'<div class="card trial" data-trial-card="{esc(trial.id)}">'
        f'<div class="trial-head"><h3>{name(trial.project)} · {esc(spoken(trial.type))}</h3>'
        f'<span class="sub">{trial.start:.0f} s to {trial.start + trial.seconds:.0f} s</span>'
        f'<button type="button" data-reveal="{esc(trial.id)}">Reveal names</button></div>'
        f'{context}<table class="excerpts"><tbody>{rows}</tbody></table></div>'
    )


def listening_section(report: Report) -> str:
    """The section's instructions, controls and trials (or why there are none)."""
    if not report.listening:
        return (
            '<p class="note">No stem type was delivered by two models on the same song: '
            "nothing to compare blind.</p>"
        )
    with_reference = any(t.reference for t in report.listening)
    hidden = (
        " Where there is a reference, one letter <b>is</b> the reference (rate it 100) and "
        f"one is it low-passed at {ANCHOR_HZ / 1000:g} kHz (the low anchor); a listener who "
        "rates the hidden reference below 90 in more than 15% of trials is left out."
        if with_reference
        else ""
    )
    return (
        '<p class="note explain"><b>Blind test:</b> each trial plays the same '
        f"{EXCERPT_S:g} seconds of every model's stem, named by a letter in a shuffled "
        "order, all at the same loudness (BS.1770). Rate how well each one gives that part "
        f"alone and clean: {SCALE}.{hidden} Your ratings stay in this browser; "
        "<b>Export</b> saves them as a file, and "
        "<code>stemsweep report OUT --ratings FILE...</code> folds one or more listeners' "
        "files into the ranking. Reveal the names only once you are done.</p>"
        '<div class="listen-bar"><label>listener <input id="listener" type="text" '
        'placeholder="your name" autocomplete="off"></label>'
        '<span id="listen-progress" class="sub"></span>'
        '<button type="button" id="reveal-all">Reveal all names</button>'
        '<button type="button" id="clear-ratings">Clear my ratings</button>'
        '<button type="button" id="export-ratings" class="primary">Export ratings</button>'
        "</div>"
        + "".join(_trial(t) for t in report.listening)
        + json_script("listening-data", listening_data(report))
    )
