"""Client CPU per job, and event-loop lag while 1,000 jobs are in flight.

3,000 jobs (250 projects x 12 models), `max_in_flight` 1,000, tasks of 60 simulated seconds
(3 s real): three waves of 1,000 separations, each submitted, polled, downloaded and
recorded. The client's process CPU time (user + system, from `wait4`) over the jobs is the
cost per job, interpreter start-up included; a one-job run gives the start-up alone, so
the marginal cost per job is shown too. The client samples its own event loop (a task
that sleeps 10 ms again and again, `STEMSWEEP_LOOP_LAG`): the overshoot of each sleep,
taken while 1,000 separations are in flight, is the lag every poll answer and download
chunk waits on top of its own work.
"""

from __future__ import annotations

import time
from typing import Any

from bench.harness import Options, load_average, percentile, result_document, sweep, target
from orchestrator.simulator.profile import load_profile

NAME = "cpu"
TITLE = "Client CPU per job; event-loop lag with 1,000 jobs in flight"
TARGET_CPU_MS = 5.0
LAG_INTERVAL_MS = 10.0  # orchestrator.looplag.INTERVAL


def run(opts: Options) -> dict[str, Any]:
    """3,000 jobs at 1,000 in flight; CPU per job and loop lag percentiles."""
    load = load_average()
    projects, in_flight, duration, time_scale = (
        (10, 60, 60.0, 200.0)
        if opts.quick
        else (
            250,
            1000,
            60.0,
            20.0,
        )
    )
    profile = load_profile("bench").replace(
        durations=dict.fromkeys(load_profile("bench").durations, duration)
    )
    started = time.monotonic()
    common = {
        "time_scale": time_scale,
        "max_in_flight": in_flight,
        "per_project": 12,
    }
    main = sweep(opts.workdir / "main", profile, projects=projects, with_lag=True, **common)
    single = sweep(opts.workdir / "single", profile, projects=1, models=["mdx23c"], **common)
    jobs = main.jobs
    cpu_ms = main.usage.cpu / jobs * 1000
    marginal_ms = (main.usage.cpu - single.usage.cpu) / (jobs - 1) * 1000
    lag_ms = _lag_ms(main.lag, in_flight) if main.lag is not None else None
    numbers = {
        "jobs_done": main.done,
        "wall_s": main.wall,
        "client": main.usage.as_dict(),
        "client_one_job": single.usage.as_dict(),
        "cpu_ms_per_job": round(cpu_ms, 3),
        "marginal_cpu_ms_per_job": round(marginal_ms, 3),
        "requests_per_job": round(main.stats["requests_total"] / jobs, 2),
        "polls": main.summary["polls"],
        "loop_lag_ms": lag_ms,
        "simulator": main.simulator.as_dict(),
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
            "per_project": 12,
            "duration_simulated_s": duration,
            "time_scale": time_scale,
            "lag_sample_interval_ms": LAG_INTERVAL_MS,
        },
        numbers=numbers,
        targets=[target("client CPU per job (ms)", round(cpu_ms, 2), "<=", TARGET_CPU_MS)],
        load_before=load,
        quick=opts.quick,
        shown=[
            ("marginal CPU per job", f"{marginal_ms:.2f} ms (start-up excluded)"),
            (
                f"loop lag, {in_flight} in flight",
                f"p50 {lag_ms['p50']} ms, p99 {lag_ms['p99']} ms, max {lag_ms['max']} ms"
                if lag_ms
                else "not sampled by this client",
            ),
        ],
    )


def _lag_ms(lag: dict[str, Any], in_flight: int) -> dict[str, Any]:
    """Percentiles of the loop's lag, in ms, over the samples taken at full in-flight."""
    busy = [x for x, n in zip(lag["lag"], lag["in_flight"], strict=True) if n >= in_flight]
    return {
        "samples_at_full_in_flight": len(busy),
        "p50": round(percentile(busy, 50) * 1000, 2),
        "p90": round(percentile(busy, 90) * 1000, 2),
        "p99": round(percentile(busy, 99) * 1000, 2),
        "max": round(max(busy, default=float("nan")) * 1000, 2),
        "p99_whole_run": round(percentile(lag["lag"], 99) * 1000, 2),
    }
