"""Find the stems, jobs and references in one or more per-model trees, and decode audio.

A tree is `{out}/{model}/{project}/{type}.{ext}`, with `job.json` next to the stems when
stemsweep wrote it. Trees made by hand or by another tool in the same layout work too: without
`job.json` a job with stems counts as done and its times are unknown.

Jobs whose separation failed leave no folder; stemsweep lists them in `{out}/summary.json`
(a shard's in `{out}/summary-shard-I-of-N.json`), which are read for them. A summary also
names the manifest's `references` folder, used when no `--references` is given.

Not models: hidden directories, directories starting with `_` (`_references` holds the
simulator's true parts as `{out}/_references/{project}/{type}.{ext}`), `report`, and the
directory the report is written to. Several trees (shards of one sweep) merge; when two hold
the same (model, project), the finished one wins, then the later one, then the first tree.

Discovery reads directory listings and `job.json` only; audio is decoded later, in blocks
(see `stream`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Final

from orchestrator.catalog import model_names

AUDIO_SUFFIXES: Final = frozenset(
    {".wav", ".flac", ".ogg", ".oga", ".mp3", ".aif", ".aiff", ".aifc", ".opus", ".w64"}
)
REFERENCES_DIR: Final = "_references"
REPORT_DIR: Final = "report"
JOB_FILE: Final = "job.json"
SUMMARY_FILE: Final = "summary.json"
SHARD_SUMMARIES: Final = "summary-shard-*.json"  # one per shard of a sharded run
ORIGINAL: Final = "original"
# Statuses a job.json may carry, grouped. Anything else (still running, unknown) is "other".
DONE_STATUSES: Final = frozenset({"done", "completed", "finalized", "succeeded", "downloaded"})
FAILED_STATUSES: Final = frozenset(
    {"failed", "timed_out", "timed-out", "cancelled", "canceled", "error", "download_failed"}
)


@dataclass(frozen=True)
class Problem:
    """A file the report could not use, and why."""

    file: Path
    reason: str
    project: str | None = None
    model: str | None = None
    type: str | None = None


@dataclass(frozen=True)
class Job:
    """One (model, project) directory of a tree: its stems and what its job.json says."""

    model: str
    project: str
    tree: Path
    directory: Path
    stems: Mapping[str, Path]  # stem type -> file, `original` included when present
    status: str  # "done", "failed" or "other" (see `outcome`)
    raw_status: str | None  # the status as job.json spells it, None without job.json
    seconds: float | None  # submission to terminal state, from job.json
    finished_at: str | None
    error: str | None  # the job's failure reason, when job.json carries one


@dataclass
class Catalogue:
    """Everything discovered: jobs by (project, model), references by project and type."""

    trees: tuple[Path, ...]
    models: list[str]
    projects: list[str]
    jobs: dict[tuple[str, str], Job]
    references: dict[str, dict[str, Path]]
    reference_dirs: list[Path]
    problems: list[Problem] = field(default_factory=list)


def outcome(status: str | None, has_stems: bool) -> str:
    """Group a job.json status: "done", "failed" or "other"; no status: done when it has stems."""
    if status is None:
        return "done" if has_stems else "other"
    key = status.strip().lower()
    if key in DONE_STATUSES:
        return "done"
    if key in FAILED_STATUSES:
        return "failed"
    return "other"


def separation_seconds(submitted_at: object, finished_at: object) -> float | None:
    """Seconds from submission to terminal state, from two ISO-8601 times; None if unknown."""
    if not isinstance(submitted_at, str) or not isinstance(finished_at, str):
        return None
    try:
        start = datetime.fromisoformat(submitted_at)
        end = datetime.fromisoformat(finished_at)
        seconds = (end - start).total_seconds()
    except (ValueError, TypeError):  # unparseable, or one naive and one aware
        return None
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


def model_order(names: Iterable[str]) -> list[str]:
    """The catalogue's order for known models, then the others alphabetically."""
    catalogue = {name: i for i, name in enumerate(model_names())}
    return sorted(set(names), key=lambda n: (catalogue.get(n, len(catalogue)), n))


