"""Download throughput: 1 GiB of stems over loopback, stemsweep against curl.

64 separations of 16 MiB stems (one wanted type each, near-instant tasks) are run by
stemsweep; then `curl` fetches the same 64 files (fresh signed URLs read from the projects,
the API's redirect followed with -L) with the same concurrency, 8 at a time, in one
process. Three rounds each, alternating, each after a `sync` and right after the previous
run's files were deleted (so that every run writes into recently used memory; see
`_fresh_pages`); the best of each counts. stemsweep's throughput is the bytes over its
whole run's wall time (submissions and polls included). stemsweep also hashes (BLAKE3)
and fsyncs every file; curl does neither.

CPU per GiB is what the bytes cost: the client process's CPU for the run (interpreter
start-up included) less that of the same 64 jobs with 16 KiB stems, against a second
simulator; the whole process's CPU per GiB is shown too. (The fixed part, start-up and the
jobs' bookkeeping, is the `cpu` benchmark's subject.) After round 1, stemsweep runs once
more over its finished tree: the cost of a re-run whose jobs are all done (a nightly run's
usual case), where no file is read since each has its recorded size and time.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from bench.harness import (
    API_KEY,
    Options,
    Usage,
    file_system,
    load_average,
    project_ids,
    result_document,
    run_command,
    run_stemsweep,
    simulator,
    summary_of,
    target,
    write_manifest,
)
from orchestrator.simulator.profile import load_profile

NAME = "downloads"
TITLE = "1 GiB of stems over loopback: stemsweep vs curl"
TARGET_RATIO = 0.7
TARGET_CPU_PER_GIB = 2.0
SMALL_STEM_BYTES = 16 << 10  # the stems of the run that measures the fixed CPU
ENV_FILES_DIR = "BENCH_DOWNLOADS_TO"
ROUNDS = 3  # alternating rounds; the best of each client counts
CONCURRENCY = 8  # the runner's DOWNLOAD_CONCURRENCY
MODEL = "mdx23c"
TYPE = "vocals"


def run(opts: Options) -> dict[str, Any]:
    """stemsweep's and curl's throughput on the same files, in the same run."""
    load = load_average()
    curl = shutil.which("curl")
    if curl is None:
        return _skipped("curl is not installed (apt-get install -y curl)", load, opts)
    files, stem_bytes = (8, 1 << 20) if opts.quick else (64, 16 << 20)
    profile = load_profile("bench").replace(
        projects=files,
        stem_bytes=stem_bytes,
        durations={MODEL: 0.0},
        created_time=0.0,
        queue_time=(0.0, 0.0),
    )
    started = time.monotonic()
    workdir = opts.workdir
    workdir.mkdir(parents=True, exist_ok=True)
    # The files go where a user's would, to disk (the scratch folder's file system); with
    # BENCH_DOWNLOADS_TO=/dev/shm to memory, where only the two clients' CPU counts.
    target_dir = Path(os.environ.get(ENV_FILES_DIR) or workdir)
    files_dir = Path(tempfile.mkdtemp(dir=target_dir))
    try:
        return _measure(opts, load, curl, files, stem_bytes, profile, files_dir, started)
    finally:
        shutil.rmtree(files_dir, ignore_errors=True)


def _measure(
    opts: Options,
    load: list[float],
    curl: str,
    files: int,
    stem_bytes: int,
    profile: Any,
    files_dir: Path,
    started: float,
) -> dict[str, Any]:
    total = files * stem_bytes
    workdir = opts.workdir
    with simulator(profile, workdir, time_scale=1.0) as sim:
        manifest = _manifest(workdir, sim.base_url, files)
        # Every run starts on memory just freed by the previous one (see _fresh_pages).
        _fresh_pages(files_dir / "warm-up", total)
        # Rounds alternate, best of each: the machine's disk and load vary from one
        # second to the next as much as the two clients differ. The second stemsweep run
        # has its own output and state: its submissions are answered from the same keys.
        rounds: list[tuple[Usage, dict[str, Any], Usage]] = []
        rerun: Usage | None = None
        for round_ in range(1, ROUNDS + 1):
            out = files_dir / f"out-{round_}"
            ours = _run_ours(manifest, out, workdir, f"stemsweep-{round_}")
            summary = summary_of(out)
            if rerun is None:
                # A run over the finished tree: what a nightly re-run of done jobs costs.
                rerun = _run_ours(manifest, out, workdir, "stemsweep-rerun")
            shutil.rmtree(out)
            urls = [_stem_url(sim.base_url, project) for project in project_ids(files)]
            theirs = _run_curl(curl, urls, files_dir / f"curl-{round_}", workdir, round_, total)
            rounds.append((ours, summary, theirs))
        sim.stop()
    assert rerun is not None
    fixed = _fixed_cpu(opts, profile.replace(stem_bytes=SMALL_STEM_BYTES), files, files_dir)
    gib = total / 2**30
    best_ours = min(rounds, key=lambda r: float(r[1]["wall_seconds"]))
    ours, summary = best_ours[0], best_ours[1]
    theirs = min((r[2] for r in rounds), key=lambda u: u.wall)
    ours_wall = float(summary["wall_seconds"])
    ours_rate = total / ours_wall
    curl_rate = total / theirs.wall
    ratio = ours_rate / curl_rate
    best_cpu = min(r[0].cpu for r in rounds)
    cpu_per_gib = (best_cpu - fixed.cpu) / gib
    numbers = {
        "bytes": total,
        "stemsweep": {
            "run_wall_s": ours_wall,
            "throughput_mib_s": round(ours_rate / 2**20, 1),
            "cpu_per_gib_s": round(cpu_per_gib, 3),
            "process_cpu_per_gib_s": round(best_cpu / gib, 3),
            "same_jobs_small_stems": fixed.as_dict(),
            "process": ours.as_dict(),
            "rounds_wall_s": [float(r[1]["wall_seconds"]) for r in rounds],
            "rounds_cpu_s": [round(r[0].cpu, 3) for r in rounds],
        },
        "curl": {
            "wall_s": round(theirs.wall, 3),
            "throughput_mib_s": round(curl_rate / 2**20, 1),
            "cpu_per_gib_s": round(theirs.cpu / gib, 3),
            "process": theirs.as_dict(),
            "rounds_wall_s": [round(r[2].wall, 3) for r in rounds],
            "rounds_cpu_s": [round(r[2].cpu, 3) for r in rounds],
        },
        "throughput_ratio": round(ratio, 3),
        "rerun_of_finished_tree": rerun.as_dict(),
        "bench_seconds": round(time.monotonic() - started, 1),
    }
    return result_document(
        NAME,
        title=TITLE,
        inputs={
            "files": files,
            "file_bytes": stem_bytes,
            "concurrency": CONCURRENCY,
            "curl": curl,
            "curl_options": "--parallel --parallel-max 8 -sS -f -L",
            "files_written_to": f"{files_dir.parent} ({file_system(files_dir)})",
        },
        numbers=numbers,
        targets=[
            target("throughput, stemsweep / curl", round(ratio, 3), ">=", TARGET_RATIO),
            target("client CPU s per GiB", round(cpu_per_gib, 3), "<=", TARGET_CPU_PER_GIB),
        ],
        load_before=load,
        quick=opts.quick,
        shown=[
            (
                "throughput",
                f"stemsweep {ours_rate / 2**20:.0f} MiB/s, curl {curl_rate / 2**20:.0f} MiB/s",
            ),
            (
                f"re-run of the finished tree ({files} done jobs, {gib:.3g} GiB)",
                f"{rerun.wall:.2f} s, {rerun.cpu:.2f} s CPU",
            ),
            (
                "client CPU per GiB, start-up included",
                f"{best_cpu / gib:.2f} s (the same jobs with 16 KiB stems: {fixed.cpu:.2f} s)",
            ),
        ],
    )


def _manifest(workdir: Path, base_url: str, files: int) -> Path:
    """The benchmark's job: the first `files` projects, one model, one wanted type."""
    return write_manifest(
        workdir / "manifest.yaml",
        name="bench",
        base_url=base_url,
        output=workdir / "out",
        projects=project_ids(files),
        models=[MODEL],
        max_in_flight=files,
        poll={"initial": 0.05, "max": 1.0, "timeout": 600.0},
        types=[TYPE],
    )


