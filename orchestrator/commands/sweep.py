"""`run` and `retry`: a sweep of a manifest's jobs (`runner.run_manifest`), with the live
display on a terminal, then its summary (`summary_text.py`, or the envelope under --json)
and its exit code."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from orchestrator.commands.common import (
    MANIFEST,
    OUT,
    SHARD,
    STATE,
    F,
    friendly,
    parse_shard,
    simulator_for,
)
from orchestrator.output import JSON, answer_run

if TYPE_CHECKING:
    from orchestrator.jobs import JobId


def _sweep_options(func: F) -> F:
    """The options `run` and `retry` share (`_sweep` takes them)."""
    for option in reversed(
        (
            MANIFEST,
            OUT,
            click.option(
                "--api-url",
                metavar="URL",
                help="API base URL; overrides YOUKA_API_URL and the manifest's api.base_url.",
            ),
            STATE,
            SHARD,
            click.option(
                "--log-format",
                type=click.Choice(["console", "json"]),
                help="Log format on stderr (default: JSON; on a terminal, console lines above "
                "the live display, warnings only).",
            ),
            click.option(
                "--no-progress",
                is_flag=True,
                help="No live progress display, even on a terminal.",
            ),
            JSON,
        )
    ):
        func = option(func)
    return func


@click.command()
@_sweep_options
@friendly
def run(**options: Any) -> None:
    """Run every job of MANIFEST: submit, poll, download, record.

    Resumable: a finished job is skipped (its files are checked), an interrupted one picks
    up where it stopped, and a separation is never started twice. Failed separations are
    reported, not repeated: use `stemsweep retry` for that. The API key is read from
    YOUKA_API_KEY only.

    Exit status: 0 every job done, 1 some failed (listed in the summary), 2 unusable
    manifest, arguments, key or state, 3 the API unreachable or failing (nothing is lost:
    run again later), 130 interrupted. After anything but 0, a `next:` line says what to
    run next. With --json, stdout holds only the envelope, whose data is the summary (as in
    summary.json).

    \b
    Example:
      export YOUKA_API_KEY=yk_...
      stemsweep run jobs/nightly.yaml --out /data/stems --no-progress
      stemsweep run jobs/nightly.yaml --shard 0/4    # on 4 machines, 0/4 to 3/4
    """
    _sweep("run", **options)


@click.command()
@_sweep_options
@click.option(
    "--resend",
    metavar="PROJECT:MODEL",
    multiple=True,
    help="Re-send the recorded key of this job that needs attention (repeatable; `all`: every "
    "such job; a song's job is named FOLDER:MODEL, its folder in the tree). The API answers "
    "with its earlier task or project while it remembers the key; otherwise a new one "
    "starts, and is charged.",
)
@friendly
def retry(**options: Any) -> None:
    """Like `run`, and also give failed, cancelled and stranded separations another go.

    A failed separation is submitted again as the next attempt, with a new idempotency key;
    so is a stranded one (separated, but its stems are no longer listed): each is a new
    separation, which costs credits. A job whose separation succeeded but whose download
    failed is only downloaded again: it is never separated twice. A job that needs
    attention is left alone unless named with --resend.

    \b
    Example:
      stemsweep retry jobs/nightly.yaml
      stemsweep retry jobs/nightly.yaml --resend prj_a:mdx23c
    """
    _sweep("retry", **options)


def _sweep(
    mode: str,
    *,
    manifest: Path,
    out: Path | None,
    api_url: str | None,
    state: Path | None,
    shard: str | None,
    log_format: str | None,
    no_progress: bool,
    as_json: bool,
    resend: Sequence[str] = (),
) -> None:
    """One sweep in `mode` (`run` or `retry`) with the options of `_sweep_options`; exits
    with the run's exit code."""
    import logging

    import anyio

    from orchestrator.connection import ENV_API_KEY
    from orchestrator.lifecycle import Mode
    from orchestrator.logs import LogFormat, configure_logging
    from orchestrator.manifest import load_manifest
    from orchestrator.runner import run_manifest
    from orchestrator.summary_text import render_summary
    from orchestrator.tally import Tally

    chosen = parse_shard(shard)
    loaded = load_manifest(manifest)
    resending = _parse_resend(resend)
    secrets = [os.environ.get(ENV_API_KEY, "")]
    show_progress = not no_progress and sys.stderr.isatty()
    tally = Tally()

    def configure() -> None:
        # With the live display up, only warnings (failures) are logged, above it; an
        # explicit --log-format asks for every event.
        quiet = show_progress and log_format is None
        level = logging.WARNING if quiet else logging.INFO
        fmt: LogFormat = "console" if log_format == "console" or quiet else "json"
        configure_logging(fmt, secrets=secrets, level=level)

    async def go() -> Any:
        return await run_manifest(
            loaded,
            mode=Mode(mode),
            output=out,
            state_path=state,
            api_url=api_url,
            shard=chosen,
            tally=tally,
            handle_signals=True,
            local_api=None if loaded.api.simulator is None else simulator_for(loaded.path),
            resend=resending,
        )

    if show_progress:
        from orchestrator.progress import LiveProgress

        title = f"stemsweep {mode} {loaded.name}" + (f" shard {chosen}" if chosen else "")
        with LiveProgress(tally, title=title):
            configure()  # inside the display, so that log lines go above it
            outcome = anyio.run(go)
    else:
        configure()
        outcome = anyio.run(go)
    answer_run(outcome.summary, render_summary, as_json=as_json)
    sys.exit(outcome.exit_code)


def _parse_resend(values: Sequence[str]) -> Callable[[JobId], bool]:
    """Which jobs `--resend` names: `PROJECT:MODEL` each (a song's `FOLDER:MODEL`), or `all`."""
    from orchestrator.errors import UsageError
    from orchestrator.jobs import JobId

    if "all" in values:
        return lambda job: True
    named: set[JobId] = set()
    for value in values:
        project, sep, model = value.partition(":")
        if not sep or not project or not model:
            raise UsageError(f"--resend takes PROJECT:MODEL or all, got {value[:80]!r}")
        named.add(JobId(project, model))
    return named.__contains__
