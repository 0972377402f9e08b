"""The report end to end: trees of simulated separations in, report.html/.json/.csv out."""

from __future__ import annotations

import csv
import json
import math
import re
import shutil
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import numpy as np
import pytest
import soundfile as sf

from orchestrator.errors import UsageError
from orchestrator.report import ReportResult, build_report
from orchestrator.report.listening import EXCERPT_S
from orchestrator.report.sample import write_sample_tree
from orchestrator.report.stream import BLOCK

MODELS = (
    "mdx23c",
    "audioshakeai",
    "audioshake_vocals_lead",
    "musicai_lead_backing_other",
    "bs_roformer",
    "demucs",
)
PROJECTS = ("prj_0001", "prj_0002")
Built = tuple[Path, ReportResult, dict[str, Any]]
REQUIRED = {"project", "model", "type", "file", "sdr", "si_sdr", "lufs", "duration"}


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    root = tmp_path_factory.mktemp("sweep") / "out"
    write_sample_tree(root, projects=PROJECTS, models=MODELS, seconds=3.0)
    result = build_report([root])
    return root, result, json.loads(result.json.read_text())


def entry(report: dict[str, Any], project: str, model: str, kind: str) -> dict[str, Any]:
    return next(
        e
        for e in report["entries"]
        if (e["project"], e["model"], e["type"]) == (project, model, kind)
    )


def test_default_output_is_the_first_trees_report_folder(built: Built) -> None:
    """report.html, .json and .csv land in {OUT}/report/, spectrograms in report/spectrograms/."""
    root, result, _ = built
    assert result.html == root / "report" / "report.html"
    assert result.json == root / "report" / "report.json"
    assert result.csv == root / "report" / "report.csv"
    assert result.html.read_text().startswith("<!DOCTYPE html>")
    assert len(list((root / "report" / "spectrograms").rglob("*.png"))) == result.entries + 8
    assert not [p for p in (root / "report").rglob("*") if p.name.endswith(".tmp")]


def test_one_entry_per_stem_with_scores_against_the_references(built: Built) -> None:
    """Every delivered stem has one entry with SDR, SI-SDR, LUFS and duration; FLAC included."""
    _, result, report = built
    expected = sum(
        {
            "mdx23c": 2,
            "audioshakeai": 2,
            "audioshake_vocals_lead": 1,
            "musicai_lead_backing_other": 3,
            "bs_roformer": 2,
            "demucs": 2,
        }.values()
    )
    assert result.entries == len(report["entries"]) == expected * len(PROJECTS)
    for e in report["entries"]:
        assert e.keys() >= REQUIRED
        assert e["sdr"] is not None and e["si_sdr"] is not None and e["lufs"] is not None
        assert e["duration"] == pytest.approx(3.0)
        assert e["error"] is None
    flac = entry(report, "prj_0001", "audioshakeai", "vocals")
    assert flac["format"] == "flac" and flac["sdr"] > 5


def test_rankings_order_models_and_name_the_ones_that_did_not_deliver(built: Built) -> None:
    """A type's ranking holds only the models that delivered it, best first, and names the rest."""
    _, _, report = built
    instrumental = next(r for r in report["rankings"] if r["type"] == "instrumental")
    order = [row["model"] for row in instrumental["rows"]]
    assert "audioshake_vocals_lead" not in order
    assert instrumental["not_delivered"] == ["audioshake_vocals_lead"]
    assert order.index("bs_roformer") < order.index("demucs")
    scores = [row["score"] for row in instrumental["rows"]]
    assert scores == sorted(scores, reverse=True)
    assert all(row["q1"] <= row["score"] <= row["q3"] for row in instrumental["rows"])
    backing = next(r for r in report["rankings"] if r["type"] == "backing_vocals")
    assert [row["model"] for row in backing["rows"]] == ["musicai_lead_backing_other"]


