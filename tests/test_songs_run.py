"""Sweeps of song files against the simulator, in the test's event loop over loopback."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import FAST_POLL, StartSimulator, sweep
from song_files import check_song_tree, song_jobs, write_m4a, write_song

from orchestrator.catalog import model_names
from orchestrator.jobs import Shard
from orchestrator.ledger import Ledger
from orchestrator.lifecycle import Mode, SongStatus
from orchestrator.runner import RunOutcome
from orchestrator.state import StateStore

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("no_retry_waits")]

MODELS = ["demucs", "mdx23c", "bs_roformer"]  # mdx23c comes first in the catalogue


def write_manifest(tmp_path: Path, songs: Any, **sections: Any) -> Path:
    data: dict[str, Any] = {
        "version": 1,
        "name": "songs",
        "output": str(tmp_path / "out"),
        "limits": {"max_in_flight": 4, "per_project": 2, "requests_per_second": 1000},
        "poll": dict(FAST_POLL),
        "retries": {"requests": 6, "tasks": 0},
        "sweeps": [{"songs": songs, "models": MODELS}],
    }
    data.update(sections)
    path = tmp_path / "manifest.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def songs_of(outcome: RunOutcome) -> dict[str, Any]:
    with StateStore.open_reader(outcome.state_path) as store:
        return {song.digest: song for song in Ledger(store).songs()}


async def test_songs_become_projects_whose_other_models_are_re_separations(
    start_simulator: StartSimulator, tmp_path: Path
) -> None:
    """Each distinct song is uploaded and created once, with its first model; its files go to
    its slug folder with a job.json naming the song; a re-run sends nothing again."""
    sim = await start_simulator(seed=3)
    music = tmp_path / "music"
    write_song(music / "First Song.wav", seed=1)
    write_song(music / "second.flac", seed=2)
    write_song(music / "third.mp3", seed=3)
    (music / "first again.wav").write_bytes((music / "First Song.wav").read_bytes())
    outcome = await sweep(sim, write_manifest(tmp_path, "music/"))
    stats = sim.record.snapshot()
    assert outcome.exit_code == 0, outcome.summary["failed"]
    assert outcome.summary["counts"] == {"done": 9}
    assert sorted(stats["uploads_by_digest"].values()) == [1, 1, 1]
    assert sorted(stats["creations_by_digest"].values()) == [1, 1, 1]
    assert stats["upload_puts"] == 3 and stats["duplicate_separations"] == 0
    assert stats["storage_credentials_seen"] == 0
    songs = songs_of(outcome)
    assert {s.status for s in songs.values()} == {SongStatus.CREATED}
    projects = {s.project for s in songs.values()}
    first = next(m for m in model_names() if m in MODELS)
    assert {key.split(":")[1] for key in stats["separations"]} == set(MODELS)
    assert all(stats["separations"][f"{p}:{m}"] == 1 for p in projects for m in MODELS)
    jobs = song_jobs(outcome.output)
    assert {folder for _, folder in jobs} == {"first-song", "second", "third"}
    created = jobs[(first, "first-song")]
    song = next(s for s in songs.values() if s.folder == "first-song")
    assert created["song"] == str(music / "First Song.wav")
    assert created["song_blake3"] == song.digest and created["project"] == song.project
    assert created["key"] == f"ss1:songs:b3.{song.digest}:create:1"
    assert jobs[("demucs", "first-song")]["key"] == f"ss1:songs:{song.project}:demucs:1"
    assert check_song_tree(outcome.output) >= 18
    listed = json.loads((outcome.output / "songs.json").read_text())["songs"]
    assert {(e["path"], e["project"]) for e in listed} == {
        (str(music / "First Song.wav"), song.project),
        (str(music / "first again.wav"), song.project),
        *((s.path, s.project) for s in songs.values() if s.folder != "first-song"),
    }
    assert outcome.summary["songs"]["same_bytes"] == [
        [str(music / "First Song.wav"), str(music / "first again.wav")]
    ]
    assert outcome.summary["credits"]["quoted"] is None  # no ceiling: no quote asked for
    assert stats["quotes"] == 0

    again = await sweep(sim, write_manifest(tmp_path, "music/"))
    after = sim.record.snapshot()
    assert again.exit_code == 0 and again.summary["api_requests"] == 1  # GET /me only
    assert (after["uploads"], after["upload_puts"], after["creations"]) == (3, 3, 3)


async def test_the_token_never_reaches_the_upload_host_through_faults(
    start_simulator: StartSimulator, tmp_path: Path
) -> None:
    """Expired upload URLs, 5xx before and after writes and dropped connections: each song is
    still uploaded and created once, and the storage host never sees the token (a job whose
    stem URLs kept expiring too is downloaded by the next run, never separated again)."""
    sim = await start_simulator(
        seed=11,
        faults={
            "expired_url": 0.3,
            "error_before_write": 0.2,
            "error_after_write": 0.3,
            "drop_connection": 0.1,
        },
    )
    for i in range(4):
        write_song(tmp_path / "music" / f"s{i}.wav", seed=i + 10)
    manifest = write_manifest(tmp_path, "music/", retries={"requests": 30})
    outcome = await sweep(sim, manifest)
    assert set(outcome.summary["counts"]) <= {"done", "download_failed"}
    if outcome.exit_code:
        outcome = await sweep(sim, manifest)
    stats = sim.record.snapshot()
    assert outcome.exit_code == 0, outcome.summary["failed"]
    assert stats["storage_credentials_seen"] == 0
    assert sorted(stats["uploads_by_digest"].values()) == [1] * 4
    assert sorted(stats["creations_by_digest"].values()) == [1] * 4
    assert stats["duplicate_separations"] == 0 and stats["replays"] > 0
    assert stats["fault_opportunities"].get("expired_url", 0) > 0
    assert check_song_tree(outcome.output) >= 24


async def test_a_song_the_api_refuses_fails_alone_and_retry_sends_it_again(
    start_simulator: StartSimulator, tmp_path: Path
) -> None:
    """An m4a the simulator cannot decode (422) fails that song's jobs only; `run` reports it
    again without a request, `retry` uploads it again under the next attempt's key."""
    sim = await start_simulator(seed=4)
    write_m4a(tmp_path / "music" / "aac song.m4a", title="An AAC song")
    write_song(tmp_path / "music" / "fine.wav", seed=4)
    manifest = write_manifest(tmp_path, "music/")
    outcome = await sweep(sim, manifest)
    assert outcome.exit_code == 1
    assert outcome.summary["counts"] == {"done": 3, "failed": 3}
    reasons = {f["reason"] for f in outcome.summary["failed"]}
    assert len(reasons) == 1 and "UNSUPPORTED_MEDIA" in reasons.pop()
    assert sim.record.snapshot()["creations"] == 1
    [failed] = [s for s in songs_of(outcome).values() if s.status is SongStatus.FAILED]
    assert failed.title == "An AAC song" and failed.attempt == 1

    calls = sim.record.snapshot()["requests_total"]
    again = await sweep(sim, manifest)
    assert again.summary["counts"] == {"done": 3, "failed": 3}
    assert sim.record.snapshot()["requests_total"] == calls + 1  # GET /me only
    assert "stemsweep retry" in again.summary["failed"][0]["reason"]

    retried = await sweep(sim, manifest, mode=Mode.RETRY)
    assert retried.summary["counts"] == {"done": 3, "failed": 3}
    [failed] = [s for s in songs_of(retried).values() if s.status is SongStatus.FAILED]
    assert failed.attempt == 2 and failed.upload_key is not None
    assert failed.upload_key.endswith(":upload:2")


