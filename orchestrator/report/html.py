"""The report as one static HTML page: inline CSS, SVG and a little JS, no network.

Audio and spectrograms are relative links, so the page works from disk next to the tree.
Every string that comes from the trees (model, project and file names, error messages) is
escaped, and every link is percent-encoded.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from datetime import datetime
from urllib.parse import quote

from orchestrator.catalog import models as catalogue
from orchestrator.report.assets import CSS, JS
from orchestrator.report.summary import Entry, JobRow, ProjectInfo, Report

SPAN_DB = 10.0  # colours run from red (this far behind the best) to green (the best)
DASH = "–"
MAX_LABEL = 48  # characters of a model name in a chart; longer ones end in "…"


def esc(text: object) -> str:
    """`text` escaped for HTML text and attribute values."""
    return html.escape(str(text), quote=True)


def href(link: str) -> str:
    """A relative file link as an escaped URL (spaces, #, ? and the like encoded)."""
    return esc(quote(link, safe="/"))


def spoken(kind: str) -> str:
    """A stem type for headings: "backing_vocals" reads "backing vocals"."""
    return kind.replace("_", " ")


def number(value: float | None, digits: int = 1, unit: str = "") -> str:
    """A rounded number with a real minus sign, or a dash when unknown."""
    if value is None:
        return DASH
    text = f"{value:.{digits}f}".replace("-", "−")
    return f"{text}{unit}"


def percent(share: float | None) -> str:
    """A 0..1 share as a percentage, showing small non-zero shares as such."""
    if share is None:
        return DASH
    if 0 < share < 0.001:
        return "<0.1%"
    return f"{share * 100:.1f}%"


def duration(seconds: float | None) -> str:
    """Seconds as "42 s" or "3 min 05 s"."""
    if seconds is None:
        return DASH
    if seconds < 60:
        return f"{seconds:.0f} s" if seconds >= 10 else f"{seconds:.1f} s"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest:02d} s"


def hue(value: float, best: float, span: float = SPAN_DB) -> float:
    """0 (red) when `span` or more below `best`, 125 (green) at `best`."""
    t = min(1.0, max(0.0, (value - (best - span)) / span))
    return 4.0 + 121.0 * t


def heat(value: float | None, best: float | None, span: float = SPAN_DB) -> str:
    """An inline style colouring a cell by how close `value` is to `best`."""
    if value is None or best is None:
        return ""
    return f' style="background:hsl({hue(value, best, span):.0f} 62% 90%)"'


def _residual_style(residual_db: float | None) -> str:
    if residual_db is None:
        return ""
    return f' style="background:hsl({residual_hue(residual_db):.0f} 62% 90%)"'


def _models_text(names: Sequence[str]) -> str:
    return ", ".join(f"<b>{esc(n)}</b>" for n in names)


# ---------------------------------------------------------------------------------------
# Charts.


def residual_hue(residual_db: float) -> float:
    """Green at -30 dB or below (the stems add up to the mix), red at -6 dB or above."""
    return hue(-residual_db, 30.0, 24.0)


def bar_chart(rows: Sequence[tuple[str, float, str]], *, residual: bool = False) -> str:
    """Horizontal bars as inline SVG: (label, value, text after the bar), best first.

    Bars grow with the value; for residuals (lower is better) with the value's magnitude.
    """
    longest = min(MAX_LABEL, max(len(label) for label, _, _ in rows))
    width, row_h = 680, 26
    label_w = min(340, 16 + round(7.4 * longest))
    area = width - label_w - 130
    values = [-v if residual else v for _, v, _ in rows]
    best = max(values)
    low = min(0.0, min(values))
    scale = area / (best - low) if best > low else 0.0
    height = row_h * len(rows) + 8
    out = [
        f'<svg class="chart" viewBox="0 0 {width} {height}" width="{width}" height="{height}"'
        ' role="img" xmlns="http://www.w3.org/2000/svg">'
    ]
    for i, ((label, value, text), length) in enumerate(zip(rows, values, strict=True)):
        y = 4 + i * row_h
        bar = max(2.0, (length - low) * scale)
        tone = residual_hue(value) if residual else hue(value, best)
        shown = label if len(label) <= MAX_LABEL else label[: MAX_LABEL - 1] + "…"
        out.append(
            f"<g><title>{esc(label)}: {esc(text)}</title>"
            f'<text x="{label_w - 10}" y="{y + 17}" text-anchor="end" class="label">'
            f"{esc(shown)}</text>"
            f'<rect x="{label_w}" y="{y + 4}" width="{bar:.1f}" height="{row_h - 8}" rx="3"'
            f' fill="hsl({tone:.0f} 55% 47%)"/>'
            f'<text x="{label_w + bar + 8:.1f}" y="{y + 17}" class="value">{esc(text)}</text></g>'
        )
    out.append("</svg>")
    return "".join(out)


