"""`stemsweep report`: time and peak memory per minute of audio.

Sample trees of the simulator's songs (`orchestrator.report.sample`), each one project
separated by the twelve models, with its true parts under `_references` and the original
mix in every model's folder (as the default download types leave it): one tree of a short
song and one of a long one. `stemsweep report` runs as a subprocess on each (reaped with
`wait4`: its own wall, CPU and peak RSS). Time per minute of audio is the wall time over
the song's minutes; memory per minute of audio is the growth of the peak RSS from the short
song to the long one over the minutes between them: what each further minute of a song
costs, whatever the interpreter and its libraries take to start.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.harness import (
    MODELS,
    ROOT,
    Options,
    load_average,
    result_document,
    run_stemsweep,
    target,
)

NAME = "report"
TITLE = "stemsweep report: time and peak memory per minute of audio"
# Before the report streamed its audio, its peak RSS grew by about 3 MB per second of
# song (180 MB per minute). Bounded means: what a minute adds is small against that.
TARGET_MB_PER_MINUTE = 20.0
TARGET_SECONDS_PER_MINUTE = 60.0  # 12 models measured faster than the song plays


def run(opts: Options) -> dict[str, Any]:
    """Build the report of a short and a long song's tree; time and memory per minute."""
    load = load_average()
    short_s, long_s = (10.0, 30.0) if opts.quick else (60.0, 240.0)
    started = time.monotonic()
    runs: dict[str, Any] = {}
    usages = {}
    for label, seconds in (("short", short_s), ("long", long_s)):
        workdir = opts.workdir / label
        workdir.mkdir(parents=True, exist_ok=True)
        tree = _write_tree(workdir / "out", seconds)
        usage = run_stemsweep(["report", str(tree)], workdir, log_name=f"report-{label}")
        if usage.returncode != 0:
            err = (workdir / f"report-{label}.err").read_text(errors="replace")[-3000:]
            raise RuntimeError(f"stemsweep report exited {usage.returncode}: {err}")
        usages[label] = usage
        runs[label] = {"song_seconds": seconds, **usage.as_dict(), "stems": _stems(tree)}
    minutes = (long_s - short_s) / 60.0
    mb_per_minute = (usages["long"].max_rss_mb - usages["short"].max_rss_mb) / minutes
    seconds_per_minute = usages["long"].wall / (long_s / 60.0)
    cpu_per_minute = usages["long"].cpu / (long_s / 60.0)
    numbers = {
        **runs,
        "peak_rss_mb_per_minute_of_song": round(mb_per_minute, 2),
        "wall_s_per_minute_of_song": round(seconds_per_minute, 2),
        "cpu_s_per_minute_of_song": round(cpu_per_minute, 2),
        "bench_seconds": round(time.monotonic() - started, 1),
    }
    return result_document(
        NAME,
        title=TITLE,
        inputs={
            "models": len(MODELS),
            "projects_per_tree": 1,
            "song_seconds": [short_s, long_s],
            "references": True,
            "original_in_every_model_folder": True,
        },
        numbers=numbers,
        targets=[
            target(
                "peak RSS growth per minute of song (MB)",
                round(mb_per_minute, 1),
                "<=",
                TARGET_MB_PER_MINUTE,
            ),
            target(
                "wall per minute of song, 12 models (s)",
                round(seconds_per_minute, 1),
                "<=",
                TARGET_SECONDS_PER_MINUTE,
            ),
        ],
        load_before=load,
        quick=opts.quick,
        shown=[
            (
                "peak RSS, short and long song",
                f"{usages['short'].max_rss_mb:.0f} MB ({short_s:g} s), "
                f"{usages['long'].max_rss_mb:.0f} MB ({long_s:g} s)",
            ),
            (
                "wall and CPU, long song",
                f"{usages['long'].wall:.1f} s, {usages['long'].cpu:.1f} s CPU",
            ),
        ],
    )


def _write_tree(root: Path, seconds: float) -> Path:
    """A sample tree of one song, written by another process.

    Not in this one: a child's peak RSS starts from its parent's at fork (Linux keeps the
    high-water mark across exec), and synthesizing twelve models' stems of a four-minute
    song takes this process past a gigabyte, which would then count as the report's.
    """
    code = (
        "import sys; from pathlib import Path; "
        "from orchestrator.report.sample import write_sample_tree; "
        "write_sample_tree(Path(sys.argv[1]), projects=('prj_0001',), "
        "seconds=float(sys.argv[2]), original_in_tree=True)"
    )
    subprocess.run([sys.executable, "-c", code, str(root), repr(seconds)], check=True, cwd=ROOT)
    return root


def _stems(tree: Path) -> int:
    """Audio files in the model folders of `tree`."""
    return sum(
        1 for p in tree.glob("*/*/*") if p.suffix in (".wav", ".flac") and p.parts[-3][0] != "_"
    )
