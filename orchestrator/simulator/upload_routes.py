"""Songs from files: `POST /uploads`, the storage host's `PUT` of the bytes, `POST /projects`.

    POST /api/v1/uploads   {filename, contentType, contentLength}
        -> 201 {inputFileId, uploadUrl}
    PUT  {uploadUrl}       the raw bytes, Content-Type and Content-Length as announced
        -> 200 {inputFileId, contentLength, sha256}
    POST /api/v1/projects  {title, inputFileId, splitModel}
        -> 202 {projectId, taskId, projectUrl, taskUrl}

Both POSTs are idempotent like the stem-separation POST: the same key with the same body
answers what the first answered (`Idempotent-Replayed: true`; an upload's replay carries a
freshly signed `uploadUrl` for the same file), another body with that key is 409. Both meet
the write faults (5xx before and after the write). The PUT goes to the storage host, which
refuses `Authorization` like its downloads; its URL is signed and expires
(`upload_url_ttl`); it meets dropped connections, expired URLs and 5xx before and after
the bytes are stored. Bytes are decoded (their duration read) when stored; a file that does
not decode is refused when a project is created from it.
"""

from __future__ import annotations

import hashlib

import anyio.to_thread
from aiohttp import web

from orchestrator.simulator import unmix
from orchestrator.simulator.api_routes import (
    fingerprint_of,
    idempotency_key,
    json_object,
    replayed_header,
    server_error,
)
from orchestrator.simulator.context import API_PREFIX, CONTEXT, Context, drop, upload_subject
from orchestrator.simulator.entities import Upload
from orchestrator.simulator.errors import ApiProblem
from orchestrator.simulator.signing import require_signed
from orchestrator.simulator.uploads import check_creation, check_upload, media_type

upload_routes = web.RouteTableDef()
put_routes = web.RouteTableDef()

REFRESH_HINT = "ask POST /uploads again, with the same Idempotency-Key, for a fresh uploadUrl"


@upload_routes.post(API_PREFIX + "/uploads")
async def announce_upload(request: web.Request) -> web.Response:
    """Register a file to upload; answer its id and a signed URL to PUT its bytes to."""
    ctx = request.app[CONTEXT]
    body = await json_object(request)
    key = idempotency_key(request)
    fields = check_upload(body, ctx.profile.max_upload_bytes)
    _fault_before_write(ctx)
    fingerprint = fingerprint_of(request, body)
    now = ctx.clock.now()
    entry = ctx.world.remembered(key, fingerprint, now)
    if entry is not None:
        upload = ctx.world.uploads[entry.ref]
    else:
        upload = ctx.world.announce_upload(fields, key, fingerprint, now)
    _fault_after_write(ctx)
    answer = {"inputFileId": upload.id, "uploadUrl": ctx.upload_url(request, upload)}
    return web.json_response(answer, status=201, headers=replayed_header(entry is not None))


@upload_routes.post(API_PREFIX + "/projects")
async def create_project(request: web.Request) -> web.Response:
    """Create a project from an uploaded file, and start its first separation."""
    ctx = request.app[CONTEXT]
    body = await json_object(request)
    key = idempotency_key(request)
    title, file_id, model = check_creation(body)
    _fault_before_write(ctx)
    fingerprint = fingerprint_of(request, body)
    now = ctx.clock.now()
    entry = ctx.world.remembered(key, fingerprint, now)
    if entry is not None:
        task = ctx.world.tasks[entry.ref]
    else:
        model = ctx.world.check_model(model)
        upload = ctx.world.decoded_upload(file_id)
        task = ctx.world.create_project(upload, title, model, key, fingerprint, now)
    _fault_after_write(ctx)
    origin = request.url.origin()
    answer = {
        "projectId": task.project_id,
        "taskId": task.id,
        "projectUrl": str(origin.with_path(f"{API_PREFIX}/projects/{task.project_id}")),
        "taskUrl": str(origin.with_path(f"{API_PREFIX}/tasks/{task.id}")),
    }
    return web.json_response(answer, status=202, headers=replayed_header(entry is not None))


