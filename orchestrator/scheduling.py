"""Admission under the run's limits, shared project reads, and the one poll loop (`engine`).

`Admission` decides, synchronously, which buffered jobs may start now. Each job needs a
list of gates (counted capacities): its project's, its model's when capped, the in-flight
gate when it separates, and the active-jobs gate. A job that finds a gate full waits in
that gate's queue, holding nothing; when a gate frees a unit, its queue is offered again,
in order, while it has room. A job blocked by its project therefore waits while later
jobs of other projects go, and no job is ever looked at again before something it waits
for changed: the work per job stays constant however long the buffer is.

`Poller` is the single loop that polls every task in flight. Tasks sit in a heap by their
next due time (`backoff.next_poll_delay`); the loop sleeps until the earliest one (woken
early when a new task is due sooner), hands the due polls to a few poll workers, and
re-schedules each task after its answer. A task's waiter is woken with the terminal task,
with `None` when the task passed its deadline, or with the error that ended polling.
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import anyio
from anyio.abc import TaskGroup
from anyio.streams.memory import MemoryObjectReceiveStream

from orchestrator.api import YoukaClient
from orchestrator.backoff import DurationModel, learned_poll_delay, next_poll_delay, task_rng
from orchestrator.clock import Clock
from orchestrator.errors import RetryableApiError, StemsweepError
from orchestrator.jobs import JobId
from orchestrator.lifecycle import Decision
from orchestrator.logs import current_context, log_context
from orchestrator.pacing import admitted_at
from orchestrator.spec import Limits, PollSpec
from orchestrator.wire import Task

if TYPE_CHECKING:
    from orchestrator.state import JobRecord

# Gate kinds, and which of them a job gives back when its separation is over.
PROJECT, MODEL, IN_FLIGHT, ACTIVE = "project", "model", "in_flight", "active"
SEPARATION_GATES = frozenset({MODEL, IN_FLIGHT})
ALL_GATES = frozenset({PROJECT, MODEL, IN_FLIGHT, ACTIVE})

POLL_CONCURRENCY = 16  # task polls in the air at once (each a short paced request)


class _Gate:
    """A counted capacity and the jobs waiting for it, in order."""

    __slots__ = ("capacity", "kind", "name", "used", "waiters")

    def __init__(self, kind: str, capacity: int, name: str = "") -> None:
        self.kind = kind
        self.name = name
        self.capacity = capacity
        self.used = 0
        self.waiters: deque[Ticket] = deque()

    @property
    def full(self) -> bool:
        return self.used >= self.capacity


@dataclass(eq=False)
class Ticket:
    """A job admitted to the run's look-ahead buffer: its decision, the state row it was
    decided from, and the slots it holds while it runs (or the gate it waits at)."""

    job: JobId
    decision: Decision
    row: JobRecord | None = None  # the state row the decision was made from
    shown: str | None = None  # the status the progress tally counts it under
    held: list[_Gate] = field(default_factory=list)
    # The project gate's name, when not the job's project: a song's jobs share its gate
    # from before the song is a project until their files are on disk.
    gate: str | None = None
    hold: float = 0.0  # how long its after-end project read may wait for others' (`reads`)


class Admission:
    """Which jobs may start now, under `max_in_flight`, `per_project` and `per_model`.

    Synchronous and single-threaded: `offer` and `release` never wait, so a decision and
    the slots it takes are one step that nothing can interleave with.
    """

    def __init__(self, limits: Limits, *, active: int) -> None:
        self.in_flight = _Gate(IN_FLIGHT, limits.max_in_flight)
        self.active = _Gate(ACTIVE, active)
        self._per_project = limits.per_project
        self._projects: dict[str, _Gate] = {}
        self._models = {m: _Gate(MODEL, cap) for m, cap in limits.per_model.items()}
        self.waiting = 0

    def offer(self, ticket: Ticket) -> bool:
        """Take every slot `ticket` needs and return True, or queue it and return False."""
        gates = self._gates(ticket)
        for gate in gates:
            if gate.full:
                gate.waiters.append(ticket)
                self.waiting += 1
                return False
        for gate in gates:
            gate.used += 1
        ticket.held = gates
        return True

    def release(self, ticket: Ticket, kinds: Iterable[str]) -> list[Ticket]:
        """Give back `ticket`'s slots of `kinds`; return the waiting jobs that could start."""
        kinds = frozenset(kinds)
        freed = [g for g in ticket.held if g.kind in kinds]
        ticket.held = [g for g in ticket.held if g.kind not in kinds]
        started: list[Ticket] = []
        for gate in freed:
            gate.used -= 1
            while gate.waiters and not gate.full:
                waiter = gate.waiters.popleft()
                self.waiting -= 1
                if self.offer(waiter):
                    started.append(waiter)
        for gate in freed:
            # Idle project gates are dropped: memory follows the buffer, not the catalogue.
            if gate.kind == PROJECT and gate.used == 0 and not gate.waiters:
                self._projects.pop(gate.name, None)
        return started

    def _gates(self, ticket: Ticket) -> list[_Gate]:
        project = ticket.gate or ticket.job.project
        gate = self._projects.get(project)
        if gate is None:
            gate = self._projects[project] = _Gate(PROJECT, self._per_project, project)
        gates = [gate]
        if ticket.decision.separates:
            model_gate = self._models.get(ticket.job.model)
            if model_gate is not None:
                gates.append(model_gate)
            gates.append(self.in_flight)
        gates.append(self.active)
        return gates


