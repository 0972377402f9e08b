"""Submissions whose answer was lost, resumed within and past the API's memory of keys.

The simulator forgets a key `idempotency_key_ttl` (simulated) seconds after its first use;
the manifest's `idempotency_window` is how long stemsweep assumes the API remembers it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import anyio
import pytest
import structlog
from conftest import Api, StartSimulator, WriteManifest, quick_profile, sweep

from orchestrator.jobs import JobId
from orchestrator.lifecycle import Mode, Status
from orchestrator.manifest import load_manifest
from orchestrator.simulator.server import Simulator, SimulatorThread
from orchestrator.state import StateStore, default_state_path

MODEL = "mdx23c"


def status_of(state: Path, project: str) -> Status | None:
    if not state.exists():
        return None
    with StateStore.open_reader(state) as store:
        row = store.get(project, MODEL)
    return None if row is None else row.status


@pytest.mark.slow
def test_a_key_forgotten_between_a_kill_9_and_the_resume_is_not_paid_twice(
    tmp_path: Path, write_manifest: WriteManifest
) -> None:
    """kill -9 right after a POST was applied and before its answer was recorded, then a
    resume after the API forgot the key: the run adopts the task the POST started, and
    the project is separated once."""
    world = tmp_path / "world"
    ttl = {"idempotency_key_ttl": 2000.0}  # simulated seconds: 2 s here (x1000)
    lossy = quick_profile(**ttl, faults={"error_after_write": 1.0})  # every answer lost
    with SimulatorThread(lossy, seed=5, time_scale=1000, state=world) as sim:
        project = sim.project_ids[0]
        manifest = write_manifest(
            projects=[project],
            models=[MODEL],
            retries={"requests": 50, "tasks": 0},
            idempotency_window="1s",
        )
        state = tmp_path / "out" / ".stemsweep" / "state.db"
        env = {k: v for k, v in os.environ.items() if not k.startswith("YOUKA_")}
        env.update(YOUKA_API_KEY=sim.api_key, YOUKA_API_URL=sim.base_url)
        run = subprocess.Popen(
            [sys.executable, "-m", "orchestrator", "run", str(manifest), "--no-progress"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 60
        while sim.stats()["separations"].get(f"{project}:{MODEL}", 0) == 0:
            assert run.poll() is None and time.monotonic() < deadline, run.communicate()[1]
            time.sleep(0.002)
        run.send_signal(signal.SIGKILL)  # before its retry, a second or more away
        run.communicate(timeout=30)
    assert status_of(state, project) is Status.SUBMITTING

    time.sleep(2.5)  # the simulator forgets the key; the manifest's window passes too
    with SimulatorThread(quick_profile(**ttl), seed=5, time_scale=1000, state=world) as sim:
        env["YOUKA_API_URL"] = sim.base_url
        resumed = subprocess.run(
            [sys.executable, "-m", "orchestrator", "run", str(manifest), "--no-progress"],
            env=env,
            capture_output=True,
            timeout=120,
        )
        stats = sim.stats()
    assert resumed.returncode == 0, resumed.stderr.decode()[-3000:]
    assert stats["separations"] == {f"{project}:{MODEL}": 1}
    assert stats["expired_key_reuses"] == 0 and stats["duplicate_separations"] == 0
    assert b'"verdict": "adopt"' in resumed.stderr
    assert status_of(state, project) is Status.DONE


async def lose_an_answer(
    start_simulator: StartSimulator, write_manifest: WriteManifest, window: str
) -> tuple[Simulator, Path, str]:
    """A simulator that forgets keys after 100 simulated s (0.1 s), and a job whose POST
    was applied while its answer was lost (recorded `submitting`)."""
    sim = await start_simulator(seed=7, idempotency_key_ttl=100.0)
    project = sim.project_ids[0]
    manifest = write_manifest(
        projects=[project],
        models=[MODEL],
        retries={"requests": 1, "tasks": 0},
        idempotency_window=window,
    )
    lossy = sim.context.profile
    sim.context.profile = lossy.replace(faults=lossy.faults.replace(error_after_write=1.0))
    first = await sweep(sim, manifest)
    sim.context.profile = lossy
    assert first.exit_code == 1
    assert status_of(first.state_path, project) is Status.SUBMITTING
    assert sim.record.separations[f"{project}:{MODEL}"] == 1
    return sim, manifest, project


@pytest.mark.anyio
async def test_within_the_window_the_key_is_re_sent_and_answered_with_its_task(
    start_simulator: StartSimulator, write_manifest: WriteManifest
) -> None:
    """A resume within `idempotency_window` re-sends the same key without reading the task
    history: the API answers with the task the lost POST started."""
    sim, manifest, project = await lose_an_answer(start_simulator, write_manifest, "1h")
    sim.context.profile = sim.context.profile.replace(idempotency_key_ttl=None)
    with structlog.testing.capture_logs() as events:
        outcome = await sweep(sim, manifest)
    assert outcome.exit_code == 0
    reconciled = [e for e in events if e["event"] == "job.reconciled"]
    assert [e["verdict"] for e in reconciled] == ["resend"]
    assert "within idempotency_window" in reconciled[0]["reason"]
    assert sim.record.separations == {f"{project}:{MODEL}": 1}
    assert sim.record.replays >= 1


@pytest.mark.anyio
async def test_a_task_that_cannot_be_told_apart_waits_for_the_user(
    start_simulator: StartSimulator, write_manifest: WriteManifest, api_for: Any
) -> None:
    """Past the window, with a second unseen task on the project (another client's), the
    job needs attention: nothing is sent by `run` or `retry`, the reason names both tasks
    and the command; `retry --resend` then re-sends the key on purpose."""
    sim, manifest, project = await lose_an_answer(start_simulator, write_manifest, "0.2s")
    other: Api = api_for(sim)
    status, body = await other.separate(project, "demucs", key="someone-else")
    assert status == 202
    await anyio.sleep(0.3)  # past the window, and past the simulator's memory of the key

    for mode in (Mode.RUN, Mode.RETRY):
        outcome = await sweep(sim, manifest, mode=mode)
        (failure,) = outcome.summary["failed"]
        assert outcome.exit_code == 1 and failure["status"] == "needs_attention"
        assert body["taskId"] in failure["reason"]
        assert f"--resend {project}:{MODEL}" in failure["reason"]
        assert sim.record.separations[f"{project}:{MODEL}"] == 1  # nothing sent

    resent = await sweep(
        sim, manifest, mode=Mode.RETRY, resend=lambda job: job == JobId(project, MODEL)
    )
    assert resent.exit_code == 0
    assert sim.record.separations[f"{project}:{MODEL}"] == 2  # the user's decision
    state = default_state_path(load_manifest(manifest).output)
    assert status_of(state, project) is Status.DONE


def test_resend_takes_project_and_model_pairs(write_manifest: WriteManifest) -> None:
    """`retry --resend` names jobs as PROJECT:MODEL (or `all`); anything else is exit 2."""
    from click.testing import CliRunner

    from orchestrator.cli import cli

    manifest = write_manifest(projects=["prj_0001"], models=[MODEL])
    result = CliRunner().invoke(
        cli, ["retry", str(manifest), "--resend", "prj_0001", "--no-progress"]
    )
    assert result.exit_code == 2 and "--resend takes PROJECT:MODEL or all" in result.output
