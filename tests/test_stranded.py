"""A job whose separation succeeded but whose stems the project no longer lists."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from conftest import Api, StartSimulator, WriteManifest, sweep

from orchestrator.lifecycle import Mode
from orchestrator.manifest import load_manifest
from orchestrator.summary_text import render_summary

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("no_retry_waits")]

MODEL = "mdx23c"


def job_file(manifest: Path, project: str) -> dict[str, Any]:
    path = load_manifest(manifest).output / MODEL / project / "job.json"
    return dict(json.loads(path.read_text()))


async def test_a_stranded_job_is_named_by_run_and_separated_again_by_retry(
    start_simulator: StartSimulator, write_manifest: WriteManifest, api_for: Any
) -> None:
    """A separation whose download failed, then whose stems a later separation replaced:
    `run` names it stranded and says `retry` separates it again at a cost; `run` again
    sends nothing for it; `retry` gives it a new attempt, and the summary says it cost."""
    sim = await start_simulator(seed=31, stems_mode="replace")
    project = sim.project_ids[0]
    manifest = write_manifest(
        projects=[project], models=[MODEL], retries={"requests": 1, "tasks": 0}
    )
    calm = sim.context.profile
    sim.context.profile = calm.replace(faults=calm.faults.replace(expired_url=1.0))
    first = await sweep(sim, manifest)
    sim.context.profile = calm
    assert [f["status"] for f in first.summary["failed"]] == ["download_failed"]
    other: Api = api_for(sim)
    await other.run(project, "demucs", key="another-client")  # replaces the project's stems

    second = await sweep(sim, manifest)
    (failure,) = second.summary["failed"]
    assert second.exit_code == 1 and failure["status"] == "stranded"
    assert "`stemsweep retry` separates it again" in failure["reason"]
    assert "costs credits" in failure["reason"]
    assert "stranded: the API no longer lists their stems" in render_summary(second.summary)

    third = await sweep(sim, manifest)
    assert [f["status"] for f in third.summary["failed"]] == ["stranded"]
    assert third.summary["api_requests"] == 1  # GET /me: nothing for the stranded job
    assert sim.record.separations[f"{project}:{MODEL}"] == 1

    fourth = await sweep(sim, manifest, mode=Mode.RETRY)
    assert fourth.exit_code == 0, fourth.summary["failed"]
    assert sim.record.separations[f"{project}:{MODEL}"] == 2
    assert fourth.summary["new_attempts"] == {"stranded": 1}
    assert "new attempts that cost credits: 1 stranded" in render_summary(fourth.summary)
    assert job_file(manifest, project)["attempt"] == 2
