"""`--shard I/N`: a deterministic share of the jobs, its own state, one shared output tree."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from conftest import FAST_CLIENT, StartSimulator, WriteManifest, check_tree, quick_profile

from orchestrator.cli import cli
from orchestrator.files import PARTIAL_PREFIX
from orchestrator.jobs import Shard, shard_of
from orchestrator.lifecycle import Status
from orchestrator.manifest import load_manifest
from orchestrator.runner import run_manifest
from orchestrator.simulator.server import SimulatorThread
from orchestrator.state import StateStore, StemRow, default_state_path
from orchestrator.state_merge import adopt

MODELS = ["mdx23c", "demucs", "bs_roformer", "uvr_mdxnet_kara_2"]
PLAN_ROW = re.compile(r"^(prj_\S+)\s+(\S+)\s+new\s+submit\s+1\s+(ss1:\S+)\s", re.MULTILINE)


def clean_env(**extra: str) -> dict[str, str]:
    """The test's environment without any Youka settings, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("YOUKA_")}
    env.update(extra)
    return env


def planned(manifest: Path, *args: str) -> dict[tuple[str, str], str]:
    """(project, model) -> key of every job `stemsweep plan --all` lists."""
    result = CliRunner().invoke(cli, ["plan", str(manifest), "--all", *args], env=clean_env())
    assert result.exit_code == 0, result.output
    return {(p, m): key for p, m, key in PLAN_ROW.findall(result.output)}


def shard_rows(state: Path) -> dict[tuple[str, str], Status]:
    with StateStore.open_reader(state) as store:
        return {(r.project, r.model): r.status for r in store.iter_jobs()}


@pytest.mark.parametrize("count", [2, 3, 5])
def test_plan_shards_partition_the_jobs_with_unchanged_keys(
    count: int, write_manifest: WriteManifest
) -> None:
    """`plan --shard I/N` for every I: disjoint shares whose union is every job, same keys."""
    projects = [f"prj_{n:04d}" for n in range(30)]
    manifest = write_manifest(projects=projects, models=["mdx23c", "demucs", "bs_roformer"])
    whole = planned(manifest)
    assert len(whole) == 90
    shares = [planned(manifest, "--shard", f"{index}/{count}") for index in range(count)]
    for i, share in enumerate(shares):
        for other in shares[i + 1 :]:
            assert not set(share) & set(other)
    merged = {job: key for share in shares for job, key in share.items()}
    assert merged == whole  # every job once, and its key does not depend on the shard
    assert all(shares)


def test_shard_0_of_1_is_the_unsharded_run(write_manifest: WriteManifest) -> None:
    """`--shard 0/1` selects every job and uses the ordinary state file."""
    manifest = write_manifest(projects=["prj_a", "prj_b"], models=["mdx23c"])
    result = CliRunner().invoke(cli, ["plan", str(manifest), "--shard", "0/1"], env=clean_env())
    assert result.exit_code == 0
    assert "state.db" in result.output and "jobs:     2: submit 2" in result.output


@pytest.mark.parametrize("command", ["run", "retry", "plan", "status"])
@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("4/4", "--shard 4/4: I must be between 0 and 3"),
        ("1/0", "--shard 1/0: N must be at least 1"),
        ("1", "--shard must be I/N, like 0/4"),
        ("-1/4", "--shard must be I/N, like 0/4"),
        ("a/b", "--shard must be I/N, like 0/4"),
    ],
)
def test_bad_shard_exits_2_with_a_clear_message(
    command: str, value: str, message: str, write_manifest: WriteManifest
) -> None:
    """A malformed or out-of-range --shard exits 2 with one line saying what is allowed."""
    manifest = write_manifest(projects=["prj_a"], models=["mdx23c"])
    env = clean_env(YOUKA_API_KEY="yk_x", YOUKA_API_URL="http://127.0.0.1:9/api/v1")
    result = CliRunner().invoke(cli, [command, str(manifest), "--shard", value], env=env)
    assert result.exit_code == 2
    assert result.output.startswith(f"error: {message}"), result.output
    assert "Traceback" not in result.output
    assert not (manifest.parent / "out").exists()  # refused before anything was written


