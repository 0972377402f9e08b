"""Known answers, end to end: stems whose right score is known, through `build_report`.

Each case is a project of its own in one tree, with its true stems under `_references`:
a short stem, a tiny one, a hard-panned part, an MP3 that decodes late, a corrupt file, a
stem at another sample rate, mono against stereo and stereo against mono. Files are float
WAV, so the values are exact but for float32 rounding.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
from scipy.signal import resample_poly

from orchestrator.report import build_report, metrics
from orchestrator.simulator import synth

RATE = 44100
FRAMES = 2 * RATE
MP3_DELAY = 1105  # LAME's 576 samples of encoder delay and the decoder's 529


def write(path: Path, samples: np.ndarray, rate: int = RATE, **options: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, samples, rate, **({"subtype": "FLOAT"} | options))
    return path


def even() -> np.ndarray:
    """Stereo at +-0.25 on every sample: a share of its length is that share of its energy."""
    samples = np.full((FRAMES, 2), 0.25, np.float32)
    samples[1::2] = -0.25
    return samples


def noise(seed: int, channels: int = 2) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal((FRAMES, channels)) * 0.1).astype(
        np.float32
    )


def at_snr(reference: np.ndarray, snr_db: float, seed: int) -> np.ndarray:
    extra = np.random.default_rng(seed).standard_normal(reference.shape)
    extra *= math.sqrt(np.sum(reference**2) / np.sum(extra**2) / 10 ** (snr_db / 10))
    return (reference + extra).astype(np.float32)


def headerless_mp3(samples: np.ndarray, path: Path) -> tuple[Path, Path]:
    """A CBR MP3 of `samples`, and the same file without its first frame (the encoder's
    Xing/LAME header that tells the decoder to drop its delay)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    gapless = path.with_name("gapless.mp3")
    sf.write(gapless, samples, RATE, format="MP3", bitrate_mode="CONSTANT", compression_level=0.0)
    data = gapless.read_bytes()
    bitrate = (0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320)[data[2] >> 4]
    first_frame = 144 * bitrate * 1000 // RATE + ((data[2] >> 1) & 1)
    path.write_bytes(data[first_frame:])
    return path, gapless


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("known") / "out"
    refs = root / "_references"
    # short: 5% of the part, exact; beside it a real model at exactly 10 dB.
    write(refs / "short" / "vocals.wav", even())
    write(root / "five_percent" / "short" / "vocals.wav", even()[: FRAMES // 20])
    write(root / "ten_db" / "short" / "vocals.wav", at_snr(even(), 10.0, seed=1))
    # tiny: ten frames.
    write(refs / "tiny" / "vocals.wav", even())
    write(root / "ten_frames" / "tiny" / "vocals.wav", even()[:10])
    # panned: the part hard left, estimated at 20 dB SNR (noise orthogonal to it).
    part = noise(2, channels=1)[:, 0].astype(np.float64)
    extra = np.random.default_rng(3).standard_normal(FRAMES)
    extra -= (extra @ part) / (part @ part) * part
    extra *= math.sqrt((part @ part) / (extra @ extra) / 100.0)
    write(refs / "panned" / "vocals.wav", np.stack([part, np.zeros(FRAMES)], 1))
    write(
        root / "hard_left" / "panned" / "vocals.wav",
        np.stack([part + extra, 1e-4 * noise(4, channels=1)[:, 0]], 1),
    )
    # offset: an MP3 that decodes 1,105 samples late, of a broadband part.
    song = synth.synthesize_song(7, "prj_0001", seconds=6.0)
    write(refs / "offset" / "vocals.wav", song.vocals)
    _, gapless = headerless_mp3(song.vocals, root / "late_mp3" / "offset" / "vocals.mp3")
    (root / "late_mp3" / "offset" / "gapless.mp3").rename(root / "gapless.mp3")
    # corrupt: not audio at all.
    write(refs / "corrupt" / "vocals.wav", even())
    write(root / "ten_db" / "corrupt" / "vocals.wav", at_snr(even(), 10.0, seed=5))
    (root / "broken" / "corrupt").mkdir(parents=True)
    (root / "broken" / "corrupt" / "vocals.wav").write_bytes(b"RIFF....WAVEnot really")
    # resampled: a 48 kHz stem of a 44.1 kHz part.
    tone = np.sin(2 * np.pi * 440 * np.arange(FRAMES) / RATE)[:, None] * [0.3, 0.2]
    write(refs / "resampled" / "vocals.wav", tone)
    at_48k = resample_poly(tone, 160, 147, axis=0)
    write(root / "at_48k" / "resampled" / "vocals.wav", at_48k, rate=48000)
    # mono against stereo, and stereo against mono.
    mono = noise(6, channels=1)
    write(refs / "to_stereo" / "vocals.wav", np.concatenate([mono, 0.5 * mono], 1))
    write(root / "mono" / "to_stereo" / "vocals.wav", mono)
    write(refs / "to_mono" / "vocals.wav", mono)
    write(root / "stereo" / "to_mono" / "vocals.wav", np.concatenate([1.5 * mono, 0.3 * mono], 1))
    result = build_report([root])
    data: dict[str, Any] = json.loads(result.json.read_text())
    data["_root"] = root
    data["_page"] = result.html.read_text()
    data["_csv"] = list(csv.DictReader(result.csv.open()))
    return data


def entry(report: dict[str, Any], project: str, model: str) -> dict[str, Any]:
    return next(e for e in report["entries"] if e["project"] == project and e["model"] == model)


def test_a_short_estimate_is_zero_padded_and_ranks_below_a_real_model(
    report: dict[str, Any],
) -> None:
    """5% of the part scores 10 log10(1/0.95) = 0.223 dB (not ~20 dB), below a 10 dB model."""
    short = entry(report, "short", "five_percent")
    assert short["sdr"] == pytest.approx(10 * math.log10(1 / 0.95), abs=1e-4)
    assert short["notes"] == ["1.90 s shorter than the reference, zero-padded"]
    assert entry(report, "short", "ten_db")["sdr"] == pytest.approx(10.0, abs=1e-4)
    (vocals,) = [r for r in report["rankings"] if r["type"] == "vocals"]
    order = [row["model"] for row in vocals["rows"]]
    assert order.index("ten_db") < order.index("five_percent")


def test_a_tiny_stem_scores_what_it_covers(report: dict[str, Any]) -> None:
    """Ten frames of the part score 10 log10(N / (N - 10)); no loudness, a note, no crash."""
    tiny = entry(report, "tiny", "ten_frames")
    assert tiny["sdr"] == pytest.approx(10 * math.log10(FRAMES / (FRAMES - 10)), abs=1e-6)
    assert tiny["lufs"] is None and tiny["duration"] == pytest.approx(10 / RATE, rel=1e-5)
    assert tiny["notes"] == ["2.00 s shorter than the reference, zero-padded"]


def test_a_hard_panned_part_is_scored_on_its_channel(report: dict[str, Any]) -> None:
    """SI-SDR skips the silent reference channel: 20 dB, not (20 - 80) / 2 = -30 dB."""
    assert entry(report, "panned", "hard_left")["si_sdr"] == pytest.approx(20.0, abs=1e-3)


def test_an_mp3_that_decodes_late_is_aligned_and_says_so(report: dict[str, Any]) -> None:
    """Without its encoder header an MP3 decodes 1,105 samples late: found, undone, noted;
    it then scores what the gapless decode of the same file scores (not about -3.6 dB)."""
    late = entry(report, "offset", "late_mp3")
    assert late["offset_ms"] == pytest.approx(MP3_DELAY / RATE * 1000, abs=1e-4)
    assert "starts 25.1 ms late (1105 samples); aligned" in late["notes"]
    reference, _ = sf.read(report["_root"] / "_references" / "offset" / "vocals.wav")
    gapless, _ = sf.read(report["_root"] / "gapless.mp3", dtype="float32")
    assert late["sdr"] == pytest.approx(metrics.sdr(reference, gapless), abs=1e-3)
    headerless, _ = sf.read(report["_root"] / "late_mp3" / "offset" / "vocals.mp3")
    unaligned = metrics.sdr(reference, headerless[: len(reference)])
    assert unaligned < 0 and late["sdr"] > unaligned + 30
    (row,) = [r for r in report["_csv"] if r["model"] == "late_mp3"]
    assert row["offset_ms"] == "25.0567"
    assert row["notes"] == "; ".join(late["notes"])  # the CSV's notes column


def test_a_corrupt_stem_gives_its_reason_not_no_reference(report: dict[str, Any]) -> None:
    """A file that is not audio has libsndfile's reason everywhere; the ranking says it did
    not decode, not that it had no reference, and ranks the model that did."""
    reason = "not readable as audio: Error in WAV file. No 'data' chunk marker"
    assert entry(report, "corrupt", "broken")["error"] == reason
    (failed,) = [f for f in report["failed_files"] if f["model"] == "broken"]
    assert failed["reason"] == reason and failed["file"].endswith("broken/corrupt/vocals.wav")
    (vocals,) = [r for r in report["rankings"] if r["type"] == "vocals"]
    assert vocals["undecodable"] == {"broken": reason}
    assert "broken" not in vocals["unscored"]
    assert "Could not decode <b>broken</b>" in report["_page"]


def test_a_stem_at_another_rate_is_resampled_and_noted(report: dict[str, Any]) -> None:
    """A 48 kHz stem is resampled to 44.1 kHz before scoring, and the page and JSON say so."""
    resampled = entry(report, "resampled", "at_48k")
    assert resampled["resampled"] is True and resampled["sample_rate"] == 48000
    assert resampled["notes"] == ["resampled from 48000 Hz to 44100 Hz"]
    reference, _ = sf.read(report["_root"] / "_references" / "resampled" / "vocals.wav")
    stem, _ = sf.read(report["_root"] / "at_48k" / "resampled" / "vocals.wav")
    back = resample_poly(stem, 147, 160, axis=0)[:FRAMES]
    assert resampled["sdr"] == pytest.approx(metrics.sdr(reference, back), abs=1e-3)
    assert "resampled from 48000 Hz to 44100 Hz" in report["_page"]


def test_mono_and_stereo_are_matched_before_scoring(report: dict[str, Any]) -> None:
    """Mono m against (m, m/2) is copied to both: 10 log10(1.25 / 0.25) = 6.99 dB. Stereo
    (1.5m, 0.3m) against mono m is downmixed to 0.9m: 20 dB."""
    up = entry(report, "to_stereo", "mono")
    assert up["sdr"] == pytest.approx(10 * math.log10(5), abs=1e-4)
    assert up["notes"] == ["mono, copied to 2 channels"]
    down = entry(report, "to_mono", "stereo")
    assert down["sdr"] == pytest.approx(20.0, abs=1e-4)
    assert down["notes"] == ["2 channels, downmixed to mono"]