async def test_songs_and_projects_side_by_side_in_two_shards(
    start_simulator: StartSimulator, tmp_path: Path
) -> None:
    """Two shards share the songs by digest and the projects by id: every job once, each
    song uploaded and created by one shard only, each shard with its own songs list."""
    sim = await start_simulator(seed=6)
    for i in range(6):
        write_song(tmp_path / "music" / f"song {i}.wav", seed=20 + i)
    manifest = write_manifest(tmp_path, "music/")
    data = yaml.safe_load(manifest.read_text())
    data["sweeps"][0]["projects"] = sim.project_ids[:2]
    data["sweeps"][0]["models"] = ["mdx23c", "demucs"]
    manifest.write_text(yaml.safe_dump(data))
    outcomes = [await sweep(sim, manifest, shard=Shard(i, 2)) for i in range(2)]
    stats = sim.record.snapshot()
    assert all(o.exit_code == 0 for o in outcomes), [o.summary["failed"] for o in outcomes]
    assert sum(o.summary["counts"]["done"] for o in outcomes) == 16
    assert sorted(stats["creations_by_digest"].values()) == [1] * 6
    assert stats["duplicate_separations"] == 0 and stats["separations_total"] == 16
    listed = [
        json.loads((tmp_path / "out" / f"songs-shard-{i}-of-2.json").read_text())["songs"]
        for i in range(2)
    ]
    assert sum(len(x) for x in listed) == 6  # each shard lists its own songs
    assert all(entry["project"] for x in listed for entry in x)
    assert check_song_tree(tmp_path / "out") >= 32
