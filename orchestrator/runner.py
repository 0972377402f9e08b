"""A run: resolve the connection, open the state store and the client, run the engine,
write the summary.

`run_manifest` is what `stemsweep run` and `stemsweep retry` call:

    connection  the API's URL and the key (`connection`), or the in-process API a
                manifest's `api.simulator` asks for, started through the `local_api` seam
    state       the store is checked, opened and locked first (`state_guard`); what
                other splits of the tree recorded is adopted, songs included
                (`state_merge`); a store found missing, empty or damaged is rebuilt from
                the tree's job.json files, songs included, and the run says so
                (`state_rebuild`); then the manifest's song files are digested (`songs`)
                and partial files of interrupted runs removed from the run's own folders
    credits     under `limits.max_credits`, the jobs a rebuild restored are priced again
                and counted before any submission (`budget.Budget.count_restored`)
    key check   `GET /me`: a missing, empty or rejected key stops the run before any
                submission (exit 2), and so does an API that cannot be reached (exit 3)
    engine      `engine.Engine` runs every job under the limits (see there)
    summary     `{out}/summary.json` (a shard's own name) is written however the run ends:
                done, failed jobs, interrupted, or stopped (`stopped_by`: the key rejected,
                the API unreachable or failing, the state unwritable), from `GET /me` on;
                with the credits quoted and submitted (`budget`), and with songs, `songs.json`

The runner imports nothing of the simulator: a simulator run gets its API through
`local_api`, an opener of anything with a `base_url`, a key it accepts and the URLs of
each project's true stems (`LocalApi`), which `delivery.save_references` saves for the
report.

(A little over 400 lines: a run's steps, in the order they happen, read in one place.)
"""

from __future__ import annotations

import os
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from contextlib import AbstractAsyncContextManager, AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import anyio

from orchestrator.api import YoukaClient
from orchestrator.budget import PriceList, original_seconds, price_jobs
from orchestrator.catalog import model_names
from orchestrator.clock import REAL_CLOCK, Clock
from orchestrator.connection import require_key, resolve_connection
from orchestrator.delivery import ReferenceSource, save_references
from orchestrator.engine import RUN_STOPPERS, Engine
from orchestrator.errors import (
    ApiError,
    ApiUnavailableError,
    RetryableApiError,
    StemsweepError,
    UsageError,
)
from orchestrator.files import remove_partials, write_json_atomic
from orchestrator.jobs import JobId, Shard, count_jobs, iter_jobs, select_shard
from orchestrator.ledger import Ledger
from orchestrator.lifecycle import ORIGINAL, Mode
from orchestrator.logs import get_logger
from orchestrator.looplag import ENV_LOOP_LAG, LagSampler
from orchestrator.paths import own_folders, songs_name, summary_name
from orchestrator.song_plan import Song, in_shard, prepare_songs
from orchestrator.spec import Manifest, SimulatorSpec
from orchestrator.state import StateStore, utc_now
from orchestrator.state_files import default_state_path, local_api_folder, other_splits
from orchestrator.state_guard import Opened, open_checked
from orchestrator.state_merge import adopt
from orchestrator.state_rebuild import rebuild
from orchestrator.tally import Tally, summary_data
from orchestrator.timings import Timings, api_origin, simulator_origin

log = get_logger()


class LocalApi(ReferenceSource, Protocol):
    """An API served in this process for one run (the simulator): where it is, a key it
    accepts, and the URLs of each project's true stems (`reference_urls`)."""

    @property
    def base_url(self) -> str: ...
    @property
    def api_key(self) -> str: ...


OpenLocalApi = Callable[[SimulatorSpec, Path], AbstractAsyncContextManager[LocalApi]]
"""Starts the in-process API of a manifest's `api.simulator` (entered for the run's length),
keeping its world in the given folder of the output tree across runs; raises `UsageError`
when the spec or the folder cannot be served."""


@dataclass
class RunOutcome:
    """What a run did: its summary document (also in `{out}/summary.json`) and exit code."""

    summary: dict[str, Any]
    exit_code: int
    output: Path
    state_path: Path


