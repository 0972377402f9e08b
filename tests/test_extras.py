"""Optional parts: the core runs without any extra's module, and a command that reaches a
missing one stops with exit 2 and one line naming the extra to install."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
import tomllib
import wave
from pathlib import Path

import pytest

from orchestrator.commands.common import EXIT_USAGE
from orchestrator.extras import EXTRAS, missing_extra

ROOT = Path(__file__).resolve().parent.parent
EVERY_EXTRA_MODULE = sorted(set().union(*EXTRAS.values()))

# Runs the CLI with `modules` made unimportable, as in an install without their extras.
WITHOUT = """\
import sys
for m in {modules!r}:
    sys.modules[m] = None
from orchestrator.cli import main
main()
"""

SIMULATED = """\
version: 1
name: sim
api: {simulator: {profile: bench}}
sweeps: [{projects: [prj_0001], models: [mdx23c]}]
"""


def stemsweep_without(
    modules: list[str], *args: str, cwd: Path
) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-c", WITHOUT.format(modules=modules), *args]
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=120)


def requirement_names(requirements: list[str]) -> set[str]:
    """The distribution names of PEP 508 requirement strings, lower case."""
    return {re.split(r"[<>=!~;\[ ]", req, maxsplit=1)[0].lower() for req in requirements}


@pytest.mark.parametrize(
    ("module", "command", "extra"),
    [
        ("numpy", "report", "report"),
        ("numpy", "simulate", "simulator"),
        ("soundfile", "run", "simulator"),
        ("numpy", "retry", "simulator"),
        ("scipy.signal", "report", "report"),
        ("pyloudnorm", "run", "report"),  # not the command's extra: the one that has it
    ],
)
def test_the_extra_named_is_the_commands_own_when_it_provides_the_module(
    module: str, command: str, extra: str
) -> None:
    """The message names the missing package and the one extra to install for this command."""
    message = missing_extra(module, command)
    assert message is not None
    assert f"({module.partition('.')[0]} is not installed)" in message
    assert message.endswith(f"pip install 'stemsweep[{extra}]'")


def test_a_module_no_extra_provides_is_not_blamed_on_one() -> None:
    """A missing module that no extra installs is left to surface as the bug it is."""
    assert missing_extra("yaml", "run") is None
    assert missing_extra("numpyx", "report") is None
    assert missing_extra(None, "report") is None


def test_the_extras_table_agrees_with_pyproject() -> None:
    """EXTRAS names exactly what pyproject.toml's extras install; dev and all hold them all."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    for extra, modules in EXTRAS.items():
        assert requirement_names(extras[extra]) == modules, extra
    everything = f"stemsweep[{','.join(sorted(EXTRAS, reverse=True))}]"
    assert extras["all"] == [everything] and everything in extras["dev"]
    assert not requirement_names(project["dependencies"]) & set(EVERY_EXTRA_MODULE)


@pytest.mark.slow
def test_the_core_commands_run_without_any_extra(tmp_path: Path) -> None:
    """`models` and `plan` work with numpy, scipy, soundfile and pyloudnorm unimportable."""
    listed = stemsweep_without(EVERY_EXTRA_MODULE, "models", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert len(listed.stdout.splitlines()) == 12
    planned = stemsweep_without(
        EVERY_EXTRA_MODULE, "plan", str(ROOT / "jobs" / "compare-all-models.yaml"), cwd=tmp_path
    )
    assert planned.returncode == 0, planned.stderr


@pytest.mark.slow
def test_song_files_are_read_without_any_extra(tmp_path: Path) -> None:
    """A sweep of song files is found, checked and planned with no audio stack installed."""
    music = tmp_path / "music"
    music.mkdir()
    with wave.open(str(music / "song.wav"), "wb") as out:
        out.setnchannels(2)
        out.setsampwidth(2)
        out.setframerate(44100)
        out.writeframes(b"\1\0" * 88200)
    (music / "broken.flac").write_bytes(b"not flac")
    manifest = tmp_path / "songs.yaml"
    manifest.write_text("version: 1\nname: s\nsweeps:\n  - {songs: music/song.wav, models: all}\n")
    planned = stemsweep_without(EVERY_EXTRA_MODULE, "plan", str(manifest), cwd=tmp_path)
    assert planned.returncode == 0, planned.stderr
    assert "create" in planned.stdout and "mdx23c/song" in planned.stdout
    manifest.write_text("version: 1\nname: s\nsweeps:\n  - {songs: music/, models: all}\n")
    refused = stemsweep_without(EVERY_EXTRA_MODULE, "plan", str(manifest), cwd=tmp_path)
    assert refused.returncode == 2 and "broken.flac" in refused.stderr


def one_stem_tree(root: Path) -> Path:
    """A hand-made tree of one WAV stem: {root}/mdx23c/prj_0001/vocals.wav."""
    folder = root / "tree" / "mdx23c" / "prj_0001"
    folder.mkdir(parents=True)
    with wave.open(str(folder / "vocals.wav"), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(8000)
        out.writeframes(b"\0\0" * 800)
    return root / "tree"


@pytest.mark.slow
@pytest.mark.parametrize(
    ("blocked", "command", "extra"),
    [
        ("numpy", "simulate", "simulator"),
        ("numpy", "run", "simulator"),
        ("scipy", "report", "report"),
        ("soundfile", "report", "report"),
    ],
)
def test_a_command_whose_extra_is_missing_names_it_in_one_line(
    tmp_path: Path, blocked: str, command: str, extra: str
) -> None:
    """Exit 2, no traceback, one line on stderr saying which extra to install, then the
    next step: the same command once it is installed."""
    manifest = tmp_path / "sim.yaml"
    manifest.write_text(SIMULATED)
    args = {
        "simulate": ["simulate", "--port", "0", "--storage-port", "0"],
        "run": ["run", str(manifest), "--no-progress"],
        "report": ["report", str(one_stem_tree(tmp_path))],
    }[command]
    done = stemsweep_without([blocked], *args, cwd=tmp_path)
    assert done.returncode == EXIT_USAGE, done.stderr
    assert done.stderr.splitlines() == [
        f"error: {missing_extra(blocked, command)}",
        f"next: install the extra the error names, then {shlex.join(['stemsweep', *args])}",
    ]
    assert f"pip install 'stemsweep[{extra}]'" in done.stderr
    assert not (tmp_path / "out" / "sim" / "mdx23c").exists()  # nothing was run
