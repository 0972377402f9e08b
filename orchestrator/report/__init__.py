"""The comparison report: which of the models separates this catalogue best.

`build_report(trees, references=..., output=..., ratings=...)` reads one or more per-model
trees and writes report.html (one static page), report.json and report.csv. The pipeline:
`tree` finds models, jobs, stems and references; `project` measures one song at a time,
reading every file in blocks (`stream`, `align`, `offset`), with the pure measures of
`metrics`, `loudness` and `consensus` (the score without references); `ranking` ranks per
stem type; `excerpts` and `listening` make the blind test, `ratings` folds its results
back; `html` and its `html_*` parts draw the page.
"""

from orchestrator.report.build import ReportResult, build_report

__all__ = ["ReportResult", "build_report"]
