"""The benchmark harness, at smoke sizes: it runs end to end and writes its results.

Benchmarks are not timed tests: nothing here asserts a speed, only that the harness works
and that what the benchmarks read from the simulator and the client is there.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import aiohttp
import anyio
import pytest
from conftest import Api, StartSimulator

from orchestrator.clock import REAL_CLOCK
from orchestrator.looplag import LagSampler
from orchestrator.simulator.server import Simulator

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `bench` is a folder of the repository, not an installed package
    sys.path.insert(0, str(ROOT))

from bench import profile_client, recipe, schedule_sim  # noqa: E402
from bench.harness import Options  # noqa: E402
from bench.table import render_table  # noqa: E402

RESULT_KEYS = {
    "name",
    "title",
    "date",
    "quick",
    "machine",
    "load",
    "inputs",
    "numbers",
    "targets",
    "all_met",
    "shown",
    "notes",
}


@pytest.mark.slow
def test_a_quick_benchmark_runs_end_to_end_and_writes_its_result(tmp_path: Path) -> None:
    """`python -m bench makespan --quick` runs both processes and writes NAME.json + table."""
    done = subprocess.run(
        [sys.executable, "-m", "bench", "makespan", "--quick", "--results", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    document = json.loads((tmp_path / "makespan.json").read_text())
    assert set(document) >= RESULT_KEYS
    assert {"cpu", "cpus", "python"} <= set(document["machine"])
    assert document["quick"] is True
    assert document["numbers"]["jobs_done"] == document["inputs"]["jobs"]
    (goal,) = document["targets"]
    assert set(goal) == {"metric", "value", "target", "met"} and goal["value"] > 0
    assert "| makespan | wall / (ceil(N/c) * d) |" in done.stdout


@pytest.mark.slow
def test_a_benchmark_s_clients_report_their_own_peak_rss(tmp_path: Path) -> None:
    """A client's peak RSS is its own, not that of the process that ran the benchmarks
    before it: `python -m bench` grown to 400 MB (as one benchmark can grow it) still
    reports makespan's client and simulator at their own size."""
    grown = (
        "import sys; ballast = bytearray(400 * 2**20);"
        "ballast[::4096] = b'x' * len(ballast[::4096]);"
        "from bench.__main__ import main;"
        f"sys.exit(main(['makespan', '--quick', '--results', {str(tmp_path)!r}]))"
    )
    done = subprocess.run(
        [sys.executable, "-c", grown], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    numbers = json.loads((tmp_path / "makespan.json").read_text())["numbers"]
    assert numbers["client"]["max_rss_mb"] < 300
    assert numbers["simulator"]["max_rss_mb"] < 300


@pytest.mark.slow
def test_the_songs_benchmark_runs_end_to_end(tmp_path: Path) -> None:
    """`python -m bench songs --quick` makes every song a project, once, without the token on
    the storage host, and writes its rate and CPU per MiB."""
    done = subprocess.run(
        [sys.executable, "-m", "bench", "songs", "--quick", "--results", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    numbers = json.loads((tmp_path / "songs.json").read_text())["numbers"]
    assert numbers["uploads"] == numbers["creations"] == numbers["songs"]
    assert numbers["storage_credentials_seen"] == 0 and numbers["songs_per_minute"] > 0
    assert "| songs | client CPU per MiB uploaded (ms) |" in done.stdout


def test_the_versus_benchmark_runs_both_clients_on_every_workload(tmp_path: Path) -> None:
    """`python -m bench versus --quick`: stemsweep and bench/plain.py each do every job of
    the three workloads, measured from the simulator's record and `wait4`, with ratios."""
    done = subprocess.run(
        [sys.executable, "-m", "bench", "versus", "--quick", "--results", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    document = json.loads((tmp_path / "versus.json").read_text())
    assert set(document) >= RESULT_KEYS
    for name in ("fixed", "varied", "rate_limited"):
        jobs = document["inputs"]["workloads"][name]["jobs"]
        result = document["numbers"][name]
        for client in ("stemsweep", "plain"):
            (run,) = result["runs"][client]
            assert run["jobs_done"] == run["separations_seen"] == jobs
            assert run["polls_per_separation"] >= 1 and run["cpu_ms_per_job"] > 0
            assert run["requests_per_job_by_kind"]["submit"] == 1.0
            assert 0 <= run["mean_delay_share"] < 10
        assert set(result["ratios"]) >= {"wall", "polls_per_separation", "cpu_per_job"}
    assert "| versus | fixed: wall, stemsweep / script |" in done.stdout


def test_the_schedule_simulation_scores_schedules_and_their_bound() -> None:
    """Offline, a schedule's polls and delays come out per separation, and the bound of a
    fixed duration is one poll at no delay."""
    fixed = schedule_sim.workloads()["fixed"]
    small = schedule_sim.Workload(
        "small", fixed.spec, dict(list(fixed.models.items())[:2]), 30, 4, fixed.lag
    )
    for make in (schedule_sim.Current, schedule_sim.Learned):
        outcome = schedule_sim.simulate(small, make, seed=0)
        assert len(outcome.polls) == len(outcome.shares) == 60
        assert min(outcome.polls) >= 1 and min(outcome.shares) >= 0
    (bound,) = schedule_sim.frontier(small, [0.02], points=50)
    assert bound["polls"] == 1.0 and bound["delay_share"] == 0.0


def test_offline_a_task_waiting_for_an_older_sibling_spends_fewer_polls() -> None:
    """On the staggered workload (a model's tasks submitted apart while none has ended),
    the learned schedule with `kin` spends over a poll a separation less than without it,
    at no more than a point of extra delay; where a model's tasks start together it
    changes nothing."""
    staggered = schedule_sim.workloads()["staggered"]
    kin = schedule_sim._merged(staggered, schedule_sim.SCHEDULES["learned"], 2, informed=False)
    none = schedule_sim._merged(staggered, schedule_sim._learned(kin=0.0), 2, informed=False)
    assert kin["polls"] is not None and none["polls"] is not None
    assert kin["polls"] < none["polls"] - 1.0
    assert kin["delay_share"] is not None and none["delay_share"] is not None
    assert kin["delay_share"] <= none["delay_share"] + 0.01
    fixed = schedule_sim.workloads()["fixed"]
    together = [
        schedule_sim._merged(fixed, make, 1, informed=False)
        for make in (schedule_sim.SCHEDULES["learned"], schedule_sim._learned(kin=0.0))
    ]
    assert together[0] == together[1]


def test_the_profile_breakdown_attributes_samples_to_what_they_were_spent_on() -> None:
    """py-spy's raw stacks become shares: a poll's aiohttp time counts as polls, a state
    commit as SQLite, an import as start-up, an event-loop turn as the event loop."""
    main = "thread (0x1);_run_code (<frozen runpy>:88);<module> (orchestrator/__main__.py:6)"
    lines = [
        f"{main};_poll (orchestrator/scheduling.py:330);YoukaClient.task (orchestrator/api.py:400)"
        ";ClientSession._request (aiohttp/client.py:500) 6",
        f"{main};mark_done (orchestrator/state.py:300);_transaction (orchestrator/state.py:90) 2",
        f"{main};_find_and_load (<frozen importlib._bootstrap>:1176);<module> (yaml/a.py:1) 1",
        "thread (0x2);_run_once (asyncio/base_events.py:1900) 1",
        "not a stack line",
    ]
    report = profile_client.breakdown(lines)
    assert report["total_samples"] == 10
    purposes = dict(report["purposes"])  # type: ignore[call-overload]
    assert purposes == {
        "polls (GET /tasks/{id})": 0.6,
        "state (SQLite)": 0.2,
        "start-up (imports)": 0.1,
        "event loop and libraries (no stemsweep frame)": 0.1,
    }
    assert dict(report["libraries"])["aiohttp"] == 0.6  # type: ignore[call-overload]


@pytest.mark.parametrize(
    ("slug", "fsync", "synchronous", "force_close"),
    [
        ("shipped", True, 2, True),
        ("no-fsync", False, 0, True),
        ("kept-alive", True, 2, False),
        ("neither", False, 0, False),
    ],
)
def test_the_guarantees_benchmark_switches_off_what_it_says_and_nothing_else(
    tmp_path: Path, slug: str, fsync: bool, synchronous: int, force_close: bool
) -> None:
    """In a client process of `bench.guarantees`, each variant's switches take effect: the
    store's durable commit runs unsynced and os.fsync does nothing only for "no fsync",
    stem GETs keep their connections only for "kept-alive"; "as shipped" is the client
    as it is (its figures would otherwise compare a client with itself)."""
    probe = f"""
import os, posix, sys
sys.path.insert(0, {str(ROOT)!r})
from bench import guarantees
guarantees.switch_off({slug!r})
import aiohttp, anyio
from pathlib import Path
from orchestrator.state import StateStore
with StateStore.open_writer(Path({str(tmp_path)!r}) / "state.db") as store:
    with store.transaction(durable=True):
        level = store.connection.execute("PRAGMA synchronous").fetchone()[0]
async def connector():
    return aiohttp.TCPConnector(force_close=True).force_close
print(level, os.fsync is posix.fsync, anyio.run(connector))
"""
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    level, synced, closes = done.stdout.split()
    assert int(level) == synchronous
    assert (synced == "True") is fsync
    assert (closes == "True") is force_close


def test_the_table_shows_each_target_and_the_machine() -> None:
    """Every target and shown row becomes a table row; the machine and load follow it."""
    document = {
        "name": "demo",
        "date": "2026-01-02T03:04:05Z",
        "quick": False,
        "machine": {
            "cpu": "Some CPU",
            "cpus": 2,
            "memory_gib": 4.0,
            "python": "3.11.7",
            "os": "Linux 6",
        },
        "load": {"before": [0.5, 0.4, 0.3]},
        "targets": [
            {"metric": "ratio", "value": 1.04, "target": "<= 1.1", "met": True},
            {"metric": "ms", "value": 7.5, "target": "<= 5", "met": False},
        ],
        "shown": [["extra", "42 things"]],
    }
    table = render_table([document])
    assert "| demo | ratio | 1.04 | <= 1.1 | yes |" in table
    assert "| demo | ms | 7.5 | <= 5 | **no** |" in table
    assert "| demo | extra | 42 things | | |" in table
    assert "Some CPU, 2 CPUs" in table and "load before each benchmark 0.5" in table


def test_the_recipe_benchmark_is_skipped_without_jq(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without jq the recipe benchmark says so and how to install it, and runs nothing."""
    monkeypatch.setattr(recipe.shutil, "which", lambda tool: None if tool == "jq" else tool)
    document = recipe.run(Options(quick=True, workdir=tmp_path))
    assert "jq" in document["skipped"] and "apt-get install" in document["skipped"]
    assert document["targets"] == [] and not any(tmp_path.iterdir())


@pytest.mark.anyio
async def test_the_simulator_tells_when_a_task_was_first_seen_ended(
    start_simulator: StartSimulator,
    api_for: Callable[[Simulator], Api],
    http: aiohttp.ClientSession,
) -> None:
    """`/_sim/tasks` counts each task's polls and notes the first poll that saw it ended."""
    sim = await start_simulator("bench", time_scale=100, projects=1, durations={"mdx23c": 1.0})
    api = api_for(sim)
    status, body = await api.separate("prj_0001", "mdx23c", key="k1")
    assert status == 202
    await api.wait(body["taskId"])
    async with http.get(sim.root_url + "/_sim/tasks") as response:
        (task,) = (await response.json())["tasks"]
    assert task["polls"] >= 1
    assert task["seen_terminal_at"] >= task["done_at"] > task["submitted_at"]


@pytest.mark.anyio
async def test_the_loop_lag_sampler_records_and_writes_its_samples(tmp_path: Path) -> None:
    """The sampler records one overshoot (>= 0) and load figure per tick, and writes them."""
    sampler = LagSampler(REAL_CLOCK, load=lambda: 7, interval=0.005)
    with anyio.move_on_after(0.1):
        await sampler.run()
    sampler.write(tmp_path / "lag.json")
    document = json.loads((tmp_path / "lag.json").read_text())
    assert len(document["lag"]) == len(document["at"]) == len(document["in_flight"]) >= 3
    assert min(document["lag"]) >= 0 and set(document["in_flight"]) == {7}
