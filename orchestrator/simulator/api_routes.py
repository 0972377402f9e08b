"""The Youka v1 endpoints under `/api/v1`, as in the table of the API contract.

Authentication, the requests-per-second limit and the faults common to every call are applied
by the API gate (`http.py`) before these handlers run; the write faults (5xx before and after
a separation is applied) belong to the stem-separation POST and are applied here.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from aiohttp import web

from orchestrator.simulator.context import API_PREFIX, CONTEXT, Context
from orchestrator.simulator.errors import ApiProblem, issue
from orchestrator.simulator.world import Task

IDEMPOTENCY_KEY = re.compile(r"[A-Za-z0-9._:-]{1,255}")
SERVER_ERRORS = {500: "INTERNAL_SERVER_ERROR", 502: "BAD_GATEWAY", 503: "SERVICE_UNAVAILABLE"}
EXAMPLE_BODY = '{"splitModel": "mdx23c"}'

routes = web.RouteTableDef()


def server_error(ctx: Context, kind: str) -> ApiProblem:
    """An injected 5xx of `kind` (`before_write`, `after_write`, `on_get`), recorded."""
    ctx.record.server_error(kind)
    status = ctx.dice.choice("server_error_status", sorted(SERVER_ERRORS))
    return ApiProblem(
        status,
        SERVER_ERRORS[status],
        f"simulated server error ({kind.replace('_', ' ')}); retry the request",
    )


@routes.post(API_PREFIX + "/projects/{projectId}/tasks/stem-separation")
async def submit_separation(request: web.Request) -> web.Response:
    """Start a separation, or answer the earlier task of the same idempotency key."""
    ctx = request.app[CONTEXT]
    body = await _json_object(request)
    key = _idempotency_key(request)
    pid = request.match_info["projectId"]
    model = ctx.world.check_submission(pid, body.get("splitModel"))
    faults = ctx.profile.faults
    if ctx.faults.roll("error_before_write", faults.error_before_write):
        raise server_error(ctx, "before_write")
    fingerprint = _fingerprint(request, body)
    task = ctx.world.replayed(key, fingerprint)
    replayed = task is not None
    if task is None:
        task = ctx.world.submit(pid, model, key, fingerprint, ctx.clock.now())
    if ctx.faults.roll("error_after_write", faults.error_after_write):
        raise server_error(ctx, "after_write")
    headers = {"Idempotent-Replayed": "true"} if replayed else {}
    return web.json_response(_accepted(request, ctx, task), status=202, headers=headers)


@routes.get(API_PREFIX + "/tasks/{taskId}")
async def get_task(request: web.Request) -> web.Response:
    """One task: its status, and its error once it failed."""
    ctx = request.app[CONTEXT]
    task = ctx.world.task(request.match_info["taskId"])
    return web.json_response(task.polled(ctx.clock.now()))


@routes.get(API_PREFIX + "/projects/{projectId}")
async def get_project(request: web.Request) -> web.Response:
    """A project with its stems, each with a freshly signed URL."""
    ctx = request.app[CONTEXT]
    project = ctx.world.project(request.match_info["projectId"])
    title, artist = await ctx.media.metadata(project.id)
    stems = [
        {
            "id": stem.id,
            "type": stem.type,
            "model": stem.model,
            "url": ctx.stem_url(request, stem),
            "duration": stem.duration,
        }
        for stem in project.stems
    ]
    return web.json_response(
        {
            "id": project.id,
            "title": title,
            "artists": [artist],
            "stems": stems,
            "alignments": [],
            "exports": [],
            "settings": {},
            "lyrics": None,
        }
    )


@routes.get(API_PREFIX + "/projects/{projectId}/tasks")
async def list_project_tasks(request: web.Request) -> web.Response:
    """The task history of one project, oldest first."""
    ctx = request.app[CONTEXT]
    project = ctx.world.project(request.match_info["projectId"])
    now = ctx.clock.now()
    return web.json_response([ctx.world.tasks[tid].view(now) for tid in project.task_ids])


@routes.get(API_PREFIX + "/me")
async def me(request: web.Request) -> web.Response:
    """Who the key belongs to."""
    key = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
    key_id = hashlib.sha256(key.encode()).hexdigest()[:12]
    return web.json_response(
        {"email": "simulator@localhost", "userId": "usr_simulator", "apiKeyId": f"key_{key_id}"}
    )


@routes.post(API_PREFIX + "/projects/quote")
async def quote(request: web.Request) -> web.Response:
    """The price of one separation."""
    ctx = request.app[CONTEXT]
    body = await _json_object(request)
    return web.json_response(ctx.world.quote(body.get("splitModel"), body.get("durationSeconds")))


@routes.get(API_PREFIX + "/credits")
async def credits(request: web.Request) -> web.Response:
    """The account's credit balance."""
    ctx = request.app[CONTEXT]
    cost = ctx.profile.separation_cost(ctx.profile.song_seconds)
    return web.json_response(
        {"balance": ctx.world.balance, "currency": "credits", "separationCost": cost}
    )


def _accepted(request: web.Request, ctx: Context, task: Task) -> dict[str, Any]:
    task_url = request.url.origin().with_path(f"{API_PREFIX}/tasks/{task.id}")
    return {
        "taskId": task.id,
        "projectId": task.project_id,
        "taskUrl": str(task_url),
        "status": task.status(ctx.clock.now()),
    }


async def _json_object(request: web.Request) -> dict[str, Any]:
    text = await request.text()
    try:
        body = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ApiProblem(
            400,
            "BAD_REQUEST",
            f"the request body is not valid JSON ({exc.msg} at line {exc.lineno} column "
            f"{exc.colno}); send a JSON object such as {EXAMPLE_BODY}",
        ) from None
    if not isinstance(body, dict):
        raise ApiProblem(
            400, "BAD_REQUEST", f"the request body must be a JSON object such as {EXAMPLE_BODY}"
        )
    return body


def _idempotency_key(request: web.Request) -> str | None:
    key = request.headers.get("Idempotency-Key")
    if key is not None and not IDEMPOTENCY_KEY.fullmatch(key):
        raise ApiProblem(
            400,
            "BAD_REQUEST",
            "Idempotency-Key must be 1 to 255 characters of letters, digits and . _ : -",
            issues=[issue("Idempotency-Key", "1 to 255 characters of [A-Za-z0-9._:-]")],
        )
    return key


def _fingerprint(request: web.Request, body: dict[str, Any]) -> str:
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(f"{request.method} {request.path}\n{canonical}".encode()).hexdigest()
