"""Discovery of models, jobs, stems and references in per-model trees, and decoding."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from orchestrator.report.stream import AudioDecodeError, probe, read_blocks, read_range
from orchestrator.report.tree import (
    discover,
    model_order,
    outcome,
    separation_seconds,
)


def wav(path: Path, seconds: float = 0.5, rate: int = 8000) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, np.zeros((round(seconds * rate), 2), np.float32), rate)
    return path


def job_file(folder: Path, **fields: object) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "job.json").write_text(json.dumps(fields))


def test_special_and_hidden_folders_are_not_models(tmp_path: Path) -> None:
    """`_references`, `report`, hidden folders and the report's own folder are not models."""
    wav(tmp_path / "demucs" / "prj_a" / "vocals.wav")
    wav(tmp_path / "_references" / "prj_a" / "vocals.wav")
    wav(tmp_path / "report" / "prj_a" / "vocals.wav")
    wav(tmp_path / ".stemsweep" / "prj_a" / "vocals.wav")
    wav(tmp_path / "elsewhere" / "prj_a" / "vocals.wav")
    found = discover([tmp_path], exclude=[tmp_path / "elsewhere"])
    assert found.models == ["demucs"]
    assert found.references == {"prj_a": {"vocals": tmp_path / "_references/prj_a/vocals.wav"}}


def test_hand_made_tree_without_job_files_counts_stems_as_done(tmp_path: Path) -> None:
    """Without job.json a folder with stems is a done job with unknown times."""
    wav(tmp_path / "my_model" / "song 1" / "vocals.flac")
    wav(tmp_path / "my_model" / "song 1" / "instrumental.wav")
    (tmp_path / "my_model" / "song 1" / "notes.txt").write_text("not audio")
    (tmp_path / "my_model" / "empty").mkdir()
    found = discover([tmp_path])
    job = found.jobs[("song 1", "my_model")]
    assert job.status == "done" and job.seconds is None and job.raw_status is None
    assert sorted(job.stems) == ["instrumental", "vocals"]
    assert found.projects == ["song 1"]


def test_job_file_gives_status_and_separation_time(tmp_path: Path) -> None:
    """job.json's status and submitted/finished times become the job's outcome and duration."""
    folder = tmp_path / "mdx23c" / "prj_a"
    wav(folder / "vocals.wav")
    job_file(
        folder,
        project="prj_a",
        model="mdx23c",
        status="done",
        submitted_at="2025-01-06T09:00:00Z",
        finished_at="2025-01-06T09:01:30Z",
        stems=[
            {"type": "vocals", "file": "vocals.wav"},
            {"type": "instrumental", "file": "instrumental.wav"},
        ],
    )
    failed = tmp_path / "demucs" / "prj_a"
    job_file(failed, status="timed_out", error="no answer in 30 min")
    found = discover([tmp_path])
    done = found.jobs[("prj_a", "mdx23c")]
    assert done.status == "done" and done.seconds == 90.0
    assert found.jobs[("prj_a", "demucs")].status == "failed"
    assert found.jobs[("prj_a", "demucs")].error == "no answer in 30 min"
    listed = [p for p in found.problems if p.type == "instrumental"]
    assert listed and "not found" in listed[0].reason


def test_unreadable_job_file_is_a_problem_not_a_crash(tmp_path: Path) -> None:
    """A job.json that is not JSON is listed as a problem; the stems are still used."""
    folder = tmp_path / "mdx23c" / "prj_a"
    wav(folder / "vocals.wav")
    (folder / "job.json").write_text("{not json")
    found = discover([tmp_path])
    assert found.jobs[("prj_a", "mdx23c")].stems
    assert any("unreadable job.json" in p.reason for p in found.problems)


def test_shards_merge_and_the_finished_copy_wins(tmp_path: Path) -> None:
    """Two trees merge; a job present in both is taken from the tree where it finished."""
    one, two = tmp_path / "one", tmp_path / "two"
    wav(one / "mdx23c" / "prj_a" / "vocals.wav")
    job_file(one / "demucs" / "prj_a", status="failed")
    wav(two / "demucs" / "prj_a" / "vocals.wav")
    job_file(two / "demucs" / "prj_a", status="done")
    wav(two / "bs_roformer" / "prj_b" / "vocals.wav")
    found = discover([one, two])
    assert found.models == ["mdx23c", "bs_roformer", "demucs"]  # the catalogue's order
    assert found.projects == ["prj_a", "prj_b"]
    assert found.jobs[("prj_a", "demucs")].tree == two


def test_explicit_references_come_before_the_trees(tmp_path: Path) -> None:
    """`references` wins over a tree's `_references` for the same file; both are used."""
    wav(tmp_path / "out" / "mdx23c" / "prj_a" / "vocals.wav")
    tree_ref = wav(tmp_path / "out" / "_references" / "prj_a" / "instrumental.wav")
    wav(tmp_path / "out" / "_references" / "prj_a" / "vocals.wav")
    given = wav(tmp_path / "refs" / "prj_a" / "vocals.flac")
    found = discover([tmp_path / "out"], references=tmp_path / "refs")
    assert found.references["prj_a"] == {"vocals": given, "instrumental": tree_ref}


