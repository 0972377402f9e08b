"""A simulated world kept in a state folder: resumed whole, never half-written, links refused."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import aiohttp
import anyio
import pytest
from conftest import Api, quick_profile
from test_simulator_uploads import create, song_file, upload

from orchestrator.simulator.folder import StateFolderError
from orchestrator.simulator.server import Simulator

pytestmark = pytest.mark.anyio

PROFILE = quick_profile()


async def test_a_restarted_world_has_its_tasks_keys_stems_uploads_and_credits(tmp_path):
    """Stopped and started on the same folder: same tasks, keys replayed, nothing new paid."""
    state = tmp_path / "world"
    async with aiohttp.ClientSession() as http:
        async with Simulator(PROFILE, time_scale=1000, state=state) as sim:
            api = Api(http, sim)
            done = await api.run("prj_0001", "mdx23c", key="k-done")
            running = (await api.separate("prj_0002", "demucs", key="k-run"))[1]["taskId"]
            file_id = await upload(api, http, song_file())
            created = (await create(api, file_id, key="k-new"))[1]
            before = await api.project("prj_0001")
            balance = (await api.call("GET", "/credits"))[1]["balance"]
        async with Simulator(PROFILE, time_scale=1000, state=state) as sim:
            api = Api(http, sim)
            assert (await api.call("GET", f"/tasks/{done['id']}"))[1]["status"] == "finalized"
            assert (await api.separate("prj_0002", "demucs", key="k-run"))[1]["taskId"] == running
            assert (await create(api, file_id, key="k-new"))[1]["taskId"] == created["taskId"]
            after = await api.project("prj_0001")
            assert [s["id"] for s in after["stems"]] == [s["id"] for s in before["stems"]]
            assert (await api.call("GET", "/credits"))[1]["balance"] == balance
            project = await api.project(created["projectId"])
            async with http.get(project["stems"][0]["url"]) as response:
                assert await response.read() == song_file()  # the upload's bytes came back
            stats = sim.record.snapshot()
            assert stats["separations_total"] == 3 and stats["duplicate_separations"] == 0
            assert stats["replays"] == 2 and stats["uploads"] == 1 and stats["creations"] == 1


async def test_tasks_run_on_while_the_simulator_is_down(tmp_path):
    """A task in progress at shutdown is further along after a restart: wall time counted."""
    state = tmp_path / "world"
    profile = quick_profile(created_time=0, queue_time=(0, 0), durations={"demucs": 30})
    async with aiohttp.ClientSession() as http:
        async with Simulator(profile, time_scale=100, state=state) as sim:
            task = (await Api(http, sim).separate("prj_0001", "demucs", key="k"))[1]
            assert task["status"] == "in-progress"  # 30 simulated s = 0.3 s of real time
        await anyio.sleep(0.4)
        async with Simulator(profile, time_scale=100, state=state) as sim:
            api = Api(http, sim)
            status = (await api.call("GET", f"/tasks/{task['taskId']}"))[1]["status"]
            assert status in {"completed", "finalized"}
            assert sim.context.clock.now() >= 40  # 0.4 s down x 100


async def test_project_tasks_lists_the_whole_history_after_a_restart(tmp_path):
    """GET /projects/{id}/tasks lists every task the project had, across restarts, in order."""
    state = tmp_path / "world"
    async with aiohttp.ClientSession() as http:
        async with Simulator(PROFILE, time_scale=1000, state=state) as sim:
            api = Api(http, sim)
            first = (await api.separate("prj_0003", "mdx23c"))[1]["taskId"]
        async with Simulator(PROFILE, time_scale=1000, state=state) as sim:
            api = Api(http, sim)
            second = (await api.separate("prj_0003", "demucs"))[1]["taskId"]
            assert second != first
        async with Simulator(PROFILE, time_scale=1000, state=state) as sim:
            tasks = (await Api(http, sim).call("GET", "/projects/prj_0003/tasks"))[1]
            assert [t["id"] for t in tasks] == [first, second]


async def test_project_tasks_lists_a_task_whose_answer_was_lost(start_simulator, api_for):
    """A POST answered 5xx after its write still shows its task in the project's history."""
    sim = await start_simulator(faults={"error_after_write": 1.0})
    api = api_for(sim)
    status, body = await api.separate("prj_0004", "mdx23c", key="lost")
    assert status >= 500
    tasks = (await api.call("GET", "/projects/prj_0004/tasks"))[1]
    assert len(tasks) == 1 and tasks[0]["type"] == "stem-separation"
    assert set(tasks[0]) == {"id", "type", "status", "error", "output"}


