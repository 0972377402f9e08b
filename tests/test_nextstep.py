"""After a command that did not end well, one line says exactly what to run next."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from conftest import WriteManifest, quick_profile

from orchestrator.cli import cli
from orchestrator.commands.common import EXIT_FAILED, EXIT_OK, EXIT_USAGE
from orchestrator.envelope import (
    API_UNAVAILABLE,
    INTERRUPTED,
    INVALID_MANIFEST,
    MISSING_EXTRA,
    STATE_ERROR,
    STATE_LOCKED,
    UNAUTHORIZED,
    USAGE_ERROR,
)
from orchestrator.jobs import Shard, shard_of
from orchestrator.nextstep import NextStep, after_error, after_run
from orchestrator.simulator.server import SimulatorThread

SAME = "stemsweep run jobs/x.yaml --out /data --shard 1/4"
RETRY = "stemsweep retry jobs/x.yaml --out /data --shard 1/4"
HELP = "stemsweep run --help"
FAILED = [{"project": "p", "model": "m", "status": "failed", "attempt": 1, "reason": "r"}]


@pytest.mark.parametrize(
    ("summary", "step"),
    [
        ({"exit_code": 0, "failed": []}, None),
        (
            {"exit_code": 1, "failed": FAILED * 3},
            NextStep(RETRY, why="gives the 3 jobs not done another go"),
        ),
        (
            {"exit_code": 1, "failed": FAILED},
            NextStep(RETRY, why="gives the 1 job not done another go"),
        ),
        (
            {"exit_code": 130, "interrupted": True, "failed": []},
            NextStep(SAME, why="resumes where this run stopped, separating nothing twice"),
        ),
        (
            {"exit_code": 2, "stopped_by": "key rejected", "failed": []},
            NextStep(SAME, fix="fix what stopped the run (see above)", why="resumes"),
        ),
        (
            {"exit_code": 3, "stopped_by": "the API could not be reached", "failed": []},
            NextStep(SAME, why="resumes once the API answers again; nothing was lost"),
        ),
        ({"exit_code": 4, "failed": FAILED}, NextStep(SAME, why="resumes")),
    ],
)
def test_after_a_run(summary: dict[str, Any], step: NextStep | None) -> None:
    """Exit 1: retry with the same options; 130: the same command; stopped: fix, then it;
    the API unreachable (3): the same command, later; any other ending: the same command."""
    assert after_run(summary, same=SAME, retry=RETRY) == step


@pytest.mark.parametrize(
    ("code", "command", "fix"),
    [
        (INVALID_MANIFEST, SAME, "correct the manifest as the error says"),
        (UNAUTHORIZED, SAME, "export YOUKA_API_KEY=yk_... (a key the API accepts)"),
        (STATE_LOCKED, SAME, "wait for the other run to end (or give this one its own --state)"),
        (MISSING_EXTRA, SAME, "install the extra the error names"),
        (USAGE_ERROR, HELP, "correct the command"),
        (STATE_ERROR, SAME, "do what the error says about the state file"),
        (INTERRUPTED, SAME, ""),
        (API_UNAVAILABLE, SAME, ""),
        ("API_ERROR", SAME, ""),
    ],
)
def test_after_an_error(code: str, command: str, fix: str) -> None:
    """Exit 2 says what to fix first; a usage error points at the command's help."""
    step = after_error(code, same=SAME, help_command=HELP)
    assert (step.command, step.fix) == (command, fix)


def test_the_line_people_read() -> None:
    """`next: [fix, then] COMMAND  # why`: the command can be copied as it is."""
    assert NextStep(RETRY, why="w").line() == f"next: {RETRY}  # w"
    assert NextStep(SAME, fix="f").line() == f"next: f, then {SAME}"


def env_for(sim: SimulatorThread) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("YOUKA_")}
    return {**env, "YOUKA_API_KEY": sim.api_key, "YOUKA_API_URL": sim.base_url}


@pytest.mark.slow
def test_a_run_with_jobs_not_done_says_retry_with_the_same_options(
    write_manifest: WriteManifest, tmp_path: Path
) -> None:
    """Exit 1: the summary ends with `stemsweep retry` and the run's --out and --shard; the
    command it names gives the job another go; after exit 0 there is no such line."""
    missing = "prj_missing"
    shard = Shard(shard_of(missing, 2), 2)  # the shard that holds its job
    out = tmp_path / "tree"
    with SimulatorThread(quick_profile(), seed=51, time_scale=1000) as sim:
        manifest = write_manifest(projects=[missing], models=["mdx23c"])
        argv = ["run", str(manifest), "--out", str(out), "--shard", str(shard), "--no-progress"]
        result = subprocess.run(
            [sys.executable, "-m", "orchestrator", *argv],
            env=env_for(sim),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == EXIT_FAILED
        retry = ["stemsweep", "retry", *argv[1:]]
        assert result.stdout.splitlines()[-1] == (
            f"next: {shlex.join(retry)}  # gives the 1 job not done another go"
        )
        done = write_manifest(projects=sim.project_ids[:1], models=["mdx23c"], filename="ok.yaml")
        ok = subprocess.run(
            [sys.executable, "-m", "orchestrator", "run", str(done), "--no-progress"],
            env=env_for(sim),
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert ok.returncode == EXIT_OK and "next:" not in ok.stdout + ok.stderr


def test_an_invalid_manifest_says_what_to_fix(tmp_path: Path) -> None:
    """Exit 2: under the error, what to fix and the command to run then."""
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\nname: x\nsweeps: [{projects: [a], models: [nonesuch]}]\n")
    result = CliRunner().invoke(cli, ["run", str(bad), "--no-progress"], prog_name="stemsweep")
    assert result.exit_code == EXIT_USAGE
    lines = result.stderr.splitlines()
    assert lines[0].startswith("error: ") and "nonesuch" in result.stderr
    assert lines[-1] == (
        "next: correct the manifest as the error says, then "
        + shlex.join(["stemsweep", "run", str(bad), "--no-progress"])
    )
