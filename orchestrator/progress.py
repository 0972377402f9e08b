"""The live progress display: jobs per state, and per model, on stderr (rich).

Shown only when stderr is a terminal and `--no-progress` is not given; otherwise the JSON
logs are the progress. The display reads a `summary.Tally` that the run updates; rich
redraws it a few times a second from its own thread, so the run never waits for it.
"""

from __future__ import annotations

from types import TracebackType

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

from orchestrator.tally import Tally

REFRESH_PER_SECOND = 4
# The model table shows these columns (the rest are summed into `other`).
COLUMNS = (
    "waiting",
    "submitting",
    "submitted",
    "downloading",
    "done",
    "failed",
)


class LiveProgress:
    """A context manager showing `tally` live on `console` (stderr by default)."""

    def __init__(self, tally: Tally, *, title: str = "", console: Console | None = None) -> None:
        self._tally = tally
        self._title = title
        self._console = console or Console(stderr=True)
        self._live: Live | None = None

    def __enter__(self) -> LiveProgress:
        # redirect_stderr: log lines written while the display is up appear above it.
        self._live = Live(
            self,
            console=self._console,
            refresh_per_second=REFRESH_PER_SECOND,
            redirect_stdout=False,
            redirect_stderr=True,
        )
        self._live.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None

    def __rich__(self) -> RenderableType:
        return render(self._tally, title=self._title)


def render(tally: Tally, *, title: str = "") -> RenderableType:
    """The display for the current counts: a line per state, then a table per model."""
    counts = tally.by_status()
    done = counts.get("done", 0)
    header = Text.assemble(
        (f"{title}  " if title else "", "bold"),
        (f"{done}/{tally.total} done", "bold green"),
        "   " + "  ".join(f"{s} {n}" for s, n in counts.items() if s != "done"),
    )
    table = Table(box=None, pad_edge=False, header_style="bold")
    table.add_column("model")
    for column in (*COLUMNS, "other"):
        table.add_column(column, justify="right")
    for model, per in tally.by_model().items():
        shown = [per.get(c, 0) for c in COLUMNS]
        other = sum(n for s, n in per.items() if s not in COLUMNS)
        table.add_row(model, *(str(n) if n else "" for n in (*shown, other)))
    return Group(header, table)
