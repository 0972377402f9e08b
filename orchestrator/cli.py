"""The `stemsweep` command: a thin shell over the library.

Each command parses its arguments, calls one library function, and maps the error tree of
`orchestrator.errors` to an exit code and a message a person can act on. No traceback is
shown for a user's mistake.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

import click

from orchestrator import __version__
from orchestrator.errors import StemsweepError

F = TypeVar("F", bound=Callable[..., Any])

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


def _friendly(func: F) -> F:
    """Turn stemsweep errors into `error: message` on stderr and the error's exit code."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except StemsweepError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(exc.exit_code)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(EXIT_INTERRUPTED)

    return wrapper  # type: ignore[return-value]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="stemsweep")
def cli() -> None:
    """Batch stem re-separation sweeps on the Youka API.

    \b
    Quick start, on the bundled simulator:
      stemsweep run jobs/demo.yaml
    """


@cli.command()
def models() -> None:
    """List the twelve split models and their documented purpose.

    \b
    Example:
      stemsweep models
    """
    from orchestrator.catalog import models as catalogue

    width = max(len(m.name) for m in catalogue())
    for m in catalogue():
        click.echo(f"{m.name:<{width}}  {m.purpose}")


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8080, show_default=True, type=int, help="API port (0: any free).")
@click.option(
    "--storage-port",
    default=0,
    show_default=True,
    type=int,
    help="Port of the storage host that serves stem files (0: any free).",
)
@click.option(
    "--profile",
    default="default",
    show_default=True,
    help="Profile name (configs/simulator/NAME.yaml) or path to a profile YAML.",
)
@click.option("--seed", default=0, show_default=True, type=int, help="Seed of all randomness.")
@click.option(
    "--time-scale",
    default=1.0,
    show_default=True,
    type=float,
    help="Divide every simulated duration by this factor (30: a 60 s task takes 2 s).",
)
@_friendly
def simulate(
    host: str, port: int, storage_port: int, profile: str, seed: int, time_scale: float
) -> None:
    """Serve a local Youka-compatible API with synthesized songs.

    \b
    Example:
      stemsweep simulate --profile chaos --seed 7 --time-scale 20
    """
    from orchestrator.simulator.server import serve_forever

    serve_forever(
        host=host,
        port=port,
        storage_port=storage_port,
        profile=profile,
        seed=seed,
        time_scale=time_scale,
    )


def main() -> None:
    """Entry point of the `stemsweep` console script."""
    cli(prog_name="stemsweep")
