"""Safe paths, extensions, verified atomic writes and the clean-up of interrupted downloads."""

from __future__ import annotations

import hashlib
import json
import os
import stat
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import anyio
import blake3
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from orchestrator import files
from orchestrator.api import YoukaClient
from orchestrator.download import check_length, digest_matches, file_digest, stage
from orchestrator.errors import DownloadError, RetryableDownloadError
from orchestrator.files import (
    PARTIAL_PREFIX,
    Staged,
    commit,
    commit_one,
    discard,
    remove_partials,
    write_bytes_atomic,
    write_json_atomic,
)
from orchestrator.paths import (
    MAX_NAME_LENGTH,
    extension_for,
    file_for,
    is_safe_name,
    safe_path,
    with_extension,
)
from orchestrator.simulator.profile import Profile
from orchestrator.simulator.server import Simulator


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def all_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() or p.is_symlink())


# --- names and paths ---------------------------------------------------------------------------


UNSAFE = [
    "..",
    ".",
    "",
    "a/b",
    "/abs",
    "a\\b",
    "C:\\evil",
    "\x00",
    "vocals\x00.wav",
    "x" * 300,
    "x" * (MAX_NAME_LENGTH + 1),
    "../../evil",
    "vocals/../../escape",
    ".hidden",
    "-rf",
    "trailing.",
    "con",
    "NUL.wav",
    "vocals wav",
    "vöcals",
]


@pytest.mark.parametrize("name", UNSAFE)
def test_unsafe_names_are_refused(tmp_path: Path, name: str) -> None:
    """Traversal, separators, absolute paths, NUL, dot names and overlong names are refused."""
    assert not is_safe_name(name)
    with pytest.raises(DownloadError):
        safe_path(tmp_path, "mdx23c", name)
    with pytest.raises(DownloadError):
        safe_path(tmp_path, name, "vocals")


@pytest.mark.parametrize(
    "name",
    [
        "vocals",
        "backing_vocals",
        "mel_band_roformer_instrumental_instv7_gabox",
        "prj_abc-1",
        "stm_1.2",
        "_x",
        "x" * MAX_NAME_LENGTH,
    ],
)
def test_plain_names_become_paths_under_the_root(tmp_path: Path, name: str) -> None:
    """Plain names are accepted and joined under the root as they are."""
    assert is_safe_name(name)
    assert safe_path(tmp_path, "mdx23c", name) == tmp_path / "mdx23c" / name


def test_a_symlink_out_of_the_root_is_refused(tmp_path: Path) -> None:
    """A folder under the root that links outside it cannot be written through."""
    root, outside = tmp_path / "out", tmp_path / "elsewhere"
    root.mkdir()
    outside.mkdir()
    (root / "mdx23c").symlink_to(outside, target_is_directory=True)
    with pytest.raises(DownloadError, match="leaves the output folder"):
        safe_path(root, "mdx23c", "prj_1", "vocals")


async def wait_terminal(youka: YoukaClient, task_id: str) -> None:
    task = await youka.task(task_id)
    while not task.terminal:
        await anyio.sleep(0.02)
        task = await youka.task(task_id)


@pytest.mark.anyio
async def test_hostile_server_names_never_write_outside_the_tree(tmp_path: Path) -> None:
    """Stems the simulator names `../../evil`, `a/b`, `/abs/...` are refused; the rest land."""
    root, outside = tmp_path / "out", tmp_path
    profile = Profile(
        projects=1,
        hostile_names=True,
        synthesize=False,
        stem_bytes=1024,
        created_time=0.0,
        queue_time=(0.0, 0.0),
        durations={"mdx23c": 0.0},
        finalize_after=0.0,
    )
    refused = written = 0
    async with Simulator(profile, seed=4) as sim:
        pid = sim.project_ids[0]
        options: dict[str, Any] = {"requests_per_second": 1000, "attempts": 3, "wait_initial": 0.01}
        async with YoukaClient(sim.base_url, sim.api_key, **options) as youka:
            task_id = await youka.submit(pid, "mdx23c", "hostile-1")
            with anyio.fail_after(5):
                await wait_terminal(youka, task_id)
            project = await youka.project(pid)
            for stem in project.stems:
                try:
                    dest = safe_path(root, stem.model or "original", pid, stem.type)
                except DownloadError:
                    refused += 1
                    continue
                got = await youka.download(stem.url, dest)
                assert got.path.resolve().is_relative_to(root.resolve())
                written += 1
    assert refused >= 1 and written >= 1
    assert {p.name for p in outside.iterdir()} == {"out"}
    assert all(p.resolve().is_relative_to(root.resolve()) for p in all_files(root))
    assert len(all_files(root)) == written


