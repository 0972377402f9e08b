"""stemsweep against a plain concurrent script (`bench/plain.py`), on the same workloads.

`bench/plain.py` is what a user writes without stemsweep: a semaphore of jobs in flight,
a poll every second, the project read, the stems downloaded; no state, no pacing, a retry
after a 429 only. Each client runs as a subprocess against its own simulator (same profile,
same seed), alternating (stemsweep then the script, then the script then stemsweep), and is
measured the same way: its own wall time (the run, without interpreter start-up), CPU time
and peak RSS (`wait4`), and, from the simulator's record, its requests by route and, per
separation, the polls it took and the delay between the task's end and the first poll that
saw it (`GET /_sim/tasks`), as a share of the task's duration.

Three workloads:

- **fixed**: 1,008 jobs (84 projects x 12 models) of exactly 5 s, 100 in flight (12 per
  project), stemsweep's `poll: {initial: 1s, max: 5s}`: ceil(N/c) * d = 55 s is a bound
  no client can beat.
- **varied**: 240 jobs (20 x 12) with the realistic durations of `bench/workloads.py` (30 s
  to 5 min per model, +-25%, after 3 to 21 s created and queued), 24 in flight, time-lapsed
  20 times; stemsweep's default poll settings and the script's 1 s, both time-scaled.
- **rate_limited**: 48 jobs (4 x 12) with the realistic durations, 10 in flight,
  time-lapsed 10 times, and 5 requests a second (real ones: the limit is not time-lapsed)
  in the simulator (a 429 past it) and in stemsweep's manifest. With 8.9 requests a job,
  10 jobs in flight would ask for about 6 a second: the limit binds at times (the
  simulator does not count the redirect to storage against it). The 5-minute model's jobs
  set the wall time, so jobs per second stay near 0.5 for either client: what the limit
  makes scarce is requests, counted per job. With many more in flight, the backlog at the
  limit makes every poll find its task ended, whatever the schedule.

Both clients download the same files: every type of the job's model but `original` (the
script's choice; stemsweep's default list has `original` too, so it is given the others).
The varied and rate-limited workloads are also run for stemsweep on a second night
(`_run_informed`): a first run on as many other projects of the same simulator, into the
same output tree, whose state keeps the durations the poll loop learned, then the
measured run; this is what a nightly batch does from its second night on.

Ratios are stemsweep's figure over the script's, from the mean of each client's rounds.
"""

from __future__ import annotations

import json
import math
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.harness import (
    API_KEY,
    MODELS,
    Options,
    load_average,
    percentile,
    project_ids,
    reap,
    result_document,
    run_stemsweep,
    scaled_poll,
    simulator,
    summary_of,
    sweep,
    target,
    write_manifest,
)
from bench.workloads import realistic_profile
from orchestrator.simulator.profile import Profile, load_profile

NAME = "versus"
TITLE = "stemsweep against a plain concurrent script, on the same workloads"
SCRIPT = Path(__file__).resolve().parent / "plain.py"
SCRIPT_POLL = 1.0  # simulated seconds between the script's polls
CLIENTS = ("stemsweep", "plain")
INFORMED = ("varied", "rate_limited")  # also measured on a second night (`_run_informed`)
# The files the script downloads: every type of the job's model but `original` (the mix,
# which stemsweep downloads by default). stemsweep is asked for the same ones.
SCRIPT_TYPES = ("instrumental", "vocals", "backing_vocals")

# What stemsweep should reach (a ratio is stemsweep / the script).
TARGET_FIXED_WALL_RATIO = 1.0
TARGET_FIXED_BOUND_RATIO = 1.05
TARGET_FIXED_POLL_RATIO = 0.5
TARGET_VARIED_DELAY = 0.05
TARGET_VARIED_POLLS = 3.0
TARGET_LIMITED_REQUESTS = 5.0
TARGET_CPU_RATIO = 1.5

ROUTES = {
    "submit": "POST /api/v1/projects/{projectId}/tasks/stem-separation",
    "poll": "GET /api/v1/tasks/{taskId}",
    "project_read": "GET /api/v1/projects/{projectId}",
    "redirect": "GET /api/v1/stems/{stemId}/download",
    "file": "GET /files/{name}",
}


