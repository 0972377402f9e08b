"""A run on the embedded simulator, interrupted and resumed: the world and the run agree."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from orchestrator.lifecycle import Status
from orchestrator.simulator.server import SimulatorThread
from orchestrator.state import StateStore

pytestmark = pytest.mark.slow

PROJECTS = ["prj_0001", "prj_0002", "prj_0003"]
MODELS = ["mdx23c", "demucs", "uvr_mdxnet_kara_2"]


def write_manifest(tmp_path: Path) -> Path:
    """Nine jobs on the default simulator profile, time-lapsed so that each lasts 0.5-2 s."""
    data = {
        "version": 1,
        "name": "resume",
        "api": {"simulator": {"profile": "default", "seed": 0, "time_scale": 150}},
        "output": str(tmp_path / "out"),
        "limits": {"max_in_flight": 4, "per_project": 1, "requests_per_second": 500},
        "poll": {"initial": "0.02s", "max": "0.1s", "timeout": "60s"},
        "download": {"types": ["vocals", "instrumental"]},
        "sweeps": [{"projects": PROJECTS, "models": MODELS}],
    }
    path = tmp_path / "resume.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def run(manifest: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "orchestrator", "run", str(manifest), "--no-progress"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def statuses(state: Path) -> list[Status]:
    if not state.exists():
        return []
    with StateStore.open_reader(state) as store:
        return [row.status for row in store.iter_jobs()]


def test_ctrl_c_then_a_rerun_separates_nothing_twice(tmp_path: Path) -> None:
    """Ctrl-C with separations in flight, then a re-run: every job done, each separated once."""
    manifest = write_manifest(tmp_path)
    out = tmp_path / "out"
    state = out / ".stemsweep" / "state.db"
    first = run(manifest)
    deadline = time.monotonic() + 60
    while Status.SUBMITTED not in statuses(state):
        assert first.poll() is None and time.monotonic() < deadline, first.communicate()[1]
        time.sleep(0.02)
    first.send_signal(signal.SIGINT)
    _, err = first.communicate(timeout=60)
    assert first.returncode == 130, err.decode()[-2000:]
    in_flight = statuses(state).count(Status.SUBMITTED)
    assert in_flight >= 1 and set(statuses(state)) != {Status.DONE}

    second = run(manifest)
    _, err = second.communicate(timeout=120)
    assert second.returncode == 0, err.decode()[-3000:]
    assert statuses(state) == [Status.DONE] * 9
    for project in PROJECTS:
        for model in MODELS:
            job = json.loads((out / model / project / "job.json").read_text())
            assert job["attempt"] == 1 and job["status"] == "done", job
    assert b"task.not_found" not in err and b'"not_found"' not in err

    # The world the two runs shared: each (project, model) separated once, all paid once.
    world = out / ".stemsweep" / "simulator"
    with SimulatorThread("default", seed=0, time_scale=150, state=world) as sim:
        stats = sim.stats()
    assert stats["separations"] == {f"{p}:{m}": 1 for p in PROJECTS for m in MODELS}
    assert stats["duplicate_separations"] == 0
    assert stats["credits_charged"] == sum(
        sim.profile.separation_cost(20, m) for p in PROJECTS for m in MODELS
    )
