"""`plan` and `status`: what a run would do, and what the runs did, from the manifest and
the state alone (`plan --quote` also asks the API the price). Both read the store as a run
would see it (`state_guard.open_for_reading`), while a run may be going on."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from orchestrator.commands.common import (
    MANIFEST,
    OUT,
    SHARD,
    STATE,
    friendly,
    parse_shard,
    simulator_for,
)
from orchestrator.output import JSON, answer

if TYPE_CHECKING:
    from orchestrator.budget import PriceList
    from orchestrator.jobs import Shard
    from orchestrator.spec import Manifest
    from orchestrator.state import StateStore

PLAN_ROWS = 20  # rows `plan` lists before summarising the rest (--all lists every one)
_PRICED = frozenset({"submit", "resubmit_same_key", "create"})  # what may still be charged


@click.command()
@MANIFEST
@OUT
@STATE
@SHARD
@click.option("--all", "show_all", is_flag=True, help="List every job, not only the first rows.")
@click.option(
    "--retry", "as_retry", is_flag=True, help="Show what `retry` would do instead of `run`."
)
@click.option(
    "--quote",
    "with_quote",
    is_flag=True,
    help="Also ask the API (POST /projects/quote) what the jobs still to submit cost: credits "
    "per model, the total and the account's available balance. Needs YOUKA_API_KEY.",
)
@click.option(
    "--api-url",
    metavar="URL",
    help="API base URL for --quote; overrides YOUKA_API_URL and the manifest's api.base_url.",
)
@JSON
@friendly
def plan(
    manifest: Path,
    out: Path | None,
    state: Path | None,
    shard: str | None,
    show_all: bool,
    as_retry: bool,
    with_quote: bool,
    api_url: str | None,
    as_json: bool,
) -> None:
    """Show what a run would do: jobs, keys, state, output paths; with --quote, its price.

    Without --quote, reads the manifest, its song files and the state only, with no
    network. A done job whose files are all present counts as done here (`run` also hashes
    those whose modification time changed). With --quote, each job still to submit is
    priced with its song's duration (a project's `original` stem, or the song file's). The
    first rows are listed (--all: every one; with --json too, where `more` counts the
    others).

    \b
    Example:
      stemsweep plan jobs/compare-all-models.yaml --all
      stemsweep plan jobs/compare-all-models.yaml --shard 2/4 --all
      stemsweep plan jobs/compare-all-models.yaml --json | jq .data.actions
      stemsweep plan jobs/songs-demo.yaml --quote
    """
    from datetime import UTC, datetime
    from itertools import chain

    from orchestrator.jobs import iter_jobs, select_shard
    from orchestrator.ledger import Ledger
    from orchestrator.lifecycle import Mode
    from orchestrator.songs import plan_rows_of_songs, songs_for_reading
    from orchestrator.spec import resolve_key_scope
    from orchestrator.views import PlanRow, plan_data, plan_rows, quote_data, render_plan

    reading = _read_state(manifest, out, state, shard)
    loaded, out_dir, chosen, store = reading.manifest, reading.out, reading.shard, reading.store
    mode = Mode.RETRY if as_retry else Mode.RUN
    head = {
        "manifest": str(loaded.path),
        "name": loaded.name,
        "output": str(out_dir),
        "mode": str(mode),
        **reading.head(),
    }
    with store:

        def present(project: str, model: str) -> bool:
            return all(
                (out_dir / s.file).is_file() and (out_dir / s.file).stat().st_size == s.bytes
                for s in store.stems(project, model)
            )

        scope = resolve_key_scope(loaded.key_scope, datetime.now(UTC))
        ledger = Ledger(store)
        songs = songs_for_reading(loaded, ledger, chosen)
        song_rows = plan_rows_of_songs(
            songs, ledger, lookup=store.get, files_present=present, scope=scope, mode=mode
        )
        rows = plan_rows(
            select_shard(iter_jobs(loaded), chosen),
            lookup=store.get,
            files_present=present,
            scope=scope,
            mode=mode,
        )
        project_rows = ((row, None) for row in rows)
        priced: list[tuple[str, str, float | None]] = []

        def noting_prices(pairs: Iterable[tuple[PlanRow, float | None]]) -> Iterator[PlanRow]:
            for row, seconds in pairs:
                if with_quote and row.action in _PRICED:
                    priced.append((row.model, row.project, seconds))
                yield row

        data = plan_data(
            noting_prices(chain(song_rows, project_rows)),
            head=head,
            limit=None if show_all else PLAN_ROWS,
        )
    if with_quote:
        prices = _ask_prices(loaded, priced, out_dir, chosen, api_url)
        data["quote"] = quote_data(prices, jobs=len(priced), ceiling=loaded.limits.max_credits)
    answer(data, render_plan, as_json=as_json)


@click.command()
@MANIFEST
@OUT
@STATE
@SHARD
@JSON
@friendly
def status(
    manifest: Path, out: Path | None, state: Path | None, shard: str | None, as_json: bool
) -> None:
    """Show the recorded state of MANIFEST's jobs: per status and model, and what failed.

    Reads the state only (a run may be going on at the same time). With --json, every job
    not done is listed (the text lists the first ones).

    \b
    Example:
      stemsweep status jobs/nightly.yaml
      stemsweep status jobs/nightly.yaml --shard 1/4
      stemsweep status jobs/nightly.yaml --json | jq .data.counts
    """
    from itertools import chain

    from orchestrator.jobs import iter_jobs, select_shard
    from orchestrator.ledger import Ledger
    from orchestrator.songs import song_job_ids, songs_for_reading
    from orchestrator.views import render_status, status_data, status_tally

    reading = _read_state(manifest, out, state, shard)
    loaded, chosen = reading.manifest, reading.shard
    store = reading.store
    with store:
        ledger = Ledger(store)
        songs = song_job_ids(songs_for_reading(loaded, ledger, chosen), ledger)
        jobs = chain(songs, select_shard(iter_jobs(loaded), chosen))
        tally = status_tally(jobs, lookup=store.get)
    data = status_data(tally, head=reading.head())
    answer(data, render_status, as_json=as_json)


@dataclass(frozen=True)
class _Reading:
    """What `plan` and `status` read: the manifest, the output folder, the shard, and the
    store, opened read-only, with the tree's other splits and a note on the store."""

    manifest: Manifest
    out: Path
    shard: Shard | None
    state_path: Path
    others: list[Path]
    store: StateStore
    note: str | None

    def head(self) -> dict[str, Any]:
        """Where the state was read, for the command's document (`views.state_data`)."""
        from orchestrator.views import state_data

        return state_data(
            str(self.state_path),
            exists=self.state_path.exists(),
            others=[str(p) for p in self.others],
            shard=None if self.shard is None else str(self.shard),
            note=self.note,
        )


