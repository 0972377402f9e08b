"""`--json`: every command answers with exactly one JSON envelope on stdout, logs stay on
stderr, and the exit codes are those of the text mode."""

from __future__ import annotations

import json
import os
import select
import shlex
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner, Result
from conftest import WriteManifest, quick_profile

from orchestrator.catalog import model_names
from orchestrator.cli import cli
from orchestrator.commands.common import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE
from orchestrator.simulator.server import SimulatorThread

pytestmark = pytest.mark.slow


def clean_env(**extra: str) -> dict[str, str]:
    """The test's environment without any Youka settings, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("YOUKA_")}
    env.update(extra)
    return env


def stemsweep(*args: object, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """The real command in a subprocess, stdout and stderr captured as text."""
    command = [sys.executable, "-m", "orchestrator", *map(str, args)]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)


def envelope(stdout: str) -> dict[str, Any]:
    """stdout as ONE JSON document (json.loads refuses anything before or after it)."""
    document = json.loads(stdout)
    assert isinstance(document, dict) and isinstance(document["ok"], bool)
    return document


def invoke(*args: str) -> Result:
    """The command in this process (stdout and stderr kept apart)."""
    return CliRunner().invoke(cli, [str(a) for a in args], env=clean_env(), prog_name="stemsweep")


def log_events(stderr: str) -> list[dict[str, Any]]:
    """stderr as JSON log events, one per line."""
    return [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]


@pytest.fixture(scope="module")
def sim() -> Iterator[SimulatorThread]:
    """A fast simulator in a background thread, shared by the tests of this module."""
    with SimulatorThread(quick_profile(), seed=31, time_scale=1000) as simulator:
        yield simulator


def test_models(tmp_path: Path) -> None:
    """`models --json`: the twelve models with their purpose, the same as the text lists."""
    result = invoke("models", "--json")
    assert result.exit_code == EXIT_OK and result.stderr == ""
    answer = envelope(result.stdout)
    assert answer["ok"] is True
    assert [m["name"] for m in answer["data"]["models"]] == list(model_names())
    assert all(m["purpose"] for m in answer["data"]["models"])
    text = invoke("models").stdout.splitlines()
    assert [line.split()[0] for line in text] == list(model_names())


def test_plan(write_manifest: WriteManifest) -> None:
    """`plan --json`: jobs per action, the first rows (every one with --all), no network."""
    projects = [f"prj_{i:04d}" for i in range(15)]
    manifest = write_manifest(projects=projects, models=["mdx23c", "demucs"])
    result = invoke("plan", manifest, "--json")
    assert result.exit_code == EXIT_OK and result.stderr == ""
    data = envelope(result.stdout)["data"]
    assert data["jobs"] == 30 and data["actions"] == {"submit": 30}
    assert data["mode"] == "run" and data["state_exists"] is False and data["shard"] is None
    assert len(data["rows"]) == 20 and data["more"] == 10
    first = data["rows"][0]
    assert first == {
        "project": "prj_0000",
        "model": "mdx23c",
        "recorded": "new",
        "action": "submit",
        "attempt": 1,
        "key": "ss1:sweep:prj_0000:mdx23c:1",
        "folder": "mdx23c/prj_0000",
    }
    every = envelope(invoke("plan", manifest, "--json", "--all", "--retry").stdout)["data"]
    assert len(every["rows"]) == 30 and every["more"] == 0 and every["mode"] == "retry"
    text = invoke("plan", manifest, "--all").stdout
    assert all(row["key"] in text for row in every["rows"])  # the text shows the same rows


def test_run_status_and_retry(
    sim: SimulatorThread, write_manifest: WriteManifest, tmp_path: Path
) -> None:
    """`run --json` and `retry --json` answer with the summary as in summary.json (`ok`
    false with jobs not done, exit 1, the next command to run); the logs are JSON events
    on stderr; `status --json` then lists the job not done."""
    manifest = write_manifest(projects=[sim.project_ids[0], "prj_missing"], models=["mdx23c"])
    out = tmp_path / "elsewhere"
    env = clean_env(YOUKA_API_KEY=sim.api_key, YOUKA_API_URL=sim.base_url)
    result = stemsweep("run", manifest, "--out", out, "--json", env=env)
    assert result.returncode == EXIT_FAILED
    answer = envelope(result.stdout)
    assert answer["ok"] is False
    assert answer["error"]["code"] == "JOBS_NOT_DONE"
    assert answer["error"]["message"] == "1 of 2 jobs not done (skipped 1)"
    assert answer["error"]["next"] == shlex.join(
        ["stemsweep", "retry", str(manifest), "--out", str(out), "--json"]
    )
    assert answer["data"] == json.loads((out / "summary.json").read_text())
    assert answer["data"]["counts"] == {"done": 1, "skipped": 1}
    events = [e["event"] for e in log_events(result.stderr)]
    assert "job.done" in events and "job.failed" in events and "run.finished" in events

    status = invoke("status", manifest, "--out", out, "--json")
    assert status.exit_code == EXIT_OK
    data = envelope(status.stdout)["data"]
    assert data["jobs"] == 2 and data["counts"] == {"done": 1, "skipped": 1}
    assert [(f["project"], f["status"]) for f in data["failed"]] == [("prj_missing", "skipped")]
    assert data["state"] == str(out / ".stemsweep" / "state.db") and data["state_exists"]

    again = stemsweep("retry", manifest, "--out", out, "--json", env=env)
    assert again.returncode == EXIT_FAILED
    retried = envelope(again.stdout)
    assert retried["data"]["mode"] == "retry" and retried["error"]["code"] == "JOBS_NOT_DONE"


def test_a_run_that_does_everything(sim: SimulatorThread, write_manifest: WriteManifest) -> None:
    """`run --json` with every job done: `ok` true, exit 0, the summary as data."""
    manifest = write_manifest(projects=sim.project_ids[:2], models=["demucs"])
    env = clean_env(YOUKA_API_KEY=sim.api_key, YOUKA_API_URL=sim.base_url)
    result = stemsweep("run", manifest, "--json", env=env)
    assert result.returncode == EXIT_OK
    answer = envelope(result.stdout)
    assert answer == {"ok": True, "data": answer["data"]}
    assert answer["data"]["counts"] == {"done": 2} and answer["data"]["exit_code"] == 0


def test_missing_key(write_manifest: WriteManifest) -> None:
    """A run without YOUKA_API_KEY: exit 2, UNAUTHORIZED, what to fix and what to run then."""
    manifest = write_manifest(projects=["prj_0001"], models=["mdx23c"])
    result = stemsweep("run", manifest, "--json", env=clean_env())
    assert result.returncode == EXIT_USAGE
    error = envelope(result.stdout)["error"]
    assert error["code"] == "UNAUTHORIZED" and "YOUKA_API_KEY" in error["message"]
    assert "YOUKA_API_KEY" in error["fix"]
    assert error["next"] == shlex.join(["stemsweep", "run", str(manifest), "--json"])
    assert "data" not in envelope(result.stdout)
    assert result.stderr.startswith("error: YOUKA_API_KEY")


def test_invalid_manifest(tmp_path: Path) -> None:
    """An invalid manifest under `plan --json` and `status --json`: exit 2, INVALID_MANIFEST."""
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 2\nname: x\nsweeps: []\n")
    for command in ("plan", "status"):
        result = invoke(command, bad, "--json")
        assert result.exit_code == EXIT_USAGE
        error = envelope(result.stdout)["error"]
        assert error["code"] == "INVALID_MANIFEST" and "bad.yaml" in error["message"]
        assert "bad.yaml" in result.stderr


@pytest.mark.parametrize(
    ("args", "help_command"),
    [
        (["run", "--json", "--bogus", "m.yaml"], "stemsweep run --help"),
        (["status", "--json"], "stemsweep status --help"),
        (["--json", "nonesuch"], "stemsweep --help"),
    ],
)
def test_usage_errors_click_finds(args: list[str], help_command: str) -> None:
    """An unknown option, a missing argument, an unknown command: exit 2, USAGE_ERROR, the
    help to read next; click's own message stays on stderr."""
    result = invoke(*args)
    assert result.exit_code == EXIT_USAGE
    error = envelope(result.stdout)["error"]
    assert error["code"] == "USAGE_ERROR" and error["next"] == help_command
    assert error["message"] in result.stderr