# --- extensions and lengths ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content_type", "url", "expected"),
    [
        ("audio/wav", "https://s/x", "wav"),
        ("audio/x-wav", "https://s/x", "wav"),
        ("audio/wave", "https://s/x", "wav"),
        ("audio/vnd.wave", "https://s/x", "wav"),
        ("AUDIO/FLAC; q=1", "https://s/x.wav", "flac"),
        ("audio/x-flac", "https://s/x", "flac"),
        ("audio/mpeg", "https://s/x", "mp3"),
        ("audio/ogg", "https://s/x", "ogg"),
        ("audio/mp4", "https://s/x", "m4a"),
        ("audio/aac", "https://s/x", "m4a"),
        (None, "https://s/a/b.FLAC?sig=x.mp3", "flac"),
        ("application/octet-stream", "https://s/a%2Eb.ogg", "ogg"),
        ("application/octet-stream", "https://s/a.exe", "bin"),
        (None, "https://s/a.wav/../b", "bin"),
        ("text/html", "https://s/noext", "bin"),
    ],
)
def test_extension_for(content_type: str | None, url: str, expected: str) -> None:
    """Content-Type first, then a known audio suffix of the URL path (not its query), else bin."""
    assert extension_for(content_type, url) == expected


@pytest.mark.parametrize(
    ("content_type", "served_by", "expected"),
    [
        ("audio/flac", "https://s/x.wav", "vocals.flac"),  # the type wins over any suffix
        (None, "https://s/x.wav?sig=1", "vocals.wav"),  # the URL that served the body
        (None, "https://s/opaque", "vocals.mp3"),  # else the URL first asked for
        ("text/plain", "https://api/v1/stems/1/download.mp3", "vocals.mp3"),  # no redirect
        (None, "https://api/v1/stems/1/download", "vocals.bin"),
    ],
)
def test_file_for_names_a_body_from_its_response(
    tmp_path: Path, content_type: str | None, served_by: str, expected: str
) -> None:
    """A stem's extension: Content-Type, else the serving URL's suffix, else the asked one's."""
    requested = "https://api/v1/stems/1/download.mp3" if "opaque" in served_by else served_by
    assert file_for(tmp_path / "vocals", content_type, served_by, requested).name == expected


def test_with_extension_keeps_dots_already_in_the_name(tmp_path: Path) -> None:
    """`vocals.v2` + flac is `vocals.v2.flac`, not `vocals.flac`; odd extensions are refused."""
    assert with_extension(tmp_path / "vocals.v2", "flac") == tmp_path / "vocals.v2.flac"
    assert with_extension(tmp_path / "backing_vocals", "wav").name == "backing_vocals.wav"
    with pytest.raises(DownloadError):
        with_extension(tmp_path / "v", "../x")


def test_check_length() -> None:
    """A byte count that differs from Content-Length is a retryable error; no header, no check."""
    check_length(10, 10)
    check_length(10, None)
    for received, declared in [(5, 10), (11, 10), (0, 1)]:
        with pytest.raises(RetryableDownloadError, match=f"received {received} bytes"):
            check_length(received, declared)


# --- stage and commit_one ----------------------------------------------------------------------


BODY = os.urandom(300_000)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@asynccontextmanager
async def fetched(handler: Handler) -> AsyncIterator[aiohttp.ClientResponse]:
    """The response of a GET to a server on 127.0.0.1:0 that answers with `handler`."""
    app = web.Application()
    app.router.add_get("/{tail:.*}", handler)
    server = TestServer(app, host="127.0.0.1", port=0)
    await server.start_server()
    try:
        async with (
            aiohttp.ClientSession() as session,
            session.get(server.make_url("/x")) as response,
        ):
            yield response
    finally:
        await server.close()


async def whole(request: web.Request) -> web.StreamResponse:
    return web.Response(body=BODY, content_type="audio/flac")