def _verdicts(report: Report) -> str:
    """One tile per scored stem type: the best model and its lead over the next."""
    tiles = []
    for ranking in report.rankings:
        if not ranking.rows:
            continue
        top = ranking.rows[0]
        if len(ranking.rows) > 1:
            second = ranking.rows[1]
            lead = top.sdr - second.sdr
            verdict = "a near tie with" if lead < 0.5 else f"{number(lead)} dB ahead of"
            detail = f"{verdict} <b>{esc(second.model)}</b>"
        else:
            detail = "the only model that delivered it"
        tiles.append(
            f'<div class="verdict"><div class="kicker">best {esc(spoken(ranking.type))}</div>'
            f'<div class="winner">{esc(top.model)}</div>'
            f'<div class="score">{number(top.sdr)} <span>dB SDR</span></div>'
            f'<div class="sub">{detail}</div></div>'
        )
    return f'<div class="verdicts">{"".join(tiles)}</div>' if tiles else ""


def _ranking_cards(report: Report) -> str:
    cards = []
    unscored = []  # stem types with no reference: listed with who delivered them
    for ranking in report.rankings:
        if not ranking.rows:
            unscored.append(ranking)
            continue
        notes = []
        if ranking.not_delivered:
            notes.append(f"Not delivered by: {_models_text(ranking.not_delivered)}.")
        if ranking.unscored:
            notes.append(f"No reference to score: {_models_text(ranking.unscored)}.")
        if ranking.partial:
            most = max(r.projects for r in ranking.rows)
            parts = [f"<b>{esc(m)}</b> ({n} of {most})" for m, n in ranking.partial.items()]
            notes.append(f"Scored on fewer projects: {', '.join(parts)}.")
        chart = bar_chart(
            [
                (r.model, r.sdr, f"{number(r.sdr)} dB  ·  SI {number(r.si_sdr)}")
                for r in ranking.rows
            ]
        )
        cards.append(
            f'<div class="card"><h3>{esc(spoken(ranking.type))} <span class="unit">median SDR, dB'
            f"</span></h3>{chart}" + "".join(f'<p class="note">{n}</p>' for n in notes) + "</div>"
        )
    if unscored:
        items = "".join(
            f"<li><b>{esc(spoken(r.type))}</b>: "
            + (f"not delivered by {_models_text(r.not_delivered)}" if r.not_delivered
               else "delivered by every model")
            + "</li>"
            for r in unscored
        )  # fmt: skip
        cards.append(
            '<div class="card"><h3>not scored <span class="unit">no reference stems</span></h3>'
            f'<ul class="coverage">{items}</ul><p class="note">Give <code>--references DIR</code>'
            " (<code>DIR/{project}/{type}.wav</code>) to rank these types.</p></div>"
        )
    residuals = [
        (s.model, s.residual_db, f"{number(s.residual_db)} dB")
        for s in report.summaries
        if s.residual_db is not None
    ]
    if residuals:
        residuals.sort(key=lambda r: r[1])
        cards.append(
            '<div class="card"><h3>stems add up to the mix <span class="unit">median residual,'
            " dB, lower is better</span></h3>"
            + bar_chart(residuals, residual=True)
            + '<p class="note">Energy of (original − sum of the model\'s stems) against the '
            "original. No reference needed; a model that returns only some stem types leaves "
            "the rest in the residual.</p></div>"
        )
    if not cards:
        return ""
    return _verdicts(report) + f'<div class="grid">{"".join(cards)}</div>'


