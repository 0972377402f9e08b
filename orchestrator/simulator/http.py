"""The two aiohttp applications of a simulator: the API host and the storage host.

Middlewares, outermost first:

    guard       every refusal as the error envelope, never a bare 500 or a traceback; the
                record of each request (route template, status; 0 when the connection
                closed before a whole response: dropped on purpose or by the client); then
                what the request changed is saved (state folder), before the answer leaves
    api_gate    on the API host: settle tasks up to now; then, for API calls, auth, the
                requests-per-second limit, and the faults common to every call (dropped
                connection, random 429, 5xx on GETs)
    no_credentials
                on the storage host (downloads and upload PUTs): refuse (and record) any
                request with `Authorization`

An "API call" is any request under `/api/v1` except the signed stem-download redirect, which
needs no key (its signature is its credential) and is not rate limited.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import structlog
from aiohttp import web

from orchestrator.simulator.api_routes import routes as api_routes
from orchestrator.simulator.api_routes import server_error
from orchestrator.simulator.context import API_PREFIX, CONTEXT, SIM_PREFIX, Context, drop
from orchestrator.simulator.errors import ApiProblem, Dropped
from orchestrator.simulator.sim_routes import sim_routes
from orchestrator.simulator.storage_routes import redirect_routes, storage_routes
from orchestrator.simulator.upload_routes import put_routes, upload_routes
from orchestrator.simulator.world import retry_after_header

log = structlog.get_logger("orchestrator.simulator")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def api_app(ctx: Context) -> web.Application:
    """The API host: `/api/v1` (Youka's endpoints) and `/_sim/` (the simulator's own)."""
    app = web.Application(middlewares=[guard, api_gate])
    app[CONTEXT] = ctx
    app.add_routes(api_routes)
    app.add_routes(upload_routes)
    app.add_routes(redirect_routes)
    app.add_routes(sim_routes)
    return app


def storage_app(ctx: Context) -> web.Application:
    """The storage host: signed stem files, and signed upload PUTs."""
    app = web.Application(
        middlewares=[guard, no_credentials], client_max_size=ctx.profile.max_upload_bytes
    )
    app[CONTEXT] = ctx
    app.add_routes(storage_routes)
    app.add_routes(put_routes)
    return app


def problem_response(problem: ApiProblem) -> web.Response:
    """The error envelope of `problem`, with its status and headers."""
    return web.json_response(problem.envelope(), status=problem.status, headers=problem.headers)


@web.middleware
async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Answer every failure with the envelope, and record the request."""
    ctx = request.app[CONTEXT]
    status = 0
    try:
        response = await handler(request)
        status = response.status
        return response
    except ApiProblem as problem:
        status = problem.status
        return problem_response(problem)
    except web.HTTPException as exc:
        if exc.status < 400:  # redirects are answers, not errors
            status = exc.status
            raise
        refusal = _routing_problem(request, exc)
        status = refusal.status
        return problem_response(refusal)
    except (Dropped, ConnectionError):
        # Dropped on purpose, or the client went away mid-body: the transport is closed, so
        # aiohttp fails to write this response and moves on quietly.
        return web.Response()
    except Exception:
        log.exception("simulator.unexpected_error", method=request.method, path=request.path)
        status = 500
        return problem_response(
            ApiProblem(
                500,
                "INTERNAL_SERVER_ERROR",
                "the simulator failed unexpectedly (its log has the details); retry the request",
            )
        )
    finally:
        if not request.path.startswith(SIM_PREFIX):
            ctx.record.request(request.method, _route(request), status, ctx.clock.real())
        ctx.after_request()


@web.middleware
async def api_gate(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Settle tasks up to now; authenticate, rate limit and inject faults into API calls."""
    ctx = request.app[CONTEXT]
    ctx.world.advance(ctx.clock.now())
    if not _is_api_call(request):
        return await handler(request)
    ctx.record.api_call(ctx.clock.real())
    _authenticate(ctx, request)
    _limit_rate(ctx)
    faults = ctx.profile.faults
    if ctx.faults.roll("drop_connection", faults.drop_connection):
        drop(request)
    if ctx.faults.roll("rate_limit", faults.rate_limit):
        with_header = ctx.dice.random("retry_after_share") < faults.retry_after_share
        ctx.record.throttled("random", retry_after=with_header)
        raise ApiProblem(
            429,
            "TOO_MANY_REQUESTS",
            "too many requests; back off and retry",
            headers=retry_after_header(faults.retry_after) if with_header else {},
        )
    if request.method == "GET" and ctx.faults.roll("error_on_get", faults.error_on_get):
        raise server_error(ctx, "on_get")
    return await handler(request)


@web.middleware
async def no_credentials(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Refuse any request to the storage host that carries credentials, and record it."""
    if "Authorization" in request.headers:
        request.app[CONTEXT].record.credentials_at_storage()
        raise ApiProblem(
            400,
            "CREDENTIALS_NOT_ALLOWED",
            "the storage host does not accept credentials: fetch the signed URL "
            "without an Authorization header",
        )
    return await handler(request)


def _is_api_call(request: web.Request) -> bool:
    if not request.path.startswith(API_PREFIX + "/"):
        return False
    route = request.match_info.route
    return route.name != "stem-download"


def _authenticate(ctx: Context, request: web.Request) -> None:
    header = request.headers.get("Authorization")
    if header is None:
        reason = "the request has no Authorization header; send Authorization: Bearer yk_..."
    elif not header.startswith("Bearer "):
        reason = "the Authorization header must read Bearer <key>"
    elif not ctx.accepts(header.removeprefix("Bearer ").strip()):
        reason = (
            "the API key is not valid for this account"
            if ctx.profile.api_key is not None
            else "the API key is not valid: keys start with yk_"
        )
    else:
        return
    raise ApiProblem(401, "UNAUTHORIZED", reason)


def _limit_rate(ctx: Context) -> None:
    if ctx.bucket is None or ctx.bucket.take(ctx.clock.real()):
        return
    retry_after = ctx.profile.limit_retry_after
    ctx.record.throttled("requests_per_second", retry_after=retry_after is not None)
    raise ApiProblem(
        429,
        "TOO_MANY_REQUESTS",
        f"more than {ctx.bucket.rate:g} requests per second; slow down",
        headers=retry_after_header(retry_after),
    )


def _route(request: web.Request) -> str:
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "<unmatched>"


def _routing_problem(request: web.Request, exc: web.HTTPException) -> ApiProblem:
    if exc.status == 404:
        return ApiProblem(
            404,
            "NOT_FOUND",
            f"no endpoint {request.method} {request.path}; the API lives under {API_PREFIX} "
            "(see the endpoint table of the API contract)",
        )
    if isinstance(exc, web.HTTPMethodNotAllowed):
        allowed = ", ".join(sorted(exc.allowed_methods))
        return ApiProblem(
            405,
            "METHOD_NOT_ALLOWED",
            f"{request.method} is not allowed on {request.path}; allowed: {allowed}",
        )
    return ApiProblem(exc.status, exc.reason.upper().replace(" ", "_"), exc.reason)
