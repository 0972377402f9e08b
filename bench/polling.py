"""Polling cost and latency with realistic durations (30 s to 5 min per model, +-25%).

stemsweep polls each separation on its own schedule (`orchestrator.backoff`), learning each
model's duration as the run goes. The simulator counts the polls of every task and notes
when a client first saw it ended; from that, per separation: the polls it took, and the
delay between its end and stemsweep noticing it, as a share of its duration (submission to
end). The whole run's API requests per job count the submission, polls, project reads and
downloads (redirect hops on the API host and files on the storage host).
"""

from __future__ import annotations

import statistics
import time
from typing import Any

from bench.harness import Options, load_average, percentile, result_document, sweep, target
from bench.workloads import REALISTIC_DURATIONS, realistic_profile

NAME = "polling"
TITLE = "Polls per separation and delay to notice its end"
TARGET_MEDIAN_POLLS = 6
TARGET_MEAN_DELAY = 0.10


def run(opts: Options) -> dict[str, Any]:
    """A realistic sweep; polls and notice delay per separation from the simulator."""
    load = load_average()
    projects, in_flight, time_scale = (2, 12, 600.0) if opts.quick else (100, 24, 100.0)
    started = time.monotonic()
    result = sweep(
        opts.workdir,
        realistic_profile(),
        time_scale=time_scale,
        projects=projects,
        max_in_flight=in_flight,
        with_tasks=True,
    )
    assert result.tasks is not None
    tasks = [t for t in result.tasks if t["seen_terminal_at"] is not None]
    polls = [t["polls"] for t in tasks]
    shares = [
        (t["seen_terminal_at"] - t["done_at"]) / (t["done_at"] - t["submitted_at"]) for t in tasks
    ]
    # A model's first separations are probed (nothing is known of it yet); the later ones
    # are aimed. Those submitted before any of their model was seen ended are the first.
    first_seen: dict[str, float] = {}
    for t in tasks:
        first_seen[t["model"]] = min(
            first_seen.get(t["model"], t["seen_terminal_at"]), t["seen_terminal_at"]
        )
    probed = [t["polls"] for t in tasks if t["submitted_at"] < first_seen[t["model"]]]
    aimed = [t["polls"] for t in tasks if t["submitted_at"] >= first_seen[t["model"]]]
    per_model = {}
    for model in REALISTIC_DURATIONS:
        mine = [t for t in tasks if t["model"] == model]
        if mine:
            per_model[model] = {
                "median_polls": statistics.median(t["polls"] for t in mine),
                "mean_delay_share": round(
                    statistics.mean(
                        (t["seen_terminal_at"] - t["done_at"]) / (t["done_at"] - t["submitted_at"])
                        for t in mine
                    ),
                    4,
                ),
            }
    by_route = result.stats["by_route"]
    jobs = result.jobs
    routes = {
        "submit": "POST /api/v1/projects/{projectId}/tasks/stem-separation",
        "poll": "GET /api/v1/tasks/{taskId}",
        "project_read": "GET /api/v1/projects/{projectId}",
        "download_redirect": "GET /api/v1/stems/{stemId}/download",
        "download_file": "GET /files/{name}",
    }
    per_job = {k: round(by_route.get(route, 0) / jobs, 2) for k, route in routes.items()}
    requests_per_job = sum(by_route.get(route, 0) for route in routes.values()) / jobs
    median_polls = statistics.median(polls)
    mean_share = statistics.mean(shares)
    numbers = {
        "jobs_done": result.done,
        "separations_seen": len(tasks),
        "wall_s": result.wall,
        "requests_per_job": round(requests_per_job, 2),
        "requests_per_job_by_kind": per_job,
        "median_polls": median_polls,
        "mean_polls": round(statistics.mean(polls), 2),
        "p90_polls": percentile(polls, 90),
        "max_polls": max(polls),
        "mean_delay_share": round(mean_share, 4),
        "p90_delay_share": round(percentile(shares, 90), 4),
        "max_delay_share": round(max(shares), 4),
        "probed": {"separations": len(probed), "median_polls": statistics.median(probed)},
        "aimed": {
            "separations": len(aimed),
            "median_polls": statistics.median(aimed) if aimed else None,
        },
        "per_model": per_model,
        "client": result.usage.as_dict(),
        "simulator": result.simulator.as_dict(),
        "bench_seconds": round(time.monotonic() - started, 1),
    }
    return result_document(
        NAME,
        title=TITLE,
        inputs={
            "jobs": jobs,
            "projects": projects,
            "models": 12,
            "max_in_flight": in_flight,
            "per_project": 1,
            "durations_simulated_s": REALISTIC_DURATIONS,
            "duration_jitter": 0.25,
            "created_s": 1.0,
            "queued_s": [2.0, 20.0],
            "poll": "initial 3s, max 60s (the defaults, time-scaled)",
            "time_scale": time_scale,
        },
        numbers=numbers,
        targets=[
            target("median polls per separation", median_polls, "<=", TARGET_MEDIAN_POLLS),
            target(
                "mean delay to notice, share of duration",
                round(mean_share, 3),
                "<=",
                TARGET_MEAN_DELAY,
            ),
        ],
        load_before=load,
        quick=opts.quick,
        shown=[
            ("API requests per job", _requests_text(requests_per_job, per_job)),
            (
                "polls per separation",
                f"mean {statistics.mean(polls):.2f}, max {max(polls)}; median "
                f"{statistics.median(probed):g} for a model's first ({len(probed)})"
                + (f", {statistics.median(aimed):g} once aimed ({len(aimed)})" if aimed else ""),
            ),
        ],
    )


def _requests_text(total: float, per_job: dict[str, float]) -> str:
    return (
        f"{total:.2f}: {per_job['submit']:g} submission, {per_job['poll']:g} polls, "
        f"{per_job['project_read']:g} project reads, {per_job['download_redirect']:g} "
        f"redirects, {per_job['download_file']:g} files"
    )
