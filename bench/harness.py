"""What every benchmark needs: the simulator and stemsweep as subprocesses, measured.

The simulator runs in its own process (`stemsweep simulate --profile PATH --port 0`), so its
CPU and memory are never counted as the client's. `stemsweep run` and `plan` run as
subprocesses too, reaped with `os.wait4`, which gives each child's own CPU time and peak
RSS. Results are plain dicts written to `bench/results/NAME.json` with the machine they
ran on and the load it was under.
"""

from __future__ import annotations

import json
import os
import platform
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from orchestrator.simulator.profile import Profile, dump_profile, load_profile

ROOT = Path(__file__).resolve().parents[1]
RESULTS_DIR = Path(__file__).resolve().parent / "results"
API_KEY = "yk_bench"
ENV_CLIENT = "STEMSWEEP_BENCH_CLIENT"
STARTUP_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0
MODELS = tuple(load_profile("bench").durations)  # the twelve, in catalogue order


# --- the machine ----------------------------------------------------------------------


def machine() -> dict[str, Any]:
    """CPU model and count, memory, Python and OS: what a result was measured on."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory_gib = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory_gib = round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cpus": os.cpu_count(),
        "memory_gib": memory_gib,
        "python": platform.python_version(),
        "os": f"{platform.system()} {platform.release()}",
        "scratch_file_system": file_system(Path(tempfile.gettempdir())),
    }


def file_system(path: Path) -> str:
    """The type of the file system the benchmarks write to (from /proc/mounts)."""
    best, kind = "", "unknown"
    try:
        for line in Path("/proc/mounts").read_text().splitlines():
            _device, mount, fstype, *_ = line.split()
            if str(path.resolve()).startswith(mount) and len(mount) > len(best):
                best, kind = mount, fstype
    except (OSError, ValueError):
        pass
    return kind


def load_average() -> list[float]:
    """The 1, 5 and 15 minute load averages (others may run tests on the same machine)."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []


# --- children, measured -----------------------------------------------------------------


@dataclass
class Usage:
    """What one child process cost: wall seconds, CPU seconds, peak RSS."""

    returncode: int
    wall: float
    user: float
    system: float
    max_rss_mb: float

    @property
    def cpu(self) -> float:
        return self.user + self.system

    def as_dict(self) -> dict[str, Any]:
        return {
            "returncode": self.returncode,
            "wall_s": round(self.wall, 3),
            "cpu_s": round(self.cpu, 3),
            "user_s": round(self.user, 3),
            "system_s": round(self.system, 3),
            "max_rss_mb": round(self.max_rss_mb, 1),
        }


def reap(proc: subprocess.Popen[Any], started: float) -> Usage:
    """Wait for `proc` and return its own resource usage (not the sum of all children)."""
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.monotonic() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    return Usage(
        returncode=proc.returncode,
        wall=wall,
        user=usage.ru_utime,
        system=usage.ru_stime,
        max_rss_mb=usage.ru_maxrss / 1024,  # kilobytes on Linux
    )


def stemsweep_command(*args: str) -> list[str]:
    """The command line of `stemsweep ARGS` with this interpreter."""
    return [sys.executable, "-m", "orchestrator", *args]


def run_stemsweep(
    args: Sequence[str],
    workdir: Path,
    *,
    env: Mapping[str, str] | None = None,
    log_name: str = "stemsweep",
) -> Usage:
    """Run `stemsweep ARGS` to its end; stdout and stderr go to files in `workdir`.

    With `STEMSWEEP_BENCH_CLIENT=DIR` (another checkout's root), the client is that one's
    `orchestrator`, while the simulator stays this one: for before/after comparisons.
    """
    full_env = {**os.environ, "YOUKA_API_KEY": API_KEY, **(env or {})}
    full_env.pop("YOUKA_API_URL", None)
    other = os.environ.get(ENV_CLIENT)
    if other:
        full_env["PYTHONPATH"] = other
    with (
        (workdir / f"{log_name}.out").open("wb") as out,
        (workdir / f"{log_name}.err").open("wb") as err,
    ):
        started = time.monotonic()
        proc = subprocess.Popen(
            stemsweep_command(*args), cwd=workdir, stdout=out, stderr=err, env=full_env
        )
        return reap(proc, started)


def run_command(args: Sequence[str], workdir: Path, *, log_name: str) -> Usage:
    """Run any command to its end, measured like `run_stemsweep`."""
    with (
        (workdir / f"{log_name}.out").open("wb") as out,
        (workdir / f"{log_name}.err").open("wb") as err,
    ):
        started = time.monotonic()
        proc = subprocess.Popen(list(args), cwd=workdir, stdout=out, stderr=err)
        return reap(proc, started)


# --- the simulator, in its own process -----------------------------------------------------