# ---------------------------------------------------------------------------------------
# Tables.


def _models_table(report: Report) -> str:
    """Per-model rows; per stem type the median SDR, or the median LUFS where unscored."""
    purposes = {m.name: m.purpose for m in catalogue()}
    best_sdr: dict[str, float | None] = {}
    for t in report.types:
        scores = [v for s in report.summaries if (v := s.sdr.get(t)) is not None]
        best_sdr[t] = max(scores) if scores else None
    head = "".join(
        f'<th class="num">{esc(t)}<div class="sub">'
        f"{'SDR · SI-SDR' if best_sdr[t] is not None else 'loudness, LUFS'}</div></th>"
        for t in report.types
    )
    rows = []
    for s in report.summaries:
        cells = []
        for t in report.types:
            if t not in s.types_delivered:
                cells.append('<td class="num muted">not delivered</td>')
            elif best_sdr[t] is None:
                cells.append(f'<td class="num">{number(s.lufs.get(t))}</td>')
            else:
                cells.append(
                    f'<td class="num"{heat(s.sdr.get(t), best_sdr[t])}><b>{number(s.sdr.get(t))}'
                    f'</b> <span class="sub">{number(s.si_sdr.get(t))}</span></td>'
                )
        failed = f'<span class="bad">{s.failed}</span>' if s.failed else "0"
        rows.append(
            f'<tr><th class="model">{esc(s.model)}'
            f'<div class="sub">{esc(purposes.get(s.model, ""))}</div></th>'
            f'<td class="num">{s.done}</td><td class="num">{failed}</td>'
            f'<td class="num">{duration(s.median_seconds)}</td>'
            + "".join(cells)
            + f'<td class="num"{_residual_style(s.residual_db)}>{number(s.residual_db)}</td></tr>'
        )
    return (
        '<div class="card scroll"><table class="models"><thead><tr><th>model</th>'
        '<th class="num">done</th><th class="num">failed</th>'
        '<th class="num">median time</th>'
        f'{head}<th class="num">residual<div class="sub">dB</div></th></tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table></div>"
    )


def _stem_cell(
    src: str | None,
    png: str | None,
    label: str,
    caption: str,
    *,
    error: str | None = None,
    absent: str = "not delivered",
) -> str:
    """One cell of the listening matrix: spectrogram, player and caption, or why not."""
    if error is not None:
        return f'<td class="broken">could not decode<div class="sub">{esc(error)}</div></td>'
    if src is None:
        return f'<td class="missing">{esc(absent)}</td>'
    image = (
        f'<img src="{href(png)}" width="320" height="72" decoding="async"'
        f' alt="spectrogram of {esc(label)}">'
        if png
        else ""
    )
    return (
        f'<td><figure class="stem">{image}'
        f'<audio controls preload="none" src="{href(src)}" title="{esc(label)}"></audio>'
        f"<figcaption>{caption}</figcaption></figure></td>"
    )


def _caption(entry: Entry) -> str:
    parts = []
    if entry.sdr is not None:
        parts.append(f"SDR <b>{number(entry.sdr)}</b>")
    parts.append(f"{number(entry.lufs)} LUFS")
    parts.append(f"peak {number(entry.peak_dbfs)}")
    if entry.clipped_share:
        parts.append(f'<span class="bad">clipped {percent(entry.clipped_share)}</span>')
    return " · ".join(parts)


def _job_note(job: JobRow) -> str:
    parts = [job.raw_status or job.status]
    if job.seconds is not None:
        parts.append(duration(job.seconds))
    if job.residual_db is not None:
        parts.append(f"residual {number(job.residual_db)} dB")
    return " · ".join(esc(p) for p in parts)


