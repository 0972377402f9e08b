"""The `run`, `retry`, `plan` and `status` commands: exit codes, messages, secrets."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import WriteManifest, check_tree, quick_profile, run_in_terminal

from orchestrator.cli import cli
from orchestrator.simulator.server import SimulatorThread

BAD_MANIFESTS = sorted((Path(__file__).parent / "manifests" / "bad").glob("*.yaml"))
TOKEN = "yk_T0KEN_zq81_DO_NOT_LEAK_5f3a"


def clean_env(**extra: str) -> dict[str, str]:
    """The test's environment without any Youka settings, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("YOUKA_")}
    env.update(extra)
    return env


def stemsweep(
    *args: str, env: dict[str, str], timeout: float = 60
) -> subprocess.CompletedProcess[bytes]:
    """Run the real command in a subprocess; stdout and stderr captured as bytes."""
    return subprocess.run(
        [sys.executable, "-m", "orchestrator", *map(str, args)],
        env=env,
        capture_output=True,
        timeout=timeout,
        check=False,
    )


@pytest.fixture(scope="module")
def sim() -> Iterator[SimulatorThread]:
    """A fast simulator in a background thread, shared by the tests of this module."""
    with SimulatorThread(quick_profile(), seed=21, time_scale=1000) as simulator:
        yield simulator


def api_calls(sim: SimulatorThread) -> int:
    return int(sim.stats()["api_calls"])


def test_every_command_has_an_example() -> None:
    """Each command's help shows an example invocation."""
    runner = CliRunner()
    for name in cli.commands:  # type: ignore[attr-defined]
        result = runner.invoke(cli, [name, "--help"])
        assert result.exit_code == 0, name
        assert "Example" in result.output, name


@pytest.mark.parametrize("manifest", BAD_MANIFESTS, ids=[p.name for p in BAD_MANIFESTS])
def test_bad_manifest_exit_2_before_any_request(manifest: Path, sim: SimulatorThread) -> None:
    """A bad manifest exits 2 with its file name in the message and no API request."""
    before = sim.stats()["requests_total"]
    env = clean_env(YOUKA_API_KEY=sim.api_key, YOUKA_API_URL=sim.base_url)
    result = CliRunner().invoke(cli, ["run", str(manifest), "--no-progress"], env=env)
    assert result.exit_code == 2, result.output
    assert manifest.name in result.output
    assert "Traceback" not in result.output
    assert sim.stats()["requests_total"] == before


def test_bad_manifest_corpus_is_there() -> None:
    """The corpus of bad manifests has at least a dozen cases."""
    assert len(BAD_MANIFESTS) >= 12


@pytest.mark.parametrize("value", [None, "", "   "])
def test_missing_or_empty_key_exit_2(
    value: str | None, sim: SimulatorThread, write_manifest: WriteManifest
) -> None:
    """Without a usable YOUKA_API_KEY the run exits 2 naming it, before any request."""
    manifest = write_manifest(projects=sim.project_ids[:1], models=["mdx23c"])
    before = sim.stats()["requests_total"]
    env = clean_env(YOUKA_API_URL=sim.base_url)
    if value is not None:
        env["YOUKA_API_KEY"] = value
    result = stemsweep("run", manifest, "--no-progress", env=env)
    assert result.returncode == 2
    assert b"YOUKA_API_KEY" in result.stderr
    assert sim.stats()["requests_total"] == before


def test_rejected_key_exit_2_before_submission(write_manifest: WriteManifest) -> None:
    """A key the API refuses ends the run with exit 2 after one GET /me, nothing submitted."""
    with SimulatorThread(quick_profile(api_key=TOKEN), seed=22, time_scale=1000) as pinned:
        manifest = write_manifest(projects=pinned.project_ids[:2], models=["mdx23c"])
        env = clean_env(YOUKA_API_KEY="yk_not_the_right_one", YOUKA_API_URL=pinned.base_url)
        result = stemsweep("run", manifest, "--no-progress", env=env)
        stats = pinned.stats()
    assert result.returncode == 2
    assert b"YOUKA_API_KEY" in result.stderr and b"rejected" in result.stderr
    assert b"yk_not_the_right_one" not in result.stdout + result.stderr  # a secret too
    assert stats["separations_total"] == 0
    assert set(stats["by_route"]) == {"GET /api/v1/me"}


def test_api_url_precedence(sim: SimulatorThread, write_manifest: WriteManifest) -> None:
    """--api-url wins over YOUKA_API_URL, which wins over the manifest's base_url."""
    manifest = write_manifest(
        projects=sim.project_ids[:1],
        models=["mdx23c"],
        api={"base_url": "http://127.0.0.1:9/api/v1"},
    )
    wrong_env = clean_env(YOUKA_API_KEY=sim.api_key, YOUKA_API_URL="http://127.0.0.1:9/api/v1")
    result = stemsweep("run", manifest, "--no-progress", "--api-url", sim.base_url, env=wrong_env)
    assert result.returncode == 0, result.stderr[-2000:]
    right_env = clean_env(YOUKA_API_KEY=sim.api_key, YOUKA_API_URL=sim.base_url)
    again = stemsweep("run", manifest, "--no-progress", env=right_env)
    assert again.returncode == 0


