"""How a command answers: text for people, or one JSON document under `--json`.

Every command takes `--json`. Without it, a command prints its text on stdout (rendered
from its document by `views.py`, or `summary_text.py` for a run) and an error on stderr as
`error: ...`. With it, stdout holds exactly one JSON document, the envelope of
`envelope.py`, and nothing else; logs, the live display and the `error:` line stay on
stderr. Exit codes are the same either way.

After a command that did not end well, a `next:` line says what to run next
(`nextstep.py`): after a run, at the end of its text on stdout; after an error, on stderr
under it; under `--json`, as the error's `next` (and `fix`). The commands it names are
rebuilt from the options the user gave (`same_command`).

Usage errors that click finds before a command runs (an unknown option, a missing
argument) are answered in the envelope too by `Group`, when `--json` is among the
arguments; click still prints its own message on stderr and exits 2.
"""

from __future__ import annotations

import shlex
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NoReturn

import click
from click.core import ParameterSource

from orchestrator.envelope import USAGE_ERROR, dumps, failure, run_failure, success
from orchestrator.logs import redact_text
from orchestrator.nextstep import after_error, after_run

JSON_FLAG = "--json"
JSON = click.option(
    JSON_FLAG,
    "as_json",
    is_flag=True,
    help='Answer with one JSON document on stdout: {"ok": true, "data": ...}, or {"ok": '
    'false, "error": {"code", "message", "next"}}. Logs stay on stderr; exit codes are the same.',
)

_ARGS = "stemsweep.args"  # where `Group` keeps the raw arguments, in the context's meta


def answer(data: Mapping[str, Any], render: Callable[[Any], str], *, as_json: bool) -> None:
    """Print a command's document: `render(data)` as text, or its envelope."""
    click.echo(dumps(success(data)) if as_json else render(data))


def answer_run(summary: Mapping[str, Any], render: Callable[[Any], str], *, as_json: bool) -> None:
    """Print a run's summary, with the next step when it did not end with every job done."""
    ctx = click.get_current_context()
    step = after_run(summary, same=same_command(ctx), retry=same_command(ctx, "retry"))
    problem = run_failure(summary)
    if as_json:
        if problem is None or step is None:
            click.echo(dumps(success(summary)))
        else:
            code, message = problem
            envelope = failure(code, message, next_command=step.command, fix=step.fix, data=summary)
            click.echo(dumps(envelope))
        return
    click.echo(render(summary))
    if step is not None:
        click.echo(step.line())


def fail(
    code: str, message: str, exit_code: int, *, as_json: bool, label: str = "error: "
) -> NoReturn:
    """Report an error that stopped the command, and the next step, then exit."""
    ctx = click.get_current_context(silent=True)
    step = after_error(code, same=same_command(ctx), help_command=help_command(ctx))
    click.echo(f"{label}{message}", err=True)
    click.echo(step.line(), err=True)
    if as_json:
        click.echo(dumps(failure(code, message, next_command=step.command, fix=step.fix)))
    sys.exit(exit_code)


def same_command(ctx: click.Context | None, name: str | None = None) -> str:
    """The command line of `ctx` with the arguments and options the user gave, as a shell
    would take it; `name` replaces the command's name (`retry` after a `run`). URLs lose
    their query strings and user info (`logs.redact_text`)."""
    if ctx is None:
        return "stemsweep"
    words = [ctx.find_root().info_name or "stemsweep", name or ctx.info_name or ""]
    params = ctx.command.params
    ordered = [p for p in params if isinstance(p, click.Argument)] + [
        p for p in params if not isinstance(p, click.Argument)
    ]
    for param in ordered:
        if param.name is None or ctx.get_parameter_source(param.name) in (
            None,
            ParameterSource.DEFAULT,
        ):
            continue
        words.extend(_words(param, ctx.params.get(param.name)))
    return shlex.join(words)


def _words(param: click.Parameter, value: Any) -> list[str]:
    values: Sequence[Any] = value if isinstance(value, tuple | list) else (value,)
    shown = [redact_text(str(v)) for v in values if v is not None]
    if isinstance(param, click.Argument):
        return shown
    if isinstance(param, click.Option) and param.is_flag:
        return [param.opts[0]] if value else []
    flag = param.opts[0]
    return [word for v in shown for word in (flag, v)]


def help_command(ctx: click.Context | None) -> str:
    """`stemsweep COMMAND --help` for the command of `ctx` (`stemsweep --help` without one)."""
    if ctx is None or ctx.parent is None:
        return "stemsweep --help"
    return shlex.join([ctx.find_root().info_name or "stemsweep", ctx.info_name or "", "--help"])


class Group(click.Group):
    """A command group that answers click's own usage errors in the envelope under --json."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        ctx.meta[_ARGS] = list(args)
        try:
            return super().parse_args(ctx, args)
        except click.ClickException as exc:
            self._answer(ctx, exc)
            raise

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except click.ClickException as exc:
            self._answer(ctx, exc)
            raise

    def _answer(self, ctx: click.Context, exc: click.ClickException) -> None:
        args: list[str] = ctx.meta.get(_ARGS, [])
        if JSON_FLAG not in args:
            return
        sub = next((a for a in args if not a.startswith("-")), "")
        words = [ctx.info_name or "stemsweep", *([sub] if sub in self.commands else [])]
        command = shlex.join([*words, "--help"])
        envelope = failure(
            USAGE_ERROR, exc.format_message(), next_command=command, fix="correct the command"
        )
        click.echo(dumps(envelope))
