"""Songs from files: songs per minute through upload and creation, client CPU per MiB sent.

64 WAV files of 8 MiB (512 MiB: about 48 s of CD audio each) are a sweep's `songs`, with one
model: each is digested (BLAKE3), announced, PUT to its signed URL on the simulator's
storage host, and created; the creation's task (one simulated minute, 0.1 s real) is polled
to its end. No stem is downloaded (`download.types: [original]`, which a model's stems never
are), so the run is the songs' way into projects, and the simulator never has to separate
them. 16 in flight, no pacing. Songs per minute are over the whole run's wall time
(start-up, digests, the key check and polls included).

CPU per MiB is what the bytes cost: the client's CPU for the run less that of the same 64
songs as files of 9 KiB (0.05 s), against a second simulator, over the difference in MiB
sent. It covers hashing each file once and sending it (`sendfile` from a worker thread).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import soundfile
import yaml

from bench.harness import (
    Options,
    Usage,
    load_average,
    result_document,
    run_stemsweep,
    scaled_poll,
    simulator,
    summary_of,
    target,
)
from orchestrator.simulator.profile import load_profile

NAME = "songs"
TITLE = "Songs from files: upload and creation per minute, client CPU per MiB sent"
TARGET_CPU_MS_PER_MIB = 2.0
RATE = 44100
SONG_MIB = 8.0
SMALL_SECONDS = 0.05
TIME_SCALE = 600.0


def run(opts: Options) -> dict[str, Any]:
    """Two sweeps of songs, large files then tiny ones; their rate and CPU per MiB."""
    load = load_average()
    count, mib = (8, 1.0) if opts.quick else (64, SONG_MIB)
    seconds = mib * 2**20 / (RATE * 4)  # 16-bit stereo
    started = time.monotonic()
    large = _sweep(opts.workdir / "large", count, seconds)
    small = _sweep(opts.workdir / "small", count, SMALL_SECONDS)
    sent = (large["bytes"] - small["bytes"]) / 2**20
    cpu_ms = (large["usage"].cpu - small["usage"].cpu) * 1000 / sent
    per_minute = count / large["usage"].wall * 60
    numbers = {
        "songs": count,
        "mib_per_song": round(large["bytes"] / count / 2**20, 2),
        "mib_sent": round(large["bytes"] / 2**20, 1),
        "client": large["usage"].as_dict(),
        "client_tiny_songs": small["usage"].as_dict(),
        "songs_per_minute": round(per_minute, 1),
        "songs_per_minute_tiny": round(count / small["usage"].wall * 60, 1),
        "cpu_ms_per_mib": round(cpu_ms, 3),
        "cpu_ms_per_mib_whole_run": round(large["usage"].cpu * 1000 / (large["bytes"] / 2**20), 3),
        "uploads": large["stats"]["uploads"],
        "upload_puts": large["stats"]["upload_puts"],
        "creations": large["stats"]["creations"],
        "storage_credentials_seen": large["stats"]["storage_credentials_seen"],
        "simulator": large["simulator"].as_dict(),
        "bench_seconds": round(time.monotonic() - started, 1),
    }
    return result_document(
        NAME,
        title=TITLE,
        inputs={
            "songs": count,
            "mib_per_song": mib,
            "format": "wav",
            "models": 1,
            "max_in_flight": 16,
            "task_simulated_s": 60,
            "time_scale": TIME_SCALE,
        },
        numbers=numbers,
        targets=[
            target(
                "client CPU per MiB uploaded (ms)", round(cpu_ms, 3), "<=", TARGET_CPU_MS_PER_MIB
            )
        ],
        load_before=load,
        quick=opts.quick,
        shown=[
            (
                "songs per minute, upload + creation",
                f"{per_minute:.0f} ({count} songs of {mib:g} MiB in {large['usage'].wall:.1f} s; "
                f"{numbers['songs_per_minute_tiny']:.0f} for songs of 9 KiB)",
            ),
            (
                "client CPU per MiB, whole run",
                f"{numbers['cpu_ms_per_mib_whole_run']:.2f} ms (start-up and bookkeeping included)",
            ),
        ],
    )


def _sweep(workdir: Path, count: int, seconds: float) -> dict[str, Any]:
    """Write `count` WAV songs of `seconds` and run one sweep of them against a simulator."""
    music = workdir / "music"
    music.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(7)
    frames = round(seconds * RATE)
    total = 0
    for i in range(count):
        noise = rng.integers(-8000, 8000, size=(frames, 2), dtype=np.int16)
        path = music / f"song {i:03d}.wav"
        soundfile.write(path, noise, RATE, subtype="PCM_16")
        total += path.stat().st_size
    with simulator(load_profile("bench"), workdir, time_scale=TIME_SCALE) as sim:
        manifest = workdir / "manifest.yaml"
        manifest.write_text(
            yaml.safe_dump(
                {
                    "version": 1,
                    "name": "bench-songs",
                    "api": {"base_url": sim.base_url},
                    "output": str(workdir / "out"),
                    "limits": {
                        "max_in_flight": 16,
                        "per_project": 1,
                        "requests_per_second": 10_000.0,
                    },
                    "poll": scaled_poll(TIME_SCALE),
                    "retries": {"requests": 6, "tasks": 0},
                    "download": {"types": ["original"]},
                    "sweeps": [{"songs": str(music), "models": ["mdx23c"]}],
                }
            ),
            encoding="utf-8",
        )
        usage: Usage = run_stemsweep(["run", str(manifest), "--no-progress"], workdir)
        if usage.returncode != 0:
            err = (workdir / "stemsweep.err").read_text(errors="replace")[-3000:]
            raise RuntimeError(f"stemsweep run exited {usage.returncode}: {err}")
        stats = sim.get("/_sim/stats")
        sim_usage = sim.stop()
    summary = summary_of(workdir / "out")
    if summary["counts"] != {"done": count}:
        raise RuntimeError(f"not every song was made into a project: {summary['counts']}")
    return {"usage": usage, "bytes": total, "stats": stats, "simulator": sim_usage}