def test_usage_error_of_an_option_value(write_manifest: WriteManifest) -> None:
    """A --shard out of range: exit 2, USAGE_ERROR with the message of the text mode."""
    manifest = write_manifest(projects=["prj_0001"], models=["mdx23c"])
    result = invoke("plan", manifest, "--shard", "9/4", "--json")
    assert result.exit_code == EXIT_USAGE
    error = envelope(result.stdout)["error"]
    assert error["code"] == "USAGE_ERROR" and error["next"] == "stemsweep plan --help"
    assert f"error: {error['message']}" in result.stderr


def test_missing_extra(tmp_path: Path) -> None:
    """`report --json` without the report extra: exit 2, MISSING_EXTRA naming it."""
    from test_extras import one_stem_tree, stemsweep_without

    done = stemsweep_without(
        ["scipy"], "report", str(one_stem_tree(tmp_path)), "--json", cwd=tmp_path
    )
    assert done.returncode == EXIT_USAGE
    error = envelope(done.stdout)["error"]
    assert error["code"] == "MISSING_EXTRA" and "stemsweep[report]" in error["message"]


def test_report(tmp_path: Path) -> None:
    """`report --json`: the paths written and what was measured."""
    from test_extras import one_stem_tree

    result = invoke("report", one_stem_tree(tmp_path), "--json")
    assert result.exit_code == EXIT_OK, result.output
    data = envelope(result.stdout)["data"]
    assert Path(data["html"]).is_file() and data["html"].endswith("report.html")
    assert Path(data["json"]).is_file() and Path(data["csv"]).is_file()
    assert data["entries"] == 1 and data["failed_files"] == 0


