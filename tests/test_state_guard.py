"""A state store that is emptied, zeroed, damaged, not a store, or reached through a planted
symbolic link: the run rebuilds, or refuses, and never starts over silently."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
import structlog
from click.testing import CliRunner
from conftest import StartSimulator, WriteManifest, check_tree, sweep

from orchestrator.cli import cli
from orchestrator.errors import StateError
from orchestrator.lifecycle import Status
from orchestrator.state import StateStore

MODELS = ["mdx23c", "demucs"]


def is_file(path: str) -> bool:
    return Path(path).is_file()


def zero_first_page(path: Path) -> None:
    with path.open("r+b") as f:
        f.write(b"\0" * 4096)


def empty(path: Path) -> None:
    path.write_bytes(b"")


def zero_inner_pages(path: Path) -> None:
    """Zero every page but the first: the header stays, the tables' pages are gone."""
    size = path.stat().st_size
    assert size > 2 * 4096
    with path.open("r+b") as f:
        f.seek(4096)
        f.write(b"\0" * (size - 4096))


@pytest.mark.anyio
@pytest.mark.parametrize("damage", [empty, zero_first_page, zero_inner_pages])
async def test_a_lost_state_is_rebuilt_from_the_job_json_files(
    start_simulator: StartSimulator, write_manifest: WriteManifest, damage: Any, tmp_path: Path
) -> None:
    """A state emptied or zeroed after its jobs were done: the next run keeps the damaged file
    aside, rebuilds every done job from its job.json, says so, and sends nothing."""
    sim = await start_simulator(seed=21)
    manifest = write_manifest(projects=sim.project_ids[:2], models=MODELS)
    first = await sweep(sim, manifest)
    assert first.exit_code == 0
    files = check_tree(tmp_path / "out", first.state_path)
    damage(first.state_path)
    requests_before = dict(sim.record.separations), sim.record.replays

    with structlog.testing.capture_logs() as events:
        again = await sweep(sim, manifest)
    assert again.exit_code == 0
    assert (dict(sim.record.separations), sim.record.replays) == requests_before  # nothing sent
    rebuilt = again.summary["state_rebuilt"]
    assert rebuilt["jobs_from_job_json"] == 4 and rebuilt["found"] in {"empty", "damaged"}
    assert is_file(rebuilt["kept_aside"])
    assert any(e["event"] == "state.rebuilt" and e["log_level"] == "warning" for e in events)
    assert check_tree(tmp_path / "out", again.state_path) == files > 0
    with StateStore.open_reader(again.state_path) as store:
        assert {r.status for r in store.iter_jobs()} == {Status.DONE}


@pytest.mark.anyio
async def test_a_deleted_state_is_rebuilt_and_plan_shows_it_first(
    start_simulator: StartSimulator, write_manifest: WriteManifest
) -> None:
    """With the state folder gone, `plan` already reads the done jobs from job.json (saying
    so), and the run rebuilds them instead of submitting anything."""
    sim = await start_simulator(seed=22)
    manifest = write_manifest(projects=sim.project_ids[:1], models=MODELS)
    first = await sweep(sim, manifest)
    for path in first.state_path.parent.iterdir():
        path.unlink()
    plan = CliRunner().invoke(cli, ["plan", str(manifest)])
    assert plan.exit_code == 0, plan.output
    assert "missing: read as the next run rebuilds it, with 2 job(s)" in plan.output
    assert "skip_done" in plan.output
    again = await sweep(sim, manifest)
    assert again.exit_code == 0 and again.summary["state_rebuilt"]["jobs_from_job_json"] == 2
    assert sim.record.replays == 0


def test_a_file_that_is_no_state_is_refused_and_left_alone(
    write_manifest: WriteManifest, tmp_path: Path
) -> None:
    """`--state` pointing at another file: exit 2, a message, and the file untouched."""
    manifest = write_manifest(projects=["prj_0001"], models=MODELS)
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes\n")
    result = CliRunner().invoke(
        cli, ["run", str(manifest), "--state", str(notes), "--no-progress"],
        env={"YOUKA_API_KEY": "yk_test", "YOUKA_API_URL": "http://127.0.0.1:9/api/v1"},
    )  # fmt: skip
    assert result.exit_code == 2
    assert "is not a stemsweep state file" in result.output
    assert notes.read_text() == "my notes\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["manifest.yaml", "notes.txt"]


def test_every_sqlite_error_is_translated_at_the_state_boundary(tmp_path: Path) -> None:
    """A read that meets damaged pages raises `StateError` (exit 2) naming the file and the
    way out, never sqlite3's own error."""
    path = tmp_path / "state.db"
    with StateStore.open_writer(path) as store:
        for n in range(300):
            store.commit_key(f"prj_{n}", "mdx23c", attempt=1, key=f"k{n}", known_stem_ids=[])
    reader = StateStore.open_reader(path)
    zero_inner_pages(path)
    with pytest.raises(StateError, match="damaged; the next `stemsweep run` keeps it aside") as err:
        list(reader.iter_jobs())
    assert err.value.exit_code == 2 and err.value.damaged
    reader.close()
    with pytest.raises(StateError, match="damaged"), StateStore.open_reader(path) as again:
        again.get("prj_1", "mdx23c")


# --- symbolic links planted under .stemsweep ---------------------------------------------

PLANTED = [
    ".stemsweep",
    "state.db",
    "state.db.lock",
    "state.db-wal",
    "state.db-shm",
    "state.db-journal",
    "simulator",
]


@pytest.mark.parametrize("name", PLANTED)
def test_a_symlink_planted_under_stemsweep_is_refused(tmp_path: Path, name: str) -> None:
    """A link at any path stemsweep creates under `.stemsweep/` (or at the folder itself):
    the run stops with exit 2 and a message naming it, before any request, and what the
    link points to is left as it was."""
    out = tmp_path / "out"
    manifest = tmp_path / "demo.yaml"
    manifest.write_text(
        json.dumps(
            {
                "version": 1,
                "name": "linked",
                "output": str(out),
                "api": {"simulator": {"profile": "default", "time_scale": 1000}},
                "sweeps": [{"projects": ["prj_0001"], "models": ["mdx23c"]}],
            }
        )
    )
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "precious.txt").write_text("keep me\n")
    target = victim if name in (".stemsweep", "simulator") else victim / "precious.txt"
    planted = out / name if name == ".stemsweep" else out / ".stemsweep" / name
    planted.parent.mkdir(parents=True, exist_ok=True)
    planted.symlink_to(target)

    result = CliRunner().invoke(cli, ["run", str(manifest), "--no-progress"])

    assert result.exit_code == 2, result.output
    assert "symbolic link" in result.output and name in result.output
    assert sorted(os.listdir(victim)) == ["precious.txt"]
    assert (victim / "precious.txt").read_text() == "keep me\n"
    assert not (out / "summary.json").exists()  # stopped before any request
