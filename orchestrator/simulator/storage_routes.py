"""Stem files: the storage host's signed URLs, and the API host's redirect to them.

The storage host stands for object storage or a CDN: it knows nothing of API keys, refuses
any request that carries one (and records it: a client must never send its token there), and
serves a stem only under a valid, unexpired signature. Its faults (expired although fresh,
dropped, truncated, slow) are drawn per download.
"""

from __future__ import annotations

import anyio
from aiohttp import web

from orchestrator.simulator.context import API_PREFIX, CONTEXT, Context, drop
from orchestrator.simulator.entities import Stem
from orchestrator.simulator.errors import ApiProblem
from orchestrator.simulator.signing import require_signed
from orchestrator.simulator.uploads import SERVED_TYPES

storage_routes = web.RouteTableDef()
redirect_routes = web.RouteTableDef()

REFRESH_HINT = "re-read the project for a fresh URL"


@redirect_routes.get(API_PREFIX + "/stems/{stemId}/download", name="stem-download")
async def redirect_to_storage(request: web.Request) -> web.StreamResponse:
    """302 to a freshly signed storage URL of the stem, under a valid signature."""
    ctx = request.app[CONTEXT]
    stem = _signed_stem(ctx, request, request.match_info["stemId"])
    if ctx.faults.roll("drop_connection", ctx.profile.faults.drop_connection):
        drop(request)
    raise web.HTTPFound(ctx.storage_url(request, stem))


@storage_routes.get("/files/{name}")
async def download(request: web.Request) -> web.StreamResponse:
    """The stem's file, honouring `Range`, under a valid signature."""
    ctx = request.app[CONTEXT]
    stem_id, _, ext = request.match_info["name"].partition(".")
    stem = _signed_stem(ctx, request, stem_id)
    if ext != stem.fmt:
        raise ApiProblem(
            404, "NOT_FOUND", f"no file {request.match_info['name']!r}; {REFRESH_HINT}"
        )
    faults = ctx.profile.faults
    if request.method == "HEAD":
        return _file_response(stem, await ctx.media.stem_bytes(stem), request)
    if ctx.faults.roll("drop_connection", faults.drop_connection):
        drop(request)
    if ctx.faults.roll("expired_url", faults.expired_url):
        raise _expired()
    data = await ctx.media.stem_bytes(stem)
    if ctx.faults.roll("truncate_body", faults.truncate_body):
        return await _truncated(request, stem, data, ctx)
    if ctx.faults.roll("slow_body", faults.slow_body):
        return await _slow(request, stem, data, ctx)
    response = _file_response(stem, data, request)
    ctx.record.download(response.content_length or 0)
    return response


def _signed_stem(ctx: Context, request: web.Request, stem_id: str) -> Stem:
    require_signed(
        ctx.secret,
        stem_id,
        request.query,
        ctx.clock.now(),
        hint=REFRESH_HINT,
        expired=_expired,
    )
    stem = ctx.world.stems.get(stem_id)
    if stem is None:
        raise ApiProblem(
            404, "NOT_FOUND", f"stem {stem_id!r} no longer exists (replaced); {REFRESH_HINT}"
        )
    return stem


def _expired() -> ApiProblem:
    return ApiProblem(403, "URL_EXPIRED", f"the signed URL has expired; {REFRESH_HINT}")


def _file_response(stem: Stem, data: bytes, request: web.Request) -> web.Response:
    headers = {"Accept-Ranges": "bytes"}
    try:
        window = request.http_range
    except ValueError:
        window = slice(None, None)
    if window.start is None and window.stop is None:
        body = data
        status = 200
    else:
        start, stop, _ = window.indices(len(data))
        if start >= stop:
            raise ApiProblem(
                416, "RANGE_NOT_SATISFIABLE", f"the file has {len(data)} bytes; ask within them"
            )
        body = data[start:stop]
        status = 206
        headers["Content-Range"] = f"bytes {start}-{stop - 1}/{len(data)}"
    return web.Response(
        body=body,
        status=status,
        headers=headers,
        content_type=SERVED_TYPES[stem.fmt],
    )


async def _truncated(
    request: web.Request, stem: Stem, data: bytes, ctx: Context
) -> web.StreamResponse:
    """Announce the full length, send part of it, and close the connection."""
    response = _stream(stem, len(data))
    await response.prepare(request)
    sent = len(data) // 2
    await response.write(data[:sent])
    ctx.record.download(sent)
    drop(request)


async def _slow(request: web.Request, stem: Stem, data: bytes, ctx: Context) -> web.StreamResponse:
    """The whole file, in small chunks with pauses between them."""
    faults = ctx.profile.faults
    response = _stream(stem, len(data))
    await response.prepare(request)
    for offset in range(0, len(data), faults.slow_chunk_bytes):
        await response.write(data[offset : offset + faults.slow_chunk_bytes])
        await anyio.sleep(faults.slow_pause)
    await response.write_eof()
    ctx.record.download(len(data))
    return response


def _stream(stem: Stem, length: int) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Accept-Ranges": "bytes"})
    response.content_type = SERVED_TYPES[stem.fmt]
    response.content_length = length
    return response
