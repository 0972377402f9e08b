"""Simulator-only endpoints under `/_sim/`: not part of the Youka API, no authentication.

They expose what only a simulator can know: the projects it serves, the true parts each song
was mixed from (the references a comparison report measures separations against), and the
record of what clients did.
"""

from __future__ import annotations

import anyio
from aiohttp import web

from orchestrator.simulator.context import API_PREFIX, CONTEXT
from orchestrator.simulator.encoding import CONTENT_TYPES
from orchestrator.simulator.entities import Project
from orchestrator.simulator.errors import ApiProblem
from orchestrator.simulator.media import REFERENCE_TYPES

sim_routes = web.RouteTableDef()

REFERENCES_NOTE = (
    "Simulator only, not part of the Youka API: the true parts this project's song was mixed "
    "from, before any separation. Use them as the ground truth to score separated stems."
)


@sim_routes.get("/_sim/projects")
async def list_projects(request: web.Request) -> web.Response:
    """The projects this simulator serves, with their titles, and the base URL to use."""
    ctx = request.app[CONTEXT]
    titles: dict[str, tuple[str, str]] = {}

    async def look_up(pid: str) -> None:
        titles[pid] = await ctx.media.metadata(pid)

    if ctx.profile.synthesize:
        async with anyio.create_task_group() as tg:  # titles need songs: make them in parallel
            for pid in ctx.world.projects:
                tg.start_soon(look_up, pid)
    else:
        for pid in ctx.world.projects:
            await look_up(pid)
    projects = [
        {"id": pid, "title": titles[pid][0], "artist": titles[pid][1]} for pid in ctx.world.projects
    ]
    base_url = request.url.origin().with_path(API_PREFIX)
    return web.json_response({"baseUrl": str(base_url), "projects": projects})


@sim_routes.get("/_sim/projects/{projectId}/references")
async def list_references(request: web.Request) -> web.Response:
    """The URLs of a project's true parts, labelled as the simulator's ground truth."""
    ctx = request.app[CONTEXT]
    project = _with_references(ctx.world.project(request.match_info["projectId"]))
    origin = request.url.origin()
    references = [
        {
            "type": kind,
            "format": "wav",
            "contentType": CONTENT_TYPES["wav"],
            "url": str(origin.with_path(f"/_sim/projects/{project.id}/references/{kind}")),
        }
        for kind in REFERENCE_TYPES
    ]
    return web.json_response(
        {
            "simulatorOnly": True,
            "note": REFERENCES_NOTE,
            "projectId": project.id,
            "sampleRate": ctx.profile.sample_rate,
            "references": references,
        }
    )


@sim_routes.get("/_sim/projects/{projectId}/references/{type}")
async def get_reference(request: web.Request) -> web.Response:
    """The WAV of one true part of a project's song."""
    ctx = request.app[CONTEXT]
    project = _with_references(ctx.world.project(request.match_info["projectId"]))
    kind = request.match_info["type"]
    if kind not in REFERENCE_TYPES:
        raise ApiProblem(
            404,
            "NOT_FOUND",
            f"no reference part {kind!r}; the parts are: {', '.join(REFERENCE_TYPES)}",
        )
    files = await ctx.media.references(project.id)
    return web.Response(body=files[kind], content_type=CONTENT_TYPES["wav"])


def _with_references(project: Project) -> Project:
    """`project`, when it was synthesized: one made from an uploaded file has no true parts."""
    if project.upload is not None:
        raise ApiProblem(
            404,
            "NO_REFERENCES",
            f"project {project.id!r} was created from an uploaded file: its true parts are "
            "unknown, so there are no references to score against",
        )
    return project


@sim_routes.get("/_sim/tasks")
async def list_tasks(request: web.Request) -> web.Response:
    """Every task's timing, in simulated seconds: submitted, ended, first seen ended; polls.

    What only the simulator knows: how long after a task ended a client noticed it.
    """
    ctx = request.app[CONTEXT]
    return web.json_response(
        {"timeScale": ctx.clock.time_scale, "tasks": [t.timing() for t in ctx.world.tasks.values()]}
    )


@sim_routes.get("/_sim/stats")
async def stats(request: web.Request) -> web.Response:
    """The record: requests, separations, limits and faults."""
    return web.json_response(request.app[CONTEXT].record.snapshot())
