"""Where the client's CPU goes: `stemsweep run` of the `versus` fixed workload under py-spy.

    python -m bench.profile_client [--quick] [--client stemsweep|plain] [--out DIR]

Runs the fixed workload of `bench/versus.py` (1,008 jobs of 5 s, 100 in flight) against
the simulator in its own process, with the client sampled by py-spy (`pip install
py-spy`; 250 samples a second, without pausing the client, of the thread that holds the
GIL: Python at work, not a thread waiting in a system call such as fsync or epoll; the
kernel's share of the CPU is the client's system time from `wait4`), and prints what the
samples say: the share of the client's CPU per library (the innermost frame's), per
stemsweep module (the innermost frame inside `orchestrator/`: what the work was done for),
and the stemsweep functions with the largest inclusive share. The client's CPU time per
job comes from `wait4`, as in the benchmarks; the raw stacks are kept in DIR.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

from bench.harness import API_KEY, MODELS, project_ids, reap, simulator, write_manifest
from bench.versus import SCRIPT, SCRIPT_TYPES, workloads

FRAME = re.compile(r"^(?P<function>.*) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")
RATE = 250


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.profile_client", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="the smoke sizes of `versus`")
    parser.add_argument("--client", choices=("stemsweep", "plain"), default="stemsweep")
    parser.add_argument("--out", type=Path, help="where the stacks go (default: a temp dir)")
    args = parser.parse_args(argv)
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(spy).exists():
        parser.error("py-spy is not installed: pip install py-spy")
    out = args.out or Path(tempfile.mkdtemp(prefix="stemsweep-profile-"))
    out.mkdir(parents=True, exist_ok=True)
    w = workloads(args.quick)[0]
    stacks = out / f"{args.client}.stacks"
    with simulator(w.profile.replace(projects=w.projects), out, time_scale=w.time_scale) as sim:
        if args.client == "stemsweep":
            manifest = write_manifest(
                out / "manifest.yaml",
                name="bench",
                base_url=sim.base_url,
                output=out / "out",
                projects=project_ids(w.projects),
                models=list(w.models),
                max_in_flight=w.in_flight,
                per_project=w.per_project,
                poll=w.poll,
                types=SCRIPT_TYPES,
            )
            command = [sys.executable, "-m", "orchestrator", "run", str(manifest), "--no-progress"]
        else:
            jobs = out / "jobs.txt"
            jobs.write_text(
                "".join(f"{p} {m}\n" for p in project_ids(w.projects) for m in MODELS),
                encoding="utf-8",
            )
            command = [
                sys.executable,
                str(SCRIPT),
                sim.base_url,
                str(out / "plain-out"),
                f"--jobs={jobs}",
                f"--in-flight={w.in_flight}",
                f"--poll={1.0 / w.time_scale!r}",
            ]
        env = {**os.environ, "YOUKA_API_KEY": API_KEY}
        spied = [spy, "record", "-r", str(RATE), "--nonblocking", "--gil", "--threads"]
        spied += ["-f", "raw"]
        spied += ["-o", str(stacks), "--", *command]
        with (out / "client.out").open("wb") as stdout, (out / "client.err").open("wb") as err:
            started = time.monotonic()
            proc = subprocess.Popen(spied, cwd=out, env=env, stdout=stdout, stderr=err)
            usage = reap(proc, started)  # py-spy's and the client's together
    summary = _summary(out, args.client)
    if usage.returncode != 0:
        print((out / "client.err").read_text(errors="replace")[-2000:], file=sys.stderr)
        return 1
    report = breakdown(stacks.read_text(encoding="utf-8").splitlines())
    report["jobs"] = w.jobs
    report["usage_with_py_spy"] = usage.as_dict()
    report["client_summary"] = summary
    report["stacks"] = str(stacks)
    (out / f"{args.client}.json").write_text(json.dumps(report, indent=2), encoding="utf-8")
    print(render(report))
    return 0


def _summary(out: Path, client: str) -> dict[str, object]:
    """What the client said of its run: wall seconds, jobs done."""
    if client == "stemsweep":
        data = json.loads((out / "out" / "summary.json").read_text(encoding="utf-8"))
        return {"wall_seconds": data["wall_seconds"], "counts": data["counts"]}
    lines = (out / "client.out").read_text(encoding="utf-8").splitlines()
    data = json.loads([line for line in lines if line.startswith("{")][-1])
    return {"wall_seconds": data["wall_seconds"], "done": data["done"]}


def breakdown(lines: Iterable[str]) -> dict[str, object]:
    """Shares of the samples: per thread, per library, per stemsweep module, and the
    stemsweep functions with the largest inclusive share."""
    threads: Counter[str] = Counter()
    libraries: Counter[str] = Counter()
    modules: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    leaves: Counter[str] = Counter()
    purposes: Counter[str] = Counter()
    total = 0
    for line in lines:
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = stack.split(";")
        thread, frames = frames[0], frames[1:]
        total += count
        threads[thread.split(" ")[0] + " " + _thread_name(thread)] += count
        parsed = [_frame(f) for f in frames]
        if not parsed:
            continue
        function, path = parsed[-1]
        libraries[_library(path)] += count
        leaves[f"{_library(path)}: {function}"] += count
        ours = [(f, p) for f, p in parsed if _ours(p)]
        modules[_module(ours[-1][1]) if ours else "(not stemsweep)"] += count
        purposes[_purpose(parsed, ours)] += count
        for name in {f"{_module(p)}.{f}" for f, p in ours}:
            inclusive[name] += count
    share = {"total_samples": total}

    def top(counter: Counter[str], n: int) -> list[tuple[str, float]]:
        return [(k, round(v / total, 4)) for k, v in counter.most_common(n)]

    return {
        **share,
        "threads": top(threads, 10),
        "libraries": top(libraries, 15),
        "purposes": top(purposes, 20),
        "stemsweep_modules": top(modules, 15),
        "stemsweep_inclusive": top(inclusive, 30),
        "leaf_functions": top(leaves, 25),
    }


# What a sample was spent on: the outermost call of the API client in its stack, else the
# innermost stemsweep module (and a few functions of it).
API_CALLS = {
    "task": "polls (GET /tasks/{id})",
    "submit": "submissions (POST)",
    "project": "project reads (GET /projects/{id})",
    "fetch": "stem downloads (HTTP)",
    "me": "start-up",
}
MODULES = {
    "state": "state (SQLite)",
    "download": "files: receive, hash, place, fsync",
    "storage": "files: receive, hash, place, fsync",
    "logs": "logs",
    "scheduling": "poll loop and admission",
    "backoff": "poll loop and admission",
    "runner": "runner bookkeeping",
    "lifecycle": "runner bookkeeping",
    "failures": "runner bookkeeping",
    "summary": "summary and progress",
    "summary_text": "summary and progress",
    "progress": "summary and progress",
}


def _purpose(parsed: list[tuple[str, str]], ours: list[tuple[str, str]]) -> str:
    if any(p.startswith("<frozen importlib") for _, p in parsed):
        return "start-up (imports)"
    for function, path in ours:
        if _module(path) == "api" and function.startswith("YoukaClient."):
            name = function.removeprefix("YoukaClient.")
            if name in API_CALLS:
                return API_CALLS[name]
    if any(f.endswith(("structlog", "_log")) or "structlog" in p for f, p in parsed):
        return "logs"
    if not ours:
        return "event loop and libraries (no stemsweep frame)"
    module = _module(ours[-1][1])
    if module in ("cli", "commands.sweep"):
        return "event loop (run by cli)"
    if module in ("manifest", "jobs", "catalog", "__main__"):
        return "start-up (manifest, plan)"
    return MODULES.get(module, module)


def render(report: dict[str, object]) -> str:
    lines = [f"{report['total_samples']} samples holding the GIL, {report['jobs']} jobs"]
    for key in ("threads", "purposes", "libraries", "stemsweep_modules", "stemsweep_inclusive"):
        lines.append(f"\n{key}:")
        rows = report[key]
        assert isinstance(rows, list)
        lines += [f"  {100 * share:5.1f}%  {name}" for name, share in rows]
    lines.append("\nleaf functions:")
    rows = report["leaf_functions"]
    assert isinstance(rows, list)
    lines += [f"  {100 * share:5.1f}%  {name}" for name, share in rows]
    return "\n".join(lines)


def _frame(text: str) -> tuple[str, str]:
    match = FRAME.match(text)
    return (match["function"], match["file"]) if match else (text, "")


def _thread_name(text: str) -> str:
    match = re.search(r"\((\w+)\)", text)
    return match.group(1) if match else ""


def _ours(path: str) -> bool:
    return path.startswith("orchestrator/") or "/orchestrator/" in path


def _library(path: str) -> str:
    """`stemsweep.MODULE` for ours, else the top package or stdlib module of `path`."""
    if _ours(path):
        return "stemsweep." + _module(path)
    if path.startswith("<frozen "):
        return path.removeprefix("<frozen ").split(".")[0].rstrip(">")
    for marker in ("/site-packages/", "/lib/python3.11/"):
        if marker in path:
            path = path.split(marker, 1)[1]
    return path.split("/", 1)[0].removesuffix(".py") or "?"


def _module(path: str) -> str:
    if "/orchestrator/" in path:
        path = path.split("/orchestrator/", 1)[1]
    else:
        path = path.removeprefix("orchestrator/")
    return path.removesuffix(".py").replace("/", ".")


if __name__ == "__main__":
    sys.exit(main())
