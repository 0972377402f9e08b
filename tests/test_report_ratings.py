"""Listeners' ratings: read, screened, folded into a ranking by ear; `report --ratings`."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from orchestrator.cli import cli
from orchestrator.report.ratings import (
    Rating,
    RatingsError,
    aggregate,
    mean_interval,
    parse,
    screened,
)
from orchestrator.report.sample import write_sample_tree

T_975_2 = 4.302652729911275  # Student's t, 97.5th percentile, 2 degrees of freedom


def document(listener: str, trials: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "format": "stemsweep-ratings",
        "version": 1,
        "report": "abc",
        "listener": listener,
        "exported_at": "2026-01-01T00:00:00Z",
        "trials": trials,
    }


def trial(project: str, kind: str, **scores: float) -> dict[str, Any]:
    """A trial's ratings: keyword `reference` and `anchor` are the hidden ones."""
    ratings = [
        {"code": c, "role": m if m in ("reference", "anchor") else "model",
         "model": None if m in ("reference", "anchor") else m, "score": s}
        for c, (m, s) in zip("ABCDEFG", scores.items(), strict=False)
    ]  # fmt: skip
    return {"trial": f"{project}-{kind}", "project": project, "type": kind, "ratings": ratings}


def test_a_document_gives_one_rating_per_excerpt() -> None:
    """Each rating keeps its listener, song, type and model; a nameless listener is the file."""
    doc = document("", [trial("p1", "vocals", a=80, reference=100, anchor=10)])
    ratings = parse(doc, name="bob")
    assert ratings == [
        Rating("bob", "p1", "vocals", "model", "a", 80.0),
        Rating("bob", "p1", "vocals", "reference", None, 100.0),
        Rating("bob", "p1", "vocals", "anchor", None, 10.0),
    ]


@pytest.mark.parametrize(
    ("doc", "fragment"),
    [
        ({"format": "other"}, "format"),
        (document("x", [trial("p", "vocals", a=120)]), "trials.0.ratings.0.score"),
        ([1, 2], "document"),
    ],
)
def test_a_document_that_is_not_ratings_says_what_is_wrong(doc: Any, fragment: str) -> None:
    """A wrong document raises RatingsError naming the field and where ratings come from."""
    with pytest.raises(RatingsError) as caught:
        parse(doc, name="x")
    assert fragment in str(caught.value) and "blind listening test" in str(caught.value)


def test_mean_and_95_percent_interval_by_students_t() -> None:
    """60, 70, 80: mean 70, interval 70 +- t(0.975, 2) * 10 / sqrt(3); none from one rating."""
    mean, low, high = mean_interval([60.0, 70.0, 80.0])
    half = T_975_2 * 10 / math.sqrt(3)
    assert (mean, low, high) == pytest.approx((70.0, 70 - half, 70 + half), abs=1e-9)
    assert mean_interval([55.0]) == (55.0, None, None)


def test_a_listener_who_misses_the_hidden_reference_is_left_out() -> None:
    """Below 90 for the hidden reference in 2 of 4 trials (over 15%): left out, with why."""
    ratings = [Rating("ann", f"p{i}", "vocals", "reference", None, 100.0) for i in range(4)] + [
        Rating("bob", f"p{i}", "vocals", "reference", None, score)
        for i, score in enumerate((95.0, 40.0, 100.0, 60.0))
    ]
    kept, excluded = screened(ratings)
    assert kept == ["ann"]
    assert [(e.listener, e.reason) for e in excluded] == [
        ("bob", "rated the hidden reference below 90 in 2 of 4 trials")
    ]


def test_ratings_fold_into_a_ranking_per_type() -> None:
    """Means over listeners and songs, best first; hidden reference and anchor shown apart;
    a later rating of the same excerpt replaces the earlier; unknown models are counted."""
    ratings = (
        parse(document("ann", [trial("p1", "vocals", a=60, b=90, reference=100, anchor=5)]),
              name="f1")
        + parse(document("ann", [trial("p2", "vocals", a=70, b=80, x=50)]), name="f2")
        + parse(document("cy", [trial("p1", "vocals", a=80, b=70, reference=95)]), name="f3")
        + parse(document("ann", [trial("p1", "vocals", a=50)]), name="f4")  # replaces ann's 60
    )  # fmt: skip
    results = aggregate(ratings, types=["vocals", "instrumental"], models=["a", "b"])
    (vocals,) = results.rankings
    assert [(r.model, r.mean, r.ratings, r.listeners) for r in vocals.rows] == [
        ("b", 80.0, 3, 2),
        ("a", 200 / 3, 3, 2),
    ]
    assert vocals.reference_mean == 97.5 and vocals.anchor_mean == 5.0
    assert results.listeners == ["ann", "cy"] and results.excluded == []
    assert results.ignored == 1  # model "x" is not in this report


def ratings_file(path: Path, trials: list[dict[str, Any]], listener: str = "ann") -> Path:
    path.write_text(json.dumps(document(listener, trials)))
    return path


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_sample_tree(
        tmp_path_factory.mktemp("rated") / "out",
        projects=("prj_0001",),
        models=("mdx23c", "demucs", "bs_roformer"),
        seconds=2.0,
    )


def test_report_ratings_folds_files_into_the_report(tree: Path, tmp_path: Path) -> None:
    """`report OUT --ratings A --ratings B` ranks by ear in report.json and on the page."""
    first = ratings_file(
        tmp_path / "ann.json", [trial("prj_0001", "vocals", demucs=40, bs_roformer=90)]
    )
    second = ratings_file(
        tmp_path / "cy.json", [trial("prj_0001", "vocals", demucs=50, mdx23c=70)], "cy"
    )
    result = CliRunner().invoke(
        cli, ["report", str(tree), "--ratings", str(first), "--ratings", str(second)]
    )
    assert result.exit_code == 0, result.output
    report = json.loads((tree / "report" / "report.json").read_text())
    (vocals,) = report["ratings"]["rankings"]
    assert [(r["model"], r["mean"]) for r in vocals["rows"]] == [
        ("bs_roformer", 90.0),
        ("mdx23c", 70.0),
        ("demucs", 45.0),
    ]
    assert report["ratings_files"] == [str(first), str(second)]
    page = (tree / "report" / "report.html").read_text()
    assert "Ranking by ear" in page and "2 listener(s): ann, cy." in page


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("not json", "not JSON"),
        ('{"format": "x"}', "not a stemsweep ratings file"),
    ],
)
def test_an_unusable_ratings_file_exits_2_and_writes_nothing(
    tree: Path, tmp_path: Path, content: str, message: str
) -> None:
    """A ratings file that is not JSON or not ratings: exit 2, its name and what is wrong."""
    bad = tmp_path / "bad.json"
    bad.write_text(content)
    written = sorted((p, p.stat().st_mtime_ns) for p in tree.rglob("*") if p.is_file())
    result = CliRunner().invoke(cli, ["report", str(tree), "--ratings", str(bad)])
    assert result.exit_code == 2
    assert f"--ratings {bad}: {message}" in result.output
    assert sorted((p, p.stat().st_mtime_ns) for p in tree.rglob("*") if p.is_file()) == written


def test_report_on_a_folder_without_a_tree_exits_2(tmp_path: Path) -> None:
    """A folder that holds no per-model tree: exit 2 and a message saying what is expected."""
    result = CliRunner().invoke(cli, ["report", str(tmp_path)])
    assert result.exit_code == 2
    assert "no per-model tree in" in result.output and "OUT/{model}/{project}" in result.output
    assert "Traceback" not in result.output