@put_routes.put("/uploads/{fileId}")
async def receive_upload(request: web.Request) -> web.Response:
    """Store the bytes of an announced file, under a valid signature, as announced."""
    ctx = request.app[CONTEXT]
    upload = _signed_upload(ctx, request)
    faults = ctx.profile.faults
    if ctx.faults.roll("drop_connection", faults.drop_connection):
        drop(request)
    if ctx.faults.roll("expired_url", faults.expired_url):
        raise _expired()
    _check_headers(request, upload)
    data = await request.read()
    if len(data) != upload.length:  # aiohttp reads exactly Content-Length: a short body fails
        raise ApiProblem(
            400, "CONTENT_LENGTH_MISMATCH", f"expected {upload.length} bytes, got {len(data)}"
        )
    _fault_before_write(ctx)
    if upload.used and hashlib.sha256(data).hexdigest() != upload.sha256:
        raise ApiProblem(
            409,
            "CONFLICT",
            f"input file {upload.id!r} was already used to create a project with other bytes; "
            "announce a new upload for a new file",
        )
    digest, seconds, error = await anyio.to_thread.run_sync(_store, ctx, upload.id, data)
    ctx.record.upload_stored(len(data), digest, upload.sha256)
    upload.received, upload.sha256, upload.puts = True, digest, upload.puts + 1
    upload.seconds, upload.media_error = seconds, error
    ctx.world.changes.touch("upload", upload.id)
    _fault_after_write(ctx)
    answer = {"inputFileId": upload.id, "contentLength": len(data), "sha256": digest}
    return web.json_response(answer)


def _store(ctx: Context, file_id: str, data: bytes) -> tuple[str, float | None, str | None]:
    """Keep the bytes (a state folder writes them durably); their sha256, duration or error."""
    ctx.blobs.put_blob(file_id, data)
    try:
        return hashlib.sha256(data).hexdigest(), unmix.probe(data), None
    except unmix.MediaError as exc:
        return hashlib.sha256(data).hexdigest(), None, str(exc)


def _signed_upload(ctx: Context, request: web.Request) -> Upload:
    file_id = request.match_info["fileId"]
    require_signed(
        ctx.secret,
        upload_subject(file_id),
        request.query,
        ctx.clock.now(),
        hint=REFRESH_HINT,
        expired=_expired,
    )
    upload = ctx.world.uploads.get(file_id)
    if upload is None:  # signed by this account, so announced: only a lost world forgets it
        raise ApiProblem(404, "NOT_FOUND", f"no upload {file_id!r}; {REFRESH_HINT}")
    return upload


def _check_headers(request: web.Request, upload: Upload) -> None:
    sent_type = media_type(request.headers.get("Content-Type", ""))
    if sent_type != upload.content_type:
        raise ApiProblem(
            400,
            "CONTENT_TYPE_MISMATCH",
            f"the upload was announced as {upload.content_type}, but Content-Type is "
            f"{sent_type or 'missing'}; send the announced type",
        )
    if request.content_length is None:
        raise ApiProblem(
            411, "LENGTH_REQUIRED", f"send Content-Length: {upload.length}, not a chunked body"
        )
    if request.content_length != upload.length:
        raise ApiProblem(
            400,
            "CONTENT_LENGTH_MISMATCH",
            f"the upload was announced as {upload.length} bytes, but Content-Length is "
            f"{request.content_length}",
        )


def _expired() -> ApiProblem:
    return ApiProblem(403, "URL_EXPIRED", f"the signed upload URL has expired; {REFRESH_HINT}")


def _fault_before_write(ctx: Context) -> None:
    if ctx.faults.roll("error_before_write", ctx.profile.faults.error_before_write):
        raise server_error(ctx, "before_write")


def _fault_after_write(ctx: Context) -> None:
    if ctx.faults.roll("error_after_write", ctx.profile.faults.error_after_write):
        raise server_error(ctx, "after_write")