async def endless(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": "audio/wav"})
    response.content_length = 10 * len(BODY)
    await response.prepare(request)
    for _ in range(10):
        await response.write(BODY)
        await anyio.sleep(0.05)
    return response


@pytest.mark.anyio
async def test_a_staged_body_committed_is_hashed_verified_and_renamed(tmp_path: Path) -> None:
    """The file holds the body, with its BLAKE3 digest and size; no temporary file is left."""
    final = tmp_path / "mdx23c" / "prj_1" / "vocals.flac"
    async with fetched(whole) as response:
        got = await commit_one(await stage(response, final, chunk_size=4096))
    assert got.path == final and final.read_bytes() == BODY
    assert got.bytes == len(BODY) and got.digest == "blake3:" + blake3.blake3(BODY).hexdigest()
    assert got.mtime_ns == final.stat().st_mtime_ns
    assert got.content_type == "audio/flac"
    assert [p.name for p in all_files(tmp_path)] == ["vocals.flac"]
    assert stat.S_IMODE(final.stat().st_mode) & 0o044  # readable by others, unlike mkstemp's 0600


@pytest.mark.anyio
async def test_a_cancelled_download_leaves_neither_file_nor_partial(tmp_path: Path) -> None:
    """Cancelling mid-body removes the temporary file and never creates the final one."""
    final = tmp_path / "vocals.wav"
    async with fetched(endless) as response:
        with anyio.move_on_after(0.15) as scope:
            await commit_one(await stage(response, final))
    assert scope.cancelled_caught
    assert all_files(tmp_path) == []


@pytest.mark.anyio
async def test_an_existing_file_is_replaced_whole(tmp_path: Path) -> None:
    """A re-download replaces the old file atomically: the new bytes, nothing else around it."""
    final = tmp_path / "vocals.flac"
    final.write_bytes(b"old and corrupt")
    async with fetched(whole) as response:
        await commit_one(await stage(response, final))
    assert final.read_bytes() == BODY
    assert all_files(tmp_path) == [final]


# --- clean-up and JSON ---------------------------------------------------------------------------


def test_remove_partials_deletes_only_temporary_files(tmp_path: Path) -> None:
    """Partials at any depth are removed and counted; finished files stay."""
    keep = [tmp_path / "m" / "p" / "vocals.wav", tmp_path / "m" / "p" / "job.json"]
    stale = [
        tmp_path / f"{PARTIAL_PREFIX}1",
        tmp_path / "m" / "p" / f"{PARTIAL_PREFIX}abc",
        tmp_path / "n" / f"{PARTIAL_PREFIX}x",
    ]
    for path in keep + stale:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"data")
    assert remove_partials(tmp_path) == 3
    assert all_files(tmp_path) == sorted(keep)
    assert remove_partials(tmp_path) == 0
    assert remove_partials(tmp_path / "missing") == 0


def test_write_json_atomic_leaves_only_the_file(tmp_path: Path) -> None:
    """job.json is written whole, readable back, with no temporary file beside it."""
    path = tmp_path / "mdx23c" / "prj_1" / "job.json"
    data = {"project": "prj_1", "file": tmp_path / "a.wav", "stems": [{"bytes": 3}]}
    write_json_atomic(path, data)
    write_json_atomic(path, {**data, "status": "done"})
    assert json.loads(path.read_text())["status"] == "done"
    assert json.loads(path.read_text())["file"] == str(tmp_path / "a.wav")
    assert all_files(tmp_path) == [path]


def test_write_json_atomic_keeps_the_old_file_when_data_cannot_be_written(tmp_path: Path) -> None:
    """Data that does not serialise raises before the disk is touched: the old file survives."""
    path = tmp_path / "summary.json"
    write_json_atomic(path, {"ok": True})
    with pytest.raises(TypeError):
        write_json_atomic(path, {"bad": object()})
    assert json.loads(path.read_text()) == {"ok": True}
    assert all_files(tmp_path) == [path]


