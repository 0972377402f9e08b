"""`stemsweep run` of songs killed with SIGKILL while it uploads and creates, then run again."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import quick_profile
from song_files import check_song_tree, song_jobs, write_song

from orchestrator.ledger import Ledger
from orchestrator.lifecycle import SongStatus
from orchestrator.simulator.server import SimulatorThread
from orchestrator.state import StateStore

pytestmark = pytest.mark.slow

SONGS = 10  # and one more file with the bytes of the first
# Some writes lose their answer: the client waits about a second and sends the same key
# again, so many kills fall between a write and its confirmation.
LOST_ANSWERS = {"error_after_write": 0.3}


def start(manifest: Path, sim: SimulatorThread) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("YOUKA_")}
    env.update(YOUKA_API_KEY=sim.api_key, YOUKA_API_URL=sim.base_url)
    return subprocess.Popen(
        [sys.executable, "-m", "orchestrator", "run", str(manifest), "--no-progress"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def song_statuses(state: Path) -> list[SongStatus]:
    if not state.exists():
        return []
    with StateStore.open_reader(state) as store:
        return [song.status for song in Ledger(store).songs()]


def write_manifest(tmp_path: Path, **limits: Any) -> Path:
    music = tmp_path / "music"
    for i in range(SONGS):
        write_song(music / f"track {i:02d}.wav", seed=100 + i)
    (music / "track 00 again.wav").write_bytes((music / "track 00.wav").read_bytes())
    data = {
        "version": 1,
        "name": "crash",
        "output": str(tmp_path / "out"),
        # Paced, and one creation at a time, so that uploads and creations span many instants.
        "limits": {
            "max_in_flight": 3,
            "per_project": 1,
            "per_model": {"mdx23c": 1},
            "requests_per_second": 40,
            **limits,
        },
        "poll": {"initial": "0.02s", "max": "0.1s", "timeout": "60s"},
        "retries": {"requests": 10, "tasks": 0},
        "sweeps": [{"songs": "music/", "models": ["mdx23c", "uvr_mdxnet_kara_2"]}],
    }
    path = tmp_path / "manifest.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def kill_while_songs_are_made(
    manifest: Path, sim: SimulatorThread, state: Path, rng: random.Random, wanted: int
) -> tuple[int, list[list[SongStatus]]]:
    """SIGKILL runs at random instants until `wanted` kills landed while some song was not a
    project yet; (those kills, the song statuses recorded at each)."""
    kills, seen = 0, []
    for _ in range(3 * wanted):
        if kills >= wanted:
            break
        process = start(manifest, sim)
        time.sleep(rng.uniform(0.6, 1.6))  # start-up takes about 0.6 s
        process.send_signal(signal.SIGKILL)
        process.communicate(timeout=30)
        statuses = song_statuses(state)
        if len(statuses) < SONGS or set(statuses) != {SongStatus.CREATED}:
            kills += 1
            seen.append(statuses)
    return kills, seen


def test_kill_9_during_uploads_and_creations_makes_each_song_once(tmp_path: Path) -> None:
    """At least 10 kills while songs are uploaded and created, then a run to the end: one
    upload and one project per distinct song, no (project, model) separated twice, every
    file whole, and the token never sent to the storage host."""
    manifest = write_manifest(tmp_path)
    state = tmp_path / "out" / ".stemsweep" / "state.db"
    with SimulatorThread(quick_profile(faults=LOST_ANSWERS), seed=41, time_scale=60) as sim:
        kills, seen = kill_while_songs_are_made(manifest, sim, state, random.Random(99), 10)
        final = start(manifest, sim)
        _, stderr = final.communicate(timeout=120)
        stats = sim.stats()
    assert final.returncode == 0, stderr.decode()[-3000:]
    assert kills >= 10
    made = [statuses.count(SongStatus.CREATED) for statuses in seen]
    midway = sum(any(s is not SongStatus.CREATED for s in statuses) for statuses in seen)
    assert len(set(made)) >= 3  # the kills fell all along the songs' making...
    assert midway >= 3  # ...and some between an upload's or a creation's key and its answer
    assert len(stats["uploads_by_digest"]) == SONGS
    assert set(stats["uploads_by_digest"].values()) == {1}
    assert set(stats["creations_by_digest"].values()) == {1}
    assert len(stats["creations_by_digest"]) == SONGS
    assert stats["duplicate_separations"] == 0 and stats["separations_total"] == 2 * SONGS
    assert stats["storage_credentials_seen"] == 0
    assert len(song_jobs(tmp_path / "out")) == 2 * SONGS
    assert check_song_tree(tmp_path / "out") >= 4 * SONGS
    assert not list((tmp_path / "out").rglob(".stemsweep-partial-*"))
    print(  # the numbers worth quoting
        f"kills={kills} created_at_each_kill={made} a_song_mid_upload_or_creation={midway} "
        f"uploads={stats['uploads']} "
        f"upload_puts={stats['upload_puts']} creations={stats['creations']} "
        f"replays={stats['replays']}"
    )


def test_the_ceiling_holds_across_a_kill(tmp_path: Path) -> None:
    """A run under max_credits killed in the middle, then run to its end: what was charged
    never passes the ceiling, counting what the killed run reserved."""
    manifest = write_manifest(tmp_path, max_credits=8)
    state = tmp_path / "out" / ".stemsweep" / "state.db"
    with SimulatorThread(quick_profile(faults=LOST_ANSWERS), seed=42, time_scale=60) as sim:
        kills, _ = kill_while_songs_are_made(manifest, sim, state, random.Random(7), 2)
        final = start(manifest, sim)
        stdout, stderr = final.communicate(timeout=120)
        stats = sim.stats()
    assert kills == 2
    assert final.returncode == 1, stderr.decode()[-3000:]
    assert stats["credits_charged"] <= 8
    assert b"not_started" in stdout and b"budget" in stdout
    with StateStore.open_reader(state) as store:
        assert Ledger(store).reserved() <= 8
