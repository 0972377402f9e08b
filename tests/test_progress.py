"""The live display: a bar with done/total, elapsed time, an ETA from the learned durations,
the pace, and model names that never look alike, on a terminal of any width."""

from __future__ import annotations

import io
import itertools
import os
import re
from pathlib import Path

import pytest
from conftest import WriteManifest, quick_profile, run_in_terminal
from rich.console import Console

from orchestrator.abbrev import ELLIPSIS, fit_names, stands_for
from orchestrator.catalog import model_names
from orchestrator.forecast import forecast, format_seconds
from orchestrator.progress import MIN_NAME_WIDTH, render
from orchestrator.simulator.server import SimulatorThread
from orchestrator.tally import Tally

MODELS = model_names()


class Learned:
    """Durations as the poll loop would have learned them: E and S per model."""

    def __init__(self, **per_model: tuple[float, float]) -> None:
        self.per_model = per_model

    def expected(self, model: str) -> float | None:
        return self.per_model[model][0] if model in self.per_model else None

    def spread(self, model: str) -> float | None:
        return self.per_model[model][1] if model in self.per_model else None


def tally_of(total: int, jobs: dict[str, list[str]]) -> Tally:
    """A tally where each model's jobs went through `waiting` to the listed statuses."""
    tally = Tally(total)
    for model, statuses in jobs.items():
        for status in statuses:
            tally.move(model, None, "waiting")
            if status != "waiting":
                tally.move(model, "waiting", status)
    return tally


def shown(tally: Tally, width: int, elapsed: float = 0.0) -> str:
    """The display as a terminal `width` columns wide shows it (no colours)."""
    console = Console(width=width, file=io.StringIO(), color_system=None)
    console.print(render(tally, title="stemsweep run demo", elapsed=elapsed, width=width))
    output = console.file.getvalue()  # type: ignore[attr-defined]
    return str(output)


def test_the_progress_lines_show_done_total_elapsed_eta_and_pace() -> None:
    """At 80 columns: the bar and 23/36 done, the time so far, the ETA with its margin from
    the learned durations, and the jobs ended per minute."""
    jobs = {"mdx23c": ["done"] * 12 + ["submitted"] * 2 + ["waiting"] * 4}
    jobs["demucs"] = ["done"] * 11 + ["failed"] + ["submitted"] * 2 + ["waiting"] * 4
    tally = tally_of(36, jobs)
    tally.durations = Learned(mdx23c=(30.0, 4.0), demucs=(60.0, 10.0))
    text = shown(tally, 80, elapsed=125)
    lines = text.splitlines()
    assert lines[1].startswith("━") and lines[1].endswith("23/36 done · 1 failed")
    # work: mdx23c (4 + 2/2) * 30 + demucs (4 + 2/2) * 60 = 450 s over 4 separations in
    # flight; margin sqrt((5 * 4^2 + 5 * 10^2) / 4) = 12 s; 24 ended in 125 s
    assert lines[2] == "elapsed 2m05s · ETA 1m52s ±12s · 12 jobs/min"
    assert lines[3] == "waiting 8 · running 4"
    assert all(len(line) <= 80 for line in lines)


def test_before_anything_ended_there_is_no_eta() -> None:
    """Nothing learned and nothing ended: `ETA --`, and no pace."""
    tally = tally_of(10, {"mdx23c": ["submitted", "submitted"]})
    assert "elapsed 3s · ETA --\n" in shown(tally, 80, elapsed=3)


@pytest.mark.parametrize(
    ("jobs", "learned", "elapsed", "seconds", "per_minute"),
    [
        # nothing learned, nothing ended: no forecast
        ({"a": ["waiting"] * 4}, {}, 10.0, None, None),
        # nothing learned: the pace so far (2 ended in 60 s, 2 to go)
        ({"a": ["done", "done", "waiting", "waiting"]}, {}, 60.0, 60.0, 2.0),
        # learned: 3 waiting + 1 separating at 10 s each, one lane
        ({"a": ["waiting"] * 3 + ["submitted"]}, {"a": (10.0, 0.0)}, 5.0, 35.0, None),
        # a model not learned yet counts at the mean of the others
        ({"a": ["submitted"] * 2, "b": ["waiting"] * 2}, {"a": (10.0, 0.0)}, 5.0, 15.0, None),
        # everything ended: nothing left
        ({"a": ["done", "failed"]}, {"a": (10.0, 1.0)}, 30.0, 0.0, 4.0),
    ],
)
def test_forecast(
    jobs: dict[str, list[str]],
    learned: dict[str, tuple[float, float]],
    elapsed: float,
    seconds: float | None,
    per_minute: float | None,
) -> None:
    """The ETA is the learned work over the separations in flight, else the pace so far."""
    tally = tally_of(sum(len(j) for j in jobs.values()), jobs)
    tally.durations = Learned(**learned)
    outlook = forecast(tally, elapsed)
    assert outlook.seconds == seconds and outlook.per_minute == per_minute