def test_simulate(tmp_path: Path) -> None:
    """`simulate --json`: one document once it listens, saying where and with which key."""
    process = subprocess.Popen(
        [sys.executable, "-m", "orchestrator", "simulate", "--port", "0", "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
    )
    try:
        assert process.stdout is not None
        data = envelope(process.stdout.readline())["data"]
        assert data["base_url"].startswith("http://127.0.0.1:") and data["base_url"].endswith(
            "/api/v1"
        )
        assert data["api_key"].startswith("yk_") and data["projects"][0] == "prj_0001"
        assert data["profile"] == "default" and data["state"] is None
    finally:
        process.send_signal(signal.SIGTERM)
        rest, _ = process.communicate(timeout=30)
    assert process.returncode == EXIT_OK and rest == ""  # one document in all


@pytest.mark.parametrize("as_json", [True, False])
def test_interrupted_before_the_run_starts(write_manifest: WriteManifest, as_json: bool) -> None:
    """Ctrl-C while the key check waits for an API that does not answer: exit 130, the
    same command to run next, in the envelope or on stderr."""
    with socket.socket() as silent:  # accepts connections, never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/api/v1"
        manifest = write_manifest(projects=["prj_0001"], models=["mdx23c"], api={"base_url": url})
        flags = ["--no-progress", *(["--json"] if as_json else [])]
        process = subprocess.Popen(
            [sys.executable, "-m", "orchestrator", "run", str(manifest), *flags],
            env=clean_env(YOUKA_API_KEY="yk_test"),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        readable, _, _ = select.select([silent], [], [], 60)  # GET /me is waiting
        assert readable
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == EXIT_INTERRUPTED
    same = shlex.join(["stemsweep", "run", str(manifest), *flags])
    assert f"next: {same}" in stderr
    if as_json:
        error = envelope(stdout)["error"]
        assert error["code"] == "INTERRUPTED" and error["next"] == same
    else:  # log lines may come first: the run had begun (its summary was written)
        assert stdout == "" and "interrupted" in stderr.splitlines()


def test_interrupted_run_keeps_its_summary(tmp_path: Path) -> None:
    """Ctrl-C during a run under --json: exit 130, INTERRUPTED, the summary as data."""
    manifest = tmp_path / "slow.yaml"
    data = {
        "version": 1,
        "name": "slow",
        "api": {"simulator": {"profile": "default", "seed": 0, "time_scale": 20}},
        "output": str(tmp_path / "out"),
        "limits": {"max_in_flight": 2, "per_project": 1, "requests_per_second": 500},
        "poll": {"initial": "0.05s", "max": "0.2s", "timeout": "60s"},
        "sweeps": [{"projects": ["prj_0001", "prj_0002"], "models": ["mdx23c", "demucs"]}],
    }
    manifest.write_text(yaml.safe_dump(data), encoding="utf-8")
    process = subprocess.Popen(
        [sys.executable, "-m", "orchestrator", "run", str(manifest), "--json"],
        env=clean_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
    )
    assert process.stderr is not None
    for line in process.stderr:  # wait for a separation to be under way
        if '"job.submitted"' in line:
            break
    process.send_signal(signal.SIGINT)
    stdout, _ = process.communicate(timeout=60)
    assert process.returncode == EXIT_INTERRUPTED
    answer = envelope(stdout)
    assert answer["error"]["code"] == "INTERRUPTED"
    assert answer["error"]["next"] == shlex.join(["stemsweep", "run", str(manifest), "--json"])
    assert answer["data"]["interrupted"] is True and answer["data"]["exit_code"] == 130