@pytest.fixture
def overlapping_sim() -> Iterator[SimulatorThread]:
    """Separations of about 0.5 s that replace `stems[]`, so two shards' runs overlap."""
    profile = quick_profile(stems_mode="replace")
    with SimulatorThread(profile, seed=41, time_scale=200) as sim:
        yield sim


@pytest.mark.slow
def test_two_shards_at_once_share_one_tree(
    overlapping_sim: SimulatorThread, write_manifest: WriteManifest, tmp_path: Path
) -> None:
    """Shards 0/2 and 1/2 run at once: every job once, no separation twice, one per project."""
    sim = overlapping_sim
    manifest = write_manifest(
        projects=sim.project_ids,
        models=MODELS,
        limits={"max_in_flight": 4, "per_project": 1, "requests_per_second": 500},
    )
    env = clean_env(YOUKA_API_KEY=sim.api_key, YOUKA_API_URL=sim.base_url)
    runs = [
        subprocess.Popen(
            [sys.executable, "-m", "orchestrator", "run", str(manifest), "--shard", f"{i}/2"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for i in range(2)
    ]
    outputs = [run.communicate(timeout=120) for run in runs]
    for run, (_stdout, stderr) in zip(runs, outputs, strict=True):
        assert run.returncode == 0, stderr.decode()[-3000:]
    assert outputs[0][0].startswith(b"stemsweep run sweep (shard 0/2): ")
    assert (
        outputs[0][0]
        .rstrip()
        .endswith(b"summary in " + bytes(tmp_path / "out") + b"/summary-shard-0-of-2.json")
    )

    out = tmp_path / "out"
    states = [out / ".stemsweep" / f"state-shard-{i}-of-2.db" for i in range(2)]
    shares = [shard_rows(state) for state in states]
    every_job = {(p, m) for p in sim.project_ids for m in MODELS}
    assert not set(shares[0]) & set(shares[1])
    assert set(shares[0]) | set(shares[1]) == every_job
    assert all(set(share.values()) == {Status.DONE} for share in shares)
    for i, share in enumerate(shares):
        assert all(shard_of(project, 2) == i for project, _ in share)

    stats = sim.stats()
    assert stats["separations_total"] == len(every_job)
    assert stats["duplicate_separations"] == 0
    assert stats["max_in_progress_per_project"] == 1  # per_project holds across shards
    files = sum(check_tree(out, state) for state in states)
    assert stats["downloads"] == files  # every file fetched once, by one shard
    stems = [p for p in out.rglob("*") if p.suffix in (".wav", ".flac")]
    assert len(stems) == files
    summaries = {p.name: json.loads(p.read_text()) for p in out.glob("summary*.json")}
    assert set(summaries) == {"summary-shard-0-of-2.json", "summary-shard-1-of-2.json"}
    assert sum(s["jobs"] for s in summaries.values()) == len(every_job)
    assert {s["shard"] for s in summaries.values()} == {"0/2", "1/2"}


@pytest.mark.anyio
@pytest.mark.usefixtures("no_retry_waits")
async def test_a_shard_removes_only_its_own_partial_files(
    start_simulator: StartSimulator, write_manifest: WriteManifest, tmp_path: Path
) -> None:
    """At start a shard deletes leftover partials in its folders, never another shard's."""
    sim = await start_simulator(seed=42)
    mine = next(p for p in sim.project_ids if shard_of(p, 2) == 0)
    theirs = next(p for p in sim.project_ids if shard_of(p, 2) == 1)
    manifest = write_manifest(projects=[mine, theirs], models=["mdx23c"])
    out = tmp_path / "out"
    leftovers = {
        name: out.joinpath(*parts, PARTIAL_PREFIX + name)
        for name, parts in {
            "mine": ("mdx23c", mine),
            "my_references": ("_references", mine),
            "theirs": ("mdx23c", theirs),
            "their_references": ("_references", theirs),
            "root": (),
        }.items()
    }
    for path in leftovers.values():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"half a file")
    outcome = await run_manifest(
        load_manifest(manifest),
        shard=Shard(0, 2),
        api_url=sim.base_url,
        environ={"YOUKA_API_KEY": sim.api_key},
        client_options=FAST_CLIENT,
    )
    assert outcome.exit_code == 0 and outcome.summary["jobs"] == 1
    assert outcome.state_path == out / ".stemsweep" / "state-shard-0-of-2.db"
    kept = {name for name, path in leftovers.items() if path.exists()}
    assert kept == {"theirs", "their_references", "root"}
    assert (out / "summary-shard-0-of-2.json").is_file() and not (out / "summary.json").exists()
    assert not (out / "mdx23c" / theirs / "job.json").exists()


@pytest.mark.anyio
@pytest.mark.usefixtures("no_retry_waits")
async def test_resharding_adopts_earlier_records_and_repeats_nothing(
    start_simulator: StartSimulator, write_manifest: WriteManifest, api_for: Any
) -> None:
    """Unsharded, then 2 shards, then 3: each split adopts the earlier records, none repeats."""
    sim = await start_simulator(seed=43)
    projects = sim.project_ids
    manifest = write_manifest(projects=projects, models=["mdx23c", "demucs"])
    loaded = load_manifest(manifest)
    # An unsharded run sent one POST and died before recording its answer; another
    # unsharded run did the mdx23c half of the sweep.
    late = projects[-1]
    key = f"ss1:sweep:{late}:demucs:1"
    status, _ = await api_for(sim).separate(late, "demucs", key)
    assert status == 202
    with StateStore.open_writer(default_state_path(loaded.output)) as store:
        store.commit_key(late, "demucs", attempt=1, key=key, known_stem_ids=[])
    first = await run_manifest(
        load_manifest(write_manifest(projects=projects, models=["mdx23c"], filename="first.yaml")),
        api_url=sim.base_url,
        environ={"YOUKA_API_KEY": sim.api_key},
        client_options=FAST_CLIENT,
    )
    assert first.exit_code == 0
    posts = sim.record.snapshot()["by_route"][
        "POST /api/v1/projects/{projectId}/tasks/stem-separation"
    ]

    for count in (2, 3):
        for index in range(count):
            outcome = await run_manifest(
                loaded,
                shard=Shard(index, count),
                api_url=sim.base_url,
                environ={"YOUKA_API_KEY": sim.api_key},
                client_options=FAST_CLIENT,
            )
            assert outcome.exit_code == 0, outcome.summary["failed"]
    record = sim.record.snapshot()
    route = record["by_route"]["POST /api/v1/projects/{projectId}/tasks/stem-separation"]
    assert route == posts + len(projects)  # each demucs job once, `late` re-sent with its key
    assert record["replays"] == 1
    assert record["separations_total"] == 2 * len(projects)
    assert record["duplicate_separations"] == 0
    for count in (2, 3):
        rows = [
            shard_rows(loaded.output / ".stemsweep" / f"state-shard-{i}-of-{count}.db")
            for i in range(count)
        ]
        assert sum(len(r) for r in rows) == 2 * len(projects)
        assert all(set(r.values()) <= {Status.DONE} for r in rows)
    with StateStore.open_reader(loaded.output / ".stemsweep" / "state-shard-0-of-3.db") as store:
        adopted = [r for r in store.iter_jobs() if r.model == "mdx23c"]
        assert adopted and all(r.key == f"ss1:sweep:{r.project}:mdx23c:1" for r in adopted)


def test_adoption_takes_the_latest_record_of_each_wanted_job(tmp_path: Path) -> None:
    """A store adopts wanted jobs it lacks or holds an older record of; its newer ones stay."""

    def stem(sha: str) -> list[StemRow]:
        return [StemRow("vocals", "stm_1", 1.0, 3, sha, f"m/{sha}/vocals.wav")]

    old, own = tmp_path / "state.db", tmp_path / "state-shard-0-of-2.db"
    with StateStore.open_writer(own) as store:  # written first: older than `old`'s rows
        store.commit_key("prj_b", "m", attempt=1, key="ss1:s:prj_b:m:1", known_stem_ids=[])
        store.mark_finished("prj_b", "m", Status.FAILED, error="failed here")
    time.sleep(0.01)
    with StateStore.open_writer(old) as store:
        for project in ("prj_a", "prj_b", "prj_c", "prj_x"):
            store.commit_key(project, "m", attempt=2, key=f"ss1:s:{project}:m:2", known_stem_ids=[])
            store.mark_submitted(project, "m", f"tsk_{project}")
            store.mark_done(project, "m", stem(project))
    time.sleep(0.01)
    with StateStore.open_writer(own) as store:  # newer than `old`'s record of prj_c
        store.commit_key("prj_c", "m", attempt=3, key="ss1:s:prj_c:m:3", known_stem_ids=[])
        assert adopt(store, old, lambda project: project != "prj_x") == 2
        assert adopt(store, old, lambda project: project != "prj_x") == 0  # already taken
    with StateStore.open_reader(own) as store:
        rows = {r.project: r for r in store.iter_jobs()}
        assert set(rows) == {"prj_a", "prj_b", "prj_c"}  # prj_x is another shard's
        assert rows["prj_a"].status is Status.DONE and rows["prj_a"].task_id == "tsk_prj_a"
        assert rows["prj_b"].status is Status.DONE and rows["prj_b"].attempt == 2  # newer
        assert store.stems("prj_b", "m") == stem("prj_b")
        assert rows["prj_c"].status is Status.SUBMITTING and rows["prj_c"].attempt == 3
        assert store.stems("prj_c", "m") == []
        attempts = store._conn.execute("SELECT count(*) FROM attempts").fetchone()[0]
        assert attempts == 4  # prj_b's attempts 1 and 2, prj_a's 2, prj_c's 3


@pytest.mark.anyio
async def test_plan_and_status_read_every_split_of_a_sharded_tree(
    start_simulator: StartSimulator, write_manifest: WriteManifest
) -> None:
    """Without --shard, `status` and `plan` count what every shard recorded; a shard of a
    new split shows the work the earlier split did, before its own first run."""
    sim = await start_simulator(seed=44)
    manifest = write_manifest(projects=sim.project_ids[:6], models=["mdx23c", "demucs"])
    loaded = load_manifest(manifest)
    for index in range(2):
        outcome = await run_manifest(
            loaded,
            shard=Shard(index, 2),
            api_url=sim.base_url,
            environ={"YOUKA_API_KEY": sim.api_key},
            client_options=FAST_CLIENT,
        )
        assert outcome.exit_code == 0, outcome.summary["failed"]
    runner = CliRunner()
    status = runner.invoke(cli, ["status", str(manifest)], env=clean_env())
    assert status.exit_code == 0, status.output
    assert "jobs:  12: done 12" in status.output
    assert "state-shard-0-of-2.db" in status.output and "state-shard-1-of-2.db" in status.output
    plan = runner.invoke(cli, ["plan", str(manifest)], env=clean_env())
    assert plan.exit_code == 0, plan.output
    assert "jobs:     12: skip_done 12" in plan.output
    seen = 0
    for index in range(3):  # a new split: none of its stores exists yet
        args = ["plan", str(manifest), "--shard", f"{index}/3"]
        resharded = runner.invoke(cli, args, env=clean_env())
        assert resharded.exit_code == 0, resharded.output
        assert "(none yet)" in resharded.output
        line = re.search(rf"jobs: +(\d+) in shard {index}/3: (.*)\n", resharded.output)
        assert line is not None, resharded.output
        total = int(line[1])
        assert line[2] == (f"skip_done {total}" if total else "")
        seen += total
    assert seen == 12