@dataclass(frozen=True)
class Workload:
    """One workload, run by both clients."""

    name: str
    profile: Profile
    projects: int
    in_flight: int
    time_scale: float
    poll: Mapping[str, float]  # stemsweep's, in real seconds
    requests_per_second: float | None = None
    models: Sequence[str] = MODELS
    per_project: int = 12

    @property
    def jobs(self) -> int:
        return self.projects * len(self.models)


def workloads(quick: bool) -> list[Workload]:
    """The three workloads, at full or smoke sizes."""
    fixed = load_profile("bench").replace(
        durations=dict.fromkeys(MODELS, 5.0), created_time=0.0, queue_time=(0.0, 0.0)
    )
    if quick:
        return [
            Workload("fixed", fixed, 2, 12, 10.0, _poll(1.0, 5.0, 10.0)),
            Workload(
                "varied",
                realistic_profile(),
                1,
                4,
                100.0,
                scaled_poll(100.0),
                models=MODELS[:4],
            ),
            Workload(
                "rate_limited",
                realistic_profile(),
                1,
                4,
                200.0,
                scaled_poll(200.0),
                50.0,
                models=MODELS[:4],
            ),
        ]
    return [
        Workload("fixed", fixed, 84, 100, 1.0, _poll(1.0, 5.0, 1.0)),
        Workload("varied", realistic_profile(), 20, 24, 20.0, scaled_poll(20.0)),
        Workload("rate_limited", realistic_profile(), 4, 10, 10.0, scaled_poll(10.0), 5.0),
    ]


def _poll(initial: float, maximum: float, time_scale: float) -> dict[str, float]:
    return {"initial": initial / time_scale, "max": maximum / time_scale, "timeout": 600.0}


def run(opts: Options) -> dict[str, Any]:
    """Every workload, both clients, alternating; figures per client and their ratios."""
    load = load_average()
    rounds = 1 if opts.quick else 2
    started = time.monotonic()
    results: dict[str, Any] = {}
    for workload in workloads(opts.quick):
        runs: dict[str, list[dict[str, Any]]] = {client: [] for client in CLIENTS}
        for round_ in range(rounds):
            order = CLIENTS if round_ % 2 == 0 else CLIENTS[::-1]
            for client in order:
                workdir = opts.workdir / workload.name / f"{client}-{round_}"
                runs[client].append(_run_client(client, workload, workdir))
        results[workload.name] = _compare(workload, runs)
        if workload.name in INFORMED:
            informed = _run_informed(workload, opts.workdir / workload.name / "informed")
            results[workload.name]["stemsweep_informed"] = informed
    fixed, varied, limited = (results[w] for w in ("fixed", "varied", "rate_limited"))
    bound_ratio = fixed["stemsweep"]["wall_s"] / fixed["bound_s"]
    targets = [
        target(
            "fixed: wall, stemsweep / script",
            fixed["ratios"]["wall"],
            "<=",
            TARGET_FIXED_WALL_RATIO,
        ),
        target("fixed: wall / bound", round(bound_ratio, 3), "<=", TARGET_FIXED_BOUND_RATIO),
        target(
            "fixed: polls per separation, stemsweep / script",
            fixed["ratios"]["polls_per_separation"],
            "<=",
            TARGET_FIXED_POLL_RATIO,
        ),
        target(
            "fixed: CPU per job, stemsweep / script",
            fixed["ratios"]["cpu_per_job"],
            "<=",
            TARGET_CPU_RATIO,
        ),
        target(
            "varied: mean delay to notice, share of duration",
            varied["stemsweep"]["mean_delay_share"],
            "<=",
            TARGET_VARIED_DELAY,
        ),
        target(
            "varied: polls per separation",
            varied["stemsweep"]["polls_per_separation"],
            "<=",
            TARGET_VARIED_POLLS,
        ),
        target(
            "rate_limited: API requests per job",
            limited["stemsweep"]["api_requests_per_job"],
            "<=",
            TARGET_LIMITED_REQUESTS,
        ),
        target(
            "varied, a second night: mean delay to notice, share of duration",
            varied["stemsweep_informed"]["mean_delay_share"],
            "<=",
            TARGET_VARIED_DELAY,
        ),
        target(
            "varied, a second night: polls per separation",
            varied["stemsweep_informed"]["polls_per_separation"],
            "<=",
            TARGET_VARIED_POLLS,
        ),
        target(
            "rate_limited, a second night: API requests per job",
            limited["stemsweep_informed"]["api_requests_per_job"],
            "<=",
            TARGET_LIMITED_REQUESTS,
        ),
    ]
    return result_document(
        NAME,
        title=TITLE,
        inputs={
            "rounds": rounds,
            "order": "stemsweep then the script, then the script then stemsweep",
            "script": "bench/plain.py, a poll every 1 simulated second, time-scaled",
            "workloads": {w.name: _inputs(w) for w in workloads(opts.quick)},
        },
        numbers={**results, "bench_seconds": round(time.monotonic() - started, 1)},
        targets=targets,
        load_before=load,
        quick=opts.quick,
        shown=[
            *((f"{name}: stemsweep / script", _pairs_text(results[name])) for name in results),
            *(
                (f"{name}: stemsweep, a second night", _informed_text(results[name]))
                for name in INFORMED
            ),
        ],
        notes=[
            "A ratio is stemsweep's figure over the script's (means of the rounds).",
            "API requests: every request to the API host but 429s (submissions, polls, project "
            "reads, redirects to storage, GET /me); files are on the storage host.",
            "A second night: stemsweep run on the same workload's other projects first, in the "
            "same output tree against the same simulator (its state keeps the durations it "
            "learned), then measured on the workload (`_run_informed`); one round.",
        ],
    )