@dataclass(frozen=True)
class PollVerdict:
    """How waiting for a task ended: `task` terminal, or `timed_out`, after `polls` polls,
    `seconds` after the wait began."""

    task: Task | None
    polls: int
    seconds: float = 0.0

    @property
    def timed_out(self) -> bool:
        return self.task is None


@dataclass(eq=False)
class _Watch:
    task_id: str
    project: str
    model: str
    started: float
    deadline: float
    fresh: bool  # submitted in this run: its elapsed time is the separation's duration
    rng: Any
    context: dict[str, Any]  # the waiting job's log context, bound around each poll
    polls: int = 0
    last_pending: float = 0.0  # elapsed seconds at the last non-terminal answer
    due: float = 0.0  # when its next poll is due; inf while a poll is on its way
    done: anyio.Event = field(default_factory=anyio.Event)
    task: Task | None = None
    error: BaseException | None = None


class Poller:
    """The one loop that polls every task in flight; see the module docstring.

    `learned`: what earlier runs learned of each model's durations (`timings`), updated
    in place as tasks end; `on_learn(model)` is told after each new observation.
    """

    def __init__(
        self,
        client: YoukaClient,
        spec: PollSpec,
        clock: Clock,
        *,
        seed: int,
        learned: dict[str, DurationModel] | None = None,
        on_learn: Callable[[str], None] | None = None,
    ) -> None:
        self._client = client
        self._spec = spec
        self._clock = clock
        self._seed = seed
        self._heap: list[tuple[float, int, _Watch]] = []
        self._order = itertools.count()
        self._wake = anyio.Event()
        self._sleep_scope: anyio.CancelScope | None = None
        self._sleep_until = math.inf
        self.models: dict[str, DurationModel] = learned if learned is not None else {}
        self._projects: dict[str, set[_Watch]] = {}  # the tasks being waited for, by project
        self._answered: dict[str, anyio.Event] = {}  # set when a poll of the project ends
        self._on_learn = on_learn
        self.polls = 0

    def expected(self, model: str) -> float | None:
        """The mean duration of a separation with `model` as learned so far, if any."""
        known = self.models.get(model)
        return None if known is None else known.mean()

    def spread(self, model: str) -> float | None:
        """The mean deviation from `expected(model)`, if known."""
        known = self.models.get(model)
        return None if known is None else known.deviation()

    async def wait_terminal(
        self, task_id: str, project: str, model: str, *, fresh: bool
    ) -> PollVerdict:
        """Poll `task_id` until it is terminal or past `poll.timeout` from now.

        `fresh`: the task was just submitted (its polls are aimed by what the run learned
        of `model`, `backoff.learned_poll_delay`); a resumed task is polled at once, then
        probed (`backoff.next_poll_delay`). Raises the `ApiError` that made polling
        impossible.
        """
        now = self._clock.now()
        watch = _Watch(
            task_id=task_id,
            project=project,
            model=model,
            started=now,
            deadline=now + self._spec.timeout,
            fresh=fresh,
            rng=task_rng(self._seed, task_id),
            context=current_context(),
        )
        delay = self._delay(watch, 0.0) if fresh else 0.0
        watching = self._projects.setdefault(project, set())
        watching.add(watch)
        try:
            self._schedule(watch, now + delay)
            await watch.done.wait()
        finally:
            watching.discard(watch)
            if not watching:
                del self._projects[project]
        if watch.error is not None:
            raise watch.error
        return PollVerdict(watch.task, watch.polls, self._clock.now() - now)

    async def settle(self, project: str, within: float) -> None:
        """Return once every task of `project` whose poll is due within `within` seconds
        from now has had that poll answered (and any poll on its way), or after twice
        `within` at most: for `reads.SharedReads` to hold an after-end read for the tasks
        of the project about to be seen ended."""
        horizon = self._clock.now() + within
        if not self._due_by(project, horizon):
            return
        async with anyio.create_task_group() as tg:

            async def give_up() -> None:
                await self._clock.sleep(2 * within)
                tg.cancel_scope.cancel()

            tg.start_soon(give_up)
            while self._due_by(project, horizon):
                answered = self._answered.get(project)
                if answered is None:
                    answered = self._answered[project] = anyio.Event()
                await answered.wait()
            tg.cancel_scope.cancel()

    def _due_by(self, project: str, moment: float) -> bool:
        """Whether a task of `project` has a poll due by `moment` (or on its way)."""
        return any(w.due <= moment for w in self._projects.get(project, ()))

    async def run(self, tg: TaskGroup) -> None:
        """Poll what is due, forever; polls run in `POLL_CONCURRENCY` workers started in
        `tg`, which take due tasks in order. Cancel the group to stop.

        (A task spawned per poll, waiting on a limiter, cost 75 microseconds of CPU; handing
        a due task to a waiting worker costs 5.)
        """
        send, due = anyio.create_memory_object_stream[_Watch](math.inf)
        for _ in range(POLL_CONCURRENCY):
            tg.start_soon(self._poll_each, due)
        while True:
            now = self._clock.now()
            while self._heap and self._heap[0][0] <= now:
                _, _, watch = heapq.heappop(self._heap)
                watch.due = -math.inf  # on its way: due now, for `settle`
                send.send_nowait(watch)
            if self._heap:
                await self._sleep(self._heap[0][0] - now)
            else:
                self._wake = anyio.Event()
                await self._wake.wait()

    def _delay(self, watch: _Watch, elapsed: float) -> float:
        if not watch.fresh:
            return next_poll_delay(watch.polls, elapsed, self._spec, rng=watch.rng)
        model = self.models.get(watch.model)
        if model is None:
            model = self.models[watch.model] = DurationModel()
        return learned_poll_delay(watch.polls, elapsed, self._spec, model, rng=watch.rng)

    def _schedule(self, watch: _Watch, due: float) -> None:
        watch.due = due
        heapq.heappush(self._heap, (due, next(self._order), watch))
        if due < self._sleep_until and self._sleep_scope is not None:
            self._sleep_scope.cancel()
        self._wake.set()

    async def _sleep(self, seconds: float) -> None:
        self._sleep_until = self._clock.now() + seconds
        with anyio.CancelScope() as scope:
            self._sleep_scope = scope
            await self._clock.sleep(seconds)
        self._sleep_scope = None
        self._sleep_until = math.inf

    async def _poll_each(self, due: MemoryObjectReceiveStream[_Watch]) -> None:
        async for watch in due:
            try:
                await self._poll(watch)
            finally:
                answered = self._answered.pop(watch.project, None)
                if answered is not None:
                    answered.set()

    async def _poll(self, watch: _Watch) -> None:
        task: Task | None = None
        try:
            with log_context(**watch.context):  # the job's project and model, for retries
                task = await self._client.task(watch.task_id)
        except RetryableApiError:
            pass  # the client already retried; the task still exists: try again later
        except StemsweepError as exc:  # e.g. 404, or the key was revoked: tell the job
            watch.error = exc
            watch.due = math.inf
            watch.done.set()
            return
        self.polls += 1
        watch.polls += 1
        now = self._clock.now()
        elapsed = now - watch.started
        # What the poll saw, dated by when it was sent (its answer may come back much later
        # when the loop is busy): the task ended in (last sent pending, sent ended].
        seen = min(elapsed, admitted_at() - watch.started)
        if task is not None and task.terminal:
            if watch.fresh and seen > 0:  # its age is the separation's: (last pending, seen]
                self.models[watch.model].observe(watch.last_pending, seen)
                if self._on_learn is not None:
                    self._on_learn(watch.model)
            watch.task = task
            watch.due = math.inf
            watch.done.set()
            return
        if now >= watch.deadline:
            watch.due = math.inf
            watch.done.set()  # task None: timed out
            return
        watch.last_pending = max(seen, 0.0)
        if watch.fresh:
            self.models[watch.model].seen_pending(watch.last_pending)
        self._schedule(watch, now + self._delay(watch, elapsed))
