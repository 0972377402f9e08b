"""The Youka v1 endpoints under `/api/v1`, as in the table of the API contract.

Authentication, the requests-per-second limit and the faults common to every call are applied
by the API gate (`http.py`) before these handlers run; the write faults (5xx before and after
a write is applied) belong to the writing POSTs and are applied here (and in
`upload_routes.py`, for uploads and project creation).

A write and its idempotency key are checked and applied with no `await` in between, so two
requests with the same key never both start work.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from aiohttp import web

from orchestrator.simulator import pricing
from orchestrator.simulator.context import API_PREFIX, CONTEXT, Context
from orchestrator.simulator.entities import Task
from orchestrator.simulator.errors import ApiProblem, issue

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
    body = await json_object(request)
    key = idempotency_key(request)
    pid = request.match_info["projectId"]
    model = ctx.world.check_submission(pid, body.get("splitModel"))
    faults = ctx.profile.faults
    if ctx.faults.roll("error_before_write", faults.error_before_write):
        raise server_error(ctx, "before_write")
    fingerprint = fingerprint_of(request, body)
    now = ctx.clock.now()
    entry = ctx.world.remembered(key, fingerprint, now)
    if entry is not None:
        task = ctx.world.tasks[entry.ref]
    else:
        task = ctx.world.submit(pid, model, key, fingerprint, now)
    if ctx.faults.roll("error_after_write", faults.error_after_write):
        raise server_error(ctx, "after_write")
    return web.json_response(
        _accepted(request, ctx, task), status=202, headers=replayed_header(entry is not None)
    )


@routes.get(API_PREFIX + "/tasks/{taskId}")
async def get_task(request: web.Request) -> web.Response:
    """One task: its status, and its error once it failed."""
    ctx = request.app[CONTEXT]
    return web.json_response(ctx.world.poll(request.match_info["taskId"], ctx.clock.now()))


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
            "artists": [artist] if artist else [],
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
    """The price of one separation, for a duration or an uploaded file; charges nothing."""
    ctx = request.app[CONTEXT]
    body = await json_object(request)
    file_id = body.get("inputFileId")
    file_seconds = None
    if file_id is not None:

        def file_seconds() -> float:
            return ctx.world.decoded_upload(file_id).seconds or 0.0

    answer = pricing.quote(
        ctx.profile, ctx.world.balance, body.get("splitModel"), body.get("durationSeconds"),
        file_seconds,
    )  # fmt: skip
    ctx.record.quoted()
    return web.json_response(answer)


@routes.get(API_PREFIX + "/credits")
async def credits(request: web.Request) -> web.Response:
    """The account's credit balance."""
    return web.json_response({"balance": request.app[CONTEXT].world.balance, "currency": "credits"})


def _accepted(request: web.Request, ctx: Context, task: Task) -> dict[str, Any]:
    task_url = request.url.origin().with_path(f"{API_PREFIX}/tasks/{task.id}")
    return {
        "taskId": task.id,
        "projectId": task.project_id,
        "taskUrl": str(task_url),
        "status": task.status(ctx.clock.now()),
    }


def replayed_header(replayed: bool) -> dict[str, str]:
    """`Idempotent-Replayed: true` on an answer that an earlier request with its key made."""
    return {"Idempotent-Replayed": "true"} if replayed else {}


async def json_object(request: web.Request) -> dict[str, Any]:
    """The request's JSON object body, or a 400 problem saying what to send."""
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


def idempotency_key(request: web.Request) -> str | None:
    """The request's `Idempotency-Key`, checked; None without one."""
    key = request.headers.get("Idempotency-Key")
    if key is not None and not IDEMPOTENCY_KEY.fullmatch(key):
        raise ApiProblem(
            400,
            "BAD_REQUEST",
            "Idempotency-Key must be 1 to 255 characters of letters, digits and . _ : -",
            issues=[issue("Idempotency-Key", "1 to 255 characters of [A-Za-z0-9._:-]")],
        )
    return key


def fingerprint_of(request: web.Request, body: dict[str, Any]) -> str:
    """What identifies a request for its idempotency key: method, path and JSON body."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(f"{request.method} {request.path}\n{canonical}".encode()).hexdigest()