def test_two_files_of_one_stem_type_keep_one_and_report_the_other(tmp_path: Path) -> None:
    """vocals.flac and vocals.wav in one folder: one is used, the other listed as ignored."""
    folder = tmp_path / "mdx23c" / "prj_a"
    wav(folder / "vocals.flac")
    wav(folder / "vocals.wav")
    found = discover([tmp_path])
    assert list(found.jobs[("prj_a", "mdx23c")].stems) == ["vocals"]
    assert any("same stem type" in p.reason for p in found.problems)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (
            b"RIFF....WAVEnot really",
            "not readable as audio: Error in WAV file. No 'data' chunk marker",
        ),
        (b"", "not readable as audio: Format not recognised"),
        (b"hello", "not readable as audio: Format not recognised"),
    ],
)
def test_a_file_that_is_not_audio_says_why(tmp_path: Path, data: bytes, reason: str) -> None:
    """A file that is not audio raises AudioDecodeError with libsndfile's words, no path."""
    bad = tmp_path / "vocals.wav"
    bad.write_bytes(data)
    with pytest.raises(AudioDecodeError) as caught:
        probe(bad)
    assert str(caught.value) == reason


def test_audio_is_read_in_blocks_and_a_truncated_file_says_where_it_stopped(
    tmp_path: Path,
) -> None:
    """Blocks of at most the asked size add up to the file; a cut FLAC names the time."""
    good = wav(tmp_path / "ok.flac", seconds=0.25, rate=16000)
    info = probe(good)
    assert (info.rate, info.channels, info.frames) == (16000, 2, 4000)
    blocks = list(read_blocks(good, size=1500))
    assert [len(b) for b in blocks] == [1500, 1500, 1000] and blocks[0].dtype == np.float32
    assert not read_range(good, -10, 20)[:10].any()  # before the start: zeros
    noise = np.random.default_rng(0).standard_normal((44100 * 3, 2)) * 0.1
    sf.write(tmp_path / "long.flac", noise, 44100)
    data = (tmp_path / "long.flac").read_bytes()
    cut = tmp_path / "cut.flac"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(AudioDecodeError, match=r"^decoding stopped at \d+\.\d\d s: "):
        list(read_blocks(cut))


@pytest.mark.parametrize(
    ("status", "has_stems", "expected"),
    [
        (None, True, "done"),
        (None, False, "other"),
        ("done", True, "done"),
        ("DONE", True, "done"),
        ("download_failed", False, "failed"),
        ("timed_out", False, "failed"),
        ("cancelled", False, "failed"),
        ("submitted", False, "other"),
    ],
)
def test_outcome_groups_statuses(status: str | None, has_stems: bool, expected: str) -> None:
    """Recorded statuses group into done, failed and other."""
    assert outcome(status, has_stems) == expected


def test_separation_seconds_tolerates_bad_times() -> None:
    """Unparseable, missing, mixed naive/aware or reversed times give None, not an error."""
    assert separation_seconds("2025-01-06T09:00:00+00:00", "2025-01-06T09:00:42.5Z") == 42.5
    assert separation_seconds("yesterday", "2025-01-06T09:00:00Z") is None
    assert separation_seconds(None, "2025-01-06T09:00:00Z") is None
    assert separation_seconds("2025-01-06T09:00:00", "2025-01-06T09:00:42Z") is None
    assert separation_seconds("2025-01-06T10:00:00Z", "2025-01-06T09:00:00Z") is None


def test_unknown_models_follow_the_catalogue_alphabetically() -> None:
    """Known models keep the catalogue's order; others follow, sorted."""
    ordered = model_order(["zeta", "demucs", "alpha", "mdx23c"])
    assert ordered == ["mdx23c", "demucs", "alpha", "zeta"]


def test_failed_jobs_come_from_the_run_summary(tmp_path: Path) -> None:
    """Failures in summary.json become failed jobs; a done folder wins; odd names are ignored."""
    wav(tmp_path / "mdx23c" / "prj_a" / "vocals.wav")
    failed = [
        {"project": "prj_b", "model": "demucs", "status": "timed_out", "reason": "30 min"},
        {"project": "prj_a", "model": "mdx23c", "status": "failed", "reason": "old"},
        {"project": "../etc", "model": "demucs", "status": "failed", "reason": "odd"},
        {"project": "prj_c", "model": "_references", "status": "failed", "reason": "odd"},
    ]
    (tmp_path / "summary.json").write_text(json.dumps({"failed": failed}))
    found = discover([tmp_path])
    assert set(found.jobs) == {("prj_a", "mdx23c"), ("prj_b", "demucs")}
    demucs = found.jobs[("prj_b", "demucs")]
    assert (demucs.status, demucs.raw_status, demucs.error) == ("failed", "timed_out", "30 min")
    assert found.jobs[("prj_a", "mdx23c")].status == "done"
    (tmp_path / "summary.json").write_text("[not a summary")
    assert set(discover([tmp_path]).jobs) == {("prj_a", "mdx23c")}
