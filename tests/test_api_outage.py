"""An API that cannot be reached at the start, or stops answering mid-run."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import anyio
import pytest
from click.testing import CliRunner
from conftest import FAST_CLIENT, StartSimulator, WriteManifest

from orchestrator.cli import cli
from orchestrator.errors import ApiUnavailableError
from orchestrator.lifecycle import Status
from orchestrator.manifest import load_manifest
from orchestrator.runner import run_manifest
from orchestrator.state import StateStore

pytestmark = pytest.mark.usefixtures("no_retry_waits")

MODELS = ["mdx23c", "demucs"]


def closed_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_an_api_unreachable_at_start_still_writes_the_summary(
    write_manifest: WriteManifest,
) -> None:
    """No API at the URL: exit 3 before any submission, and summary.json says why."""
    manifest = write_manifest(projects=["prj_0001"], models=MODELS)
    url = f"http://127.0.0.1:{closed_port()}/api/v1"
    result = CliRunner().invoke(
        cli,
        ["run", str(manifest), "--no-progress", "--api-url", url],
        env={"YOUKA_API_KEY": "yk_test"},
    )
    assert result.exit_code == 3, result.output
    assert "could not be reached" in result.output
    summary = json.loads((load_manifest(manifest).output / "summary.json").read_text())
    assert summary["exit_code"] == 3 and "could not be reached" in summary["stopped_by"]
    assert summary["counts"] == {"queued": 2}


@pytest.mark.anyio
async def test_an_api_that_fails_every_call_mid_run_stops_the_run_with_its_summary(
    start_simulator: StartSimulator, write_manifest: WriteManifest
) -> None:
    """Every call answered 5xx from some point on: once the API has answered nothing for
    `outage_after`, the run stops (exit 3) with the reason in its summary, no job is
    marked failed, and the next run finishes every job, each separated once."""
    sim = await start_simulator(seed=41, time_scale=200)
    projects = sim.project_ids[:2]
    manifest = write_manifest(projects=projects, models=MODELS)
    calm = sim.context.profile
    broken = calm.replace(faults=calm.faults.replace(error_on_get=1.0, error_before_write=1.0))

    async def break_after_the_first_submission() -> None:
        for _ in range(2000):  # 10 s at most
            if sim.record.separations:
                break
            await anyio.sleep(0.005)
        sim.context.profile = broken

    stopped: list[ApiUnavailableError] = []

    async def run() -> None:
        try:
            await run_manifest(
                load_manifest(manifest),
                api_url=sim.base_url,
                environ={"YOUKA_API_KEY": sim.api_key},
                client_options={**FAST_CLIENT, "outage_after": 0.3},
            )
        except ApiUnavailableError as exc:
            stopped.append(exc)

    async with anyio.create_task_group() as tg:
        tg.start_soon(break_after_the_first_submission)
        tg.start_soon(run)
    assert len(stopped) == 1 and "answered no call for" in str(stopped[0])
    out = load_manifest(manifest).output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["exit_code"] == 3 and "answered no call" in summary["stopped_by"]
    state = out / ".stemsweep" / "state.db"
    with StateStore.open_reader(state) as store:
        statuses = {r.status for r in store.iter_jobs()}
    assert statuses <= {Status.SUBMITTING, Status.SUBMITTED, Status.PENDING, Status.DONE}

    sim.context.profile = calm
    again = await run_manifest(
        load_manifest(manifest),
        api_url=sim.base_url,
        environ={"YOUKA_API_KEY": sim.api_key},
        client_options=FAST_CLIENT,
    )
    assert again.exit_code == 0
    assert sim.record.separations == {f"{p}:{m}": 1 for p in projects for m in MODELS}


def test_the_exit_code_of_an_outage_is_documented() -> None:
    """The README's exit code table has the code an outage gets, and why."""
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    assert "| 3 | the API could not be reached" in readme
