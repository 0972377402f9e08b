"""Makespan against its lower bound: N jobs of one fixed duration d, c at a time.

No schedule can finish N separations of d seconds each, at most c at a time, in less than
ceil(N / c) * d. The ratio of the run's wall time to that bound is what stemsweep adds:
the time to notice each finished task, submit the next one and fetch the files. The
simulator's created and queue times are zero, so d is a task's whole duration; there is
one job per project (per_project never binds) and the request rate is generous.
"""

from __future__ import annotations

import math
import statistics
import time
from typing import Any

from bench.harness import Options, load_average, result_document, sweep, target
from orchestrator.simulator.profile import load_profile

NAME = "makespan"
TITLE = "Makespan vs the lower bound ceil(N/c) * d"
TARGET_RATIO = 1.10


def run(opts: Options) -> dict[str, Any]:
    """Run N jobs of duration d at c in flight; the ratio wall / (ceil(N/c) * d)."""
    load = load_average()
    jobs, in_flight, duration, time_scale = (
        (100, 25, 60.0, 200.0)
        if opts.quick
        else (
            1000,
            50,
            60.0,
            20.0,
        )
    )
    model = "mdx23c"
    profile = load_profile("bench").replace(
        durations={model: duration}, created_time=0.0, queue_time=(0.0, 0.0), duration_jitter=0
    )
    started = time.monotonic()
    result = sweep(
        opts.workdir,
        profile,
        time_scale=time_scale,
        projects=jobs,
        models=[model],
        max_in_flight=in_flight,
        with_tasks=True,
    )
    assert result.tasks is not None
    seen = [t for t in result.tasks if t["seen_terminal_at"] is not None]
    notice = [(t["seen_terminal_at"] - t["done_at"]) / time_scale for t in seen]
    bound = math.ceil(jobs / in_flight) * duration / time_scale
    ratio = result.wall / bound
    requests = result.stats["requests_total"]
    numbers = {
        "jobs_done": result.done,
        "wall_s": result.wall,
        "process_wall_s": round(result.usage.wall, 3),
        "bound_s": bound,
        "ratio": round(ratio, 4),
        "overhead_per_round_s": round((result.wall - bound) / math.ceil(jobs / in_flight), 4),
        "requests_per_job": round(requests / jobs, 2),
        "polls_per_separation": round(statistics.mean(t["polls"] for t in seen), 2),
        "mean_notice_delay_s": round(statistics.mean(notice), 4),
        "client": result.usage.as_dict(),
        "simulator": result.simulator.as_dict(),
        "bench_seconds": round(time.monotonic() - started, 1),
    }
    return result_document(
        NAME,
        title=TITLE,
        inputs={
            "jobs": jobs,
            "max_in_flight": in_flight,
            "duration_simulated_s": duration,
            "time_scale": time_scale,
            "duration_real_s": duration / time_scale,
            "projects": jobs,
            "models": [model],
            "per_project": 1,
        },
        numbers=numbers,
        targets=[target("wall / (ceil(N/c) * d)", round(ratio, 3), "<=", TARGET_RATIO)],
        load_before=load,
        quick=opts.quick,
        shown=[("wall, bound", f"{result.wall:.1f} s, {bound:.1f} s")],
    )
