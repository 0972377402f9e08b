"""Running a simulator: in the current event loop, in a background thread, or from the CLI.

    async with Simulator("default", seed=1, time_scale=100) as sim:
        ...  # sim.base_url, sim.api_key, sim.project_ids, sim.record.snapshot()

    with SimulatorThread("chaos", time_scale=200) as sim:   # from sync code
        subprocess.run([...], env={"YOUKA_API_URL": sim.base_url, ...})
        sim.stats()

Each simulator listens twice on loopback: the API host and the storage host, each on its own
port (0: any free port), so that stem URLs point at another origin than the API's.

With `state=DIR` a simulator keeps its world in that folder (`saving.py`): stopped and
started again, it serves the same projects, tasks, keys, uploads and credits, and its tasks
went on running meanwhile. Without it, every simulator is a new, empty world.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any, Generic, TypeVar

import anyio
import anyio.from_thread
from aiohttp import web

from orchestrator.simulator.context import API_PREFIX, Context
from orchestrator.simulator.http import api_app, storage_app
from orchestrator.simulator.media import REFERENCE_TYPES
from orchestrator.simulator.profile import Profile, ProfileError, load_profile
from orchestrator.simulator.record import Record

T = TypeVar("T")

SHUTDOWN_TIMEOUT = 1.0
MAX_PRINTED_PROJECTS = 24


class Simulator:
    """A Youka-compatible API and its storage host, served in the current event loop.

    While running (`async with`): `base_url` (`http://127.0.0.1:PORT/api/v1`), `root_url`
    (the API host, where `/_sim/` lives), `storage_url`, `api_key` (a key it accepts),
    `project_ids`, `reference_urls(project)`, `record` (`record.snapshot()` is what
    `GET /_sim/stats` serves), and `context` (the state behind them, for tests that need to
    look inside). It is what `stemsweep run` runs a manifest's `api.simulator` against
    (`runner.LocalApi`).
    """

    def __init__(
        self,
        profile: str | Path | Profile = "default",
        seed: int = 0,
        time_scale: float = 1.0,
        host: str = "127.0.0.1",
        port: int = 0,
        storage_port: int = 0,
        state: Path | None = None,
    ) -> None:
        if not time_scale > 0:
            raise ProfileError(f"time scale must be a positive number, got {time_scale!r}")
        self.profile = load_profile(profile)
        self.seed = seed
        self.time_scale = time_scale
        self.host = host
        self.state = state
        self._ports = (port, storage_port)
        self._runners: list[web.AppRunner] = []
        self._ctx: Context | None = None
        self.root_url = ""
        self.base_url = ""
        self.storage_url = ""

    async def __aenter__(self) -> Simulator:
        ctx = Context.create(self.profile, self.seed, self.time_scale, self.state)
        try:
            api_port, storage_port = self._ports
            ctx.storage_port = await self._listen(storage_app(ctx), storage_port)
            ctx_api_port = await self._listen(api_app(ctx), api_port)
        except BaseException:
            await self._close()
            ctx.close()
            raise
        self._ctx = ctx
        shown = _shown_host(self.host)
        self.root_url = f"http://{shown}:{ctx_api_port}"
        self.base_url = self.root_url + API_PREFIX
        self.storage_url = f"http://{shown}:{ctx.storage_port}"
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            await self._close()
        finally:
            if self._ctx is not None:
                self._ctx.close()  # the whole world saved, after the last request was answered

    async def _listen(self, app: web.Application, port: int) -> int:
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=SHUTDOWN_TIMEOUT)
        await runner.setup()
        self._runners.append(runner)
        await web.TCPSite(runner, self.host, port).start()
        return int(runner.addresses[0][1])

    async def _close(self) -> None:
        while self._runners:
            await self._runners.pop().cleanup()

    @property
    def context(self) -> Context:
        """The running simulator's state (only between enter and exit)."""
        if self._ctx is None:
            raise RuntimeError("the simulator is not running: use it as `async with Simulator()`")
        return self._ctx

    @property
    def record(self) -> Record:
        """What clients did to this simulator; `record.snapshot()` gives plain data."""
        return self.context.record

    @property
    def api_key(self) -> str:
        """A key this simulator accepts."""
        return self.context.api_key

    @property
    def project_ids(self) -> list[str]:
        """The ids of the projects this simulator serves, in order."""
        return list(self.context.world.projects)

    def reference_urls(self, project: str) -> dict[str, str]:
        """The URL of each true part of `project`'s song (`/_sim/`, no key needed): what a
        run against this simulator saves for the comparison report."""
        return {
            kind: f"{self.root_url}/_sim/projects/{project}/references/{kind}"
            for kind in REFERENCE_TYPES
        }