async def run_manifest(
    manifest: Manifest,
    *,
    mode: Mode = Mode.RUN,
    output: Path | None = None,
    state_path: Path | None = None,
    api_url: str | None = None,
    shard: Shard | None = None,
    environ: Mapping[str, str] | None = None,
    clock: Clock = REAL_CLOCK,
    tally: Tally | None = None,
    handle_signals: bool = False,
    seed: int = 0,
    client_options: Mapping[str, Any] | None = None,
    local_api: OpenLocalApi | None = None,
    resend: Callable[[JobId], bool] = lambda job: False,
) -> RunOutcome:
    """Run (or retry) every job of `manifest`; see the module docstring.

    Raises, before any submission: `CredentialsError` (key missing, empty or rejected),
    `StateLockedError` (another run holds the state), `StateError` (a state file that is
    not one, or a symbolic link), `ApiUnavailableError` (the API cannot be reached),
    `UsageError` (the API refused `GET /me` otherwise). Mid-run, a key the API starts
    rejecting raises `CredentialsError`, an API silent for long `ApiUnavailableError`, a
    state that cannot be written `StateError`. From `GET /me` on, the summary is written
    first, with the error as `stopped_by`.
    `resend(job)`: the user asked to re-send that job's key although it needs attention.
    `tally` receives live counts (the progress display reads it); `handle_signals` turns
    SIGINT/SIGTERM into a clean stop (exit code 130); `seed` seeds the poll jitter;
    `client_options` are passed to `YoukaClient` (tests and benchmarks shorten its waits).
    `local_api` starts the in-process API a manifest with `api.simulator` runs against
    (`stemsweep run` gives the simulator's); without it such a manifest is a `UsageError`.

    `shard` runs only that shard's jobs, with its own state and summary files in the shared
    output tree; at start it removes leftover partial files from its own job folders only,
    since the other shards may be writing theirs at that moment. A run first adopts what
    the tree's stores of another split (`state.db`, shards of another N) recorded for its
    jobs, so re-sharding neither repeats nor forgets any work.
    """
    environ = os.environ if environ is None else environ
    out = output if output is not None else manifest.output
    state_path = state_path if state_path is not None else default_state_path(out, shard)
    base_url, api_key = resolve_connection(manifest, environ, api_url)
    tally = tally if tally is not None else Tally()
    started, started_at = time.monotonic(), utc_now()
    opened = open_checked(state_path)
    with opened.store as store:
        # Rebuilt and adopted first: the songs are planned from what the store then knows
        # (their folders, their projects), so that none is uploaded or created again.
        rebuilt = _rebuild(opened, store, out, shard)
        for other in other_splits(out, shard):
            wanted = (lambda _: True) if shard is None else shard.has_project
            adopted = adopt(store, other, wanted)
            if adopted:
                log.info("run.records_adopted", jobs=adopted, store=str(other))
        timings = Timings(store, _durations_origin(manifest, base_url))
        for other in other_splits(out, shard):
            timings.adopt(other)
        songs = await prepare_songs(manifest, Ledger(store), model_names())
        mine = in_shard(songs, shard)
        tally.total = tally.total or count_jobs(manifest, shard) + sum(len(s.models) for s in mine)
        if out.exists():
            own = {s.digest for s in mine}
            folders = {s.folder: s.digest in own for s in songs}
            removed = remove_partials(out, only=own_folders(shard, folders))
            if removed:
                log.info("run.partials_removed", count=removed)
        stack = AsyncExitStack()
        try:
            client, local = await _open_client(
                stack,
                manifest,
                base_url,
                api_key,
                clock,
                client_options or {},
                local_api,
                local_api_folder(out, shard),
            )
            engine = Engine(
                manifest,
                mode,
                out,
                store,
                client,
                clock,
                tally,
                seed,
                shard=shard,
                songs=mine,
                resend=resend,
                timings=timings,
            )
            lag_path = environ.get(ENV_LOOP_LAG)
            if lag_path:
                engine.sampler = LagSampler(clock, load=lambda: engine.admission.in_flight.used)
            stopped_by: StemsweepError | None = None
            try:
                await _check_api(client)  # before any submission
                log.info(
                    "run.started",
                    manifest=str(manifest.path),
                    mode=str(mode),
                    jobs=tally.total,
                    shard=None if shard is None else str(shard),
                    output=str(out),
                    state=str(state_path),
                    api=client.base_url,
                )
                if local is not None:
                    projects = (job.project for job in select_shard(iter_jobs(manifest), shard))
                    await save_references(client, local, projects, out)
                await engine.budget.count_restored(_restored_seconds(store, mine, client))
                await engine.run(handle_signals=handle_signals)
            except (*RUN_STOPPERS, UsageError) as exc:
                stopped_by = exc  # the run stopped early: the summary says why
                raise
            finally:
                # Plain synchronous writes: they complete even while the run is cancelled.
                interrupted = engine.interrupted or not engine.finished
                run_info = {
                    "manifest": str(manifest.path),
                    "name": manifest.name,
                    "mode": str(mode),
                    "shard": None if shard is None else str(shard),
                    "output": str(out),
                    "references": _references_path(manifest),
                    "state": str(state_path),
                    "summary": str(out / summary_name(shard)),
                    "started_at": started_at,
                    "finished_at": utc_now(),
                    "wall_seconds": round(time.monotonic() - started, 3),
                    "api_requests": client.requests,
                    "downloads": client.downloads,
                    "polls": engine.poller.polls,
                    "credits": engine.budget.summary(),
                    **({"state_rebuilt": rebuilt} if rebuilt else {}),
                }
                if songs:
                    engine.songs.write_list(out / songs_name(shard))
                    run_info["songs"] = {
                        **engine.songs.summary(),
                        "list": str(out / songs_name(shard)),
                    }
                data = summary_data(
                    tally, run=run_info, interrupted=interrupted, stopped_by=stopped_by
                )
                write_json_atomic(out / summary_name(shard), data)
                _save_durations(timings)
                if engine.sampler is not None and lag_path:
                    engine.sampler.write(Path(lag_path))
                log.info(
                    "run.finished",
                    interrupted=interrupted,
                    counts=data["counts"],
                    api_requests=client.requests,
                    wall_seconds=data["wall_seconds"],
                )
        finally:
            with anyio.CancelScope(shield=True):  # close connections even when cancelled
                await stack.aclose()
    return RunOutcome(summary=data, exit_code=data["exit_code"], output=out, state_path=state_path)