def _project_block(report: Report, project: ProjectInfo) -> str:
    types = report.types
    entries = {(e.model, e.type): e for e in report.entries if e.project == project.project}
    jobs = {j.model: j for j in report.jobs if j.project == project.project}
    head = "".join(f"<th>{esc(t)}</th>" for t in types)
    rows = []
    if any(t in project.references for t in types):
        cells = "".join(
            _stem_cell(
                project.references.get(t),
                project.spectrograms.get(t),
                f"{project.project} reference {t}",
                "true part",
                absent="no reference",
            )
            for t in types
        )
        rows.append(f'<tr class="reference"><th>reference</th>{cells}</tr>')
    for model in report.models:
        job = jobs.get(model)
        if job is None:
            rows.append(
                f'<tr><th class="model">{esc(model)}</th><td class="missing" '
                f'colspan="{len(types)}">no job for this project in the trees</td></tr>'
            )
            continue
        label = f'<th class="model">{esc(model)}<div class="sub">{_job_note(job)}</div></th>'
        if job.status == "failed" and not job.types:
            reason = f": {esc(job.error)}" if job.error else ""
            rows.append(
                f'<tr>{label}<td class="failed" colspan="{len(types)}">job '
                f"{esc(job.raw_status or job.status)}{reason}</td></tr>"
            )
            continue
        cells = ""
        for t in types:
            e = entries.get((model, t))
            if e is None:
                cells += _stem_cell(None, None, "", "")
            else:
                cells += _stem_cell(
                    e.file, e.spectrogram, f"{model} {t}", _caption(e), error=e.error
                )
        rows.append(f"<tr>{label}{cells}</tr>")
    original = ""
    if project.original:
        png = project.spectrograms.get("original")
        image = f'<img src="{href(png)}" width="320" height="72" alt="spectrogram">' if png else ""
        original = (
            f'<figure class="stem original">{image}<div><div class="sub">original mix · '
            f"{duration(project.original_duration)}</div>"
            f'<audio controls preload="none" src="{href(project.original)}"'
            f' title="{esc(project.project)} original"></audio></div></figure>'
        )
    return (
        f'<div class="card project" data-project="{esc(project.project)}">'
        f'<div class="project-head"><h3>{esc(project.project)}</h3>{original}</div>'
        f'<div class="scroll"><table class="matrix"><thead><tr><th>model</th>{head}</tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table></div></div>"
    )


MEASURE_COLUMNS = (
    ("project", False), ("model", False), ("type", False), ("duration s", True),
    ("Δ original s", True), ("LUFS", True), ("peak dBFS", True), ("clipped", True),
    ("near-silent", True), ("SDR", True), ("SI-SDR", True), ("residual dB", True),
    ("file", False),
)  # fmt: skip


def _measures_table(report: Report) -> str:
    def cell(value: float | None, text: str, style: str = "") -> str:
        data = "" if value is None else f"{value:.6g}"
        return f'<td class="num"{style} data-v="{data}">{text}</td>'

    def css(name: str | None) -> str:
        return f' style="color:var(--{name})"' if name else ""

    best = {t: max((e.sdr for e in report.entries if e.type == t and e.sdr is not None),
                   default=None) for t in report.types}  # fmt: skip
    rows = []
    for e in report.entries:
        loud = (e.peak_dbfs is not None and e.peak_dbfs > -0.1) or bool(e.clipped_share)
        off = e.duration_delta is not None and abs(e.duration_delta) > 0.05
        r = e.residual_db
        tone = None if r is None else "good" if r < -30 else "bad" if r > -10 else "warn"
        file = (
            '<span class="bad">could not decode</span>'
            if e.error
            else f'<a href="{href(e.file)}">{esc(e.format)}</a>'
        )
        rows.append(
            f"<tr><td>{esc(e.project)}</td><td>{esc(e.model)}</td><td>{esc(e.type)}</td>"
            + cell(e.duration, number(e.duration, 2))
            + cell(e.duration_delta, number(e.duration_delta, 2), css("warn" if off else None))
            + cell(e.lufs, number(e.lufs))
            + cell(e.peak_dbfs, number(e.peak_dbfs), css("bad" if loud else None))
            + cell(e.clipped_share, percent(e.clipped_share), css("bad" if loud else None))
            + cell(e.silence_share, percent(e.silence_share))
            + cell(e.sdr, number(e.sdr), heat(e.sdr, best.get(e.type)))
            + cell(e.si_sdr, number(e.si_sdr))
            + cell(r, number(r), css(tone))
            + f"<td>{file}</td></tr>"
        )
    head = "".join(
        ('<th class="num">' if numeric else "<th>") + esc(name) + "</th>"
        for name, numeric in MEASURE_COLUMNS
    )
    return (
        '<div class="card scroll"><table class="measures sortable"><thead><tr>'
        f"{head}</tr></thead><tbody>{''.join(rows)}</tbody></table></div>"
    )


