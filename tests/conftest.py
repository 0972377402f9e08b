"""Shared fixtures: simulators on loopback, and an HTTP client for talking to them."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import anyio
import pytest

from orchestrator.lifecycle import Mode
from orchestrator.manifest import load_manifest
from orchestrator.runner import RunOutcome, run_manifest
from orchestrator.simulator.profile import Profile, load_profile
from orchestrator.simulator.server import Simulator

TERMINAL = {"completed", "finalized", "failed", "cancelled", "timed-out"}

# Short songs and compressed time keep the simulator suite to seconds.
TEST_SONG_SECONDS = 2.0
TEST_TIME_SCALE = 1000.0

StartSimulator = Callable[..., Awaitable[Simulator]]


@pytest.fixture
def anyio_backend() -> str:
    """Async tests run on asyncio (aiohttp needs it)."""
    return "asyncio"


def quick_profile(name: str | Profile = "default", **changes: Any) -> Profile:
    """A profile with two-second songs, plus `changes` (`faults` takes a dict of changes)."""
    profile = load_profile(name)
    faults = changes.pop("faults", None)
    if faults is not None:
        changes["faults"] = profile.faults.replace(**faults)
    return profile.replace(**{"song_seconds": TEST_SONG_SECONDS, **changes})


@pytest.fixture
async def start_simulator() -> AsyncIterator[StartSimulator]:
    """Start simulators in the test's event loop; each stops when the test ends.

    `await start_simulator("chaos", seed=3, time_scale=100, max_in_progress=2)`: a profile
    name or `Profile`, then `seed`, `time_scale` (default 1000) and profile changes.
    """
    async with contextlib.AsyncExitStack() as stack:

        async def start(
            profile: str | Profile = "default",
            *,
            seed: int = 0,
            time_scale: float = TEST_TIME_SCALE,
            **changes: Any,
        ) -> Simulator:
            simulator = Simulator(quick_profile(profile, **changes), seed, time_scale)
            return await stack.enter_async_context(simulator)

        yield start


@pytest.fixture
async def sim(start_simulator: StartSimulator) -> Simulator:
    """A default simulator with two-second songs at time scale 1000."""
    return await start_simulator()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    """A plain HTTP client with no credentials attached."""
    async with aiohttp.ClientSession() as session:
        yield session


class Api:
    """Calls to one simulator's API, authenticated with a key it accepts."""

    def __init__(self, session: aiohttp.ClientSession, sim: Simulator) -> None:
        self.session = session
        self.sim = sim
        self.auth = {"Authorization": f"Bearer {sim.api_key}"}

    async def call(
        self, method: str, path: str, *, json: Any = None, headers: dict[str, str] | None = None
    ) -> tuple[int, Any, Any]:
        """(status, decoded JSON body or None, headers) of one call to `base_url + path`."""
        async with self.session.request(
            method, self.sim.base_url + path, json=json, headers={**self.auth, **(headers or {})}
        ) as response:
            body = await response.json() if response.content_type == "application/json" else None
            return response.status, body, response.headers

    async def separate(self, pid: str, model: str, key: str | None = None) -> tuple[int, Any]:
        """Submit a separation; (status, body)."""
        headers = {"Idempotency-Key": key} if key else {}
        path = f"/projects/{pid}/tasks/stem-separation"
        status, body, _ = await self.call("POST", path, json={"splitModel": model}, headers=headers)
        return status, body

    async def wait(self, task_id: str) -> dict[str, Any]:
        """Poll a task until it is terminal (10 s at most); its last view."""
        with anyio.fail_after(10):
            while True:
                status, task, _ = await self.call("GET", f"/tasks/{task_id}")
                if status == 200 and task["status"] in TERMINAL:
                    return dict(task)
                await anyio.sleep(0.01)

    async def run(self, pid: str, model: str, key: str | None = None) -> dict[str, Any]:
        """Submit a separation and wait for its end; the task."""
        status, body = await self.separate(pid, model, key)
        assert status == 202, body
        return await self.wait(body["taskId"])

    async def project(self, pid: str) -> dict[str, Any]:
        """The project as the API reports it."""
        status, body, _ = await self.call("GET", f"/projects/{pid}")
        assert status == 200, body
        return dict(body)