async def _check_api(client: YoukaClient) -> None:
    """`GET /me` before any submission. A rejected key raises `CredentialsError`; an API
    that cannot be reached or keeps failing `ApiUnavailableError` (exit 3: run again later);
    any other refusal `UsageError` (exit 2: the URL is likely not the API's)."""
    try:
        await client.me()
    except RetryableApiError as exc:
        raise ApiUnavailableError(
            f"the API at {client.base_url} could not be reached ({exc}); nothing was "
            "submitted: run again later"
        ) from None
    except ApiError as exc:
        raise UsageError(
            f"the API at {client.base_url} refused GET /me ({exc}); check api.base_url, "
            "YOUKA_API_URL or --api-url"
        ) from None


def _durations_origin(manifest: Manifest, base_url: str) -> str:
    """Whose durations a run learns and uses: the API's origin, or its simulator's."""
    local = manifest.api.simulator
    if local is not None:
        return simulator_origin(local.profile, local.time_scale)
    return api_origin(base_url)


def _save_durations(timings: Timings) -> None:
    """Save what the run learned; a store that can no longer be written loses only that
    (the run's own outcome, recorded or not, is what the summary reports)."""
    try:
        timings.save()
    except StemsweepError as exc:
        log.warning("durations.not_saved", reason=str(exc))


