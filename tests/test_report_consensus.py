"""The ranking without references: its pieces, and how well it predicts the true ranking."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from orchestrator.report import build_report
from orchestrator.report.consensus import Consensus, fit_anchor, loo_medians
from orchestrator.report.sample import add_shared_failure, write_sample_tree

RATE = 8000


def envelope(frames: int, seed: int, period: int) -> np.ndarray:
    """A part that plays and rests: noise gated on and off every `period` frames."""
    rng = np.random.default_rng(seed)
    gate = (np.arange(frames) // period) % 3 != 0
    return rng.standard_normal((frames, 2)) * gate[:, None] * 0.1


@pytest.mark.parametrize("count", [3, 4, 5, 12])
def test_leave_one_out_medians_are_the_median_of_the_others(count: int) -> None:
    """Each model's consensus is numpy's median of the other models, sample by sample."""
    stems = np.random.default_rng(count).standard_normal((count, 500, 2)).astype(np.float32)
    stems[:, :50] = 0.25  # ties
    expected = np.stack([np.median(np.delete(stems, m, axis=0), axis=0) for m in range(count)])
    assert np.array_equal(loo_medians(stems), expected.astype(np.float32))


def test_the_anchoring_fit_recovers_the_consensus_gain_and_leak() -> None:
    """c = 0.9 s + 0.15 o, with the mix y = s + o: the fit finds u = 0.9 and v = 0.15."""
    frames, stretch = 40 * 4096, 4096
    s, o = envelope(frames, 1, 3 * stretch), envelope(frames, 2, 5 * stretch)
    c, y = 0.9 * s + 0.15 * o, s + o

    def sums(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return np.einsum("ijk,ijk->i", a.reshape(-1, stretch, 2), b.reshape(-1, stretch, 2))

    u, v = fit_anchor(sums(c, y), sums(c, c), sums(y, y)) or (math.nan, math.nan)
    assert u == pytest.approx(0.9, abs=0.01) and v == pytest.approx(0.15, abs=0.01)


def test_anchoring_ranks_a_model_that_leaks_less_than_the_others_first() -> None:
    """Four models leak the rest of the mix at -14 dB; one leaks nothing but has noise at
    -24 dB, so it is truly best. Against the plain median it looks worst; anchored to the
    mix, first, with its agreement near its true SDR."""
    frames = 60 * 4096
    s, o = envelope(frames, 3, 3 * 4096), envelope(frames, 4, 7 * 4096)
    rng = np.random.default_rng(5)
    power = float(np.mean(s**2))
    models = {f"leaky_{k}": s + 10 ** (-14 / 20) * o + rng.standard_normal(s.shape) * math.sqrt(
        power) * 10 ** (-(30 + k) / 20) for k in range(4)}  # fmt: skip
    models["clean"] = s + rng.standard_normal(s.shape) * math.sqrt(power) * 10 ** (-24 / 20)
    true = {m: 10 * math.log10(np.sum(s**2) / np.sum((x - s) ** 2)) for m, x in models.items()}
    assert max(true, key=lambda m: true[m]) == "clean"
    plain = Consensus(list(models), with_mix=False)
    anchored = Consensus(list(models), with_mix=True)
    for start in range(0, frames, 32768):
        blocks = [x[start : start + 32768].astype(np.float32) for x in models.values()]
        plain.add(blocks, None)
        anchored.add(blocks, (s + o)[start : start + 32768].astype(np.float32))
    by_plain, by_anchor = plain.results(), anchored.results()
    assert min(by_plain, key=lambda m: by_plain[m].score) == "clean"
    assert max(by_anchor, key=lambda m: by_anchor[m].score) == "clean"
    assert by_anchor["clean"].score == pytest.approx(true["clean"], abs=1.0)
    assert by_anchor["clean"].bleed_db is not None and by_anchor["leaky_0"].bleed_db is not None
    assert by_anchor["clean"].bleed_db < -30 < by_anchor["leaky_0"].bleed_db


def agreement(root: Path) -> dict[str, Any]:
    report = json.loads(build_report([root]).json.read_text())
    return {a["type"]: a for a in report["rank_agreement"]} | {"_report": report}


def test_rank_correlation_with_the_truth_on_a_fixed_small_catalogue(tmp_path: Path) -> None:
    """On one simulator song of 6 s (seed 7, all twelve models) the ranking without
    references agrees with the true one at Spearman 0.991 (instrumental) and 0.936
    (vocals), as measured when this was written. The thresholds sit 0.03 below: a swap
    of two neighbours in 11 models costs 0.009, so up to three near-ties may turn over
    (a numerical library change can do that) before this fails."""
    root = write_sample_tree(
        tmp_path / "out", projects=("prj_0001",), seconds=6.0, original_in_tree=True
    )
    found = agreement(root)
    assert found["instrumental"]["models"] == found["vocals"]["models"] == 11
    assert found["instrumental"]["spearman"] >= 0.96
    assert found["vocals"]["spearman"] >= 0.90
    report = found["_report"]
    without = {r["type"]: r for r in report["rankings_without_references"]}
    assert without["vocals"]["rows"][0]["score"] > without["vocals"]["rows"][-1]["score"]
    assert without["backing_vocals"]["rows"] == []  # one model: nothing to agree with
    assert without["backing_vocals"]["unscored"] == ["musicai_lead_backing_other"]


def test_models_that_fail_alike_agree_alike(tmp_path: Path) -> None:
    """Three clones sharing one artefact (-10 dB) rank higher without references than they
    truly are: on the same song the vocals' rank correlation falls from 0.936 to 0.631 (as
    measured; asserted below 0.8). The page says it cannot see this."""
    root = write_sample_tree(
        tmp_path / "out", projects=("prj_0001",), seconds=6.0, original_in_tree=True
    )
    clones = add_shared_failure(
        root, failure="artefacts", clones=3, projects=("prj_0001",), seconds=6.0
    )
    found = agreement(root)
    assert found["vocals"]["models"] == 14 and found["vocals"]["spearman"] < 0.8
    report = found["_report"]
    truth = next(r for r in report["rankings"] if r["type"] == "vocals")["rows"]
    guess = next(r for r in report["rankings_without_references"] if r["type"] == "vocals")
    true_rank = {row["model"]: i for i, row in enumerate(truth)}
    guessed_rank = {row["model"]: i for i, row in enumerate(guess["rows"])}
    assert all(guessed_rank[c] < true_rank[c] for c in clones)
    page = (root / "report" / "report.html").read_text()
    assert "models that fail alike agree alike" in page