class _FromSimulator(Generic[T]):
    """A read-only attribute of `SimulatorThread` that is its `Simulator`'s attribute of the
    same name (typed, unlike a `__getattr__`)."""

    def __set_name__(self, owner: type, name: str) -> None:
        self._name = name

    def __get__(self, thread: SimulatorThread | None, owner: type) -> T:
        if thread is None:
            raise AttributeError(self._name)
        value: T = getattr(thread._sim, self._name)
        return value


class SimulatorThread:
    """A `Simulator` running in a background thread with its own event loop.

    Usable as a plain `with` block from sync code. Read the record with `stats()`, which is
    safe from any thread.
    """

    def __init__(
        self,
        profile: str | Path | Profile = "default",
        seed: int = 0,
        time_scale: float = 1.0,
        host: str = "127.0.0.1",
        port: int = 0,
        storage_port: int = 0,
        state: Path | None = None,
    ) -> None:
        self._sim = Simulator(profile, seed, time_scale, host, port, storage_port, state)
        self._stack = contextlib.ExitStack()
        self._portal: anyio.from_thread.BlockingPortal | None = None

    def __enter__(self) -> SimulatorThread:
        with contextlib.ExitStack() as stack:
            portal = stack.enter_context(anyio.from_thread.start_blocking_portal("asyncio"))
            stack.enter_context(portal.wrap_async_context_manager(self._sim))
            self._portal = portal
            self._stack = stack.pop_all()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self._portal = None
        self._stack.__exit__(*exc_info)

    def stats(self) -> dict[str, Any]:
        """A snapshot of the record, taken on the simulator's own thread."""
        if self._portal is None:
            raise RuntimeError("the simulator thread is not running")
        return self._portal.call(self._sim.record.snapshot)

    profile: _FromSimulator[Profile] = _FromSimulator()
    seed: _FromSimulator[int] = _FromSimulator()
    time_scale: _FromSimulator[float] = _FromSimulator()
    record: _FromSimulator[Record] = _FromSimulator()  # read it through `stats()` elsewhere
    base_url: _FromSimulator[str] = _FromSimulator()
    root_url: _FromSimulator[str] = _FromSimulator()
    storage_url: _FromSimulator[str] = _FromSimulator()
    api_key: _FromSimulator[str] = _FromSimulator()
    project_ids: _FromSimulator[list[str]] = _FromSimulator()
    state: _FromSimulator[Path | None] = _FromSimulator()


def serve_forever(
    host: str = "127.0.0.1",
    port: int = 8080,
    storage_port: int = 0,
    profile: str | Path | Profile = "default",
    seed: int = 0,
    time_scale: float = 1.0,
    state: Path | None = None,
    announce: Callable[[Simulator], None] | None = None,
) -> None:
    """Serve until Ctrl-C (or SIGTERM), after printing the project ids and the URLs to use
    (or, with `announce`, after calling it with the simulator once it listens).

    With `state`, the world is saved there on the way out and resumed from there.
    """
    sim = Simulator(profile, seed, time_scale, host, port, storage_port, state)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(sim, announce))


async def _serve(sim: Simulator, announce: Callable[[Simulator], None] | None) -> None:
    async with sim:
        # SIGTERM ends the simulator as Ctrl-C does: its world is saved on the way out. The
        # receiver is there before the simulator says where it is, so that whoever read
        # that may stop it at once.
        with anyio.open_signal_receiver(signal.SIGTERM) as signals:
            if announce is not None:
                announce(sim)
            else:
                for line in _banner(sim):
                    print(line, flush=True)
            async for _ in signals:
                return


def _banner(sim: Simulator) -> list[str]:
    p = sim.profile
    ids = sim.project_ids
    shown = ids if len(ids) <= MAX_PRINTED_PROJECTS else ids[:MAX_PRINTED_PROJECTS]
    more = "" if len(shown) == len(ids) else f" ... ({len(ids)} in all: GET /_sim/projects)"
    key = (
        f"the profile's key {p.api_key}"
        if p.api_key
        else f"any key starting with yk_, e.g. {sim.api_key}"
    )
    return [
        f"Youka-compatible simulator: profile {p.name}, seed {sim.seed}, "
        f"time scale {sim.time_scale:g}",
        f"base URL:    {sim.base_url}",
        f"storage URL: {sim.storage_url}",
        f"API key:     {key}",
        f"projects:    {' '.join(shown)}{more}",
        f"simulator:   {sim.root_url}/_sim/projects, {sim.root_url}/_sim/stats",
        *_state_lines(sim),
        "Press Ctrl-C to stop.",
    ]


def _state_lines(sim: Simulator) -> list[str]:
    if sim.state is None:
        return []
    world = sim.context.world
    return [
        f"state:       {sim.state} ({len(world.projects)} projects, {len(world.tasks)} tasks, "
        f"{len(world.uploads)} uploads, balance {world.balance} credits)"
    ]


def _shown_host(host: str) -> str:
    """The host to put in URLs: a wildcard address is reached through loopback."""
    if host in ("", "0.0.0.0", "::"):
        return "127.0.0.1"
    return f"[{host}]" if ":" in host else host