def _run_curl(
    curl: str, urls: list[str], fetched: Path, workdir: Path, round_: int, total: int
) -> Usage:
    """curl fetches every URL into `fetched`, 8 at a time; the folder is removed after."""
    fetched.mkdir()
    os.sync()  # curl, too, starts with no dirty pages of stemsweep's to write back
    args = [curl, "--parallel", "--parallel-max", str(CONCURRENCY), "-sS", "-f", "-L"]
    for index, url in enumerate(urls):
        args += ["-o", str(fetched / f"{index}.wav"), url]
    usage = run_command(args, workdir, log_name=f"curl-{round_}")
    if usage.returncode != 0:
        raise RuntimeError(f"curl exited {usage.returncode}")
    got = sum(p.stat().st_size for p in fetched.iterdir())
    if got != total:
        raise RuntimeError(f"curl fetched {got} bytes, expected {total}")
    shutil.rmtree(fetched)
    return usage


def _fresh_pages(path: Path, size: int) -> None:
    """Write `size` bytes to `path` and delete it: the next run's files get memory that was
    in use a moment ago.

    Some virtual machines hand free memory back to their host (virtio-balloon free page
    reporting), and the first write into a page the host took back costs a fault on the
    host's side: on one such VM, writing 1 GiB into the page cache took 0.23 s on recently
    freed memory and 2.5 s on returned memory. Whichever client happened to run on returned
    memory would lose by that much, so each run starts right after the previous run's
    files (or these) were deleted, and recently freed pages are handed out first.
    """
    chunk = b"\0" * (1 << 20)
    with path.open("wb") as f:
        for _ in range(size // len(chunk)):
            f.write(chunk)
    path.unlink()


def _fixed_cpu(opts: Options, profile: Any, files: int, files_dir: Path) -> Usage:
    """The client's CPU for the same jobs with small stems: start-up and bookkeeping."""
    workdir = opts.workdir / "small"
    with simulator(profile, workdir, time_scale=1.0) as sim:
        usage = _run_ours(
            _manifest(workdir, sim.base_url, files), files_dir / "out-small", workdir, "small"
        )
        sim.stop()
    return usage


def _run_ours(manifest: Path, out: Path, workdir: Path, log_name: str) -> Usage:
    """`stemsweep run` into `out`, after a `sync`: no dirty pages of an earlier client's to
    write back while it runs."""
    os.sync()
    usage = run_stemsweep(
        ["run", str(manifest), "--no-progress", "--out", str(out)], workdir, log_name=log_name
    )
    if usage.returncode != 0:
        raise RuntimeError(f"stemsweep run ({log_name}) exited {usage.returncode}")
    return usage


def _stem_url(base_url: str, project: str) -> str:
    """The signed URL of the project's stem of MODEL and TYPE, freshly read."""
    request = urllib.request.Request(
        f"{base_url}/projects/{project}", headers={"Authorization": f"Bearer {API_KEY}"}
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        data = json.load(response)
    for stem in data["stems"]:
        if stem.get("model") == MODEL and stem.get("type") == TYPE:
            return str(stem["url"])
    raise RuntimeError(f"{project} lists no {TYPE} stem of {MODEL}")


def _skipped(reason: str, load: list[float], opts: Options) -> dict[str, Any]:
    document = result_document(
        NAME, title=TITLE, inputs={}, numbers={}, targets=[], load_before=load, quick=opts.quick
    )
    document["skipped"] = reason
    return document