def test_queued_jobs_count_at_the_mean_duration() -> None:
    """Jobs not yet read from the manifest count at the mean learned duration."""
    tally = tally_of(12, {"a": ["submitted", "submitted"]})  # 10 more queued
    tally.durations = Learned(a=(20.0, 2.0))
    outlook = forecast(tally, 1.0)
    assert outlook.seconds == (10 * 20 + 1 * 20) / 2
    assert outlook.margin == pytest.approx((11 * 2.0**2 / 2) ** 0.5)


def test_the_pace_counts_only_jobs_this_run_ended() -> None:
    """Done jobs skipped at the start of a resumed run do not inflate the pace."""
    tally = Tally(10)
    for _ in range(8):
        tally.move("mdx23c", None, "done")  # found done: skipped
    tally.move("mdx23c", None, "waiting")
    tally.move("mdx23c", "waiting", "done")
    assert tally.ended == 9 and tally.ended_here == 1
    assert forecast(tally, 60.0).per_minute == 1.0


@pytest.mark.parametrize("seconds, text", [(0.4, "0s"), (59.6, "1m00s"), (185, "3m05s"),
                                           (7620, "2h07m"), (273600, "3d04h")])  # fmt: skip
def test_format_seconds(seconds: float, text: str) -> None:
    """Durations read as people write them."""
    assert format_seconds(seconds) == text


@pytest.mark.parametrize("width", [60, 80, 120])
def test_model_names_stay_distinct_on_the_terminal(width: int) -> None:
    """With all twelve models on screen, each row's name could stand for its model only,
    and no line is wider than the terminal."""
    tally = tally_of(24, {m: ["done", "submitted"] for m in MODELS})
    lines = shown(tally, width).splitlines()
    assert all(len(line) <= width for line in lines)
    table = lines[lines.index(next(line for line in lines if line.startswith("model "))) + 1 :]
    names = [line.split()[0] for line in table]
    assert len(names) == len(MODELS) == len(set(names))
    for name in names:
        assert [m for m in MODELS if stands_for(name, m)] != []
        assert len([m for m in MODELS if stands_for(name, m)]) == 1, name
    if width < 120:
        assert any(ELLIPSIS in name for name in names)  # the long ones were cut


@pytest.mark.parametrize("width", range(MIN_NAME_WIDTH, 46))
def test_cut_names_could_stand_for_one_model_only(width: int) -> None:
    """From the display's narrowest name column up, every pair of names stays apart: no
    cut form could stand for another model, and none is wider than the room."""
    fitted = fit_names(MODELS, width, known=MODELS)
    for model, name in fitted.items():
        assert len(name) <= width
        assert name == model if len(model) <= width else ELLIPSIS in name
        assert [m for m in MODELS if stands_for(name, m)] == [model]
    for a, b in itertools.combinations(fitted.values(), 2):
        assert a != b


def test_names_are_cut_where_they_differ() -> None:
    """`musicai_with…` vs `musicai_without…` and the two Mel-band Roformers, at 18 columns."""
    fitted = fit_names(MODELS, 18, known=MODELS)
    assert fitted["musicai_with_backing_vocals"] == "musicai_with_back…"
    assert fitted["musicai_without_backing_vocals"] == "musicai_without_b…"
    assert fitted["mel_band_roformer_instrumental_becruily"] == "mel_band_…becruily"
    assert fitted["mel_band_roformer_instrumental_instv7_gabox"] == "mel_band_rof…gabox"
    assert fitted["mdx23c"] == "mdx23c"


def test_a_plain_cut_would_have_been_ambiguous() -> None:
    """The check has teeth: cutting the end off makes the two musicai names look alike."""
    plain = "musicai_with" + ELLIPSIS
    assert stands_for(plain, "musicai_with_backing_vocals")
    assert stands_for(plain, "musicai_without_backing_vocals")


@pytest.mark.slow
def test_the_display_in_a_pseudo_terminal(write_manifest: WriteManifest, tmp_path: Path) -> None:
    """`stemsweep run` on a 60-column terminal draws the bar with done/total, the elapsed
    time and the ETA on stderr; stdout holds the summary and no display."""
    with SimulatorThread(quick_profile(), seed=41, time_scale=300) as sim:
        manifest = write_manifest(projects=sim.project_ids[:3], models=["mdx23c", "demucs"])
        env = {k: v for k, v in os.environ.items() if not k.startswith("YOUKA_")}
        env.update(YOUKA_API_KEY=sim.api_key, YOUKA_API_URL=sim.base_url, COLUMNS="60")
        returncode, seen, stdout = run_in_terminal(["run", str(manifest)], env)
    assert returncode == 0
    screen = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", seen.decode())
    assert "6/6 done" in screen and "━" in screen
    assert re.search(r"elapsed \d+s · ETA (--|\d+s)", screen)
    assert b"ETA" not in stdout and stdout.startswith(b"stemsweep run sweep: 6 jobs")
