"""Project reads shared across the jobs of a run, end to end: a listing taken for a later
job's submission, and after-end reads held for the project's tasks that end together."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from conftest import StartSimulator, WriteManifest
from conftest import sweep as run

from orchestrator import reads
from orchestrator.runner import RunOutcome
from orchestrator.simulator.server import Simulator

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("no_retry_waits")]

PROJECT_READ = "GET /api/v1/projects/{projectId} 200"


async def sweep(sim: Simulator, manifest: Path) -> tuple[RunOutcome, int]:
    """Run `manifest` against `sim`; the outcome and the project reads it made."""
    before = sim.record.snapshot()["by_route_status"].get(PROJECT_READ, 0)
    outcome = await run(sim, manifest)
    assert outcome.exit_code == 0, outcome.summary["failed"]
    return outcome, sim.record.snapshot()["by_route_status"][PROJECT_READ] - before


def stem_ids(out: Path, model: str, project: str) -> set[str]:
    job = json.loads((out / model / project / "job.json").read_text())
    return {s["id"] for s in job["stems"] if s["type"] != "original"}


async def test_a_later_job_takes_the_runs_listing_and_still_tells_the_new_set_from_the_old(
    start_simulator: StartSimulator, write_manifest: WriteManifest, tmp_path: Path
) -> None:
    """stems[] accumulates and the project already lists a set of demucs from another tree:
    a new tree's demucs job, submitted after its mdx23c job on the project, takes the
    listing of mdx23c's after-end read as its own pre-submission read (3 reads for 2
    jobs, not 4), and still downloads its new set, never the old one."""
    sim = await start_simulator(seed=11, stems_mode="accumulate")
    project = sim.project_ids[0]
    limits = {"max_in_flight": 1, "per_project": 1, "requests_per_second": 1000}
    earlier = write_manifest(
        projects=[project], models=["demucs"], output=str(tmp_path / "a"), limits=limits
    )
    first, _ = await sweep(sim, earlier)
    old = stem_ids(first.output, "demucs", project)
    later = write_manifest(
        projects=[project],
        models=["mdx23c", "demucs"],
        output=str(tmp_path / "b"),
        key_scope="later",  # a new separation, not the first tree's key again
        limits=limits,
        filename="later.yaml",
    )
    second, project_reads = await sweep(sim, later)
    new = stem_ids(second.output, "demucs", project)
    listed = [s["id"] for s in (await _project(sim, project))["stems"] if s["model"] == "demucs"]
    assert old and new and not old & new
    assert new <= set(listed) and old <= set(listed)  # both sets are listed: accumulated
    assert project_reads == 3


async def test_tasks_of_a_project_that_end_together_share_their_after_end_read(
    start_simulator: StartSimulator, write_manifest: WriteManifest
) -> None:
    """Four separations of one project, submitted together and of one duration: their
    after-end reads wait for each other's polls and share one request (with the
    pre-submission read, two in all); without the hold, each ends in a read of its own."""
    sim = await start_simulator(
        seed=12,
        time_scale=100.0,
        durations=dict.fromkeys(["mdx23c", "demucs", "bs_roformer", "uvr_mdxnet_kara_2"], 20.0),
        created_time=0.0,
        queue_time=(0.0, 0.0),
        duration_jitter=0.0,
    )
    manifest = write_manifest(
        projects=sim.project_ids[:1],
        models=["mdx23c", "demucs", "bs_roformer", "uvr_mdxnet_kara_2"],
        limits={"max_in_flight": 4, "per_project": 4, "requests_per_second": 1000},
        poll={"initial": "0.05s", "max": "0.1s", "timeout": "30s"},
    )
    _, project_reads = await sweep(sim, manifest)
    assert project_reads == 2


async def _project(sim: Simulator, project: str) -> dict[str, Any]:
    import aiohttp

    async with (
        aiohttp.ClientSession() as http,
        http.get(
            f"{sim.base_url}/projects/{project}",
            headers={"Authorization": f"Bearer {sim.api_key}"},
        ) as response,
    ):
        data: dict[str, Any] = await response.json()
        return data


def test_the_hold_is_a_share_of_the_duration() -> None:
    """The hold is a fraction of the task's duration, so it scales with the API's pace."""
    assert 0 < reads.HOLD_SHARE < 1
