"""The gates every API request passes, and the date a poll's answer is given by them."""

from __future__ import annotations

import anyio
import pytest

from orchestrator.pacing import Pacer, admitted_at

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class SteppingClock:
    """A clock whose sleeps pass at once and move its time on."""

    def __init__(self) -> None:
        self.time = 100.0

    def now(self) -> float:
        return self.time

    async def sleep(self, seconds: float) -> None:
        self.time += max(0.0, seconds)
        await anyio.lowlevel.checkpoint()


async def test_a_request_is_dated_when_it_passes_the_gates_not_when_it_asked() -> None:
    """A request held back by a pause after a 429 is dated when the pause let it go, in the
    task that sent it; another task keeps its own date."""
    clock = SteppingClock()
    pacer = Pacer(1000.0, clock, initial=1.0, maximum=60.0, max_pause=600.0)
    dates: dict[str, float] = {}

    async def send(name: str) -> None:
        await pacer.admit()
        dates[name] = admitted_at()

    await send("first")
    pacer.note_reply(429, 30.0)  # every caller waits 30 s
    await send("held")
    assert dates == {"first": 100.0, "held": 130.0}
    async with anyio.create_task_group() as tg:
        tg.start_soon(send, "other")
    assert admitted_at() == 130.0  # this task's own latest request