def _inputs(w: Workload) -> dict[str, Any]:
    return {
        "jobs": w.jobs,
        "projects": w.projects,
        "models": len(w.models),
        "max_in_flight": w.in_flight,
        "per_project": w.per_project,
        "time_scale": w.time_scale,
        "durations_simulated_s": dict(w.profile.durations),
        "duration_jitter": w.profile.duration_jitter,
        "created_s": w.profile.created_time,
        "queued_s": list(w.profile.queue_time),
        "stemsweep_poll_real_s": dict(w.poll),
        "script_poll_real_s": SCRIPT_POLL / w.time_scale,
        "requests_per_second": w.requests_per_second,
        "stemsweep_download_types": list(SCRIPT_TYPES),
    }


# --- one client run ------------------------------------------------------------------------


def _run_client(client: str, w: Workload, workdir: Path) -> dict[str, Any]:
    """Run `client` on `w` against a fresh simulator; its figures (see `_figures`)."""
    profile = w.profile.replace(requests_per_second=w.requests_per_second)
    load = load_average()
    if client == "stemsweep":
        result = sweep(
            workdir,
            profile,
            time_scale=w.time_scale,
            projects=w.projects,
            models=list(w.models),
            max_in_flight=w.in_flight,
            per_project=w.per_project,
            requests_per_second=w.requests_per_second or 10_000.0,
            poll=w.poll,
            types=SCRIPT_TYPES,
            with_tasks=True,
        )
        assert result.tasks is not None
        usage, wall, done = result.usage, result.wall, result.done
        stats, tasks = result.stats, result.tasks
    else:
        usage, wall, done, stats, tasks = _run_plain(w, profile, workdir)
    return {"load_before": load, **_figures(w, usage.as_dict(), wall, done, stats, tasks)}


def _run_plain(
    w: Workload, profile: Profile, workdir: Path
) -> tuple[Any, float, int, dict[str, Any], list[dict[str, Any]]]:
    jobs_file = workdir / "jobs.txt"
    with simulator(profile.replace(projects=w.projects), workdir, time_scale=w.time_scale) as sim:
        pairs = [f"{p} {m}" for p in project_ids(w.projects) for m in w.models]
        jobs_file.write_text("\n".join(pairs) + "\n", encoding="utf-8")
        args = [
            sys.executable,
            str(SCRIPT),
            sim.base_url,
            str(workdir / "out"),
            "--jobs",
            str(jobs_file),
            "--in-flight",
            str(w.in_flight),
            "--poll",
            repr(SCRIPT_POLL / w.time_scale),
        ]
        env = {**os.environ, "YOUKA_API_KEY": API_KEY}
        with (workdir / "plain.out").open("wb") as out, (workdir / "plain.err").open("wb") as err:
            begun = time.monotonic()
            proc = subprocess.Popen(args, cwd=workdir, env=env, stdout=out, stderr=err)
            usage = reap(proc, begun)
        if usage.returncode != 0:
            tail = (workdir / "plain.err").read_text(errors="replace")[-3000:]
            raise RuntimeError(f"bench/plain.py exited {usage.returncode}: {tail}")
        stats = sim.get("/_sim/stats")
        tasks = sim.get("/_sim/tasks")["tasks"]
    summary = json.loads((workdir / "plain.out").read_text(encoding="utf-8"))
    return usage, float(summary["wall_seconds"]), int(summary["done"]), stats, tasks