def _is_model_dir(path: Path, excluded: set[Path]) -> bool:
    name = path.name
    return (
        path.is_dir()
        and not name.startswith((".", "_"))
        and name != REPORT_DIR
        and path.resolve() not in excluded
    )


def stem_files(directory: Path) -> tuple[dict[str, Path], list[Problem]]:
    """Audio files of one directory by stem type (the file name without its suffix)."""
    stems: dict[str, Path] = {}
    problems: list[Problem] = []
    for path in sorted(directory.iterdir()):
        if path.name.startswith(".") or not path.is_file():
            continue
        if path.suffix.lower() not in AUDIO_SUFFIXES:
            continue
        kind = path.stem
        if kind in stems:
            problems.append(
                Problem(path, f"ignored: {stems[kind].name} has the same stem type", type=kind)
            )
            continue
        stems[kind] = path
    return stems, problems


def _read_job_file(path: Path) -> tuple[dict[str, Any] | None, str | None]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        return None, f"unreadable job.json: {exc}"
    if not isinstance(data, dict):
        return None, "unreadable job.json: not a JSON object"
    return data, None


def _job(tree: Path, model_dir: Path, project_dir: Path) -> tuple[Job | None, list[Problem]]:
    model, project = model_dir.name, project_dir.name
    stems, problems = stem_files(project_dir)
    record: dict[str, Any] | None = None
    job_file = project_dir / JOB_FILE
    if job_file.is_file():
        record, reason = _read_job_file(job_file)
        if reason:
            problems.append(Problem(job_file, reason, project, model))
    if not stems and record is None:
        return None, problems  # not a job directory
    problems = [Problem(p.file, p.reason, project, model, p.type) for p in problems]
    raw = record.get("status") if record else None
    raw_status = raw if isinstance(raw, str) else None
    if record:
        for listed in record.get("stems") or []:
            kind = listed.get("type") if isinstance(listed, dict) else None
            if isinstance(kind, str) and kind not in stems:
                name = listed.get("file") or kind
                problems.append(
                    Problem(
                        project_dir / Path(str(name)).name,
                        "listed in job.json but not found",
                        project,
                        model,
                        kind,
                    )
                )
    error = record.get("error") if record else None
    finished = record.get("finished_at") if record else None
    job = Job(
        model=model,
        project=project,
        tree=tree,
        directory=project_dir,
        stems=stems,
        status=outcome(raw_status, bool(stems)),
        raw_status=raw_status,
        seconds=separation_seconds(record.get("submitted_at"), finished) if record else None,
        finished_at=finished if isinstance(finished, str) else None,
        error=str(error) if error else None,
    )
    return job, problems


def _plain_name(name: object) -> bool:
    """A name usable as one folder of a tree: no separators, not hidden, not special."""
    return (
        isinstance(name, str)
        and name not in ("", REPORT_DIR)
        and not name.startswith((".", "_"))
        and "/" not in name
        and "\\" not in name
    )


def summary_files(tree: Path) -> list[Path]:
    """The run summaries of a tree: `summary.json`, then each shard's, by name."""
    found = [tree / SUMMARY_FILE] if (tree / SUMMARY_FILE).is_file() else []
    return found + sorted(p for p in tree.glob(SHARD_SUMMARIES) if p.is_file())


