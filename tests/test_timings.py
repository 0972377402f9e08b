"""Learned separation times kept in the state store across runs, by API origin."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest
from conftest import FAST_CLIENT, StartSimulator, WriteManifest

from orchestrator.backoff import DurationModel
from orchestrator.manifest import load_manifest
from orchestrator.runner import RunOutcome, run_manifest
from orchestrator.simulator.server import Simulator
from orchestrator.state import StateStore, default_state_path
from orchestrator.timings import SAVE_EVERY, Timings, api_origin, simulator_origin

API = "https://api.youka.io:443"


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return default_state_path(tmp_path / "out")


def _learn(timings: Timings, model: str, brackets: list[tuple[float, float]]) -> None:
    learned = timings.load()
    for pending, ended in brackets:
        learned.setdefault(model, DurationModel()).observe(pending, ended)
        timings.observed(model)


def test_durations_are_kept_per_origin_and_model(db: Path) -> None:
    """What one run saved for an API is what the next run of that API loads; another
    origin loads nothing of it."""
    with StateStore.open_writer(db) as store:
        timings = Timings(store, API)
        _learn(timings, "demucs", [(50.0, 60.0), (55.0, 62.0)])
        timings.save()
    with StateStore.open_writer(db) as store:
        loaded = Timings(store, API).load()
        other = Timings(store, simulator_origin("default", 30.0)).load()
    assert list(loaded) == ["demucs"]
    assert loaded["demucs"].to_dict() == {"brackets": [[50.0, 60.0], [55.0, 62.0]]}
    assert other == {}


def test_observations_are_saved_in_batches_and_at_the_end(db: Path) -> None:
    """Nothing is written before `SAVE_EVERY` observations; then all of them at once."""
    with StateStore.open_writer(db) as store:
        timings = Timings(store, API)
        _learn(timings, "mdx23c", [(1.0, 2.0)] * (SAVE_EVERY - 1))
        assert Timings(store, API).load() == {}
        _learn(timings, "mdx23c", [(1.0, 2.0)])
        assert len(Timings(store, API).load()["mdx23c"]) == min(SAVE_EVERY, 32)


def test_a_store_written_before_durations_were_kept_still_opens(db: Path) -> None:
    """A store without the table reads as uninformed, and a run adds the table."""
    with StateStore.open_writer(db) as store:
        store.commit_key("prj_a", "demucs", attempt=1, key="k1", known_stem_ids=[])
    with sqlite3.connect(db) as conn:
        assert (
            conn.execute("SELECT count(*) FROM sqlite_master WHERE name = 'durations'").fetchone()[
                0
            ]
            == 0
        )
    with StateStore.open_reader(db) as reader:
        assert Timings(reader, API).load() == {}
    with StateStore.open_writer(db) as store:
        assert Timings(store, API).load() == {}
        assert store.get("prj_a", "demucs") is not None
    with sqlite3.connect(db) as conn:
        assert (
            conn.execute("SELECT count(*) FROM sqlite_master WHERE name = 'durations'").fetchone()[
                0
            ]
            == 1
        )


def test_a_damaged_record_leaves_that_model_uninformed(db: Path) -> None:
    """A record that does not read back as a model is left out; the others load."""
    with StateStore.open_writer(db) as store:
        timings = Timings(store, API)
        _learn(timings, "demucs", [(5.0, 6.0)])
        _learn(timings, "mdx23c", [(5.0, 6.0)])
        timings.save()
        store.connection.execute(
            "UPDATE durations SET brackets = '{\"brackets\": [[1, \"x\"]]}' WHERE model = 'demucs'"
        )
        assert list(Timings(store, API).load()) == ["mdx23c"]


def test_adopting_another_split_takes_the_more_recent_model(tmp_path: Path) -> None:
    """A new shard's store takes, per model, the brackets saved last in the tree's others."""
    old, new = tmp_path / "old.db", tmp_path / "new.db"
    with StateStore.open_writer(new) as store:
        timings = Timings(store, API)
        _learn(timings, "mdx23c", [(1.0, 2.0)])  # saved before the other store's
        timings.save()
    with StateStore.open_writer(old) as store:
        timings = Timings(store, API)
        _learn(timings, "mdx23c", [(8.0, 9.0)])
        _learn(timings, "demucs", [(3.0, 4.0)])
        timings.save()
    with StateStore.open_writer(new) as store:
        assert Timings(store, API).adopt(old) == 2
        loaded = Timings(store, API).load()
        assert loaded["mdx23c"].to_dict() == {"brackets": [[8.0, 9.0]]}
        assert Timings(store, API).adopt(old) == 0  # nothing newer the second time


def test_origins_name_scheme_host_and_port() -> None:
    """An API's durations are keyed by its origin, whatever its path; a simulator's by its
    profile and time scale."""
    assert api_origin("https://API.youka.io/api/v1") == API
    assert api_origin("http://127.0.0.1:8080/api/v1") == "http://127.0.0.1:8080"
    assert simulator_origin("bench", 20.0) == "simulator:bench@20"


# --- end to end: a second run starts informed -----------------------------------------------


async def _run(sim: Simulator, manifest: Path, **options: Any) -> RunOutcome:
    return await run_manifest(
        load_manifest(manifest),
        api_url=sim.base_url,
        environ={"YOUKA_API_KEY": sim.api_key},
        client_options=FAST_CLIENT,
        **options,
    )


@pytest.mark.anyio
@pytest.mark.usefixtures("no_retry_waits")
async def test_a_second_run_aims_its_first_polls_with_what_the_first_learned(
    start_simulator: StartSimulator, write_manifest: WriteManifest
) -> None:
    """The first run probes its first separations (many polls) and saves what it saw; the
    next run of the same tree, on other projects, polls from the start at the learned
    end; against another API it starts uninformed again."""
    fixed = {
        "durations": {"mdx23c": 20.0},
        "created_time": 0.0,
        "queue_time": (0.0, 0.0),
        "duration_jitter": 0.0,
    }
    sim = await start_simulator(time_scale=100.0, **fixed)
    poll = {"initial": "0.01s", "max": "0.2s", "timeout": "30s"}
    limits = {"max_in_flight": 1, "per_project": 1, "requests_per_second": 1000}
    first = write_manifest(
        projects=sim.project_ids[:2], models=["mdx23c"], poll=poll, limits=limits
    )
    probed = await _run(sim, first)
    second = write_manifest(
        projects=sim.project_ids[2:4],
        models=["mdx23c"],
        poll=poll,
        limits=limits,
        filename="second.yaml",
    )
    informed = await _run(sim, second)
    assert probed.exit_code == informed.exit_code == 0
    with StateStore.open_reader(informed.state_path) as store:
        saved = Timings(store, api_origin(sim.base_url)).load()
    assert len(saved["mdx23c"]) == 4
    # Probing 0.2 s from 0.01 s takes about a dozen polls; aimed, two or three each.
    assert probed.summary["polls"] >= 10
    assert informed.summary["polls"] <= 6 < probed.summary["polls"]
    elsewhere = await start_simulator(time_scale=100.0, **fixed)
    again = write_manifest(
        projects=elsewhere.project_ids[4:5],
        models=["mdx23c"],
        poll=poll,
        limits=limits,
        filename="elsewhere.yaml",
    )
    uninformed = await _run(elsewhere, again)
    assert uninformed.summary["polls"] >= 8