def test_write_bytes_atomic_syncs_the_folder_and_leaves_nothing_when_it_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The report's files: written whole with the folder synced; a failed write leaves no
    temporary file and raises DownloadError."""
    synced: list[Path] = []
    monkeypatch.setattr(files, "fsync_folder", synced.append)
    path = tmp_path / "report" / "report.html"
    write_bytes_atomic(path, b"<html>")
    assert path.read_bytes() == b"<html>" and synced == [path.parent]
    (tmp_path / "report" / "taken").mkdir()  # a folder where the file should go
    with pytest.raises(DownloadError, match="taken"):
        write_bytes_atomic(tmp_path / "report" / "taken", b"x")
    assert sorted(p.name for p in (tmp_path / "report").iterdir()) == ["report.html", "taken"]


# --- staging and committing a job's files ------------------------------------------------------


@pytest.mark.anyio
async def test_a_long_body_is_staged_in_a_temporary_file_until_committed(tmp_path: Path) -> None:
    """`stage` leaves only a temporary file; `commit` renames it into place with its digest."""
    final = tmp_path / "vocals.flac"
    async with fetched(whole) as response:
        staged = await stage(response, final, chunk_size=4096)
    assert staged.body is None and staged.temp is not None
    assert [p.name for p in all_files(tmp_path)] == [staged.temp.name]
    (placed,) = await commit([staged], [(tmp_path / "job.json", {"ok": True})])
    assert final.read_bytes() == BODY
    assert placed.digest == staged.digest == "blake3:" + blake3.blake3(BODY).hexdigest()
    assert sorted(p.name for p in all_files(tmp_path)) == ["job.json", "vocals.flac"]


@pytest.mark.anyio
async def test_a_short_body_is_staged_in_memory(tmp_path: Path) -> None:
    """A body of one chunk touches no disk before `commit`; `discard` leaves nothing."""
    async with fetched(whole) as response:
        staged = await stage(response, tmp_path / "vocals.flac")
    assert staged.body == BODY and staged.temp is None
    assert all_files(tmp_path) == []
    discard([staged])
    assert staged.body is None and all_files(tmp_path) == []


@pytest.mark.anyio
async def test_commit_syncs_each_folder_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Three files and a job.json in one folder: four file fsyncs, one folder fsync."""
    synced: list[Path] = []
    monkeypatch.setattr(files, "fsync_folder", synced.append)
    file_syncs: list[int] = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: file_syncs.append(fd) or real_fsync(fd))
    folder = tmp_path / "m" / "p"
    staged = [
        Staged(folder / name, 3, "blake3:x", None, body=b"abc")
        for name in ("a.wav", "b.wav", "c.wav")
    ]
    placed = await commit(staged, [(folder / "job.json", {"stems": 3})])
    assert [p.path.name for p in placed] == ["a.wav", "b.wav", "c.wav"]
    assert synced == [folder] and len(file_syncs) == 4
    assert sorted(p.name for p in all_files(tmp_path)) == ["a.wav", "b.wav", "c.wav", "job.json"]


@pytest.mark.anyio
async def test_a_failed_commit_removes_what_it_did_not_place(tmp_path: Path) -> None:
    """When a file cannot be written, the staged files after it leave no temporary file."""
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "b.wav").mkdir()  # a folder where the second file should go
    long = folder / f"{PARTIAL_PREFIX}long"
    out = long.open("wb")
    out.write(b"long body")
    staged = [
        Staged(folder / "a.wav", 3, "blake3:x", None, body=b"abc"),
        Staged(folder / "b.wav", 3, "blake3:y", None, body=b"def"),
        Staged(folder / "c.wav", 9, "blake3:z", None, temp=long, out=out),
    ]
    with pytest.raises(DownloadError, match="b.wav"):
        await commit(staged, [(folder / "job.json", {})])
    assert out.closed
    assert sorted(p.name for p in folder.iterdir()) == ["a.wav", "b.wav"]


def test_file_digest_reads_both_algorithms(tmp_path: Path) -> None:
    """Digests name their algorithm; sha256 ones (older records) are checked with sha256."""
    path = tmp_path / "f"
    path.write_bytes(BODY)
    assert file_digest(path) == "blake3:" + blake3.blake3(BODY).hexdigest()
    assert digest_matches(path, "sha256:" + hashlib.sha256(BODY).hexdigest())
    assert not digest_matches(path, "sha256:" + "0" * 64)
    assert not digest_matches(path, "md5:whatever")
    assert not digest_matches(tmp_path / "missing", file_digest(path))