def _problems(report: Report) -> str:
    items = []
    for f in report.failed_files:
        where = " / ".join(esc(p) for p in (f.project, f.model, f.type) if p)
        items.append(
            f'<li><code>{esc(f.file)}</code> <span class="sub">{where}</span><br>'
            f"{esc(f.reason)}</li>"
        )
    for j in report.jobs:
        if j.status != "done":
            reason = f": {esc(j.error)}" if j.error else ""
            items.append(
                f"<li><b>{esc(j.model)}</b> on <b>{esc(j.project)}</b>: job "
                f"{esc(j.raw_status or j.status)}{reason}</li>"
            )
    if not items:
        return '<p class="note good">Every file decoded and every job finished.</p>'
    return f'<div class="card"><ul class="problems">{"".join(items)}</ul></div>'


# ---------------------------------------------------------------------------------------
# The page.


def _how_to_read(report: Report) -> str:
    if any(r.rows for r in report.rankings):
        return (
            "<b>How to read this:</b> each chart ranks the models that delivered a stem type by "
            "their median SDR against the true part over the projects (dB, higher is better). "
            "Green is the best, red 10 dB or more behind it. Then listen: in the matrix, "
            "starting another stem while one plays picks up at the same position."
        )
    return (
        "<b>How to read this:</b> no reference stems were found, so nothing is scored "
        "(give <code>--references DIR</code> to score). Listen side by side in the matrix: "
        "starting another stem while one plays picks up at the same position. Loudness, peak "
        "and the residual are hints, not verdicts."
    )


def _when(iso: str) -> str:
    try:
        return datetime.fromisoformat(iso).strftime("%Y-%m-%d %H:%M UTC")
    except ValueError:
        return iso


def render(report: Report) -> str:
    """The whole page."""
    stems = len(report.entries)
    refs = sum(1 for p in report.projects if p.references)
    meta = (
        f"{len(report.projects)} projects · {len(report.models)} models · {stems} stems · "
        f"references for {refs} of {len(report.projects)} projects · "
        f"built {esc(_when(report.generated_at))}"
    )
    trees = ", ".join(f"<code>{esc(t)}</code>" for t in report.trees)
    problems = len(report.failed_files) + sum(j.status != "done" for j in report.jobs)
    sections = [
        ("ranking", "Ranking", _ranking_cards(report) or '<p class="note">No stems found.</p>'),
        ("models", "Models", _models_table(report)),
        (
            "listen",
            "Listen side by side",
            "".join(_project_block(report, p) for p in report.projects),
        ),
        (
            "measures",
            "Every stem",
            '<p class="note">Click a column to sort. Near-silent: share '
            "of 50 ms frames below −60 dBFS. Δ original: stem length minus the original's."
            "</p>" + _measures_table(report),
        ),
        ("problems", f"Problems ({problems})", _problems(report)),
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
</main><script>{JS}</script></body></html>
"""
