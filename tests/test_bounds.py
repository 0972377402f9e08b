"""Inputs too large to be meant: manifests, project lists, key scopes, and the API's ids."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from orchestrator.cli import cli
from orchestrator.errors import ManifestError
from orchestrator.manifest import load_manifest
from orchestrator.manifest_yaml import MAX_LIST_FILE_BYTES, MAX_MANIFEST_BYTES
from orchestrator.wire import MAX_ID_LENGTH, parse_project, parse_task, task_id_of


def test_an_oversized_manifest_is_refused_before_it_is_parsed(tmp_path: Path) -> None:
    """A manifest over 1 MiB is refused by its size, with exit 2 and the limit in the
    message: its YAML, broken at the very end, is never read (that would be a syntax error)."""
    path = tmp_path / "huge.yaml"
    filler = "# " + "x" * 98 + "\n"
    path.write_text("version: 1\nname: huge\n" + filler * (MAX_MANIFEST_BYTES // 100) + "x: [")
    assert path.stat().st_size > MAX_MANIFEST_BYTES
    with pytest.raises(ManifestError, match=r"larger than a manifest may be \(1\.0 MiB\)"):
        load_manifest(path)
    result = CliRunner().invoke(cli, ["plan", str(path)])
    assert result.exit_code == 2 and "larger than a manifest may be" in result.output
    assert "syntax" not in result.output


def test_a_manifest_just_under_the_limit_is_read(tmp_path: Path) -> None:
    """The limit refuses only what is over it."""
    path = tmp_path / "big.yaml"
    head = "version: 1\nname: big\nsweeps: [{projects: [prj_a], models: [mdx23c]}]\n"
    path.write_text(head + "#" * (MAX_MANIFEST_BYTES - len(head) - 1) + "\n")
    assert load_manifest(path).name == "big"


def test_an_oversized_projects_file_is_refused_without_being_read(tmp_path: Path) -> None:
    """A projects_file over 32 MiB (a sparse one here: nothing is read before the refusal)
    is named with its size and the limit."""
    ids = tmp_path / "ids.txt"
    with ids.open("wb") as f:
        f.truncate(MAX_LIST_FILE_BYTES + 1)
    path = tmp_path / "m.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "version": 1,
                "name": "m",
                "sweeps": [{"projects_file": "ids.txt", "models": ["mdx23c"]}],
            }
        )
    )
    with pytest.raises(ManifestError, match=r"larger than a projects_file may be \(32\.0 MiB\)"):
        load_manifest(path)


def test_a_key_scope_longer_than_128_characters_is_refused(tmp_path: Path) -> None:
    """A key scope is bounded like names: 128 characters with `{date}` filled in."""
    path = tmp_path / "m.yaml"
    base = {"version": 1, "name": "m", "sweeps": [{"projects": ["p"], "models": ["mdx23c"]}]}
    path.write_text(yaml.safe_dump({**base, "key_scope": "s" * 117 + "-{date}"}))
    assert load_manifest(path).key_scope.endswith("{date}")  # 117 + 1 + 10 = 128
    path.write_text(yaml.safe_dump({**base, "key_scope": "s" * 118 + "-{date}"}))
    with pytest.raises(ManifestError, match="too long a key scope: at most 128"):
        load_manifest(path)


def test_ids_from_the_api_are_bounded() -> None:
    """A task id longer than 255 characters is refused, a stem with one is left out, a
    submission's answer with one holds no usable task id."""
    long = "t" * (MAX_ID_LENGTH + 1)
    with pytest.raises(ValueError, match="longer than 255"):
        parse_task({"id": long, "status": "queued"})
    project = parse_project(
        {"id": "p", "stems": [{"id": long, "type": "vocals", "url": "http://s/v.wav"}]}
    )
    assert project.stems == ()
    assert task_id_of({"taskId": long}) is None
    assert task_id_of({"taskId": "t" * MAX_ID_LENGTH}) == "t" * MAX_ID_LENGTH
