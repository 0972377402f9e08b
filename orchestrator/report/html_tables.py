"""The page's tables: per-model summary, the listening matrix, every stem, problems."""

from __future__ import annotations

from orchestrator.catalog import models as catalogue
from orchestrator.report.html_kit import duration as duration_text
from orchestrator.report.html_kit import (
    esc,
    heat,
    href,
    name,
    number,
    percent,
    residual_style,
    spread,
)
from orchestrator.report.summary import Entry, JobRow, ProjectInfo, Report


def models_table(report: Report) -> str:
    """Per-model rows; per stem type the median SDR against the references with its
    interquartile range, or, without references, the median agreement with the others."""
    purposes = {m.name: m.purpose for m in catalogue()}
    best: dict[str, tuple[str, float] | None] = {}
    for t in report.types:
        for measure in ("sdr", "agreement"):
            scores = [v for s in report.summaries if (v := getattr(s, measure).get(t)) is not None]
            if scores:
                best[t] = (measure, max(scores))
                break
        else:
            best[t] = None
    labels = {"sdr": "SDR · SI-SDR · IQR", "agreement": "agreement · IQR"}
    head = "".join(
        f'<th class="num">{esc(t)}<div class="sub">'
        f"{labels[found[0]] if (found := best[t]) else 'loudness, LUFS'}</div></th>"
        for t in report.types
    )
    rows = []
    for s in report.summaries:
        cells = []
        for t in report.types:
            found = best[t]
            if t not in s.types_delivered:
                cells.append('<td class="num muted">not delivered</td>')
            elif found is None:
                cells.append(f'<td class="num">{number(s.lufs.get(t))}</td>')
            elif found[0] == "sdr":
                cells.append(
                    f'<td class="num"{heat(s.sdr.get(t), found[1])}><b>{number(s.sdr.get(t))}'
                    f'</b> <span class="sub">{number(s.si_sdr.get(t))}</span>'
                    f'<div class="sub">{spread(s.sdr_iqr.get(t))}</div></td>'
                )
            else:
                value = s.agreement.get(t)
                cells.append(
                    f'<td class="num"{heat(value, found[1])}><b>{number(value)}</b>'
                    f'<div class="sub">{spread(s.agreement_iqr.get(t))}</div></td>'
                )
        failed = f'<span class="bad">{s.failed}</span>' if s.failed else "0"
        rows.append(
            f'<tr><th class="model">{name(s.model)}'
            f'<div class="sub">{esc(purposes.get(s.model, ""))}</div></th>'
            f'<td class="num">{s.done}</td><td class="num">{failed}</td>'
            f'<td class="num">{duration_text(s.median_seconds)}</td>'
            + "".join(cells)
            + f'<td class="num"{residual_style(s.residual_db)}>{number(s.residual_db)}</td></tr>'
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
    if entry.agreement is not None:
        parts.append(f"agreement {number(entry.agreement)}")
    parts.append(f"{number(entry.lufs)} LUFS")
    parts.append(f"peak {number(entry.peak_dbfs)}")
    if entry.clipped_share:
        parts.append(f'<span class="bad">clipped {percent(entry.clipped_share)}</span>')
    caption = " · ".join(parts)
    if entry.notes:
        caption += "".join(f'<div class="warn">{esc(n)}</div>' for n in entry.notes)
    return caption


def _job_note(job: JobRow) -> str:
    parts = [job.raw_status or job.status]
    if job.seconds is not None:
        parts.append(duration_text(job.seconds))
    if job.residual_db is not None:
        parts.append(f"residual {number(job.residual_db)} dB")
    return " · ".join(esc(p) for p in parts)


def project_block(report: Report, project: ProjectInfo) -> str:
    """One project's matrix: a row per model, a column per stem type, each stem playable."""
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
                f'<tr><th class="model">{name(model)}</th><td class="missing" '
                f'colspan="{len(types)}">no job for this project in the trees</td></tr>'
            )
            continue
        label = f'<th class="model">{name(model)}<div class="sub">{_job_note(job)}</div></th>'
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
            f"{duration_text(project.original_duration)}</div>"
            f'<audio controls preload="none" src="{href(project.original)}"'
            f' title="{esc(project.project)} original"></audio></div></figure>'
        )
    return (
        f'<div class="card project" data-project="{esc(project.project)}">'
        f'<div class="project-head"><h3>{name(project.project)}</h3>{original}</div>'
        f'<div class="scroll"><table class="matrix"><thead><tr><th>model</th>{head}</tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table></div></div>"
    )


MEASURE_COLUMNS = (
    ("project", False), ("model", False), ("type", False), ("duration s", True),
    ("Δ original s", True), ("LUFS", True), ("peak dBFS", True), ("clipped", True),
    ("near-silent", True), ("SDR", True), ("SI-SDR", True), ("agreement", True),
    ("bleed dB", True), ("residual dB", True), ("offset ms", True), ("notes", False),
    ("file", False),
)  # fmt: skip


def measures_table(report: Report) -> str:
    """Every stem with every measure, sortable by any column."""

    def cell(value: float | None, text: str, style: str = "") -> str:
        data = "" if value is None else f"{value:.6g}"
        return f'<td class="num"{style} data-v="{data}">{text}</td>'

    def css(tone: str | None) -> str:
        return f' style="color:var(--{tone})"' if tone else ""

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
        said = esc(e.error) if e.error else "<br>".join(esc(n) for n in e.notes)
        rows.append(
            # Whole names: the table scrolls sideways rather than wrap a name over lines.
            f"<tr><td>{esc(e.project)}</td><td>{esc(e.model)}</td><td>{esc(e.type)}</td>"
            + cell(e.duration, number(e.duration, 2))
            + cell(e.duration_delta, number(e.duration_delta, 2), css("warn" if off else None))
            + cell(e.lufs, number(e.lufs))
            + cell(e.peak_dbfs, number(e.peak_dbfs), css("bad" if loud else None))
            + cell(e.clipped_share, percent(e.clipped_share), css("bad" if loud else None))
            + cell(e.silence_share, percent(e.silence_share))
            + cell(e.sdr, number(e.sdr), heat(e.sdr, best.get(e.type)))
            + cell(e.si_sdr, number(e.si_sdr))
            + cell(e.agreement, number(e.agreement))
            + cell(e.bleed_db, number(e.bleed_db))
            + cell(r, number(r), css(tone))
            + cell(e.offset_ms, number(e.offset_ms), css("warn" if e.offset_ms else None))
            + f'<td class="notes{" bad" if e.error else " warn"}">{said}</td>'
            + f"<td>{file}</td></tr>"
        )
    head = "".join(
        ('<th class="num">' if numeric else "<th>") + esc(title) + "</th>"
        for title, numeric in MEASURE_COLUMNS
    )
    return (
        '<div class="card scroll"><table class="measures sortable"><thead><tr>'
        f"{head}</tr></thead><tbody>{''.join(rows)}</tbody></table></div>"
    )


def problems(report: Report) -> str:
    """Files that could not be used and jobs that did not finish, with the reasons."""
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
                f"<li><b>{name(j.model)}</b> on <b>{name(j.project)}</b>: job "
                f"{esc(j.raw_status or j.status)}{reason}</li>"
            )
    if not items:
        return '<p class="note good">Every file decoded and every job finished.</p>'
    return f'<div class="card"><ul class="problems">{"".join(items)}</ul></div>'
