"""A run's keys under a `{date}` scope, its outcome events, and local write failures."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from typing import Any

import pytest
import structlog
from conftest import StartSimulator, WriteManifest, sweep

from orchestrator.lifecycle import Status
from orchestrator.manifest import load_manifest
from orchestrator.runner import RunOutcome
from orchestrator.state import StateStore, default_state_path

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("no_retry_waits")]

OUTCOME_EVENTS = {"job.done", "job.failed"}


def keys(outcome: RunOutcome) -> dict[tuple[str, str], str | None]:
    with StateStore.open_reader(outcome.state_path) as store:
        return {(r.project, r.model): r.key for r in store.iter_jobs()}


def utc_day() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d")


async def test_date_scope_is_the_utc_date_at_run_start(
    start_simulator: StartSimulator, write_manifest: WriteManifest
) -> None:
    """With key_scope `nightly-{date}` every key carries the run's UTC date."""
    sim = await start_simulator(seed=61)
    manifest = write_manifest(
        projects=sim.project_ids[:2], models=["mdx23c"], key_scope="nightly-{date}"
    )
    before = utc_day()
    outcome = await sweep(sim, manifest)
    days = {before, utc_day()}  # the run may cross midnight
    assert outcome.exit_code == 0
    for (project, model), key in keys(outcome).items():
        assert key in {f"ss1:nightly-{day}:{project}:{model}:1" for day in days}


async def test_resumed_submission_keeps_the_key_of_its_night(
    start_simulator: StartSimulator, write_manifest: WriteManifest, api_for: Any
) -> None:
    """A POST sent under yesterday's date is re-sent with that key, not today's: no new task."""
    sim = await start_simulator(seed=62)
    project = sim.project_ids[0]
    manifest = write_manifest(projects=[project], models=["mdx23c"], key_scope="nightly-{date}")
    yesterday = f"ss1:nightly-2000-01-01:{project}:mdx23c:1"
    # A run on 2000-01-01 committed the key and sent the POST, then died before the answer.
    status, _ = await api_for(sim).separate(project, "mdx23c", yesterday)
    assert status == 202
    state = default_state_path(load_manifest(manifest).output)
    with StateStore.open_writer(state) as store:
        store.commit_key(project, "mdx23c", attempt=1, key=yesterday, known_stem_ids=[])

    outcome = await sweep(sim, manifest)
    record = sim.record.snapshot()
    assert outcome.exit_code == 0
    assert keys(outcome) == {(project, "mdx23c"): yesterday}
    assert record["separations_total"] == 1 and record["replays"] == 1


async def test_one_outcome_event_per_job(
    start_simulator: StartSimulator, write_manifest: WriteManifest
) -> None:
    """Each job logs exactly one outcome, `job.done` or `job.failed`, naming project and model."""
    sim = await start_simulator(seed=63, faults={"task_failure": 0.4})
    projects = [*sim.project_ids[:3], "prj_missing"]
    manifest = write_manifest(projects=projects, models=["mdx23c", "demucs", "bs_roformer"])
    with structlog.testing.capture_logs() as events:
        outcome = await sweep(sim, manifest)
    outcomes = [e for e in events if e["event"] in OUTCOME_EVENTS]
    per_job = Counter((e["project"], e["model"]) for e in outcomes)
    assert set(per_job) == {(p, m) for p in projects for m in ("mdx23c", "demucs", "bs_roformer")}
    assert set(per_job.values()) == {1}
    failed = {(e["project"], e["model"]) for e in outcomes if e["event"] == "job.failed"}
    assert failed == {(f["project"], f["model"]) for f in outcome.summary["failed"]}
    assert len(failed) > 3  # prj_missing's three, and some failed separations


async def test_a_job_file_that_cannot_be_written_fails_that_job_only(
    start_simulator: StartSimulator, write_manifest: WriteManifest
) -> None:
    """A local write failure of one job.json is that job's failure; the run goes on."""
    sim = await start_simulator(seed=64)
    projects = sim.project_ids[:2]
    manifest = write_manifest(projects=projects, models=["mdx23c"])
    out = load_manifest(manifest).output
    (out / "mdx23c" / projects[0] / "job.json").mkdir(parents=True)  # in the file's way
    outcome = await sweep(sim, manifest)
    assert outcome.exit_code == 1
    [failure] = outcome.summary["failed"]
    assert failure["project"] == projects[0] and "job.json" in failure["reason"]
    with StateStore.open_reader(outcome.state_path) as store:
        assert store.get(projects[1], "mdx23c").status is Status.DONE  # type: ignore[union-attr]
    assert (out / "summary.json").is_file()