def _run_informed(w: Workload, workdir: Path) -> dict[str, Any]:
    """stemsweep on a second night of `w`: a first run on as many other projects, then the
    measured run on the workload's own, in the same output tree (whose state keeps the
    durations the first run learned) against the same simulator; the measured run's
    figures (the simulator's counts taken between the two)."""
    profile = w.profile.replace(requests_per_second=w.requests_per_second)
    ids = project_ids(2 * w.projects)
    output = workdir / "out"
    with simulator(
        profile.replace(projects=2 * w.projects), workdir, time_scale=w.time_scale
    ) as sim:
        for night, projects in (("first", ids[w.projects :]), ("second", ids[: w.projects])):
            manifest = write_manifest(
                workdir / f"{night}.yaml",
                name="bench",
                base_url=sim.base_url,
                output=output,
                projects=projects,
                models=list(w.models),
                max_in_flight=w.in_flight,
                per_project=w.per_project,
                requests_per_second=w.requests_per_second or 10_000.0,
                poll=w.poll,
                types=SCRIPT_TYPES,
            )
            before = sim.get("/_sim/stats")
            load = load_average()
            usage = run_stemsweep(["run", str(manifest), "--no-progress"], workdir, log_name=night)
            if usage.returncode != 0:
                err = (workdir / f"{night}.err").read_text(errors="replace")[-3000:]
                raise RuntimeError(f"stemsweep run exited {usage.returncode}: {err}")
        after = sim.get("/_sim/stats")
        measured = set(ids[: w.projects])
        tasks = [t for t in sim.get("/_sim/tasks")["tasks"] if t["project"] in measured]
    counts = after["by_route_status"]
    earlier = before["by_route_status"]
    stats = {"by_route_status": {k: n - earlier.get(k, 0) for k, n in counts.items()}}
    summary = summary_of(output)
    done = int(summary["counts"].get("done", 0))
    figures = _figures(w, usage.as_dict(), float(summary["wall_seconds"]), done, stats, tasks)
    return {"load_before": load, **figures}


def _figures(
    w: Workload,
    usage: dict[str, Any],
    wall: float,
    done: int,
    stats: dict[str, Any],
    tasks: list[dict[str, Any]],
) -> dict[str, Any]:
    """What one run cost, per job and per separation."""
    jobs = w.jobs
    accepted: dict[str, int] = {}
    refused = 0
    for key, count in stats["by_route_status"].items():
        route, status = key.rsplit(" ", 1)
        if status == "429":
            refused += count
        else:
            accepted[route] = accepted.get(route, 0) + count
    per_kind = {kind: round(accepted.get(route, 0) / jobs, 3) for kind, route in ROUTES.items()}
    api = sum(n for route, n in accepted.items() if route.split(" ", 1)[1].startswith("/api/"))
    seen = [t for t in tasks if t["seen_terminal_at"] is not None]
    shares = [
        (t["seen_terminal_at"] - t["done_at"]) / (t["done_at"] - t["submitted_at"]) for t in seen
    ]
    return {
        "jobs_done": done,
        "wall_s": round(wall, 3),
        "jobs_per_second": round(done / wall, 3),
        "cpu_ms_per_job": round(usage["cpu_s"] / jobs * 1000, 3),
        "max_rss_mb": usage["max_rss_mb"],
        "process": usage,
        "polls_per_separation": round(statistics.mean(t["polls"] for t in seen), 3),
        "max_polls": max(t["polls"] for t in seen),
        "api_requests_per_job": round(api / jobs, 3),
        "limited_requests_per_job": round((api - accepted.get(ROUTES["redirect"], 0)) / jobs, 3),
        "refused_429_per_job": round(refused / jobs, 3),
        "requests_per_job_by_kind": per_kind,
        "mean_delay_share": round(statistics.mean(shares), 4),
        "p90_delay_share": round(percentile(shares, 90), 4),
        "mean_delay_s": round(
            statistics.mean(t["seen_terminal_at"] - t["done_at"] for t in seen), 3
        ),
        "separations_seen": len(seen),
    }