def _rebuild(opened: Opened, store: StateStore, out: Path, shard: Shard | None) -> dict[str, Any]:
    """Rebuild a store found missing, empty or damaged, or one that holds no job (a run
    killed before its rebuild committed), from the tree's job.json files; what happened,
    for the log and the summary (empty when there was nothing to say)."""
    if not opened.lost and store.has_jobs():
        return {}
    found = rebuild(store, out, (lambda _: True) if shard is None else shard.has_project)
    if not opened.lost and not found.jobs:
        return {}  # a store of no job, and nothing in the tree to say otherwise
    if opened.condition == "missing" and not found.jobs and not found.unreadable:
        return {}  # a new tree: nothing was lost
    said = {
        "found": opened.condition if opened.lost else "empty",
        "problems": opened.problems[:5],
        "kept_aside": None if opened.kept_aside is None else str(opened.kept_aside),
        "jobs_from_job_json": found.jobs,
        "songs_from_job_json": found.songs,
        "unreadable_job_json": found.unreadable[:20],
    }
    log.warning("state.rebuilt", state=str(store.path), **said)
    return said


def _restored_seconds(
    store: StateStore, songs: Iterable[Song], client: YoukaClient
) -> Callable[[str, str], Awaitable[float | None]]:
    """How long the song of a job restored from its job.json is, to price it again: its
    `original` stem's duration as the job recorded it, else its song file's, else the
    project's `original` as the API lists it."""
    by_digest = {song.digest: song for song in songs}
    by_project = {
        record.project: by_digest[record.digest]
        for record in Ledger(store).songs()
        if record.project and record.digest in by_digest
    }

    read: dict[str, float | None] = {}  # one project read per project

    async def seconds(project: str, model: str) -> float | None:
        for stem in store.stems(project, model):
            if stem.type == ORIGINAL and stem.duration:
                return stem.duration
        if project in by_project:
            return by_project[project].file.duration
        if project not in read:
            read[project] = original_seconds(await client.project(project))
        return read[project]

    return seconds


def _references_path(manifest: Manifest) -> str | None:
    """The manifest's `references` folder as an absolute path, for `stemsweep report`."""
    return None if manifest.references is None else str(manifest.references.resolve())


async def _open_client(
    stack: AsyncExitStack,
    manifest: Manifest,
    base_url: str,
    api_key: str | None,
    clock: Clock,
    options: Mapping[str, Any],
    local_api: OpenLocalApi | None,
    local_folder: Path,
) -> tuple[YoukaClient, LocalApi | None]:
    """The run's client, and the in-process API when the manifest asks for one (its world
    kept in `local_folder`, so that a resumed run finds the tasks it recorded)."""
    local = None
    if manifest.api.simulator is not None:
        if local_api is None:
            raise UsageError(
                f"{manifest.path}: api.simulator asks for an in-process simulator, and this "
                "run has none to start (`stemsweep run` starts it)"
            )
        local = await stack.enter_async_context(local_api(manifest.api.simulator, local_folder))
        base_url, api_key = local.base_url, local.api_key
    client = await stack.enter_async_context(
        YoukaClient(
            base_url,
            require_key(api_key),
            requests_per_second=manifest.limits.requests_per_second,
            attempts=manifest.retries.requests,
            clock=clock,
            **options,
        )
    )
    return client, local


async def quote_jobs(
    manifest: Manifest,
    wanted: Iterable[tuple[str, str, float | None]],
    *,
    output: Path,
    shard: Shard | None = None,
    api_url: str | None = None,
    environ: Mapping[str, str] | None = None,
    local_api: OpenLocalApi | None = None,
) -> PriceList:
    """`stemsweep plan --quote`: the price of each (model, project, seconds) of `wanted` (a
    song's duration given, a project's read from its `original` stem), asked of the API the
    manifest names (or its in-process simulator, whose world is the tree's)."""
    environ = os.environ if environ is None else environ
    base_url, api_key = resolve_connection(manifest, environ, api_url)
    async with AsyncExitStack() as stack:
        client, _ = await _open_client(
            stack,
            manifest,
            base_url,
            api_key,
            REAL_CLOCK,
            {},
            local_api,
            local_api_folder(output, shard),
        )
        await client.me()
        return await price_jobs(client, wanted)