def test_token_never_written_anywhere(tmp_path: Path, write_manifest: WriteManifest) -> None:
    """The API key appears in no byte of stdout, stderr, state, job.json or summary.json."""
    profile = quick_profile(api_key=TOKEN, faults={"error_on_get": 0.05, "expired_url": 0.2})
    with SimulatorThread(profile, seed=23, time_scale=1000) as pinned:
        manifest = write_manifest(
            projects=[*pinned.project_ids[:2], "prj_missing"], models=["mdx23c", "demucs"]
        )
        env = clean_env(YOUKA_API_KEY=TOKEN, YOUKA_API_URL=pinned.base_url)
        outputs = [
            stemsweep("run", manifest, "--log-format", "json", env=env),
            stemsweep("retry", manifest, "--log-format", "console", env=env),
            stemsweep("status", manifest, env=env),
            stemsweep("plan", manifest, "--all", env=env),
        ]
        stats = pinned.stats()
    assert outputs[0].returncode == 1  # prj_missing is reported, the rest done
    assert b"prj_missing" in outputs[0].stdout
    assert stats["storage_credentials_seen"] == 0
    for result in outputs:
        assert TOKEN.encode() not in result.stdout + result.stderr
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert any(p.name == "state.db" for p in files) and any(p.name == "job.json" for p in files)
    for path in files:
        assert TOKEN.encode() not in path.read_bytes(), path


def test_plan_shows_keys_and_paths_without_network(
    sim: SimulatorThread, write_manifest: WriteManifest
) -> None:
    """`plan` lists jobs, their keys and folders, needs no key and sends no request."""
    manifest = write_manifest(projects=sim.project_ids[:2], models=["mdx23c", "demucs"])
    before = sim.stats()["requests_total"]
    result = CliRunner().invoke(cli, ["plan", str(manifest)], env=clean_env())
    assert result.exit_code == 0, result.output
    assert f"ss1:sweep:{sim.project_ids[0]}:mdx23c:1" in result.output
    assert f"demucs/{sim.project_ids[1]}" in result.output
    assert "jobs:     4: submit 4" in result.output
    assert sim.stats()["requests_total"] == before
    assert not (Path(str(manifest)).parent / "out").exists()  # plan writes nothing


def test_plan_is_compact_for_big_manifests(write_manifest: WriteManifest) -> None:
    """A big manifest's plan shows counts and the first rows; --all shows every row."""
    projects = [f"prj_{i:04d}" for i in range(40)]
    manifest = write_manifest(projects=projects, models=["mdx23c", "demucs"])
    short = CliRunner().invoke(cli, ["plan", str(manifest)], env=clean_env())
    full = CliRunner().invoke(cli, ["plan", str(manifest), "--all"], env=clean_env())
    assert "60 more jobs" in short.output
    assert full.output.count("ss1:sweep:") == 80


def test_status_and_plan_reflect_the_state(
    sim: SimulatorThread, write_manifest: WriteManifest
) -> None:
    """After a run, `status` counts what the state holds and `plan` skips what is done."""
    manifest = write_manifest(projects=[sim.project_ids[0], "prj_missing"], models=["mdx23c"])
    env = clean_env(YOUKA_API_KEY=sim.api_key, YOUKA_API_URL=sim.base_url)
    result = stemsweep("run", manifest, "--no-progress", env=env)
    assert result.returncode == 1
    assert b"not done (1)" in result.stdout
    status = CliRunner().invoke(cli, ["status", str(manifest)], env=clean_env())
    assert status.exit_code == 0
    assert "done 1" in status.output and "skipped 1" in status.output
    assert "prj_missing mdx23c [skipped, attempt 1]" in status.output
    plan = CliRunner().invoke(cli, ["plan", str(manifest)], env=clean_env())
    assert "skip_done 1" in plan.output and "report_failed 1" in plan.output
    retry_plan = CliRunner().invoke(cli, ["plan", str(manifest), "--retry"], env=clean_env())
    assert "submit 1" in retry_plan.output


def test_summary_on_stdout_and_logs_on_stderr(
    sim: SimulatorThread, write_manifest: WriteManifest, tmp_path: Path
) -> None:
    """stdout holds the summary; stderr holds one JSON event per line, a job.done per job."""
    import json

    manifest = write_manifest(projects=sim.project_ids[:2], models=["mdx23c"])
    env = clean_env(YOUKA_API_KEY=sim.api_key, YOUKA_API_URL=sim.base_url)
    result = stemsweep("run", manifest, env=env)  # not a terminal: JSON logs, no display
    assert result.returncode == 0
    assert result.stdout.decode().startswith("stemsweep run sweep: 2 jobs")
    events = [json.loads(line) for line in result.stderr.decode().splitlines() if line.strip()]
    names = [e["event"] for e in events]
    assert names.count("job.done") == 2 and "run.finished" in names
    # Two jobs of three files: the original mix (a default type) and the model's two stems.
    assert check_tree(tmp_path / "out", tmp_path / "out" / ".stemsweep" / "state.db") == 6


def test_progress_display_on_a_terminal(
    sim: SimulatorThread, write_manifest: WriteManifest
) -> None:
    """On a terminal the live display shows jobs per state and model; --no-progress hides it."""
    manifest = write_manifest(projects=sim.project_ids[:2], models=["mdx23c", "demucs"])
    env = clean_env(YOUKA_API_KEY=sim.api_key, YOUKA_API_URL=sim.base_url, COLUMNS="120")
    returncode, seen, _ = run_in_terminal(["run", str(manifest)], env)
    assert returncode == 0
    assert b"4/4 done" in seen
    assert b"mdx23c" in seen and b"demucs" in seen


def test_unknown_simulator_profile_exit_2(write_manifest: WriteManifest) -> None:
    """A manifest naming a simulator profile that does not exist exits 2, naming the file."""
    manifest = write_manifest(
        projects=["prj_0001"], models=["mdx23c"], api={"simulator": {"profile": "nonesuch"}}
    )
    result = CliRunner().invoke(cli, ["run", str(manifest), "--no-progress"], env=clean_env())
    assert result.exit_code == 2
    assert "manifest.yaml" in result.output and "nonesuch" in result.output
