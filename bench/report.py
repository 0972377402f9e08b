"""`stemsweep report`: time and peak memory per minute of audio, and how well its ranking
without references predicts the true ranking.

Cost: sample trees of the simulator's songs (`orchestrator.report.sample`), each one
project separated by the twelve models, with its true parts under `_references` and the
original mix in every model's folder (as the default download types leave it): one tree
of a short song and one of a long one. `stemsweep report` runs as a subprocess on each
(reaped with `wait4`: its own wall, CPU and peak RSS). Time per minute of audio is the
long song's wall time over its minutes; memory per minute of audio is the growth of the
peak RSS from the short song to the long one over the minutes between them: what each
further minute of a song costs, whatever the interpreter and its libraries take to start.

Quality: the demo's catalogue (three songs of 20 s, seed 7, all twelve models), then the
same without the mix in the tree (the consensus is then the plain median of the other
models, not anchored to the mix), then with clones added that fail alike
(`sample.add_shared_failure`). For each, the Spearman and Kendall rank correlations between
the ranking without references and the ranking by SDR against the true parts, per stem type
(`report.json`'s `rank_agreement`).
"""

from __future__ import annotations

import json
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
TITLE = "stemsweep report: time and memory per minute of audio; ranking without references"
# Before the report streamed its audio, its peak RSS grew by about 3 MB per second of
# song (180 MB per minute). Bounded means: what a minute adds is small against that.
TARGET_MB_PER_MINUTE = 20.0
TARGET_SECONDS_PER_MINUTE = 60.0  # 12 models measured faster than the song plays
# On the demo's catalogue, where the simulated models fail independently.
TARGET_SPEARMAN = 0.9
SHARED = (("artefacts", 3), ("leak", 3), ("band", 3), ("artefacts", 5))
TYPES = ("instrumental", "vocals")


def run(opts: Options) -> dict[str, Any]:
    """Time and memory on a short and a long song; rank correlations on the catalogues."""
    load = load_average()
    started = time.monotonic()
    cost, usages, lengths = _cost(opts)
    short, long = usages["short"], usages["long"]
    short_s, long_s = lengths
    mb_per_minute = (long.max_rss_mb - short.max_rss_mb) / ((long_s - short_s) / 60.0)
    seconds_per_minute = long.wall / (long_s / 60.0)
    quality = _quality(opts)
    demo = quality["demo"]
    numbers = {
        **cost,
        "peak_rss_mb_per_minute_of_song": round(mb_per_minute, 2),
        "wall_s_per_minute_of_song": round(seconds_per_minute, 2),
        "cpu_s_per_minute_of_song": round(long.cpu / (long_s / 60.0), 2),
        "rank_correlation": quality,
        "bench_seconds": round(time.monotonic() - started, 1),
    }
    shown = [
        (
            "peak RSS, short and long song",
            f"{short.max_rss_mb:.0f} MB ({short_s:g} s), {long.max_rss_mb:.0f} MB ({long_s:g} s)",
        ),
        ("wall and CPU, long song", f"{long.wall:.1f} s, {long.cpu:.1f} s CPU"),
    ]
    for label, found in quality.items():
        shown.append(
            (
                f"rank correlation without references, {label}",
                ", ".join(
                    f"{t} rho {found[t]['spearman']:.2f} tau {found[t]['kendall']:.2f}"
                    for t in TYPES
                    if t in found
                ),
            )
        )
    return result_document(
        NAME,
        title=TITLE,
        inputs={
            "models": len(MODELS),
            "projects_per_tree": 1,
            "song_seconds": list(lengths),
            "references": True,
            "original_in_every_model_folder": True,
            "quality_catalogue": _catalogue(opts),
            "shared_failures": [f"{failure} x{clones}" for failure, clones in SHARED],
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
            *(
                target(
                    f"Spearman rho without references, demo catalogue, {t}",
                    round(demo[t]["spearman"], 3),
                    ">=",
                    TARGET_SPEARMAN,
                )
                for t in TYPES
            ),
        ],
        load_before=load,
        quick=opts.quick,
        shown=shown,
    )


