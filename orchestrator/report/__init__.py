"""The comparison report: which of the models separates this catalogue best.

`build_report(trees, references=..., output=...)` reads one or more per-model trees and
writes report.html (one static page), report.json and report.csv. See `build` for the
pipeline, `metrics` for the measures, `tree` for what counts as a model, a job and a stem.
"""

from orchestrator.report.build import ReportResult, build_report

__all__ = ["ReportResult", "build_report"]
