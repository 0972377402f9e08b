"""What the commands share: exit codes, errors turned into a message a person can act on
(`friendly`), the options of the commands that read a manifest, and the in-process
simulator a manifest may ask for (`simulator_for`)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from functools import wraps
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from orchestrator.envelope import INTERRUPTED, MISSING_EXTRA, error_code
from orchestrator.errors import StemsweepError
from orchestrator.extras import missing_extra
from orchestrator.output import fail

if TYPE_CHECKING:
    from orchestrator.jobs import Shard
    from orchestrator.simulator.server import Simulator
    from orchestrator.spec import SimulatorSpec

F = TypeVar("F", bound=Callable[..., Any])

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


def friendly(func: F) -> F:
    """Turn stemsweep errors into `error: message` on stderr (and the envelope on stdout
    under --json), a `next:` line, and the error's exit code."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        as_json = bool(kwargs.get("as_json"))
        if as_json:
            from orchestrator.logs import configure_logging

            configure_logging(None)  # structlog's default would print events on stdout
        try:
            return func(*args, **kwargs)
        except StemsweepError as exc:
            fail(error_code(exc), str(exc), exc.exit_code, as_json=as_json)
        except ModuleNotFoundError as exc:
            # An optional part (simulator, report) whose extra is not installed.
            context = click.get_current_context(silent=True)
            message = missing_extra(exc.name, context.info_name if context else None)
            if message is None:
                raise
            fail(MISSING_EXTRA, message, EXIT_USAGE, as_json=as_json)
        except KeyboardInterrupt:
            fail(INTERRUPTED, "interrupted", EXIT_INTERRUPTED, as_json=as_json, label="")

    return wrapper  # type: ignore[return-value]


# --- the options of the commands that read a manifest: run, retry, plan, status ----------

MANIFEST = click.argument("manifest", type=click.Path(path_type=Path, dir_okay=False))
OUT = click.option(
    "--out",
    type=click.Path(path_type=Path, file_okay=False),
    help="Root of the per-model output tree (default: the manifest's `output`).",
)
STATE = click.option(
    "--state",
    type=click.Path(path_type=Path, dir_okay=False),
    help="State database (default: OUT/.stemsweep/state.db; with --shard, "
    "OUT/.stemsweep/state-shard-I-of-N.db).",
)
SHARD = click.option(
    "--shard",
    metavar="I/N",
    help="Only shard I of N (I from 0, like Kubernetes' JOB_COMPLETION_INDEX): the jobs of "
    "the projects that hash to I. The N shards never overlap and together hold every job; "
    "they share OUT, each with its own state and summary file.",
)


def parse_shard(text: str | None) -> Shard | None:
    """The `Shard` of `--shard`, or None (no option, or `0/1`: every job)."""
    if text is None:
        return None
    from orchestrator.jobs import Shard

    shard = Shard.parse(text)
    return shard if shard.count > 1 else None


def simulator_for(
    manifest_path: Path,
) -> Callable[[SimulatorSpec, Path], AbstractAsyncContextManager[Simulator]]:
    """Starts the in-process simulator of a manifest's `api.simulator`, for `run_manifest`,
    with its world kept in the folder the run gives; a profile that cannot be loaded or a
    folder that cannot be used is a `UsageError` naming it."""
    from orchestrator.errors import UsageError
    from orchestrator.simulator.folder import StateFolderError
    from orchestrator.simulator.profile import ProfileError
    from orchestrator.simulator.server import Simulator

    @asynccontextmanager
    async def start(spec: SimulatorSpec, folder: Path) -> AsyncIterator[Simulator]:
        try:
            simulator = Simulator(
                spec.profile, seed=spec.seed, time_scale=spec.time_scale, state=folder
            )
        except ProfileError as exc:
            raise UsageError(f"{manifest_path}: api.simulator.profile: {exc}") from None
        async with AsyncExitStack() as stack:
            try:
                sim = await stack.enter_async_context(simulator)
            except StateFolderError as exc:
                raise UsageError(str(exc)) from None
            yield sim

    return start
