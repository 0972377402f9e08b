"""What stemsweep's guarantees cost in CPU: the `versus` fixed workload, with them switched off.

    python -m bench.guarantees [--rounds N] [--time-scale S] [--json PATH]

The `versus` benchmark's fixed workload (1,008 jobs, 100 in flight, every task the same
length; time-lapsed `--time-scale` times, 5 by default, so that a round takes a minute),
run in alternating rounds by the plain script and by stemsweep four ways:

    as shipped   every file and folder fsynced, the key committed durably
    no fsync     os.fsync a no-op and SQLite's commits unsynced (`synchronous=OFF`): a
                 power loss may then lose files recorded as good, and keys
    kept-alive   stem GETs reuse connections, as the script's do: bytes a storage host
                 sends past a body would be read as the next file's answer
    neither      both of them off

The switches exist only here: this module sets them in the client's own process before it
runs `stemsweep run` (`--as-client VARIANT ...`), and nothing in `orchestrator` reads them.
Printed: each client's CPU per job (`wait4`, start-up included; the median of the rounds),
its user and system parts, and its ratio to the script's. The difference between "as
shipped" and "neither" is what the guarantees cost; what is left above the script is the
rest of a job's bookkeeping (state, learned polls, pacing, logs, start-up).
"""

from __future__ import annotations

import argparse
import json
import os
import runpy
import statistics
import sys
import tempfile
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import bench.harness as harness
from bench.versus import _poll, _run_client, workloads

SLUGS = {
    "as shipped": "shipped",
    "no fsync": "no-fsync",
    "kept-alive": "kept-alive",
    "neither": "neither",
}
VARIANTS = tuple(SLUGS)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--as-client"]:
        return _as_client(argv[1], argv[2:])
    parser = argparse.ArgumentParser(prog="python -m bench.guarantees", description=__doc__)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--time-scale", type=float, default=5.0)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    fixed = workloads(False)[0]
    w = replace(fixed, time_scale=args.time_scale, poll=_poll(1.0, 5.0, args.time_scale))
    load = harness.load_average()
    clients = ("plain", *VARIANTS)
    runs: dict[str, list[dict[str, Any]]] = {c: [] for c in clients}
    workdir = Path(tempfile.mkdtemp(prefix="stemsweep-guarantees-"))
    for round_ in range(args.rounds):
        for client in clients if round_ % 2 == 0 else clients[::-1]:
            runs[client].append(_run(client, w, workdir / f"{SLUGS.get(client, client)}-{round_}"))
    figures = {client: _median(results, w.jobs) for client, results in runs.items()}
    script = figures["plain"]["cpu_ms_per_job"]
    for client in clients:
        figures[client]["ratio"] = round(figures[client]["cpu_ms_per_job"] / script, 2)
    print(render(figures, w.jobs, args.time_scale))
    if args.json is not None:
        document = {
            "name": "guarantees",
            "date": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
            "machine": harness.machine(),
            "load": {"before": load, "after": harness.load_average()},
            "inputs": {"jobs": w.jobs, "time_scale": args.time_scale, "rounds": args.rounds},
            "figures": figures,
        }
        args.json.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    return 0


def _run(client: str, w: Any, workdir: Path) -> dict[str, Any]:
    """One run of `client` on `w`: the plain script, or stemsweep with a variant's switches."""
    if client == "plain":
        return _run_client("plain", w, workdir)
    shipped = harness.stemsweep_command

    def command(*args: str) -> list[str]:
        if args[:1] != ("run",):
            return shipped(*args)
        # The client runs in the run's folder: bench is found from the checkout's root.
        start = f"import sys; sys.path.insert(0, {str(harness.ROOT)!r}); "
        start += "from bench.guarantees import main; sys.exit(main())"
        return [sys.executable, "-c", start, "--as-client", SLUGS[client], *args]

    harness.stemsweep_command = command
    try:
        return _run_client("stemsweep", w, workdir)
    finally:
        harness.stemsweep_command = shipped


def _as_client(slug: str, args: list[str]) -> int:
    """`stemsweep ARGS` in this process, with the switches of `slug` set first."""
    switch_off(slug)
    sys.argv = ["stemsweep", *args]
    runpy.run_module("orchestrator", run_name="__main__")
    return 0


def switch_off(slug: str) -> None:
    """Set the switches of the variant `slug` in this process (none for "shipped")."""
    if slug in ("no-fsync", "neither"):
        _unsynced()
    if slug in ("kept-alive", "neither"):
        _kept_alive()


def _unsynced() -> None:
    import sqlite3
    import types

    from orchestrator import state_schema

    os.fsync = _no_fsync  # every file, folder and staged body

    class Unsynced(sqlite3.Connection):
        def execute(self, sql: str, *args: Any) -> sqlite3.Cursor:
            if sql.startswith("PRAGMA synchronous="):
                sql = "PRAGMA synchronous=OFF"
            return super().execute(sql, *args)

    def connect(*args: Any, **kwargs: Any) -> sqlite3.Connection:
        return sqlite3.connect(*args, factory=Unsynced, **kwargs)

    # The store's module alone sees a sqlite3 whose connections commit unsynced.
    unsynced = types.ModuleType("sqlite3")
    vars(unsynced).update(vars(sqlite3))
    vars(unsynced)["connect"] = connect
    vars(state_schema)["sqlite3"] = unsynced


def _no_fsync(fd: Any) -> None:
    """os.fsync, switched off."""


def _kept_alive() -> None:
    import aiohttp

    shipped = aiohttp.TCPConnector.__init__

    def init(self: aiohttp.TCPConnector, *args: Any, **kwargs: Any) -> None:
        kwargs["force_close"] = False
        shipped(self, *args, **kwargs)

    aiohttp.TCPConnector.__init__ = init  # type: ignore[method-assign]


def _median(results: list[dict[str, Any]], jobs: int) -> dict[str, Any]:
    def middle(key: str) -> float:
        seconds = statistics.median(float(r["process"][key]) for r in results)
        return round(seconds / jobs * 1000, 3)

    return {
        "cpu_ms_per_job": round(statistics.median(r["cpu_ms_per_job"] for r in results), 3),
        "user_ms_per_job": middle("user_s"),
        "system_ms_per_job": middle("system_s"),
        "runs_cpu_ms_per_job": [r["cpu_ms_per_job"] for r in results],
        "jobs_done": min(r["jobs_done"] for r in results),
    }


def render(figures: dict[str, dict[str, Any]], jobs: int, scale: float) -> str:
    lines = [
        f"fixed workload, {jobs} jobs, time-lapsed {scale:g} times; CPU per job (ms), median",
        f"{'client':<12} {'cpu':>6} {'user':>6} {'system':>6} {'/ script':>8}  runs",
    ]
    for client, f in figures.items():
        runs = ", ".join(f"{v:.2f}" for v in f["runs_cpu_ms_per_job"])
        lines.append(
            f"{client:<12} {f['cpu_ms_per_job']:>6.2f} {f['user_ms_per_job']:>6.2f} "
            f"{f['system_ms_per_job']:>6.2f} {f['ratio']:>8.2f}  {runs}"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
