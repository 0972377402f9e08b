"""`GET /projects/{id}` for the jobs of a run: shared, held for the jobs about to need it,
and remembered for the jobs still to submit.

A job reads its project twice: before its submission, for the ids of its model's stems
already listed (`known_stem_ids`: when `stems[]` accumulates, they tell an old set of the
model from the new one), and after its separation, for the new stems and their signed
URLs. Each read is an API request under the rate limit; `SharedReads` spends as few as
it can without ever giving a job an answer that could be wrong for it:

    shared      `project(id)`: a job joins the read of its project that has not been sent
                yet, if there is one, else opens one. A read is open to others only until
                it is sent, so its answer always comes from a request sent after each of
                its readers asked: as fresh as a read of their own.
    held        an after-end read (`project(id, hold=...)`) is sent once the poll loop has
                answered the polls of the project's other tasks due within the hold (a
                share of the task's duration, `HOLD_SHARE`), so that the tasks of one
                project that end together share it. The job's separation slot is already
                free: a hold delays its files, never the next separation.
    remembered  `listing(id)`: the latest answer this run got for the project (stem ids,
                types, models and durations, without URLs), else a read. It serves as the
                pre-submission read of a job that the state knows nothing of (no earlier
                attempt of that job by this tree, whose task could still deliver stems):
                the stems of its model can then only change by a separation of that
                model, and within a run there is one job per project and model. The ids
                it lists are those before the job's submission whatever came between,
                except stems a client other than this run starts meanwhile (as with any
                read made before a POST). The latest `REMEMBERED` projects are kept.

Measured with the `versus` benchmark's fixed workload (1,008 jobs, 12 per project, 100 in
flight): project reads per job from 1.59 to 0.20 (1.59 to 0.23 by the listing alone, the
hold takes a little more); on the rate-limited one's second night (48 jobs whose models
end minutes apart) from 0.85 with a hold of a tenth of the duration to 0.60 with a quarter
(chosen), the wall time the same (99.9 and 99.4 s): the job's slot is free meanwhile.
A hold of a whole duration was measured and rejected: project reads per job 0.58 -> 0.35
and 0.40 on the rate-limited first night, 0.56 -> 0.34 on the varied one (its wall the same,
82.7 s), but the rate-limited wall 93.1 and 93.3 s -> 94.5 and 97.3: a read held that long
keeps the files of a run's last jobs waiting after their separations ended.

Rejected: skipping the pre-submission read whenever the state records no earlier stems of
the model on the project (the state knows only this tree's separations, not those made in
Youka's app or by another tree); taking a project read that lists new stems of a model as
the end of its task, in place of polls (the contract says the task is the execution record
and nothing about when stems appear, nor does a failure list any).

When the opener of a read fails with an API error, every reader gets that error; when it
is cancelled, the others read for themselves.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import replace

import anyio

from orchestrator.api import YoukaClient
from orchestrator.wire import Project

HOLD_SHARE = 0.25  # an after-end read waits for polls due within this share of the duration
REMEMBERED = 256  # projects whose latest listing is kept (about 10 KB each, 12 models)

Settle = Callable[[str, float], Awaitable[None]]
"""`settle(project, seconds)`: return once the polls of the project's tasks due within
`seconds` are answered (the poll loop's `Poller.settle`)."""


class _Read:
    """One project read and the jobs waiting for its answer."""

    __slots__ = ("done", "error", "project")

    def __init__(self) -> None:
        self.done = anyio.Event()
        self.project: Project | None = None
        self.error: Exception | None = None


class SharedReads:
    """Project reads of one run; see the module docstring."""

    def __init__(self, client: YoukaClient, settle: Settle | None = None) -> None:
        self._client = client
        self._settle = settle
        self._open: dict[str, _Read] = {}
        self._listings: OrderedDict[str, Project] = OrderedDict()

    async def project(self, project_id: str, *, hold: float = 0.0) -> Project:
        """The project, from a read sent after this call began; opened by this call, the
        read waits first for the polls of the project due within `hold` seconds."""
        read = self._open.get(project_id)
        if read is not None:
            await read.done.wait()
            if read.project is not None:
                return read.project
            if read.error is not None:
                raise read.error
            return await self.project(project_id, hold=hold)  # its opener was cancelled
        read = self._open[project_id] = _Read()
        try:
            try:
                await anyio.lowlevel.checkpoint()  # the others who ask in this turn join
                if hold > 0 and self._settle is not None:
                    await self._settle(project_id, hold)
            finally:
                del self._open[project_id]
            read.project = await self._client.project(project_id)
        except Exception as exc:
            read.error = exc
            raise
        finally:
            read.done.set()  # also when cancelled, before or after sending: see above
        self._remember(project_id, read.project)
        return read.project

    async def listing(self, project_id: str) -> Project:
        """The latest answer of this run for the project, its stems without URLs; a read
        when there is none (see the module docstring for whom it serves)."""
        known = self._listings.get(project_id)
        if known is not None:
            self._listings.move_to_end(project_id)
            return known
        await self.project(project_id)
        return self._listings[project_id]

    def _remember(self, project_id: str, project: Project) -> None:
        self._listings[project_id] = replace(
            project, stems=tuple(replace(s, url="") for s in project.stems)
        )
        self._listings.move_to_end(project_id)
        while len(self._listings) > REMEMBERED:
            self._listings.popitem(last=False)
