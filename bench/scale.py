"""Scale: a 100,000-job manifest (8,334 projects x 12 models from a `projects_file`).

`stemsweep plan` reads the manifest and shows what a run would do, without network: its
wall time and peak RSS. Then a full `stemsweep run` against near-instant simulated tasks
(the simulator in its own process, keeping counters only): peak RSS of the client, which
streams the jobs instead of holding them, and jobs per second end to end (submission,
poll, project reads, downloads of ~2 tiny stems per job, `job.json`, state).
"""

from __future__ import annotations

import time
from typing import Any

from bench.harness import (
    Options,
    load_average,
    project_ids,
    result_document,
    run_stemsweep,
    sweep,
    target,
    write_manifest,
)
from orchestrator.simulator.profile import load_profile

NAME = "scale"
TITLE = "100,000 jobs: plan, and a run against near-instant tasks"
TARGET_RSS_MB = 250.0
STEM_BYTES = 1024


def run(opts: Options) -> dict[str, Any]:
    """`plan` and `run` of 8,334 x 12 jobs; time, peak RSS, jobs per second."""
    load = load_average()
    projects, in_flight = (84, 200) if opts.quick else (8334, 1000)
    started = time.monotonic()
    plan_dir = opts.workdir / "plan"
    plan_dir.mkdir(parents=True)
    ids = project_ids(projects)
    (plan_dir / "projects.txt").write_text("\n".join(ids) + "\n", encoding="utf-8")
    manifest = write_manifest(
        plan_dir / "manifest.yaml",
        name="bench",
        base_url="http://127.0.0.1:9/api/v1",
        output=plan_dir / "out",
        projects_file=plan_dir / "projects.txt",
        max_in_flight=in_flight,
        per_project=12,
        poll={"initial": 3.0, "max": 60.0, "timeout": 1800.0},
    )
    plan = run_stemsweep(["plan", str(manifest)], plan_dir, log_name="plan")
    if plan.returncode != 0:
        raise RuntimeError(f"stemsweep plan exited {plan.returncode}")
    planned = (plan_dir / "plan.out").read_text(encoding="utf-8")
    profile = load_profile("bench").replace(
        stem_bytes=STEM_BYTES,
        durations=dict.fromkeys(load_profile("bench").durations, 0.0),
        created_time=0.0,
        queue_time=(0.0, 0.0),
    )
    result = sweep(
        opts.workdir / "run",
        profile,
        time_scale=1.0,
        projects=projects,
        max_in_flight=in_flight,
        per_project=12,
        poll={"initial": 0.02, "max": 1.0, "timeout": 600.0},
        projects_file=True,
    )
    jobs = result.jobs
    rate = jobs / result.wall
    numbers = {
        "jobs": jobs,
        "plan": {**plan.as_dict(), "jobs_line": _jobs_line(planned)},
        "run": {
            "jobs_done": result.done,
            "wall_s": result.wall,
            "jobs_per_second": round(rate, 1),
            "cpu_ms_per_job": round(result.usage.cpu / jobs * 1000, 3),
            "requests_per_job": round(result.stats["requests_total"] / jobs, 2),
            "process": result.usage.as_dict(),
        },
        "simulator": result.simulator.as_dict(),
        "bench_seconds": round(time.monotonic() - started, 1),
    }
    return result_document(
        NAME,
        title=TITLE,
        inputs={
            "projects": projects,
            "models": 12,
            "jobs": jobs,
            "max_in_flight": in_flight,
            "per_project": 12,
            "task_duration": "0 s (done at the first poll, 20 ms after submission)",
            "stem_bytes": STEM_BYTES,
            "types": "instrumental, vocals, backing_vocals (the default)",
        },
        numbers=numbers,
        targets=[
            target(
                "run: client peak RSS (MB)", round(result.usage.max_rss_mb, 1), "<=", TARGET_RSS_MB
            ),
        ],
        load_before=load,
        quick=opts.quick,
        shown=[
            ("run: jobs per second", f"{rate:.0f} ({result.wall:.0f} s for {jobs:,} jobs)"),
            ("plan: wall, peak RSS", f"{plan.wall:.1f} s, {plan.max_rss_mb:.0f} MB"),
        ],
    )


def _jobs_line(planned: str) -> str:
    for line in planned.splitlines():
        if line.startswith("jobs:"):
            return line
    return ""
