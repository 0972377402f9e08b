"""Running the simulator: its own endpoints, the record, the thread, the bench profile, the CLI."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request

import pytest
import soundfile as sf

from orchestrator.simulator.profile import load_profile
from orchestrator.simulator.server import Simulator, SimulatorThread


@pytest.mark.anyio
async def test_sim_projects_lists_ids_and_titles(sim, http):
    """GET /_sim/projects lists every project id with its title, and the base URL."""
    async with http.get(sim.root_url + "/_sim/projects") as response:
        body = await response.json()
    assert [p["id"] for p in body["projects"]] == [f"prj_{i:04d}" for i in range(1, 7)]
    assert all(p["title"] and p["artist"] for p in body["projects"])
    assert body["baseUrl"] == sim.base_url


@pytest.mark.anyio
async def test_references_are_labelled_and_decode(sim, api, http):
    """The references endpoint labels the true parts as simulator-only; each decodes as WAV."""
    async with http.get(sim.root_url + "/_sim/projects/prj_0002/references") as response:
        listing = await response.json()
    assert listing["simulatorOnly"] is True and "not part of the Youka API" in listing["note"]
    kinds = {r["type"]: r["url"] for r in listing["references"]}
    assert set(kinds) == {"original", "vocals", "backing_vocals", "instrumental"}
    async with http.get(kinds["backing_vocals"]) as response:
        assert response.content_type == "audio/wav"
        audio, rate = sf.read(io.BytesIO(await response.read()))
    assert audio.shape == (88200, 2) and rate == 44100
    async with http.get(sim.root_url + "/_sim/projects/prj_0002/references/drums") as response:
        assert response.status == 404
        assert "backing_vocals" in (await response.json())["error"]["message"]


@pytest.mark.anyio
async def test_sim_stats_agrees_with_the_record(sim, api, http):
    """GET /_sim/stats serves exactly what record.snapshot() returns, and is not recorded."""
    await api.run("prj_0001", "mdx23c", key="k")
    await api.separate("prj_0001", "mdx23c", key="k")
    async with http.get(sim.root_url + "/_sim/stats") as response:
        served = await response.json()
    assert served == sim.record.snapshot()
    assert served["separations"] == {"prj_0001:mdx23c": 1} and served["replays"] == 1
    assert all(r["route"].startswith("/api/v1/") for r in served["requests"])
    assert served["by_route"]["POST /api/v1/projects/{projectId}/tasks/stem-separation"] == 2


@pytest.mark.anyio
async def test_first_request_synthesizes_nothing_it_does_not_need(sim, api):
    """Starting the simulator and submitting a separation synthesize no audio."""
    await api.separate("prj_0001", "mdx23c")
    await api.call("GET", "/me")
    assert sum(sim.context.media.synthesis_count.values()) == 0


@pytest.mark.anyio
async def test_bench_profile_serves_thousands_of_projects_without_synthesis(api_for, http):
    """The bench profile starts 8,334 projects fast, keeps no request list, serves tiny WAVs."""
    profile = load_profile("bench").replace(projects=8334, stem_bytes=2048, redirect_share=0.0)
    started = time.monotonic()
    async with Simulator(profile, time_scale=10_000) as sim:
        assert time.monotonic() - started < 1.0
        assert sim.project_ids[-1] == "prj_8334"
        api = api_for(sim)
        task = await api.run("prj_8334", "demucs")
        assert task["status"] in {"completed", "finalized"}
        project = await api.project("prj_8334")
        assert project["title"]
        async with http.get(project["stems"][-1]["url"]) as response:
            data = await response.read()
        assert 2044 <= len(data) <= 2048
        assert sim.context.media.synthesis_count.keys() == {"tiny"}
        stats = sim.record.snapshot()
        assert stats["requests"] is None and stats["requests_total"] > 3


def test_simulator_thread_serves_sync_code():
    """SimulatorThread runs in the background for sync code; stats() reads its record."""
    profile = load_profile("default").replace(song_seconds=2.0)
    with SimulatorThread(profile, time_scale=1000) as sim:
        request = urllib.request.Request(
            sim.base_url + "/me", headers={"Authorization": f"Bearer {sim.api_key}"}
        )
        with urllib.request.urlopen(request, timeout=5) as response:
            assert json.load(response)["userId"]
        stats = sim.stats()
    assert stats["by_route"] == {"GET /api/v1/me": 1}
    assert sim.project_ids[0] == "prj_0001" and sim.storage_url.startswith("http://127.0.0.1:")


def test_simulate_cli_prints_ids_and_url_answers_and_stops_on_sigint():
    """`stemsweep simulate` prints ids and the base URL, answers, and exits 0 on Ctrl-C."""
    process = subprocess.Popen(
        [sys.executable, "-m", "orchestrator", "simulate", "--port", "0", "--time-scale", "100"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        lines = []
        while not lines or not lines[-1].startswith("Press Ctrl-C"):
            line = process.stdout.readline()
            assert line, process.stderr.read()
            lines.append(line.strip())
        text = "\n".join(lines)
        assert "prj_0001" in text and "prj_0006" in text
        base_url = next(ln.split()[-1] for ln in lines if ln.startswith("base URL:"))
        request = urllib.request.Request(
            base_url + "/me", headers={"Authorization": "Bearer yk_cli"}
        )
        with urllib.request.urlopen(request, timeout=5) as response:
            assert response.status == 200
    finally:
        process.send_signal(signal.SIGINT)
        try:
            _, err = process.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()  # never leave a server behind, even when the test fails
            raise
    assert process.returncode == 0, err
    assert "Traceback" not in err