def test_a_killed_simulator_keeps_every_write_it_answered(tmp_path):
    """kill -9 right after answers: the restarted world has each task and replays each key."""
    state = tmp_path / "world"
    profile_path = tmp_path / "profile.yaml"
    from orchestrator.simulator.profile import dump_profile

    profile_path.write_text(dump_profile(PROFILE))

    def start() -> tuple[subprocess.Popen[str], str]:
        process = subprocess.Popen(
            [sys.executable, "-m", "orchestrator", "simulate", "--port", "0", "--profile",
             str(profile_path), "--time-scale", "1000", "--state", str(state)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        for line in process.stdout:  # type: ignore[union-attr]
            if line.startswith("base URL:"):
                base = line.split()[-1]
            if line.startswith("Press Ctrl-C"):
                return process, base
        raise AssertionError(process.stderr.read())  # type: ignore[union-attr]

    def post(base: str, project: str, key: str) -> str:
        request = urllib.request.Request(
            f"{base}/projects/{project}/tasks/stem-separation",
            data=json.dumps({"splitModel": "mdx23c"}).encode(),
            headers={"Authorization": "Bearer yk_t", "Idempotency-Key": key,
                     "Content-Type": "application/json"},
        )  # fmt: skip
        with urllib.request.urlopen(request, timeout=10) as response:
            return str(json.load(response)["taskId"])

    process, base = start()
    try:
        answered = {f"k{i}": post(base, f"prj_000{i % 6 + 1}", f"k{i}") for i in range(20)}
    finally:
        process.send_signal(signal.SIGKILL)
        process.communicate(timeout=10)
    process, base = start()
    try:
        assert {key: post(base, f"prj_000{int(key[1:]) % 6 + 1}", key) for key in answered} == (
            answered
        )
    finally:
        process.send_signal(signal.SIGTERM)  # saved on the way out, like Ctrl-C
        _, err = process.communicate(timeout=10)
    assert process.returncode == 0, err
    assert "Traceback" not in err


async def test_a_second_simulator_on_the_same_folder_is_refused(tmp_path):
    """Two simulators never share a state folder: the second is refused, saying why."""
    state = tmp_path / "world"
    async with Simulator(PROFILE, state=state):
        with pytest.raises(StateFolderError, match="in use by another simulator"):
            async with Simulator(PROFILE, state=state):
                pass


async def test_other_settings_than_the_worlds_are_refused(tmp_path):
    """A saved world is not resumed with another seed or song length: the message says which."""
    state = tmp_path / "world"
    async with Simulator(PROFILE, state=state):
        pass
    with pytest.raises(StateFolderError, match=r"seed 0 \(now 3\)"):
        async with Simulator(PROFILE, seed=3, state=state):
            pass
    with pytest.raises(StateFolderError, match="song_seconds"):
        async with Simulator(quick_profile(song_seconds=3.0), state=state):
            pass


@pytest.mark.parametrize("name", [".", "world.json", "journal.jsonl", "lock", "uploads"])
async def test_a_planted_symlink_is_refused_and_never_followed(tmp_path, name):
    """A link at the folder or any file in it is refused by name; its target is untouched."""
    state = tmp_path / "world"
    async with Simulator(PROFILE, state=state):
        pass
    target = tmp_path / "target"
    target.mkdir() if name in (".", "uploads") else target.write_text("precious")
    link = state if name == "." else state / name
    if name == ".":
        os.rename(state, tmp_path / "elsewhere")
    elif link.is_dir():
        os.rename(link, tmp_path / "old-uploads")
    else:
        link.unlink()
    link.symlink_to(target)
    with pytest.raises(StateFolderError, match="symbolic link") as caught:
        async with Simulator(PROFILE, state=state):
            pass
    assert str(link) in str(caught.value)
    if target.is_file():
        assert target.read_text() == "precious"
    else:
        assert list(target.iterdir()) == []


async def test_a_damaged_snapshot_is_refused_and_a_torn_journal_tail_dropped(tmp_path):
    """A broken world.json is refused clearly; a last journal line cut short is ignored."""
    state = tmp_path / "world"
    async with aiohttp.ClientSession() as http:
        async with Simulator(PROFILE, time_scale=1000, state=state) as sim:
            kept = (await Api(http, sim).separate("prj_0001", "mdx23c", key="k"))[1]["taskId"]
            # As a kill -9 would leave it: the snapshot of the start, the submission's line.
            snapshot = (state / "world.json").read_bytes()
            journal = (state / "journal.jsonl").read_bytes()
        assert b"k" in journal and kept.encode() not in snapshot
        (state / "world.json").write_bytes(snapshot)
        (state / "journal.jsonl").write_bytes(journal + b'{"seq": 99, "put": {"ta')
        async with Simulator(PROFILE, time_scale=1000, state=state) as sim:
            again = (await Api(http, sim).separate("prj_0001", "mdx23c", key="k"))[1]
            assert again["taskId"] == kept
    (state / "world.json").write_bytes(b'{"format": 1, "seq": ')
    with pytest.raises(StateFolderError, match="damaged.*world.json.*move the folder away"):
        async with Simulator(PROFILE, state=state):
            pass


def test_stemsweep_simulate_state_prints_what_it_resumed(tmp_path):
    """`stemsweep simulate --state DIR` names the folder and what the world holds."""
    process = subprocess.Popen(
        [sys.executable, "-m", "orchestrator", "simulate", "--port", "0", "--state",
         str(tmp_path / "w")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        lines = []
        while not lines or not lines[-1].startswith("Press Ctrl-C"):
            assert time.monotonic() < deadline
            lines.append(process.stdout.readline().strip())  # type: ignore[union-attr]
    finally:
        process.send_signal(signal.SIGINT)
        process.communicate(timeout=10)
    [line] = [ln for ln in lines if ln.startswith("state:")]
    assert str(tmp_path / "w") in line and "6 projects, 0 tasks" in line
    assert (tmp_path / "w" / "world.json").is_file()
    assert Path(tmp_path / "w" / "world.json").stat().st_mode & 0o077 == 0