def test_models_object_holds_medians_and_separation_times(built: Built) -> None:
    """`models` has per-model counts, the median job time from job.json, and median scores."""
    _, _, report = built
    mdx = report["models"]["mdx23c"]
    assert (mdx["jobs"], mdx["done"], mdx["failed"]) == (2, 2, 0)
    assert mdx["median_seconds"] == pytest.approx(31.5)  # 30 s and 33 s in the sample tree
    scores = [entry(report, p, "mdx23c", "vocals")["sdr"] for p in PROJECTS]
    assert mdx["sdr"]["vocals"] == pytest.approx(float(np.median(scores)))
    assert mdx["types_delivered"] == ["instrumental", "vocals"]
    assert mdx["sdr"]["backing_vocals"] is None


def test_residual_is_small_when_stems_add_up_and_large_when_a_part_is_missing(
    built: Built,
) -> None:
    """A vocals+instrumental model leaves a smaller residual than a lead-only model."""
    _, _, report = built
    full = report["models"]["bs_roformer"]["residual_db"]
    lead_only = report["models"]["audioshake_vocals_lead"]["residual_db"]
    assert full < -10 and lead_only > -5


def test_csv_has_the_same_rows_as_the_json(built: Built) -> None:
    """report.csv has one row per entry and the required columns; unknown values are empty."""
    _, result, report = built
    rows = list(csv.DictReader(result.csv.open()))
    assert len(rows) == len(report["entries"])
    assert set(rows[0]) >= REQUIRED
    assert float(rows[0]["sdr"]) == pytest.approx(report["entries"][0]["sdr"])


def test_page_links_resolve_and_point_into_the_tree(built: Built) -> None:
    """Every audio and image link in the page is relative and names an existing file."""
    root, result, _ = built
    page = result.html.read_text()

    links = re.findall(r'<(?:audio|img)[^>]*\bsrc="([^"]+)"', page)
    assert len(links) > 40
    for link in links:
        assert not link.startswith(("/", "file:", "http"))
        assert (result.html.parent / unquote(link)).is_file(), link
    assert 'preload="none"' in page
    assert "http://" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert "https://" not in page


