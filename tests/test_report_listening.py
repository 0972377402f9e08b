"""The blind test's design and excerpts: which songs, which seconds, what level, what names."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf

from orchestrator.report import build_report
from orchestrator.report.listening import (
    ANCHOR,
    PEAK_DBFS,
    REFERENCE,
    TARGET_LUFS,
    EnergyProfile,
    chosen_projects,
    design,
    letters,
    loudest_window,
    matching_gains,
)
from orchestrator.report.metrics import measure
from orchestrator.report.sample import write_sample_tree
from orchestrator.simulator import synth
from orchestrator.simulator.models import separate


def test_songs_are_spread_over_the_catalogue() -> None:
    """Six of twenty projects, evenly spread; all of them when there are fewer."""
    projects = [f"p{i:02d}" for i in range(20)]
    assert chosen_projects(projects, 6) == ["p01", "p05", "p08", "p11", "p15", "p18"]
    assert chosen_projects(projects[:4], 6) == projects[:4]


def test_the_excerpt_is_where_the_part_is_loudest() -> None:
    """The window of the most energy, whole seconds; 0 for a song shorter than it."""
    profile = EnergyProfile(10)
    profile.add(np.concatenate([np.zeros((30, 1)), np.ones((20, 1)), np.zeros((40, 1))]))
    assert profile.seconds == [0.0, 0.0, 0.0, 10.0, 10.0, 0.0, 0.0, 0.0, 0.0]
    assert loudest_window(profile.seconds, 2.0) == 3
    assert loudest_window([1.0, 2.0], 8.0) == 0


def test_letters_and_a_shuffled_design() -> None:
    """Items are lettered in their shuffled order; a reference adds the hidden one and the
    anchor; the order depends on the shuffle, not on the models' order."""
    assert letters(3) == ["A", "B", "C"] and letters(28)[-2:] == ["AA", "AB"]
    models = [f"m{i}" for i in range(8)]
    trial = design("t001", "p", "vocals", models, start=3.0, seconds=8.0,
                   with_reference=True, shuffle=random.Random(1))  # fmt: skip
    assert [i.code for i in trial.items] == letters(10)
    assert sorted(i.role for i in trial.items).count("model") == 8
    assert {i.role for i in trial.items} == {"model", REFERENCE, ANCHOR}
    other = design("t001", "p", "vocals", models, start=3.0, seconds=8.0,
                   with_reference=True, shuffle=random.Random(2))  # fmt: skip
    assert [i.model for i in trial.items] != [i.model for i in other.items]


def test_gains_bring_every_excerpt_to_one_level_without_clipping() -> None:
    """All to -23 LUFS, unless one would then peak above -1 dBFS: then all lower together."""
    assert matching_gains([-20.0, -30.0, None], [-3.0, -12.0, None]) == [-3.0, 7.0, 0.0]
    # -30 LUFS peaking at -3 dBFS would peak at +4 at -23 LUFS: everything goes to -28.
    gains = matching_gains([-10.0, -30.0], [-12.0, -3.0])
    assert gains == [-18.0, 2.0]
    assert max(p + g for p, g in zip([-12.0, -3.0], gains, strict=True)) == PEAK_DBFS


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    root = write_sample_tree(
        tmp_path_factory.mktemp("blind") / "out",
        projects=("prj_0001",),
        models=("mdx23c", "demucs", "bs_roformer", "audioshakeai"),
        seconds=10.0,
        original_in_tree=True,
    )
    result = build_report([root])
    return result.html.parent, json.loads(result.json.read_text())


def test_excerpts_are_lettered_flac_at_one_loudness(built: tuple[Path, dict[str, Any]]) -> None:
    """Each trial's excerpts are FLAC files named by letter, 8 s, all at -23 LUFS (+-0.1)
    or lower together, the hidden reference identical to the open one."""
    folder, report = built
    trials = {(t["project"], t["type"]): t for t in report["listening"]}
    assert set(trials) == {("prj_0001", "instrumental"), ("prj_0001", "vocals")}
    vocals = trials[("prj_0001", "vocals")]
    assert len(vocals["items"]) == 4 + 2  # four models, the hidden reference, the anchor
    levels = []
    for item in vocals["items"]:
        assert item["file"] == f"listening/{vocals['id']}/{item['code']}.flac"
        assert item["model"] is None or item["model"] not in item["file"]
        samples, rate = sf.read(folder / item["file"])
        assert len(samples) == 8 * rate and sf.info(folder / item["file"]).format == "FLAC"
        if item["role"] != ANCHOR:
            levels.append(measure(samples, rate).lufs())
    assert max(levels) - min(levels) < 0.1 and max(levels) <= TARGET_LUFS + 0.1
    hidden = next(i for i in vocals["items"] if i["role"] == REFERENCE)
    open_reference = sf.read(folder / vocals["reference"])[0]
    assert np.array_equal(sf.read(folder / hidden["file"])[0], open_reference)


def test_the_excerpt_is_the_stems_own_audio(built: tuple[Path, dict[str, Any]]) -> None:
    """A model's excerpt is its stem's seconds [start, start + 8) at the trial's gain."""
    folder, report = built
    trial = next(t for t in report["listening"] if t["type"] == "vocals")
    item = next(i for i in trial["items"] if i["model"] == "demucs")
    song = synth.synthesize_song(7, "prj_0001", seconds=10.0)
    stem = separate(song, "demucs", 7)["vocals"]
    start = int(trial["start"] * 44100)
    expected = stem[start : start + 8 * 44100] * 10 ** (item["gain_db"] / 20)
    excerpt, _ = sf.read(folder / item["file"])
    assert np.max(np.abs(excerpt - expected)) < 2e-4  # two 16-bit roundings
    anchor = next(i for i in trial["items"] if i["role"] == ANCHOR)
    low, _ = sf.read(folder / anchor["file"])
    spectrum = np.abs(np.fft.rfft(low[:, 0]))
    frequencies = np.fft.rfftfreq(len(low), 1 / 44100)
    assert spectrum[frequencies > 6000].max() < 1e-3 * spectrum.max()  # low-passed at 3.5 kHz