# --- the two clients, compared ----------------------------------------------------------------

MEANS = (
    "wall_s",
    "jobs_per_second",
    "cpu_ms_per_job",
    "max_rss_mb",
    "polls_per_separation",
    "api_requests_per_job",
    "limited_requests_per_job",
    "refused_429_per_job",
    "mean_delay_share",
    "mean_delay_s",
)
RATIOS = {
    "wall": "wall_s",
    "jobs_per_second": "jobs_per_second",
    "polls_per_separation": "polls_per_separation",
    "api_requests_per_job": "api_requests_per_job",
    "cpu_per_job": "cpu_ms_per_job",
    "peak_rss": "max_rss_mb",
    "mean_delay_share": "mean_delay_share",
}


def _compare(w: Workload, runs: Mapping[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """Each client's means over its rounds, the ratios stemsweep / script, and every run."""
    means = {
        client: {key: round(statistics.mean(r[key] for r in runs[client]), 4) for key in MEANS}
        for client in CLIENTS
    }
    for client in CLIENTS:
        by_kind = [r["requests_per_job_by_kind"] for r in runs[client]]
        means[client]["requests_per_job_by_kind"] = {
            kind: round(statistics.mean(k[kind] for k in by_kind), 3) for kind in ROUTES
        }
    ours, theirs = means["stemsweep"], means["plain"]
    ratios = {
        name: round(ours[key] / theirs[key], 3) if theirs[key] else math.nan
        for name, key in RATIOS.items()
    }
    per_round = [
        round(a["wall_s"] / b["wall_s"], 3)
        for a, b in zip(runs["stemsweep"], runs["plain"], strict=True)
    ]
    duration = max(w.profile.durations[m] for m in w.models) / w.time_scale
    bound = math.ceil(w.jobs / w.in_flight) * duration
    return {
        "stemsweep": ours,
        "plain": theirs,
        "ratios": ratios,
        "wall_ratio_per_round": per_round,
        "bound_s": round(bound, 3) if w.profile.duration_jitter == 0 else None,
        "runs": {client: list(runs[client]) for client in CLIENTS},
    }


def _informed_text(r: Mapping[str, Any]) -> str:
    """The second night's measures."""
    ours = r["stemsweep_informed"]
    return (
        f"polls per separation {ours['polls_per_separation']:.1f}; API requests per job "
        f"{ours['api_requests_per_job']:.1f}; notice {100 * ours['mean_delay_share']:.1f}% of "
        f"a duration; {ours['jobs_per_second']:.2f} jobs/s; CPU per job "
        f"{ours['cpu_ms_per_job']:.1f} ms"
    )


def _pairs_text(r: Mapping[str, Any]) -> str:
    """Each measure as stemsweep's / the script's (their ratio)."""
    ours, theirs, x = r["stemsweep"], r["plain"], r["ratios"]
    return (
        f"wall {ours['wall_s']:.1f} / {theirs['wall_s']:.1f} s ({x['wall']:.2f}), "
        f"{ours['jobs_per_second']:.2f} / {theirs['jobs_per_second']:.2f} jobs/s; "
        f"polls per separation {ours['polls_per_separation']:.1f} / "
        f"{theirs['polls_per_separation']:.1f}; API requests per job "
        f"{ours['api_requests_per_job']:.1f} / {theirs['api_requests_per_job']:.1f}; "
        f"CPU per job {ours['cpu_ms_per_job']:.1f} / {theirs['cpu_ms_per_job']:.1f} ms "
        f"({x['cpu_per_job']:.2f}); peak RSS {ours['max_rss_mb']:.0f} / "
        f"{theirs['max_rss_mb']:.0f} MB; notice {100 * ours['mean_delay_share']:.1f}% / "
        f"{100 * theirs['mean_delay_share']:.1f}% of a duration"
    )
