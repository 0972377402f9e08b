"""Project reads shared by the jobs that ask for the same project at the same moment."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from orchestrator.errors import ApiError
from orchestrator.reads import SharedReads
from orchestrator.wire import Project, Stem

pytestmark = pytest.mark.anyio


class FakeClient:
    """`project()` that counts its calls, answers after `gate` opens, or fails."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.gate = anyio.Event()
        self.fail: Exception | None = None

    async def project(self, project_id: str) -> Project:
        self.calls.append(project_id)
        title = f"read {len(self.calls)}"  # which request answered
        await self.gate.wait()
        if self.fail is not None:
            raise self.fail
        return Project(id=project_id, title=title, stems=())


def shared(client: FakeClient) -> SharedReads:
    reads: Any = SharedReads(client)  # type: ignore[arg-type]
    return reads  # type: ignore[no-any-return]


async def test_readers_that_ask_together_share_one_request() -> None:
    """Jobs asking for the same project in one turn get one answer; another project its own."""
    client = FakeClient()
    reads = shared(client)
    got: list[Project] = []

    async def read(project_id: str) -> None:
        got.append(await reads.project(project_id))

    async with anyio.create_task_group() as tg:
        for project_id in ("prj_a", "prj_a", "prj_a", "prj_b"):
            tg.start_soon(read, project_id)
        await anyio.wait_all_tasks_blocked()
        client.gate.set()
    assert sorted(client.calls) == ["prj_a", "prj_b"]
    assert len(got) == 4 and len({id(p) for p in got if p.id == "prj_a"}) == 1


async def test_a_reader_after_the_request_was_sent_gets_a_fresh_one() -> None:
    """A job that asks once the request is on its way does not take its (older) answer."""
    client = FakeClient()
    reads = shared(client)
    titles: list[str] = []

    async def read() -> None:
        titles.append((await reads.project("prj_a")).title)

    async with anyio.create_task_group() as tg:
        tg.start_soon(read)
        await anyio.wait_all_tasks_blocked()  # the first request is sent, not answered
        tg.start_soon(read)
        await anyio.wait_all_tasks_blocked()
        client.gate.set()
    assert client.calls == ["prj_a", "prj_a"] and sorted(titles) == ["read 1", "read 2"]


async def test_every_reader_gets_the_error_of_a_shared_read() -> None:
    """An API error of the one request reaches each job that shared it."""
    client = FakeClient()
    client.fail = ApiError("GET /projects/prj_a: HTTP 404", status=404)
    reads = shared(client)
    errors: list[str] = []

    async def read() -> None:
        try:
            await reads.project("prj_a")
        except ApiError as exc:
            errors.append(str(exc))

    async with anyio.create_task_group() as tg:
        tg.start_soon(read)
        tg.start_soon(read)
        await anyio.wait_all_tasks_blocked()
        client.gate.set()
    assert client.calls == ["prj_a"] and errors == ["GET /projects/prj_a: HTTP 404"] * 2


async def test_when_the_opener_is_cancelled_the_others_read_themselves() -> None:
    """A cancelled opener's readers are not left waiting: they send a request of their own."""
    client = FakeClient()
    reads = shared(client)
    got: list[Project] = []
    scopes: list[anyio.CancelScope] = []

    async def opener() -> None:
        with anyio.CancelScope() as scope:
            scopes.append(scope)
            await reads.project("prj_a")

    async def read() -> None:
        got.append(await reads.project("prj_a"))

    async with anyio.create_task_group() as tg:
        tg.start_soon(opener)
        tg.start_soon(read)  # in the same turn: joins the opener's read
        await anyio.wait_all_tasks_blocked()
        assert client.calls == ["prj_a"]
        scopes[0].cancel()
        await anyio.wait_all_tasks_blocked()
        client.gate.set()
    assert client.calls == ["prj_a", "prj_a"] and [p.title for p in got] == ["read 2"]


async def test_an_opener_cancelled_before_sending_leaves_no_reader_waiting() -> None:
    """Cancelled while the read is still open to others, the opener still lets them go on."""
    client = FakeClient()
    client.gate.set()
    reads = shared(client)
    got: list[Project] = []

    async def cancelled_opener() -> None:
        with anyio.CancelScope() as scope:
            scope.cancel()  # delivered at the opener's first checkpoint
            await reads.project("prj_a")

    async def read() -> None:
        got.append(await reads.project("prj_a"))

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(cancelled_opener)
            tg.start_soon(read)  # joins while the opener's read is open
    assert client.calls == ["prj_a"] and [p.title for p in got] == ["read 1"]


async def test_a_listing_is_the_latest_answer_without_its_urls() -> None:
    """`listing` answers from the run's latest read of the project (no request), its stems
    without their signed URLs; with none yet it reads."""
    client = FakeClient()
    client.gate.set()
    stem = Stem(id="stm_1", type="vocals", model="demucs", url="https://s/x?sig=1", duration=2.0)

    async def project(project_id: str) -> Project:
        client.calls.append(project_id)
        return Project(id=project_id, title="t", stems=(stem,))

    client.project = project  # type: ignore[method-assign]
    reads = shared(client)
    first = await reads.listing("prj_a")  # nothing remembered: a read
    fresh = await reads.project("prj_a")
    again = await reads.listing("prj_a")
    assert client.calls == ["prj_a", "prj_a"]
    assert fresh.stems[0].url == stem.url
    assert [s.url for s in first.stems + again.stems] == ["", ""]
    assert again.stems[0].id == "stm_1" and again.stems[0].duration == 2.0


async def test_readers_that_ask_during_the_hold_share_the_read() -> None:
    """An after-end read waits for the poll loop (`settle`); a job that asks meanwhile
    joins it, and the request goes once the wait is over."""
    client = FakeClient()
    client.gate.set()
    settled = anyio.Event()
    holds: list[tuple[str, float]] = []

    async def settle(project_id: str, seconds: float) -> None:
        holds.append((project_id, seconds))
        await settled.wait()

    reads: Any = SharedReads(client, settle)  # type: ignore[arg-type]
    got: list[str] = []

    async def read() -> None:
        got.append((await reads.project("prj_a", hold=1.5)).title)

    async with anyio.create_task_group() as tg:
        tg.start_soon(read)
        await anyio.wait_all_tasks_blocked()
        tg.start_soon(read)  # later, but while the first read is held
        await anyio.wait_all_tasks_blocked()
        assert client.calls == []
        settled.set()
    assert holds == [("prj_a", 1.5)] and client.calls == ["prj_a"] and got == ["read 1"] * 2