def _cost(opts: Options) -> tuple[dict[str, Any], dict[str, Any], tuple[float, float]]:
    short_s, long_s = (10.0, 30.0) if opts.quick else (60.0, 240.0)
    runs: dict[str, Any] = {}
    usages = {}
    for label, seconds in (("short", short_s), ("long", long_s)):
        workdir = opts.workdir / label
        workdir.mkdir(parents=True, exist_ok=True)
        tree = _write_tree(workdir / "out", projects=("prj_0001",), seconds=seconds)
        usage = run_stemsweep(["report", str(tree)], workdir, log_name=f"report-{label}")
        if usage.returncode != 0:
            err = (workdir / f"report-{label}.err").read_text(errors="replace")[-3000:]
            raise RuntimeError(f"stemsweep report exited {usage.returncode}: {err}")
        usages[label] = usage
        runs[label] = {"song_seconds": seconds, **usage.as_dict(), "stems": _stems(tree)}
    return runs, usages, (short_s, long_s)


def _catalogue(opts: Options) -> dict[str, Any]:
    if opts.quick:
        return {"projects": ["prj_0001"], "seconds": 6.0, "seed": 7}
    return {"projects": ["prj_0001", "prj_0002", "prj_0003"], "seconds": 20.0, "seed": 7}


def _quality(opts: Options) -> dict[str, dict[str, Any]]:
    """Rank correlations per catalogue: "demo", then "+N clones sharing FAILURE"."""
    catalogue = _catalogue(opts)
    shared = SHARED[:1] if opts.quick else SHARED
    runs: list[tuple[str, str | None, int, bool]] = [
        ("demo", None, 0, True),
        ("demo without the mix (plain median)", None, 0, False),
        *((f"demo + {k} clones sharing {f}", f, k, True) for f, k in shared),
    ]
    found = {}
    for index, (label, failure, clones, mix) in enumerate(runs):
        workdir = opts.workdir / f"quality-{index}"
        tree = _write_tree(
            workdir / "out",
            projects=tuple(catalogue["projects"]),
            seconds=catalogue["seconds"],
            failure=failure,
            clones=clones,
            mix=mix,
        )
        usage = run_stemsweep(["report", str(tree)], workdir, log_name="report")
        if usage.returncode != 0:
            err = (workdir / "report.err").read_text(errors="replace")[-3000:]
            raise RuntimeError(f"stemsweep report exited {usage.returncode}: {err}")
        report = json.loads((tree / "report" / "report.json").read_text())
        found[label] = {a["type"]: a for a in report["rank_agreement"]}
    return found


def _write_tree(
    root: Path,
    *,
    projects: tuple[str, ...],
    seconds: float,
    failure: str | None = None,
    clones: int = 0,
    mix: bool = True,
) -> Path:
    """A sample tree, written by another process (with `clones` failing alike, if any).

    Not in this one: a child's peak RSS starts from its parent's at fork (Linux keeps the
    high-water mark across exec), and synthesizing twelve models' stems of a four-minute
    song takes this process past a gigabyte, which would then count as the report's.
    """
    code = (
        "import sys; from pathlib import Path; "
        "from orchestrator.report.sample import add_shared_failure, write_sample_tree; "
        "root, projects, seconds = Path(sys.argv[1]), tuple(sys.argv[2].split(',')), "
        "float(sys.argv[3]); "
        "write_sample_tree(root, projects=projects, seconds=seconds, "
        "original_in_tree=sys.argv[6] == 'mix'); "
        "int(sys.argv[5]) and add_shared_failure(root, failure=sys.argv[4], "
        "clones=int(sys.argv[5]), projects=projects, seconds=seconds); "
        # Without the mix: none in the model folders, nor among the true parts.
        "sys.argv[6] == 'mix' or [p.unlink() for p in root.glob('_references/*/original.*')]"
    )
    args = [str(root), ",".join(projects), repr(seconds), failure or "-", str(clones)]
    args.append("mix" if mix else "no-mix")
    subprocess.run([sys.executable, "-c", code, *args], check=True, cwd=ROOT)
    return root


def _stems(tree: Path) -> int:
    """Audio files in the model folders of `tree`."""
    return sum(
        1 for p in tree.glob("*/*/*") if p.suffix in (".wav", ".flac") and p.parts[-3][0] != "_"
    )
