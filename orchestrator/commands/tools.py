"""The commands beside a sweep: `models` (the catalogue), `report` (the comparison of the
models' stems) and `simulate` (the local Youka-compatible API)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from orchestrator.commands.common import friendly
from orchestrator.output import JSON, answer

if TYPE_CHECKING:
    from orchestrator.simulator.server import Simulator


@click.command()
@JSON
@friendly
def models(as_json: bool) -> None:
    """List the twelve split models and their documented purpose.

    \b
    Example:
      stemsweep models
      stemsweep models --json | jq -r '.data.models[].name'
    """
    from orchestrator.catalog import models as catalogue
    from orchestrator.views import models_data, render_models

    data = models_data((m.name, m.purpose) for m in catalogue())
    answer(data, render_models, as_json=as_json)


@click.command()
@click.argument(
    "trees",
    nargs=-1,
    required=True,
    metavar="OUT [OUT ...]",
    type=click.Path(file_okay=False, path_type=Path),
)
@click.option(
    "--references",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    metavar="DIR",
    help="True stems as DIR/{project}/{type}.{ext}, to score SDR and SI-SDR (default: the "
    "manifest's `references` folder, as the run recorded it in OUT's summary). "
    "Each OUT's _references folder is used too.",
)
@click.option(
    "--output",
    type=click.Path(path_type=Path),
    default=None,
    metavar="PATH",
    help="Where report.html goes (a file, or a folder to hold it); report.json, report.csv "
    "and spectrograms/ go next to it.  [default: OUT/report/report.html of the first OUT]",
)
@click.option(
    "--ratings",
    type=click.Path(dir_okay=False, path_type=Path),
    multiple=True,
    metavar="FILE",
    help="Ratings exported from the page's blind listening test, folded into a ranking by "
    "ear (mean and 95% interval per model) next to the measured scores. Repeat it for "
    "each listener's file.",
)
@JSON
@friendly
def report(
    trees: tuple[Path, ...],
    references: Path | None,
    output: Path | None,
    ratings: tuple[Path, ...],
    as_json: bool,
) -> None:
    """Compare the models of one or more per-model trees in one static page.

    Reads OUT/{model}/{project}/{type}.{ext} and each job's job.json (trees made by hand
    or by other tools work too), merges several OUT trees (shards), measures every stem,
    and writes report.html, report.json and report.csv. The page opens from disk with no
    server; its players link into the trees. It ranks the models per stem type against
    the true stems where there are any, and without them in every case, and holds a blind
    listening test whose exported ratings --ratings folds back. Prints the path of
    report.html (with --json: the paths written and what was measured). Exit 2 when OUT
    holds no per-model tree or a ratings file is unusable.

    \b
    Examples:
      stemsweep report out/demo
      stemsweep report out/shard-0 out/shard-1 --references refs --output site/compare.html
      stemsweep report out/demo --ratings alice.json --ratings bob.json
    """
    from orchestrator.envelope import jsonable
    from orchestrator.report import build_report

    result = build_report(list(trees), references=references, output=output, ratings=ratings)
    answer(jsonable(result), lambda data: str(data["html"]), as_json=as_json)


@click.command()
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
    help="A shipped profile (default, chaos, bench) or the path of a profile YAML.",
)
@click.option("--seed", default=0, show_default=True, type=int, help="Seed of all randomness.")
@click.option(
    "--time-scale",
    default=1.0,
    show_default=True,
    type=float,
    help="Divide every simulated duration by this factor (30: a 60 s task takes 2 s).",
)
@click.option(
    "--state",
    type=click.Path(path_type=Path, file_okay=False),
    help="Keep the simulated world in this folder across restarts (default: a new world).",
)
@JSON
@friendly
def simulate(
    host: str,
    port: int,
    storage_port: int,
    profile: str,
    seed: int,
    time_scale: float,
    state: Path | None,
    as_json: bool,
) -> None:
    """Serve a local Youka-compatible API with synthesized songs.

    With --json, one JSON document on stdout says where it listens and which key it takes,
    as soon as it does (a script can read that line, then use the simulator).

    \b
    Example:
      stemsweep simulate --profile chaos --seed 7 --time-scale 20
      stemsweep simulate --state sim-world --port 8080 --storage-port 8081
      stemsweep simulate --port 0 --json    # {"ok": true, "data": {"base_url": ...}}
    """
    from orchestrator.errors import UsageError
    from orchestrator.simulator.folder import StateFolderError
    from orchestrator.simulator.profile import ProfileError
    from orchestrator.simulator.server import serve_forever

    def announce(sim: Simulator) -> None:
        data = {
            "base_url": sim.base_url,
            "storage_url": sim.storage_url,
            "api_key": sim.api_key,
            "profile": sim.profile.name,
            "seed": sim.seed,
            "time_scale": sim.time_scale,
            "projects": list(sim.project_ids),
            "state": None if sim.state is None else str(sim.state),
        }
        answer(data, str, as_json=True)

    try:
        serve_forever(
            host=host,
            port=port,
            storage_port=storage_port,
            profile=profile,
            seed=seed,
            time_scale=time_scale,
            state=state,
            announce=announce if as_json else None,
        )
    except (ProfileError, StateFolderError) as exc:
        raise UsageError(str(exc)) from None
    except OSError as exc:
        raise UsageError(
            f"cannot listen on {host} ({exc.strerror or exc}); "
            "pass --port 0 and --storage-port 0 for any free ports"
        ) from None