def _read_summary(path: Path) -> dict[str, Any]:
    """A summary's content; empty when missing, unreadable or not a JSON object."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def summary_failures(tree: Path) -> list[Job]:
    """The failed jobs the tree's summaries list (stemsweep writes one at the end of a run).

    A job whose separation failed has no stems, so no folder tells of it; the summary does.
    A missing or unreadable summary, or an entry with odd names, adds nothing.
    """
    jobs = []
    for path in summary_files(tree):
        failed = _read_summary(path).get("failed")
        for item in failed if isinstance(failed, list) else []:
            if not isinstance(item, dict):
                continue
            project, model, status = item.get("project"), item.get("model"), item.get("status")
            if not (_plain_name(project) and _plain_name(model)):
                continue
            reason = item.get("reason")
            jobs.append(
                Job(
                    model=str(model),
                    project=str(project),
                    tree=tree,
                    directory=tree / str(model) / str(project),
                    stems={},
                    status="failed",
                    raw_status=status if isinstance(status, str) else None,
                    seconds=None,
                    finished_at=None,
                    error=str(reason) if reason else None,
                )
            )
    return jobs


def recorded_references(trees: Sequence[Path]) -> list[Path]:
    """The `references` folders the trees' summaries name (a manifest's `references:`).

    In the order found, without repeats; a summary without one adds nothing.
    """
    found: dict[Path, None] = {}
    for tree in trees:
        for path in summary_files(tree):
            named = _read_summary(path).get("references")
            if isinstance(named, str) and named:
                found.setdefault(Path(named), None)
    return list(found)


def _preferred(a: Job, b: Job) -> Job:
    """Of two copies of one job in different shards, the one to report."""
    rank = {"done": 2, "other": 1, "failed": 0}
    if rank[a.status] != rank[b.status]:
        return a if rank[a.status] > rank[b.status] else b
    if (b.finished_at or "") > (a.finished_at or ""):
        return b
    return a


def _reference_files(directory: Path) -> dict[str, dict[str, Path]]:
    found: dict[str, dict[str, Path]] = {}
    if not directory.is_dir():
        return found
    for project_dir in sorted(directory.iterdir()):
        if project_dir.is_dir() and not project_dir.name.startswith("."):
            stems, _ = stem_files(project_dir)
            if stems:
                found[project_dir.name] = stems
    return found


def discover(
    trees: Sequence[Path], *, references: Path | None = None, exclude: Iterable[Path] = ()
) -> Catalogue:
    """Walk the trees: jobs, and references from `references` or, when it is None, from the
    folders the trees' summaries name; then from each tree's `_references`.

    A named folder that does not exist is listed as a problem, and the rest is built.
    """
    excluded = {p.resolve() for p in exclude}
    jobs: dict[tuple[str, str], Job] = {}
    problems: list[Problem] = []
    for tree in trees:
        for model_dir in sorted(tree.iterdir()):
            if not _is_model_dir(model_dir, excluded):
                continue
            for project_dir in sorted(model_dir.iterdir()):
                if not project_dir.is_dir() or project_dir.name.startswith("."):
                    continue
                job, found = _job(tree, model_dir, project_dir)
                problems.extend(found)
                if job is None:
                    continue
                key = (job.project, job.model)
                jobs[key] = _preferred(jobs[key], job) if key in jobs else job
        for job in summary_failures(tree):  # failed jobs leave no folder behind
            key = (job.project, job.model)
            jobs[key] = _preferred(jobs[key], job) if key in jobs else job

    if references is not None:
        reference_dirs = [references]
    else:
        reference_dirs = []
        for named in recorded_references(trees):
            if named.is_dir():
                reference_dirs.append(named)
            else:
                problems.append(Problem(named, "references folder named in the summary not found"))
    reference_dirs += [t / REFERENCES_DIR for t in trees if (t / REFERENCES_DIR).is_dir()]
    refs: dict[str, dict[str, Path]] = {}
    for directory in reference_dirs:
        for project, stems in _reference_files(directory).items():
            merged = refs.setdefault(project, {})
            for kind, path in stems.items():
                merged.setdefault(kind, path)

    return Catalogue(
        trees=tuple(trees),
        models=model_order(model for _, model in jobs),
        projects=sorted({project for project, _ in jobs}),
        jobs=jobs,
        references=refs,
        reference_dirs=reference_dirs,
        problems=problems,
    )
