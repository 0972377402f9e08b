"""The live progress display on stderr (rich): a bar, time and forecast, a line per model.

    stemsweep run demo
    ━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━╸━━━━━━━━━━━━━━━━━━━━━━  24/36 done · 1 failed
    elapsed 1m12s · ETA 40s ±8s · 20.0 jobs/min
    waiting 8 · running 3
    model                    waiting  running  download  done  failed
    mdx23c                                  1               2
    mel_band_rof…gabox             2                        1

The bar fills with the jobs at an end (done, or failed for this run); the ETA and its
margin come from the separation durations the run has learned (`forecast.py`); the pace
counts the jobs this run took to an end. Model names are cut to the room the terminal
leaves, never into a form that could stand for another model (`abbrev.py`).

Shown only when stderr is a terminal and `--no-progress` is not given; otherwise the JSON
logs are the progress. The display reads a `tally.Tally` that the run updates; rich
redraws it a few times a second from its own thread, so the run never waits for it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from functools import lru_cache
from types import TracebackType

from rich.console import Console, ConsoleOptions, Group, RenderableType
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from orchestrator.abbrev import fit_names
from orchestrator.catalog import model_names
from orchestrator.forecast import forecast, format_seconds
from orchestrator.lifecycle import Status
from orchestrator.tally import DOWNLOADING, GOING, QUEUED, WAITING, Tally

REFRESH_PER_SECOND = 4
# The model table's columns and the statuses each sums; `failed` takes every other status
# a job can end in (failed, cancelled, timed out, skipped, download failed...).
COLUMNS: tuple[tuple[str, frozenset[str]], ...] = (
    ("waiting", frozenset({WAITING})),
    (
        "running",
        frozenset({Status.SUBMITTING.value, Status.SUBMITTED.value, Status.SUCCEEDED.value}),
    ),
    ("download", frozenset({DOWNLOADING})),
    ("done", frozenset({Status.DONE.value})),
)
FAILED = "failed"
GAP = 2  # columns between two columns of the model table
MIN_NAME_WIDTH = 14  # the narrowest room in which the twelve names all stay distinct
DOT = " · "


class LiveProgress:
    """A context manager showing `tally` live on `console` (stderr by default)."""

    def __init__(
        self,
        tally: Tally,
        *,
        title: str = "",
        console: Console | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._tally = tally
        self._title = title
        self._console = console or Console(stderr=True)
        self._clock = clock
        self._started = clock()
        self._live: Live | None = None

    def __enter__(self) -> LiveProgress:
        self._started = self._clock()
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

    def __rich_console__(
        self, console: Console, options: ConsoleOptions
    ) -> Iterator[RenderableType]:
        yield render(
            self._tally,
            title=self._title,
            elapsed=self._clock() - self._started,
            width=options.max_width,
        )


def render(tally: Tally, *, title: str = "", elapsed: float = 0.0, width: int = 80) -> Group:
    """The display for the current counts, `elapsed` seconds into the run, `width` wide."""
    counts = tally.by_status()
    done = counts.get(Status.DONE.value, 0)
    ended = tally.ended
    tally_text = f"{done}/{tally.total} done"
    if ended > done:
        tally_text += f"{DOT}{ended - done} failed"
    bar = Table.grid(padding=(0, 1), expand=True)
    bar.add_column(ratio=1)
    bar.add_column(no_wrap=True)
    bar.add_row(
        ProgressBar(total=max(tally.total, 1), completed=ended),
        Text(tally_text, style="bold green" if ended == done else "bold yellow"),
    )
    parts = [Text(title, style="bold")] if title else []
    lines = [_pace_line(tally, elapsed), _going_line(counts)]
    return Group(*parts, bar, *(Text(line) for line in lines if line), _table(tally, width))


def _pace_line(tally: Tally, elapsed: float) -> str:
    """`elapsed 1m12s · ETA 40s ±8s · 20.0 jobs/min`."""
    outlook = forecast(tally, elapsed)
    words = [f"elapsed {format_seconds(elapsed)}"]
    if outlook.seconds is None:
        words.append("ETA --")
    else:
        margin = f" ±{format_seconds(outlook.margin)}" if outlook.margin >= 1 else ""
        words.append(f"ETA {format_seconds(outlook.seconds)}{margin}")
    if outlook.per_minute is not None:
        rate = outlook.per_minute
        words.append(f"{rate:.1f} jobs/min" if rate < 10 else f"{rate:.0f} jobs/min")
    return DOT.join(words)


def _going_line(counts: Mapping[str, int]) -> str:
    """`queued 12 · waiting 8 · running 3 · download 1`: the jobs still going, all models."""
    going = {QUEUED: counts.get(QUEUED, 0)}
    for name, statuses in COLUMNS[:3]:
        going[name] = sum(n for s, n in counts.items() if s in statuses)
    return DOT.join(f"{name} {n}" for name, n in going.items() if n)


def _table(tally: Tally, width: int) -> Table:
    per_model = tally.by_model()
    rows: list[list[str]] = []
    for per in per_model.values():
        counts = [sum(n for s, n in per.items() if s in statuses) for _, statuses in COLUMNS]
        counts.append(sum(n for s, n in per.items() if s not in GOING and s != Status.DONE))
        rows.append([str(n) if n else "" for n in counts])
    headers = [name for name, _ in COLUMNS] + [FAILED]
    widths = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(headers)]
    room = max(MIN_NAME_WIDTH, width - sum(widths) - GAP * len(widths))
    shown = _fitted(tuple(per_model), room)
    table = Table(box=None, pad_edge=False, header_style="bold", padding=(0, GAP // 2))
    table.add_column("model", no_wrap=True)
    for header in headers:
        table.add_column(header, justify="right", no_wrap=True)
    for model, cells in zip(per_model, rows, strict=True):
        table.add_row(shown[model], *cells)
    return table


@lru_cache(maxsize=64)
def _fitted(models: tuple[str, ...], width: int) -> dict[str, str]:
    return fit_names(models, width, known=model_names())