def _read_state(
    manifest_path: Path, out: Path | None, state: Path | None, shard_text: str | None
) -> _Reading:
    """The manifest, the shard of `--shard`, and a read-only store (`open_for_reading`).

    Without `--state`, the store is the tree's as a run would see it: its own records plus
    those of the tree's other splits (`StateStore.open_view`), which are listed after the
    state line. A store missing, empty or damaged is read as the next run rebuilds it.
    """
    from orchestrator.manifest import load_manifest
    from orchestrator.state import default_state_path, other_splits
    from orchestrator.state_guard import open_for_reading

    shard = parse_shard(shard_text)
    manifest = load_manifest(manifest_path)
    out = out if out is not None else manifest.output
    wanted = (lambda _: True) if shard is None else shard.has_project
    state_path = state if state is not None else default_state_path(out, shard)
    others = [] if state is not None else other_splits(out, shard)
    store, note = open_for_reading(state_path, others, out, wanted)
    return _Reading(manifest, out, shard, state_path, others, store, note)


def _ask_prices(
    manifest: Manifest,
    priced: list[tuple[str, str, float | None]],
    out: Path,
    shard: Shard | None,
    api_url: str | None,
) -> PriceList:
    """`plan --quote`: ask the API the price of every job still to submit."""
    import anyio

    from orchestrator.runner import quote_jobs

    local = None if manifest.api.simulator is None else simulator_for(manifest.path)

    async def ask() -> PriceList:
        return await quote_jobs(
            manifest, priced, output=out, shard=shard, api_url=api_url, local_api=local
        )

    return anyio.run(ask)