@pytest.fixture
def api(http: aiohttp.ClientSession, sim: Simulator) -> Api:
    """Authenticated calls to the default test simulator."""
    return Api(http, sim)


@pytest.fixture
def api_for(http: aiohttp.ClientSession) -> Callable[[Simulator], Api]:
    """Authenticated calls to any simulator: `api_for(sim)`."""
    return lambda simulator: Api(http, simulator)


# --- sweeps: manifests, fast client settings, and checks of an output tree ---------------------

# Client waits shortened for tests: a 429 pauses everyone for 10-50 ms, not seconds (the
# simulator's Retry-After is whole seconds, as HTTP has it).
FAST_CLIENT = {"wait_initial": 0.01, "wait_max": 0.1, "wait_jitter": 0.01, "max_pause": 0.05}
FAST_POLL = {"initial": "0.01s", "max": "0.05s", "timeout": "30s"}
WriteManifest = Callable[..., Any]


@pytest.fixture
def write_manifest(tmp_path: Any) -> WriteManifest:
    """Write a manifest under tmp_path; sections given as keywords replace the defaults.

    `write_manifest(projects=[...], models=[...], limits={...}, poll={...}, ...)` returns
    its path; `output` defaults to `tmp_path / "out"`.
    """
    import yaml

    def write(
        *,
        projects: list[str],
        models: list[str],
        name: str = "sweep",
        filename: str = "manifest.yaml",
        **sections: Any,
    ) -> Any:
        data: dict[str, Any] = {
            "version": 1,
            "name": name,
            "output": str(tmp_path / "out"),
            "limits": {"max_in_flight": 4, "per_project": 1, "requests_per_second": 1000},
            "poll": dict(FAST_POLL),
            "retries": {"requests": 6, "tasks": 0},
            "sweeps": [{"projects": projects, "models": models}],
        }
        data.update(sections)
        path = tmp_path / filename
        path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
        return path

    return write


@pytest.fixture
def no_retry_waits() -> Any:
    """stamina retries without sleeping between attempts (the attempt counts stay)."""
    import stamina

    with stamina.set_testing(True, attempts=1000, cap=True):
        yield


def check_tree(out: Any, state_path: Any) -> int:
    """Assert every done job's files match the state and job.json; return how many files."""
    import json

    import blake3

    from orchestrator.lifecycle import Status
    from orchestrator.state import StateStore

    files = 0
    with StateStore.open_reader(state_path) as store:
        for row in store.iter_jobs():
            if row.status is not Status.DONE:
                continue
            job = json.loads((out / row.model / row.project / "job.json").read_text())
            recorded = {s.type: s for s in store.stems(row.project, row.model)}
            assert {s["type"] for s in job["stems"]} == set(recorded)
            assert job["key"] == row.key and job["attempt"] == row.attempt
            for stem in job["stems"]:
                path = out / row.model / row.project / stem["file"]
                digest = blake3.blake3(path.read_bytes()).hexdigest()
                assert digest == stem["blake3"], path
                assert recorded[stem["type"]].digest == f"blake3:{digest}", path
                assert path.stat().st_size == stem["bytes"]
                files += 1
    return files


def run_in_terminal(args: list[str], env: dict[str, str]) -> tuple[int, bytes, bytes]:
    """Run `python -m orchestrator ARGS` with stderr on a pseudo-terminal (stdout piped):
    its exit code, what the terminal showed, and its stdout."""
    import pty

    primary, secondary = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "orchestrator", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=secondary,
    )
    os.close(secondary)
    seen = b""
    while True:
        try:
            chunk = os.read(primary, 65536)
        except OSError:  # the terminal's other end closed
            break
        if not chunk:
            break
        seen += chunk
    stdout, _ = process.communicate(timeout=60)
    os.close(primary)
    return process.returncode, seen, stdout


async def sweep(
    sim: Simulator, manifest: Path, *, mode: Mode = Mode.RUN, **options: Any
) -> RunOutcome:
    """Run `manifest` in-process against `sim` (`run`, or `mode`), with the simulator's key
    in the environment and the client's retry waits cut short."""
    return await run_manifest(
        load_manifest(manifest),
        mode=mode,
        api_url=sim.base_url,
        environ={"YOUKA_API_KEY": sim.api_key},
        client_options=FAST_CLIENT,
        **options,
    )
