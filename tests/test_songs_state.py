"""Songs across a lost state, a re-sharded tree and a creation whose answer was lost past the
API's memory of keys: no song is made into a second project, none is forgotten.

The simulator forgets a key `idempotency_key_ttl` simulated seconds after its first use (100
s, a tenth of a real second here): past that, a key sent again creates and charges anew, so
every test below would see a second project if a song were created again.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio
import pytest
import yaml
from click.testing import CliRunner
from conftest import FAST_POLL, StartSimulator, sweep
from song_files import check_song_tree, write_song

from orchestrator.cli import cli
from orchestrator.jobs import JobId, Shard
from orchestrator.ledger import Ledger, SongRecord
from orchestrator.lifecycle import Mode, SongStatus
from orchestrator.simulator.server import Simulator
from orchestrator.state import StateStore

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("no_retry_waits")]

MODELS = ["demucs", "mdx23c"]  # mdx23c, first in the catalogue, creates each project
FORGETS = {"idempotency_key_ttl": 100.0}  # simulated seconds: 0.1 s of real time


def write_manifest(tmp_path: Path, **sections: Any) -> Path:
    data: dict[str, Any] = {
        "version": 1,
        "name": "songs",
        "output": str(tmp_path / "out"),
        "limits": {"max_in_flight": 4, "per_project": 2, "requests_per_second": 1000},
        "poll": dict(FAST_POLL),
        "retries": {"requests": 6, "tasks": 0},
        "idempotency_window": "0.05s",
        "sweeps": [{"songs": "music/", "models": MODELS}],
    }
    data["limits"].update(sections.pop("limits", {}))
    data.update(sections)
    path = tmp_path / "manifest.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def write_songs(tmp_path: Path, count: int, *, first: int = 0) -> None:
    for i in range(first, first + count):
        write_song(tmp_path / "music" / f"song {i}.wav", seed=60 + i)


def songs_in(state: Path) -> dict[str, SongRecord]:
    with StateStore.open_reader(state) as store:
        return {song.digest: song for song in Ledger(store).songs()}


def reserved_in(state: Path) -> int:
    with StateStore.open_reader(state) as store:
        return Ledger(store).reserved()


def made(sim: Simulator) -> tuple[int, int, int, int]:
    """Uploads, creations, separations and credits charged so far."""
    stats = sim.record.snapshot()
    names = ("uploads", "creations", "separations_total", "credits_charged")
    return tuple(stats[name] for name in names)  # type: ignore[return-value]


def emptied(state: Path) -> None:
    state.write_bytes(b"")


def never_rebuilt(state: Path) -> None:
    """A store created, then its run killed before the rebuild committed: no job in it."""
    for path in state.parent.glob(state.name + "*"):
        path.unlink()
    with StateStore.open_writer(state):
        pass


@pytest.mark.parametrize("lose", [emptied, never_rebuilt])
async def test_a_lost_state_of_songs_is_rebuilt_and_no_song_is_made_again(
    start_simulator: StartSimulator, tmp_path: Path, lose: Any
) -> None:
    """A tree of songs whose state was emptied (or whose rebuild never committed): the next
    run, past the API's memory of keys, rebuilds every song (project, creation key, folder)
    from the job.json files and sends nothing but GET /me: no upload, no second project, no
    separation."""
    sim = await start_simulator(seed=51, **FORGETS)
    write_songs(tmp_path, 3)
    manifest = write_manifest(tmp_path)
    first = await sweep(sim, manifest)
    assert first.exit_code == 0, first.summary["failed"]
    before, recorded = made(sim), songs_in(first.state_path)
    lose(first.state_path)
    await anyio.sleep(0.2)  # the simulator forgets every key
    if lose is emptied:  # `plan` reads the tree as the run will rebuild it, songs included
        plan = CliRunner().invoke(cli, ["plan", str(manifest)])
        assert plan.exit_code == 0, plan.output
        assert "with 6 job(s) and 3 song(s) from the tree's job.json files" in plan.output
        assert "jobs:     6: skip_done 6" in plan.output

    again = await sweep(sim, manifest)
    assert again.exit_code == 0, again.summary["failed"]
    assert made(sim) == before and again.summary["api_requests"] == 1
    assert again.summary["state_rebuilt"]["jobs_from_job_json"] == 6
    rebuilt = songs_in(again.state_path)
    assert set(rebuilt) == set(recorded)
    for digest, song in rebuilt.items():
        was = recorded[digest]
        assert song.status is SongStatus.CREATED
        assert (song.project, song.folder, song.path) == (was.project, was.folder, was.path)
        assert (song.create_key, song.split_model, song.task_id) == (
            was.create_key,
            was.split_model,
            was.task_id,
        )
    listed = json.loads((again.output / "songs.json").read_text())["songs"]
    assert {(e["title"], e["project"]) for e in listed} == {
        (s.title, s.project) for s in recorded.values()
    }
    assert check_song_tree(again.output) >= 12


async def test_a_song_rebuilt_without_its_creation_is_not_separated_again_unasked(
    start_simulator: StartSimulator, tmp_path: Path
) -> None:
    """A lost state, and the job.json of a song's creation missing while another of its jobs
    left one: the song is its project again, and its first model, which may be the creation
    already charged, is not separated again until `retry --resend PROJECT:MODEL` names it."""
    sim = await start_simulator(seed=56, **FORGETS)
    write_songs(tmp_path, 1)
    manifest = write_manifest(tmp_path)
    first = await sweep(sim, manifest)
    assert first.exit_code == 0, first.summary["failed"]
    [song] = songs_in(first.state_path).values()
    (first.output / "mdx23c" / song.folder / "job.json").unlink()
    first.state_path.write_bytes(b"")
    await anyio.sleep(0.2)
    before = made(sim)

    for mode in (Mode.RUN, Mode.RETRY):
        outcome = await sweep(sim, manifest, mode=mode)
        assert made(sim) == before
        [failure] = outcome.summary["failed"]
        assert (failure["status"], failure["model"]) == ("needs_attention", "mdx23c")
        assert f"--resend {song.project}:mdx23c" in failure["reason"]
    [rebuilt] = songs_in(outcome.state_path).values()
    assert (rebuilt.project, rebuilt.create_key) == (song.project, None)

    resent = await sweep(
        sim, manifest, mode=Mode.RETRY, resend=lambda job: job == JobId(song.project, "mdx23c")
    )
    assert resent.exit_code == 0, resent.summary["failed"]
    assert made(sim)[1:3] == (before[1], before[2] + 1)  # no creation; one separation


async def test_a_rebuilt_tree_counts_what_it_spent_under_the_ceiling(
    start_simulator: StartSimulator, tmp_path: Path
) -> None:
    """Reservations cannot be rebuilt from job.json: the jobs restored from them are priced
    again before any submission and counted, so a ceiling the first run filled lets no new
    song through after the state was lost."""
    sim = await start_simulator(seed=52, **FORGETS)
    write_songs(tmp_path, 2)
    ceiling = 4  # two songs of 2 seconds, two models: 1 credit each
    manifest = write_manifest(tmp_path, limits={"max_credits": ceiling})
    first = await sweep(sim, manifest)
    assert first.exit_code == 0, first.summary["failed"]
    assert reserved_in(first.state_path) == ceiling
    first.state_path.write_bytes(b"")  # lost, reservations with it
    write_songs(tmp_path, 1, first=2)  # a new song, which the ceiling has no room for
    before = made(sim)

    again = await sweep(sim, manifest)
    assert made(sim) == before  # nothing uploaded, created or separated
    assert again.exit_code == 1
    assert {f["status"] for f in again.summary["failed"]} == {"not_started"}
    assert again.summary["counts"] == {"done": 4, "not_started": 2}
    assert again.summary["credits"]["reserved"] == ceiling
    assert reserved_in(again.state_path) == ceiling
    assert sim.record.snapshot()["credits_charged"] == ceiling


async def test_resharding_a_tree_of_songs_adopts_them_and_makes_nothing_again(
    start_simulator: StartSimulator, tmp_path: Path
) -> None:
    """Songs made into projects and separated by a run of the whole tree, whose files it
    could not fetch; then two shards, past the API's memory of keys: each shard adopts its
    songs (by digest) with their jobs (by their song's shard) and reservations, and fetches
    the files without uploading, creating or separating anything again."""
    sim = await start_simulator(seed=53, **FORGETS)
    write_songs(tmp_path, 6)
    manifest = write_manifest(
        tmp_path,
        limits={"max_credits": 1000},
        retries={"requests": 2, "tasks": 0},
    )
    profile = sim.context.profile
    sim.context.profile = profile.replace(faults=profile.faults.replace(truncate_body=1.0))
    first = await sweep(sim, manifest)
    sim.context.profile = profile
    assert first.summary["counts"] == {"download_failed": 12}  # no job.json to rebuild from
    before, recorded = made(sim), songs_in(first.state_path)
    total = reserved_in(first.state_path)
    assert len(recorded) == 6 and total == 12
    await anyio.sleep(0.2)

    shards = [await sweep(sim, manifest, shard=Shard(i, 2)) for i in range(2)]
    assert [s.exit_code for s in shards] == [0, 0], [s.summary["failed"] for s in shards]
    assert made(sim) == before
    assert sum(s.summary["counts"]["done"] for s in shards) == 12
    adopted = [songs_in(s.state_path) for s in shards]
    assert sorted(d for songs in adopted for d in songs) == sorted(recorded)
    for index, songs in enumerate(adopted):
        assert songs and all(Shard(index, 2).has_song(d) for d in songs)
        assert all(s == recorded[d] for d, s in songs.items())
    assert sum(reserved_in(s.state_path) for s in shards) == total
    assert check_song_tree(tmp_path / "out") >= 24


async def test_a_creation_whose_answer_was_lost_past_the_window_waits_for_the_user(
    start_simulator: StartSimulator, tmp_path: Path
) -> None:
    """A creation applied while its answer was lost, resumed past idempotency_window: no
    endpoint lists projects, so nothing is sent; the song needs attention, with what to
    check and the command that re-sends its key, which `retry --resend` then does."""
    sim = await start_simulator(seed=54, **FORGETS)
    write_songs(tmp_path, 1)
    manifest = write_manifest(tmp_path, retries={"requests": 1, "tasks": 0})
    sim.context.world.balance = 0  # uploaded, then refused for credits: `uploaded`
    refused = await sweep(sim, manifest)
    assert refused.summary["counts"] == {"not_started": 2}
    sim.context.world.balance = 1000
    profile = sim.context.profile
    sim.context.profile = profile.replace(faults=profile.faults.replace(error_after_write=1.0))
    lost = await sweep(sim, manifest)  # the project is created, its answer lost
    sim.context.profile = profile
    [song] = songs_in(lost.state_path).values()
    assert song.status is SongStatus.CREATING and sim.record.snapshot()["creations"] == 1
    await anyio.sleep(0.2)  # past the window, and past the simulator's memory of the key

    for mode in (Mode.RUN, Mode.RETRY):
        outcome = await sweep(sim, manifest, mode=mode)
        assert outcome.exit_code == 1
        assert sim.record.snapshot()["creations"] == 1  # nothing sent
        statuses = {f["status"] for f in outcome.summary["failed"]}
        assert statuses == {"needs_attention"}
        reason = outcome.summary["failed"][0]["reason"]
        assert "past idempotency_window" in reason
        assert f"--resend {song.folder}:mdx23c" in reason
    [song] = songs_in(outcome.state_path).values()
    assert song.status is SongStatus.NEEDS_ATTENTION

    resent = await sweep(
        sim, manifest, mode=Mode.RETRY, resend=lambda job: job == JobId(song.folder, "mdx23c")
    )
    assert resent.exit_code == 0, resent.summary["failed"]
    assert sim.record.snapshot()["creations"] == 2  # the user's decision
    [song] = songs_in(resent.state_path).values()
    assert song.status is SongStatus.CREATED


async def test_within_the_window_a_lost_creation_is_sent_again_with_its_key(
    start_simulator: StartSimulator, tmp_path: Path
) -> None:
    """Within idempotency_window the creation's key is sent again: the API answers with the
    project the lost POST made, and the song is made once."""
    sim = await start_simulator(seed=55)
    write_songs(tmp_path, 1)
    manifest = write_manifest(tmp_path, retries={"requests": 1, "tasks": 0})
    manifest.write_text(manifest.read_text().replace("0.05s", "1h"))
    sim.context.world.balance = 0
    await sweep(sim, manifest)
    sim.context.world.balance = 1000
    profile = sim.context.profile
    sim.context.profile = profile.replace(faults=profile.faults.replace(error_after_write=1.0))
    await sweep(sim, manifest)
    sim.context.profile = profile
    again = await sweep(sim, manifest)
    assert again.exit_code == 0, again.summary["failed"]
    stats = sim.record.snapshot()
    assert stats["creations"] == 1 and stats["replays"] >= 1


def test_a_songs_table_older_than_key_at_is_read_adopted_and_upgraded(tmp_path: Path) -> None:
    """A store whose songs table has no `key_at` reads it as unknown (so a lost creation
    counts as past the window), is adopted by another split, and a writer adds the column."""
    import sqlite3

    from orchestrator.state_merge import adopt

    old, digest = tmp_path / "state.db", "ab" * 32
    with StateStore.open_writer(old) as store:
        Ledger(store).commit_upload_key(
            digest, path="a.wav", title="A song", folder="a", attempt=1, key="ss1:s:b3.x:upload:1"
        )
    conn = sqlite3.connect(old)
    conn.execute("ALTER TABLE songs DROP COLUMN key_at")
    conn.close()
    with StateStore.open_reader(old) as reader:
        song = Ledger(reader).song(digest)
        assert song is not None and song.key_at is None and song.updated_at
    with StateStore.open_writer(tmp_path / "state-shard-0-of-1.db") as shard:
        adopt(shard, old, lambda _: True)
        adopted = Ledger(shard).song(digest)
        assert adopted is not None and adopted.key_at is None and adopted.title == "A song"
    with StateStore.open_writer(old) as store:
        ledger = Ledger(store)
        ledger.commit_create_key(digest, key="ss1:s:b3.x:create:1", model="mdx23c")
        created = ledger.song(digest)
        assert created is not None and created.key_at is not None


def test_a_store_from_before_songs_is_adopted_for_its_jobs(tmp_path: Path) -> None:
    """Another split's store without the songs tables (written before songs) gives its jobs,
    and no error."""
    from orchestrator.state_merge import adopt

    old = tmp_path / "state.db"
    with StateStore.open_writer(old) as store:  # the store alone: no ledger's tables
        store.commit_key(
            "prj_a", "mdx23c", attempt=1, key="ss1:s:prj_a:mdx23c:1", known_stem_ids=[]
        )
    with StateStore.open_writer(tmp_path / "state-shard-0-of-2.db") as shard:
        assert adopt(shard, old, lambda _: True) == 1
        assert list(Ledger(shard).songs()) == [] and Ledger(shard).reserved() == 0
