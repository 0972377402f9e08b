"""Commits of several jobs placed together by one worker-thread call (`files.GroupCommit`)."""

from __future__ import annotations

import json
from pathlib import Path

import anyio
import pytest

from orchestrator import files
from orchestrator.download import in_memory
from orchestrator.errors import DownloadError
from orchestrator.files import PARTIAL_PREFIX, GroupCommit

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def partials(root: Path) -> list[Path]:
    return [p for p in root.rglob(f"{PARTIAL_PREFIX}*")]


async def test_commits_that_come_together_share_calls_and_each_is_placed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Twelve jobs committing at once: every file and job.json in place, in fewer
    worker-thread calls than commits."""
    calls: list[int] = []
    place = files._place_groups

    def counting(groups: list[files._Group]) -> None:
        calls.append(len(groups))
        place(groups)

    monkeypatch.setattr(files, "_place_groups", counting)
    group = GroupCommit()
    placed: dict[int, list[files.Downloaded]] = {}

    async def job(n: int) -> None:
        folder = tmp_path / f"job{n}"
        body = in_memory(b"x" * n, folder / "vocals.wav", n, "audio/wav")
        placed[n] = await group.commit([body], [(folder / "job.json", {"n": n})])

    async with anyio.create_task_group() as tg:
        for n in range(1, 13):
            tg.start_soon(job, n)
    assert sum(calls) == 12 and len(calls) < 12
    for n in range(1, 13):
        assert (tmp_path / f"job{n}" / "vocals.wav").read_bytes() == b"x" * n
        assert json.loads((tmp_path / f"job{n}" / "job.json").read_text()) == {"n": n}
        assert placed[n][0].bytes == n
    assert partials(tmp_path) == []


async def test_a_commit_that_fails_fails_alone(tmp_path: Path) -> None:
    """A job whose folder is a file gets DownloadError; the job committed with it is placed,
    and no temporary file is left."""
    group = GroupCommit()
    blocked = tmp_path / "blocked"
    (blocked / "job.json").mkdir(parents=True)  # a folder where its job.json goes
    results: dict[str, object] = {}

    async def job(name: str) -> None:
        folder = tmp_path / name
        body = in_memory(b"abc", folder / "vocals.wav", 3, "audio/wav")
        try:
            results[name] = await group.commit([body], [(folder / "job.json", {})])
        except DownloadError as exc:
            results[name] = exc

    async with anyio.create_task_group() as tg:
        tg.start_soon(job, "blocked")
        tg.start_soon(job, "fine")
    assert isinstance(results["blocked"], DownloadError)
    assert (tmp_path / "fine" / "vocals.wav").read_bytes() == b"abc"
    assert partials(tmp_path) == []


async def test_a_cancelled_commit_leaves_no_temporary_file(tmp_path: Path) -> None:
    """A caller cancelled while its commit waits for the call in progress leaves nothing
    half-written: its files are placed whole, or not at all."""
    group = GroupCommit()

    async def job(name: str) -> None:
        folder = tmp_path / name
        body = in_memory(b"abc", folder / "vocals.wav", 3, "audio/wav")
        await group.commit([body], [(folder / "job.json", {})])

    with anyio.move_on_after(0):
        async with anyio.create_task_group() as tg:
            for name in ("a", "b", "c"):
                tg.start_soon(job, name)
    assert partials(tmp_path) == []
    for name in ("a", "b", "c"):
        stem = tmp_path / name / "vocals.wav"
        assert not stem.exists() or stem.read_bytes() == b"abc"