def test_audio_is_read_in_blocks_one_project_at_a_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No read asks for more than one block, or one blind-test excerpt, whatever the song's
    length (12 s here, longer than both); the files of two projects are never open at once."""
    root = write_sample_tree(
        tmp_path / "out",
        projects=("prj_a", "prj_b"),
        models=("mdx23c", "musicai_lead_backing_other", "demucs"),
        seconds=12.0,
        original_in_tree=True,
    )
    reads: list[int] = []
    open_projects: dict[int, str] = {}
    overlaps: list[set[str]] = []

    class Watched(sf.SoundFile):
        def __init__(self, file: Any, *args: Any, **kwargs: Any) -> None:
            super().__init__(file, *args, **kwargs)
            project = next((p for p in ("prj_a", "prj_b") if p in str(file)), None)
            if project is not None:
                open_projects[id(self)] = project
                overlaps.append(set(open_projects.values()))

        def read(self, frames: int = -1, *args: Any, **kwargs: Any) -> Any:
            reads.append(frames)
            return super().read(frames, *args, **kwargs)

        def close(self) -> None:
            open_projects.pop(id(self), None)
            super().close()

    monkeypatch.setattr(sf, "SoundFile", Watched)
    build_report([root])
    excerpt = round(EXCERPT_S * 44100)
    assert reads and -1 not in reads
    assert max(reads) <= max(BLOCK, excerpt) < 12 * 44100
    assert all(len(projects) == 1 for projects in overlaps)


def test_without_references_scores_are_null_and_the_original_gives_residuals(
    tmp_path: Path,
) -> None:
    """Without references SDR is null, yet an `original` in the tree gives residuals."""
    root = write_sample_tree(
        tmp_path / "out",
        projects=("prj_a",),
        models=("mdx23c", "demucs", "bs_roformer"),
        seconds=1.0,
        references=False,
        original_in_tree=True,
    )
    result = build_report([root])
    report = json.loads(result.json.read_text())
    assert all(e["sdr"] is None and e["si_sdr"] is None for e in report["entries"])
    assert all(e["residual_db"] is not None for e in report["entries"])
    assert all(e["duration_delta"] == pytest.approx(0.0) for e in report["entries"])
    assert not any(e["type"] == "original" for e in report["entries"])
    assert all(not r["rows"] for r in report["rankings"])
    assert report["rank_agreement"] == []
    (vocals,) = [r for r in report["rankings_without_references"] if r["type"] == "vocals"]
    assert {row["model"] for row in vocals["rows"]} == {"mdx23c", "demucs", "bs_roformer"}
    assert all(row["bleed_db"] is not None for row in vocals["rows"])
    page = result.html.read_text()
    assert "no reference stems were found" in page and "no reference" in page


def test_a_file_that_does_not_decode_is_listed_and_the_rest_is_built(tmp_path: Path) -> None:
    """A corrupt stem is listed with the reason; the other stems are still measured."""
    root = write_sample_tree(
        tmp_path / "out", projects=("prj_a",), models=("mdx23c", "demucs"), seconds=1.0
    )
    (root / "demucs" / "prj_a" / "vocals.wav").write_bytes(b"RIFF....WAVEnot really")
    result = build_report([root])
    report = json.loads(result.json.read_text())
    assert result.failed_files == 1
    (failed,) = report["failed_files"]
    assert failed["file"].endswith("demucs/prj_a/vocals.wav") and failed["reason"]
    broken = entry(report, "prj_a", "demucs", "vocals")
    assert broken["error"] and broken["sdr"] is None and broken["residual_db"] is None
    assert entry(report, "prj_a", "demucs", "instrumental")["sdr"] is not None
    assert entry(report, "prj_a", "mdx23c", "vocals")["sdr"] is not None
    assert "could not decode" in result.html.read_text()


def test_names_from_folders_are_escaped_in_the_page(tmp_path: Path) -> None:
    """Model, project and stem names with HTML in them are escaped, and links percent-encoded."""
    folder = tmp_path / "out" / "<img src=x onerror=alert(1)>" / 'prj "&<b>#1'
    folder.mkdir(parents=True)
    sf.write(folder / "vocals.wav", np.zeros((8000, 2), np.float32), 8000)
    result = build_report([tmp_path / "out"])
    page = result.html.read_text()
    assert "<img src=x" not in page and "<b>#1" not in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page
    assert "%23" in page  # the "#" of the folder name is encoded in links


def test_hand_made_tree_shows_unknown_times_as_a_dash(tmp_path: Path) -> None:
    """Without job.json the median time is null in JSON and shown as "–" on the page."""
    root = write_sample_tree(
        tmp_path / "out", projects=("prj_a",), models=("demucs",), seconds=1.0, references=False
    )
    (root / "demucs" / "prj_a" / "job.json").unlink()
    result = build_report([root])
    report = json.loads(result.json.read_text())
    assert report["models"]["demucs"]["median_seconds"] is None
    assert report["models"]["demucs"]["done"] == 1
    assert '<td class="num">–</td>' in result.html.read_text()


def test_shards_merge_and_output_and_references_can_be_elsewhere(tmp_path: Path) -> None:
    """Two shards merge into one report at --output, scored against a separate references dir."""
    whole = write_sample_tree(
        tmp_path / "whole", projects=("prj_a",), models=("mdx23c", "demucs"), seconds=1.0
    )
    (tmp_path / "shard2").mkdir()
    shutil.move(whole / "demucs", tmp_path / "shard2" / "demucs")
    shutil.move(whole / "_references", tmp_path / "truth")
    output = tmp_path / "site" / "compare.html"
    result = build_report(
        [whole, tmp_path / "shard2"], references=tmp_path / "truth", output=output
    )
    assert result.html == output and result.json == output.with_suffix(".json")
    report = json.loads(result.json.read_text())
    assert set(report["models"]) == {"mdx23c", "demucs"}
    assert all(e["sdr"] is not None for e in report["entries"])
    for e in report["entries"]:
        assert (output.parent / e["file"]).is_file()
    assert not (whole / "report").exists()


def test_a_missing_tree_is_a_usage_error(tmp_path: Path) -> None:
    """A tree or references path that is not a folder raises UsageError, writing nothing;
    so does a folder that holds no per-model tree, and a ratings file given as a tree."""
    with pytest.raises(UsageError, match="not a folder"):
        build_report([tmp_path / "nope"])
    with pytest.raises(UsageError, match="not a folder"):
        build_report([tmp_path], references=tmp_path / "missing")
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "readme.txt").write_text("hello")
    with pytest.raises(UsageError, match=r"no per-model tree in .*OUT/\{model\}/\{project\}"):
        build_report([tmp_path / "notes"])
    (tmp_path / "bob.json").write_text("{}")
    with pytest.raises(UsageError, match="give --ratings before each ratings file"):
        build_report([tmp_path / "notes", tmp_path / "bob.json"])
    assert not (tmp_path / "report").exists() and not (tmp_path / "notes" / "report").exists()


def test_stems_at_another_rate_layout_and_length_are_aligned_before_scoring(
    tmp_path: Path,
) -> None:
    """A short 48 kHz mono stem is resampled, spread to stereo and trimmed before scoring."""
    t = np.arange(2 * 44100) / 44100
    mono = 0.3 * (np.sin(2 * np.pi * 220 * t) + 0.5 * np.sin(2 * np.pi * 3000 * t))
    reference = np.stack([mono, mono], axis=1)
    refs = tmp_path / "out" / "_references" / "song"
    refs.mkdir(parents=True)
    sf.write(refs / "vocals.wav", reference, 44100, subtype="FLOAT")
    sf.write(refs / "original.wav", reference, 44100, subtype="FLOAT")
    t48 = np.arange(round(1.75 * 48000)) / 48000
    stem = 0.3 * (np.sin(2 * np.pi * 220 * t48) + 0.5 * np.sin(2 * np.pi * 3000 * t48))
    folder = tmp_path / "out" / "other_tool" / "song"
    folder.mkdir(parents=True)
    sf.write(folder / "vocals.flac", stem, 48000, subtype="PCM_24")
    result = build_report([tmp_path / "out"])
    (scored,) = json.loads(result.json.read_text())["entries"]
    assert scored["resampled"] is True and scored["sample_rate"] == 48000
    assert scored["channels"] == 1
    assert scored["length_diff"] == pytest.approx(-0.25, abs=1e-3)
    assert scored["duration_delta"] == pytest.approx(-0.25, abs=1e-3)
    # The missing last 0.25 s of 2 s of steady tones counts as error: 10 log10(2 / 0.25).
    assert scored["sdr"] == pytest.approx(10 * math.log10(2 / 0.25), abs=0.05)
    assert scored["notes"] == [
        "resampled from 48000 Hz to 44100 Hz",
        "mono, copied to 2 channels",
        "0.25 s shorter than the reference, zero-padded",
    ]


def test_resampled_copies_go_with_their_project(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stem at another rate is resampled into a scratch folder that is gone before the
    next project starts, and nothing is left behind after the build."""
    import tempfile

    from orchestrator.report import build as build_module

    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    tone = np.sin(2 * np.pi * 440 * np.arange(48000) / 48000)[:, None] * [0.3, 0.3]
    for project in ("prj_a", "prj_b"):
        folder = tmp_path / "out" / "tool" / project
        folder.mkdir(parents=True)
        sf.write(folder / "vocals.wav", tone, 48000)
        ref = tmp_path / "out" / "_references" / project
        ref.mkdir(parents=True)
        sf.write(ref / "vocals.wav", tone[::2][:22050], 24000)  # the grid: 24 kHz
    seen: list[list[Path]] = []
    measure = build_module.measure_project

    def watched(*args: Any) -> Any:
        seen.append(sorted(p for p in scratch.rglob("*") if p.is_file()))
        return measure(*args)

    monkeypatch.setattr(build_module, "measure_project", watched)
    result = build_report([tmp_path / "out"])
    entries = json.loads(result.json.read_text())["entries"]
    assert [e["resampled"] for e in entries] == [True, True]
    assert seen == [[], []]  # the first project's copy was gone when the second began
    assert not list(scratch.iterdir())