@dataclass
class SimulatorProcess:
    """A running `stemsweep simulate`; `base_url`, `root_url`; `get(path)` reads its JSON."""

    proc: subprocess.Popen[Any]
    started: float
    base_url: str
    root_url: str
    time_scale: float
    usage: Usage | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def get(self, path: str) -> Any:
        """`GET root_url + path` as JSON (`/_sim/stats`, `/_sim/tasks`)."""
        with urllib.request.urlopen(self.root_url + path, timeout=120) as response:
            return json.load(response)

    def stop(self) -> Usage:
        """Stop the simulator (SIGTERM: a shell may have started us ignoring SIGINT)."""
        if self.usage is None:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM)
            self.usage = reap(self.proc, self.started)
        return self.usage


@contextmanager
def simulator(
    profile: Profile, workdir: Path, *, time_scale: float, seed: int = 0
) -> Iterator[SimulatorProcess]:
    """Start the simulator with `profile` in a subprocess; stop it on exit."""
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / "profile.yaml"
    path.write_text(dump_profile(profile), encoding="utf-8")
    banner = workdir / "simulator.out"
    args = stemsweep_command(
        "simulate",
        "--profile",
        str(path),
        "--port",
        "0",
        "--storage-port",
        "0",
        "--time-scale",
        repr(time_scale),
        "--seed",
        str(seed),
    )
    with banner.open("wb") as out, (workdir / "simulator.err").open("wb") as err:
        started = time.monotonic()
        proc = subprocess.Popen(args, cwd=workdir, stdout=out, stderr=err)
    try:
        base_url = _wait_for_banner(proc, banner)
        sim = SimulatorProcess(
            proc=proc,
            started=started,
            base_url=base_url,
            root_url=base_url.rsplit("/api/", 1)[0],
            time_scale=time_scale,
        )
        yield sim
    finally:
        if proc.returncode is None:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _wait_for_banner(proc: subprocess.Popen[Any], banner: Path) -> str:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        text = banner.read_text(errors="replace")
        match = re.search(r"^base URL:\s+(\S+)", text, re.MULTILINE)
        if match and "Press Ctrl-C" in text:
            return match.group(1)
        if proc.poll() is not None:
            err = (banner.parent / "simulator.err").read_text(errors="replace")
            raise RuntimeError(f"the simulator exited ({proc.returncode}): {err[-2000:]}")
        time.sleep(0.05)
    raise RuntimeError("the simulator did not print its URLs in time")


# --- manifests ---------------------------------------------------------------------------


def write_manifest(
    path: Path,
    *,
    name: str,
    base_url: str,
    output: Path,
    projects: Sequence[str] | None = None,
    projects_file: Path | None = None,
    models: Sequence[str] | str = "all",
    max_in_flight: int,
    per_project: int = 1,
    requests_per_second: float = 10_000.0,
    poll: Mapping[str, float],
    types: Sequence[str] | None = None,
) -> Path:
    """Write a manifest for a run against the simulator at `base_url`."""
    sweep: dict[str, Any] = {"models": models if isinstance(models, str) else list(models)}
    if projects_file is not None:
        sweep["projects_file"] = str(projects_file)
    else:
        sweep["projects"] = list(projects or [])
    data: dict[str, Any] = {
        "version": 1,
        "name": name,
        "api": {"base_url": base_url},
        "output": str(output),
        "limits": {
            "max_in_flight": max_in_flight,
            "per_project": per_project,
            "requests_per_second": requests_per_second,
        },
        "poll": dict(poll),
        "retries": {"requests": 6, "tasks": 0},
        "sweeps": [sweep],
    }
    if types is not None:
        data["download"] = {"types": list(types)}
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def project_ids(count: int) -> list[str]:
    """The ids the simulator gives its first `count` projects."""
    from orchestrator.simulator.world import project_id

    return [project_id(i) for i in range(1, count + 1)]


def scaled_poll(
    time_scale: float, *, initial: float = 3.0, maximum: float = 60.0
) -> dict[str, float]:
    """The manifest's default poll settings (3 s, 60 s, 30 min), compressed by `time_scale`.

    The client runs in real time while the simulator runs `time_scale` times faster: its
    poll settings shrink by the same factor, so the run is the real one, time-lapsed.
    """
    return {
        "initial": initial / time_scale,
        "max": maximum / time_scale,
        "timeout": 1800.0 / time_scale,
    }


def summary_of(output: Path) -> dict[str, Any]:
    """The `summary.json` a run wrote."""
    return json.loads((output / "summary.json").read_text(encoding="utf-8"))


# --- results -----------------------------------------------------------------------------


def target(metric: str, value: float, op: str, bound: float, unit: str = "") -> dict[str, Any]:
    """One target and whether `value` meets it (`op` is `<=` or `>=`)."""
    met = value <= bound if op == "<=" else value >= bound
    return {
        "metric": metric,
        "value": value,
        "target": f"{op} {bound:g}{unit}",
        "met": bool(met),
    }


