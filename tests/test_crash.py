"""Real `stemsweep run` processes killed, interrupted and raced; the simulator outlives them."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import WriteManifest, check_tree, quick_profile

from orchestrator.lifecycle import Status
from orchestrator.simulator.server import SimulatorThread
from orchestrator.state import StateStore

pytestmark = pytest.mark.slow

MODELS = ["mdx23c", "demucs", "bs_roformer", "uvr_mdxnet_kara_2"]


def env_for(sim: SimulatorThread) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("YOUKA_")}
    env.update(YOUKA_API_KEY=sim.api_key, YOUKA_API_URL=sim.base_url)
    return env


def start(manifest: Path, sim: SimulatorThread, *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "orchestrator", "run", str(manifest), "--no-progress", *args],
        env=env_for(sim),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def rows(state: Path) -> dict[tuple[str, str], Status]:
    if not state.exists():
        return {}
    with StateStore.open_reader(state) as store:
        return {(r.project, r.model): r.status for r in store.iter_jobs()}


def wait_for(condition: object, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.02)


@pytest.fixture
def slow_sim() -> Iterator[SimulatorThread]:
    """Separations of 0.5 to 2 seconds (x120), so a sweep lasts several seconds."""
    with SimulatorThread(quick_profile(), seed=31, time_scale=120) as sim:
        yield sim


def test_kill_9_at_random_instants_never_separates_twice(
    slow_sim: SimulatorThread, write_manifest: WriteManifest, tmp_path: Path
) -> None:
    """kill -9 at many instants, then a run to the end: each job separated once, files whole."""
    manifest = write_manifest(
        projects=slow_sim.project_ids[:4],
        models=MODELS,
        limits={"max_in_flight": 4, "per_project": 1, "requests_per_second": 200},
        poll={"initial": "0.02s", "max": "0.1s", "timeout": "60s"},
    )
    out = tmp_path / "out"
    state = out / ".stemsweep" / "state.db"
    rng = random.Random(1234)
    # Each run resumes the last, so the kills walk through the sweep: the first ones land
    # while the process starts, the later ones among submissions, polls and downloads.
    kills, seen = 0, set()
    while kills < 10:
        process = start(manifest, slow_sim)
        time.sleep(rng.uniform(0.05, 0.5) if kills < 2 else rng.uniform(0.4, 1.2))
        if process.poll() is not None:  # the sweep ended before this kill
            process.communicate(timeout=30)
            break
        process.send_signal(signal.SIGKILL)
        process.communicate(timeout=30)
        kills += 1
        seen |= set(rows(state).values())
    final = start(manifest, slow_sim)
    stdout, stderr = final.communicate(timeout=60)
    stats = slow_sim.stats()
    assert final.returncode == 0, stderr.decode()[-3000:]
    assert kills >= 8
    assert {Status.SUBMITTED, Status.DONE} <= seen  # killed mid-sweep, not only at the ends
    assert set(rows(state).values()) == {Status.DONE}
    assert stats["duplicate_separations"] == 0
    assert stats["separations_total"] == 16
    assert check_tree(out, state) >= 32
    assert not list(out.rglob(".stemsweep-partial-*"))


def test_sigint_exits_130_and_the_next_run_finishes(
    slow_sim: SimulatorThread, write_manifest: WriteManifest, tmp_path: Path
) -> None:
    """Ctrl-C stops with exit 130 and a consistent state; the next run ends the sweep."""
    manifest = write_manifest(projects=slow_sim.project_ids[:3], models=MODELS[:2])
    state = tmp_path / "out" / ".stemsweep" / "state.db"
    process = start(manifest, slow_sim)
    wait_for(lambda: Status.SUBMITTED in rows(state).values())
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=30)
    assert process.returncode == 130, stderr.decode()[-2000:]
    assert b"(interrupted)" in stdout
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["interrupted"] is True and summary["exit_code"] == 130
    assert set(rows(state).values()) != {Status.DONE}  # stopped before the end

    final = start(manifest, slow_sim)
    final.communicate(timeout=60)
    stats = slow_sim.stats()
    assert final.returncode == 0
    assert stats["duplicate_separations"] == 0 and stats["separations_total"] == 6
    assert check_tree(tmp_path / "out", state) >= 12


def test_second_run_on_locked_state_is_refused_then_sigterm(
    slow_sim: SimulatorThread, write_manifest: WriteManifest, tmp_path: Path
) -> None:
    """While a run holds the state, a second one exits 2 naming it; SIGTERM stops the first."""
    manifest = write_manifest(projects=slow_sim.project_ids[:2], models=MODELS)
    state = tmp_path / "out" / ".stemsweep" / "state.db"
    first = start(manifest, slow_sim)
    try:
        wait_for(lambda: rows(state))
        second = start(manifest, slow_sim)
        _, err = second.communicate(timeout=30)
        assert second.returncode == 2
        message = err.decode()
        assert "another stemsweep run is using" in message and str(state) in message
        assert f"pid {first.pid}" in message
    finally:
        first.send_signal(signal.SIGTERM)
        first.communicate(timeout=30)
    assert first.returncode == 130
