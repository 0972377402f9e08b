"""What a run may spend: the ceiling `limits.max_credits`, too few credits, and quotes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from conftest import StartSimulator, WriteManifest, sweep
from song_files import write_song

from orchestrator.cli import cli
from orchestrator.ledger import Ledger
from orchestrator.lifecycle import Status
from orchestrator.runner import RunOutcome
from orchestrator.state import StateStore

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("no_retry_waits")]

# With two-second songs: 1 credit each, 2 for the AudioShake models.
MODELS = ["mdx23c", "audioshakeai", "demucs", "bs_roformer"]


def reserved(outcome: RunOutcome) -> int:
    with StateStore.open_reader(outcome.state_path) as store:
        return Ledger(store).reserved()


async def test_the_ceiling_holds_with_many_in_flight_and_retries(
    start_simulator: StartSimulator, write_manifest: WriteManifest
) -> None:
    """40 jobs, 12 in flight, lost answers and failed separations re-submitted: the credits
    charged never pass max_credits, the rest is not_started for the budget, exit 1."""
    sim = await start_simulator(seed=8, faults={"error_after_write": 0.3, "task_failure": 0.25})
    manifest = write_manifest(
        projects=sim.project_ids[:8],
        models=MODELS,
        limits={
            "max_in_flight": 12,
            "per_project": 4,
            "requests_per_second": 1000,
            "max_credits": 25,
        },
        retries={"requests": 20, "tasks": 2},
    )
    outcome = await sweep(sim, manifest)
    stats = sim.record.snapshot()
    credits = outcome.summary["credits"]
    assert stats["credits_charged"] <= 25
    assert reserved(outcome) <= 25 and credits["reserved"] == reserved(outcome)
    assert stats["credits_charged"] <= credits["reserved"]  # every charge was reserved first
    assert credits["left"] == 25 - credits["reserved"] and credits["ceiling"] == 25
    assert stats["replays"] > 0  # lost answers were re-sent with their keys
    not_started = [f for f in outcome.summary["failed"] if f["status"] == "not_started"]
    assert not_started and all(f["reason"].startswith("budget: ") for f in not_started)
    assert outcome.exit_code == 1 and "max_credits 25" in credits["stopped_by"]
    assert stats["quotes"] <= len(MODELS)  # one per model and duration: songs of 2 s
    assert credits["quoted"] >= credits["submitted"] >= stats["credits_charged"]

    again = await sweep(sim, manifest)  # the ceiling counts what earlier runs reserved
    assert sim.record.snapshot()["credits_charged"] <= 25
    assert again.summary["credits"]["reserved"] <= 25


@pytest.mark.parametrize("refusal", [402, 403])
async def test_too_few_credits_mid_run_stops_every_submission(
    start_simulator: StartSimulator, write_manifest: WriteManifest, refusal: int
) -> None:
    """The account runs dry (402, or 403 INSUFFICIENT_CREDITS): no retry storm, no further
    submission; the rest is not_started; with credits added, the next run finishes the
    sweep under new keys for the refused jobs, separating nothing twice."""
    sim = await start_simulator(seed=9, credits=6, insufficient_credits_status=refusal)
    manifest = write_manifest(
        projects=sim.project_ids[:5],
        models=MODELS[2:] + MODELS[:1],
        limits={"max_in_flight": 3, "per_project": 3, "requests_per_second": 1000},
    )
    outcome = await sweep(sim, manifest)
    stats = sim.record.snapshot()
    assert stats["credits_charged"] == 6 and stats["separations_total"] == 6
    assert 1 <= stats["insufficient_credits_refusals"] <= 3  # those in the air at that moment
    counts = outcome.summary["counts"]
    assert counts["done"] == 6 and counts["not_started"] == 9
    assert outcome.exit_code == 1
    assert "INSUFFICIENT_CREDITS" in outcome.summary["credits"]["stopped_by"]
    submits = sum(n for r, n in stats["by_route"].items() if r.endswith("/stem-separation"))
    assert submits == 6 + stats["insufficient_credits_refusals"]  # never retried
    with StateStore.open_reader(outcome.state_path) as store:
        refused = [r for r in store.iter_jobs() if r.status is Status.PENDING]
    assert len(refused) == stats["insufficient_credits_refusals"]
    assert all(r.attempt == 2 and r.key is None for r in refused)

    sim.context.world.balance += 100
    finished = await sweep(sim, manifest)
    after = sim.record.snapshot()
    assert finished.exit_code == 0, finished.summary["failed"]
    assert after["separations_total"] == 15 and after["duplicate_separations"] == 0
    with StateStore.open_reader(finished.state_path) as store:
        keys = {r.key for r in store.iter_jobs()}
    assert sum(key.endswith(":2") for key in keys if key) == len(refused)


async def test_a_song_creation_is_reserved_and_refused_like_a_separation(
    start_simulator: StartSimulator, tmp_path: Path, write_manifest: WriteManifest
) -> None:
    """Songs under a ceiling: each creation is priced from the file's duration and reserved;
    past the ceiling a song is neither uploaded nor created."""
    sim = await start_simulator(seed=12)
    for i in range(4):
        write_song(tmp_path / "music" / f"s{i}.wav", seed=30 + i)
    manifest = write_manifest(
        projects=[],
        models=["mdx23c"],
        limits={
            "max_in_flight": 1,
            "per_project": 1,
            "requests_per_second": 1000,
            "max_credits": 2,
        },
        sweeps=[{"songs": "music/", "models": ["mdx23c"]}],
    )
    outcome = await sweep(sim, manifest)
    stats = sim.record.snapshot()
    assert (stats["creations"], stats["uploads"], stats["credits_charged"]) == (2, 2, 2)
    assert outcome.summary["counts"] == {"done": 2, "not_started": 2}
    assert outcome.summary["credits"]["submitted"] == 2


async def test_plan_quote_prices_every_job_still_to_submit(
    start_simulator: StartSimulator, tmp_path: Path, write_manifest: WriteManifest
) -> None:
    """`plan --quote` prices songs by their file's duration and projects by their original
    stem, one quote per model and duration, and shows the balance; without it, no request."""
    sim = await start_simulator(seed=13)
    write_song(tmp_path / "music" / "one.wav", seed=40)
    manifest = write_manifest(
        projects=[],
        models=["mdx23c"],
        sweeps=[
            {"songs": "music/", "models": ["mdx23c", "audioshakeai"]},
            {"projects": sim.project_ids[:3], "models": ["demucs"]},
        ],
    )
    env = {"YOUKA_API_KEY": sim.api_key, "YOUKA_API_URL": sim.base_url}
    runner = CliRunner()
    before = sim.record.snapshot()["requests_total"]
    offline = await _invoke(runner, ["plan", str(manifest)], env)
    assert offline.exit_code == 0, offline.output
    assert sim.record.snapshot()["requests_total"] == before
    assert "create" in offline.output and "(one)" in offline.output
    priced = await _invoke(runner, ["plan", str(manifest), "--quote"], env)
    assert priced.exit_code == 0, priced.output
    stats = sim.record.snapshot()
    lines = {line.split()[0]: line.split()[1:] for line in priced.output.splitlines() if line}
    assert lines["mdx23c"] == ["1", "1"] and lines["audioshakeai"] == ["1", "2"]
    assert lines["demucs"] == ["3", "3"] and lines["total"] == ["5", "6"]
    assert "available balance: 1000000 credits" in priced.output
    assert stats["quotes"] == 3  # demucs' three projects have one duration
    assert stats["credits_charged"] == 0 and stats["uploads"] == 0


async def _invoke(runner: CliRunner, args: list[str], env: dict[str, str]) -> Any:
    import anyio

    return await anyio.to_thread.run_sync(lambda: runner.invoke(cli, args, env=env))


async def test_a_rebuilt_tree_of_projects_counts_what_it_spent(
    start_simulator: StartSimulator, write_manifest: WriteManifest
) -> None:
    """A lost state under a ceiling, whose job.json files hold no `original` stem: each
    restored job is priced again from its project's song (one read per project) and counted
    before anything is sent, so the ceiling the first run filled lets no new job through."""
    sim = await start_simulator(seed=9)
    limits = {"requests_per_second": 1000, "per_project": 2, "max_credits": 4}
    first_two = write_manifest(
        projects=sim.project_ids[:2],
        models=["mdx23c", "demucs"],
        limits=limits,
        download={"types": ["vocals"]},
    )
    first = await sweep(sim, first_two)
    assert first.exit_code == 0 and reserved(first) == 4
    first.state_path.write_bytes(b"")
    reads = sim.record.snapshot()["by_route"]["GET /api/v1/projects/{projectId}"]

    three = write_manifest(
        projects=sim.project_ids[:3],
        models=["mdx23c", "demucs"],
        limits=limits,
        download={"types": ["vocals"]},
    )
    again = await sweep(sim, three)
    stats = sim.record.snapshot()
    assert stats["credits_charged"] == 4 and stats["separations_total"] == 4
    assert again.summary["counts"] == {"done": 4, "not_started": 2}
    assert again.summary["credits"]["reserved"] == 4 and reserved(again) == 4
    # One read per restored project (two), and the new project's read before its key.
    assert stats["by_route"]["GET /api/v1/projects/{projectId}"] == reads + 3