def percentile(values: Sequence[float], q: float) -> float:
    """The `q`-th percentile (0..100) by linear interpolation; NaN when empty."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100.0
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def result_document(
    name: str,
    *,
    title: str,
    inputs: Mapping[str, Any],
    numbers: Mapping[str, Any],
    targets: Sequence[Mapping[str, Any]],
    load_before: Sequence[float],
    quick: bool,
    notes: Sequence[str] = (),
    shown: Sequence[tuple[str, str]] = (),
) -> dict[str, Any]:
    """The JSON written to `bench/results/NAME.json`.

    `shown`: (label, text) rows for the summary table besides the targets.
    """
    return {
        "name": name,
        "title": title,
        "date": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "quick": quick,
        "machine": machine(),
        "load": {"before": list(load_before), "after": load_average()},
        "inputs": dict(inputs),
        "numbers": dict(numbers),
        "targets": list(targets),
        "all_met": all(t["met"] for t in targets),
        "shown": [list(row) for row in shown],
        "notes": list(notes),
    }


def write_result(document: Mapping[str, Any], results_dir: Path = RESULTS_DIR) -> Path:
    """Write `document` to `results_dir/NAME.json`."""
    results_dir.mkdir(parents=True, exist_ok=True)
    path = results_dir / f"{document['name']}.json"
    path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    return path


# --- one sweep, end to end ----------------------------------------------------------------


@dataclass
class SweepRun:
    """A `stemsweep run` against a simulator subprocess, and what both recorded."""

    usage: Usage  # the client process
    simulator: Usage  # the simulator process
    summary: dict[str, Any]
    stats: dict[str, Any]  # the simulator's `/_sim/stats`
    tasks: list[dict[str, Any]] | None  # the simulator's `/_sim/tasks`, when asked for
    lag: dict[str, Any] | None  # the client's event-loop lag samples, when asked for
    output: Path

    @property
    def jobs(self) -> int:
        return int(self.summary["jobs"])

    @property
    def done(self) -> int:
        return int(self.summary["counts"].get("done", 0))

    @property
    def wall(self) -> float:
        """The run's own wall time, from its summary (no interpreter start-up)."""
        return float(self.summary["wall_seconds"])


def sweep(
    workdir: Path,
    profile: Profile,
    *,
    time_scale: float,
    projects: int,
    models: Sequence[str] | str = "all",
    max_in_flight: int,
    per_project: int = 1,
    requests_per_second: float = 10_000.0,
    poll: Mapping[str, float] | None = None,
    types: Sequence[str] | None = None,
    with_tasks: bool = False,
    with_lag: bool = False,
    projects_file: bool = False,
) -> SweepRun:
    """Start a simulator with `profile`, run one sweep of `projects` x `models` against it."""
    workdir.mkdir(parents=True, exist_ok=True)
    output = workdir / "out"
    ids = project_ids(projects)
    with simulator(profile.replace(projects=projects), workdir, time_scale=time_scale) as sim:
        source: dict[str, Any] = {"projects": ids}
        if projects_file:
            path = workdir / "projects.txt"
            path.write_text("\n".join(ids) + "\n", encoding="utf-8")
            source = {"projects_file": path}
        manifest = write_manifest(
            workdir / "manifest.yaml",
            name="bench",
            base_url=sim.base_url,
            output=output,
            models=models,
            max_in_flight=max_in_flight,
            per_project=per_project,
            requests_per_second=requests_per_second,
            poll=poll if poll is not None else scaled_poll(time_scale),
            types=types,
            **source,
        )
        env = {"STEMSWEEP_LOOP_LAG": str(workdir / "lag.json")} if with_lag else {}
        usage = run_stemsweep(["run", str(manifest), "--no-progress"], workdir, env=env)
        if usage.returncode != 0:
            err = (workdir / "stemsweep.err").read_text(errors="replace")[-3000:]
            raise RuntimeError(f"stemsweep run exited {usage.returncode}: {err}")
        stats = sim.get("/_sim/stats")
        tasks = sim.get("/_sim/tasks")["tasks"] if with_tasks else None
        sim_usage = sim.stop()
    lag_file = workdir / "lag.json"
    lag = json.loads(lag_file.read_text()) if with_lag and lag_file.exists() else None
    return SweepRun(
        usage=usage,
        simulator=sim_usage,
        summary=summary_of(output),
        stats=stats,
        tasks=tasks,
        lag=lag,
        output=output,
    )


@dataclass(frozen=True)
class Options:
    """How a benchmark runs: `quick` (the smoke sizes) and a scratch folder of its own."""

    quick: bool
    workdir: Path
