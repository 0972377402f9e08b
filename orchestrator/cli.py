"""The `stemsweep` command: a thin shell over the library.

`cli` is the group of every command; the commands live in `orchestrator/commands/`, a
module per group (`sweep.py`: run, retry; `plan.py`: plan, status; `tools.py`: models,
report, simulate). Each parses its arguments, calls one library function, and maps the
error tree of `orchestrator.errors` to an exit code and a message a person can act on
(`commands.common.friendly`). No traceback is shown for a user's mistake. Each command's
answer is one document (`views.py`), printed as text or, under `--json`, as one JSON
envelope (`output.py`).
"""

from __future__ import annotations

import gc

import click

from orchestrator import __version__
from orchestrator.commands.plan import plan, status
from orchestrator.commands.sweep import retry, run
from orchestrator.commands.tools import models, report, simulate
from orchestrator.output import Group

GC_YOUNG_THRESHOLD = 20_000  # CPython's default is 700; see main()


@click.group(
    cls=Group,
    commands=[models, simulate, run, retry, plan, status, report],
    context_settings={"help_option_names": ["-h", "--help"]},
)
@click.version_option(__version__, prog_name="stemsweep")
def cli() -> None:
    """Batch stem re-separation sweeps on the Youka API.

    \b
    Quick start, on the bundled simulator:
      stemsweep run jobs/demo.yaml
    """


def main() -> None:
    """Entry point of the `stemsweep` console script.

    The process collects cyclic garbage less often than CPython's default. A run allocates
    many short-lived containers per request (futures, headers, rows) that reference counting
    frees, yet each one counts towards the next young collection, and every collection walks
    whatever recent objects are still alive (the jobs in flight). With the default threshold
    of 700, a 3,000-job run collected about 650 times, for 0.84 s of its 17 s of CPU; with
    20,000, 26 times, for 0.18 s, at the same peak memory.
    """
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, older, oldest)
    cli(prog_name="stemsweep")
