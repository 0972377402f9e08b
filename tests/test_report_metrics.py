"""Known-answer tests of the report's signal measures (pure numpy, no files)."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pyloudnorm
import pytest
from scipy.signal import resample_poly

from orchestrator.report import align, metrics
from orchestrator.report.loudness import LoudnessMeter

RATE = 44100


def noise(seconds: float = 2.0, channels: int = 2, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((round(seconds * RATE), channels)) * 0.1


def tones(seconds: float, freqs: tuple[float, ...] = (110, 440, 1234, 5000)) -> np.ndarray:
    rate = RATE
    t = np.arange(round(seconds * rate)) / rate
    mono = sum(np.sin(2 * np.pi * f * t + f) for f in freqs) / len(freqs)
    return np.stack([mono, 0.8 * mono], axis=1) * 0.5


def with_snr(reference: np.ndarray, snr_db: float, seed: int = 1) -> np.ndarray:
    """reference + noise scaled so that sum s^2 / sum n^2 is exactly snr_db."""
    n = np.random.default_rng(seed).standard_normal(reference.shape)
    n *= math.sqrt(np.sum(reference**2) / np.sum(n**2) / 10 ** (snr_db / 10))
    return reference + n


@pytest.mark.parametrize("snr_db", [0.0, 6.0, 12.5, 25.0])
def test_sdr_of_reference_plus_noise_is_the_snr(snr_db: float) -> None:
    """An estimate equal to the reference plus noise at a known SNR scores that SNR (±0.05 dB)."""
    reference = noise()
    estimate = with_snr(reference, snr_db)
    assert metrics.sdr(reference, estimate) == pytest.approx(snr_db, abs=0.05)


def test_sdr_sums_over_all_channels_not_per_channel() -> None:
    """SDR pools the error of all channels instead of averaging per-channel SDRs."""
    left, right = noise(channels=1, seed=2) * 10, noise(channels=1, seed=3)
    estimate = np.concatenate([with_snr(left, 10.0, 4), with_snr(right, 30.0, 5)], axis=1)
    reference = np.concatenate([left, right], axis=1)
    pooled = 10 * math.log10(np.sum(reference**2) / np.sum((reference - estimate) ** 2))
    assert metrics.sdr(reference, estimate) == pytest.approx(pooled, abs=1e-6)
    assert abs(metrics.sdr(reference, estimate) - 20.0) > 5


def test_si_sdr_is_unchanged_by_scaling_the_estimate() -> None:
    """SI-SDR does not change when the estimate is louder or quieter; SDR does."""
    reference = noise()
    estimate = with_snr(reference, 8.0)
    base = metrics.si_sdr(reference, estimate)
    for gain in (0.1, 0.5, 3.0):
        assert metrics.si_sdr(reference, gain * estimate) == pytest.approx(base, abs=1e-3)
    assert metrics.sdr(reference, 0.5 * estimate) < base - 2


def test_si_sdr_is_per_channel_then_averaged() -> None:
    """SI-SDR scores each channel and averages: orthogonal noise at 10 and 20 dB gives 15 dB."""
    reference = noise(channels=2, seed=6)
    estimate = reference.copy()
    for channel, snr_db in ((0, 10.0), (1, 20.0)):
        s = reference[:, channel]
        n = np.random.default_rng(channel).standard_normal(len(s))
        n -= (n @ s) / (s @ s) * s  # orthogonal to the reference: the projection stays 1
        n *= math.sqrt((s @ s) / (n @ n) / 10 ** (snr_db / 10))
        estimate[:, channel] = s + n
    assert metrics.si_sdr(reference, estimate) == pytest.approx(15.0, abs=0.01)


def test_silent_estimate_scores_finite_and_at_the_bottom() -> None:
    """A silent estimate scores SDR 0 dB and SI-SDR -80 dB: finite, no warning, at the bottom."""
    reference = noise()
    silent = np.zeros_like(reference)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sdr, si_sdr = metrics.sdr(reference, silent), metrics.si_sdr(reference, silent)
    assert math.isfinite(sdr) and math.isfinite(si_sdr)
    assert sdr == pytest.approx(0.0, abs=1e-6)
    assert si_sdr <= -79.0
    poor = with_snr(reference, 1.0)
    assert metrics.sdr(reference, poor) > sdr
    assert metrics.si_sdr(reference, poor) > si_sdr


def test_silent_reference_and_estimate_do_not_crash() -> None:
    """Silence against silence: a finite SDR, and no SI-SDR (no channel to be invariant to)."""
    silent = np.zeros((RATE, 2))
    assert math.isfinite(metrics.sdr(silent, silent))
    assert metrics.si_sdr(silent, silent) is None


def test_si_sdr_skips_a_silent_reference_channel() -> None:
    """A hard-panned part estimated at exactly 20 dB reads 20 dB, not (20 - 80) / 2 = -30."""
    part = noise(channels=1, seed=11)[:, 0]
    n = np.random.default_rng(12).standard_normal(len(part))
    n -= (n @ part) / (part @ part) * part  # orthogonal: the projection stays exactly 1
    n *= math.sqrt((part @ part) / (n @ n) / 100.0)  # 20 dB below
    reference = np.stack([part, np.zeros_like(part)], axis=1)
    estimate = np.stack([part + n, 1e-3 * noise(channels=1, seed=13)[:, 0]], axis=1)
    assert metrics.si_sdr(reference, estimate) == pytest.approx(20.0, abs=1e-6)
    faint = reference.copy()
    faint[:, 1] = part * 10 ** (-61 / 20)  # 61 dB below the left: silent too
    assert metrics.si_sdr(faint, estimate) == pytest.approx(20.0, abs=1e-6)


def test_identical_estimate_scores_very_high() -> None:
    """An estimate identical to the reference scores far above any real separation (> 90 dB)."""
    reference = noise()
    assert metrics.sdr(reference, reference.copy()) > 90
    assert metrics.si_sdr(reference, reference.copy()) > 90


def test_resampled_estimate_is_brought_back_and_still_scores_high() -> None:
    """A 48 kHz estimate of a 44.1 kHz reference is resampled and still scores above 30 dB."""
    reference = tones(3.0)
    estimate = resample_poly(reference, 160, 147, axis=0)  # 44100 -> 48000
    aligned = align.align(reference, RATE, estimate, 48000)
    assert aligned.resampled
    assert aligned.length_diff == pytest.approx(0.0, abs=1e-3)
    assert metrics.sdr(aligned.reference, aligned.estimate) > 30


def test_align_cuts_a_long_estimate_and_zero_pads_a_short_one() -> None:
    """A stem 0.5 s longer is cut to the reference (+0.5 s); a short one is zero-padded to it,
    as museval's pad_or_truncate does, so the part it misses counts as error."""
    reference = noise(seconds=2.0)
    estimate = np.concatenate([reference, noise(seconds=0.5, seed=9)])
    aligned = align.align(reference, RATE, estimate, RATE)
    assert aligned.length_diff == pytest.approx(0.5)
    assert aligned.estimate.shape == aligned.reference.shape == reference.shape
    assert metrics.sdr(aligned.reference, aligned.estimate) > 90
    shorter = align.align(reference, RATE, reference[: RATE // 2], RATE)
    assert shorter.length_diff == pytest.approx(-1.5)
    assert shorter.reference.shape == shorter.estimate.shape == reference.shape
    assert not shorter.estimate[RATE // 2 :].any()


def test_a_short_estimate_scores_only_what_it_covers() -> None:
    """The first 5% of the reference, exact, scores 10 log10(1 / 0.95) = 0.2228 dB (the old
    trimmed score of such a stem was its 5% alone: far above any real separation)."""
    frames = 40_000
    reference = np.full((frames, 2), 0.25, np.float32)
    reference[1::2] = -0.25  # every sample the same energy: shares of length are exact
    aligned = align.align(reference, RATE, reference[: frames // 20], RATE)
    assert metrics.sdr(aligned.reference, aligned.estimate) == pytest.approx(
        10 * math.log10(1 / 0.95), abs=1e-9
    )


def test_channel_layouts_are_matched() -> None:
    """Mono estimates are spread to a stereo reference and stereo ones downmixed to mono."""
    mono = noise(channels=1)
    dual = np.repeat(mono, 2, axis=1)
    up = align.align(dual, RATE, mono[:, 0], RATE)
    assert up.estimate.shape == (len(mono), 2)
    assert metrics.sdr(up.reference, up.estimate) > 90
    down = align.align(mono, RATE, dual, RATE)
    assert down.estimate.shape == (len(mono), 1)
    assert metrics.sdr(down.reference, down.estimate) > 90


def test_fitted_pads_or_cuts_to_the_wanted_length() -> None:
    """`fitted` returns exactly the requested frames: zero-padded when short, cut when long."""
    audio = noise(seconds=1.0)
    padded = align.fitted(audio, RATE * 2)
    assert padded.shape == (RATE * 2, 2) and not padded[RATE:].any()
    assert align.fitted(audio, 100).shape == (100, 2)


def test_blocks_on_the_grid_shift_match_channels_and_pad() -> None:
    """`on_grid` turns blocks of any size into fixed blocks: shifted, re-channelled, padded."""
    audio = np.arange(10, dtype=np.float32)[:, None]  # mono 0..9
    source = [audio[:3], audio[3:4], audio[4:]]
    late = list(zip(range(3), align.on_grid(source, 2, 4, shift=2), strict=False))
    assert [b[:, 0].tolist() for _, b in late] == [[2, 3, 4, 5], [6, 7, 8, 9], [0, 0, 0, 0]]
    assert all(b.shape == (4, 2) and (b[:, 0] == b[:, 1]).all() for _, b in late)
    early = next(align.on_grid(source, 1, 4, shift=-3))
    assert early[:, 0].tolist() == [0, 0, 0, 0]  # three zeros in front, then sample 0


def test_notes_say_what_was_done() -> None:
    """Each adjustment before comparing is said in words; nothing said when nothing was done."""
    said = align.notes(
        rate=48000, grid_rate=44100, channels=1, grid_channels=2, length_diff=-0.25,
        compared_with="reference", offset=1105,
    )  # fmt: skip
    assert said == [
        "resampled from 48000 Hz to 44100 Hz",
        "mono, copied to 2 channels",
        "0.25 s shorter than the reference, zero-padded",
        "starts 25.1 ms late (1105 samples); aligned",
    ]
    assert align.notes(
        rate=44100, grid_rate=44100, channels=2, grid_channels=2, length_diff=0.004,
        compared_with="mix", offset=0,
    ) == []  # fmt: skip


def test_lufs_of_a_997_hz_sine_matches_bs1770() -> None:
    """997 Hz at -20 dBFS reads -20.0 LUFS stereo and -23.0 mono; EBU 3341 case 1 reads -23.0."""
    t = np.arange(20 * RATE) / RATE
    sine = 10 ** (-20 / 20) * np.sin(2 * np.pi * 997 * t)
    assert metrics.integrated_lufs(np.stack([sine, sine], 1), RATE) == pytest.approx(-20.0, abs=0.1)
    assert metrics.integrated_lufs(sine, RATE) == pytest.approx(-23.0, abs=0.1)
    ebu = 10 ** (-23 / 20) * np.sin(2 * np.pi * 1000 * t)
    assert metrics.integrated_lufs(np.stack([ebu, ebu], 1), RATE) == pytest.approx(-23.0, abs=0.1)


def test_lufs_is_none_for_silence_and_for_audio_shorter_than_a_block() -> None:
    """Silence and clips shorter than one 400 ms gating block have no loudness (None)."""
    assert metrics.integrated_lufs(np.zeros((RATE * 2, 2)), RATE) is None
    assert metrics.integrated_lufs(noise(seconds=0.2), RATE) is None
    assert metrics.integrated_lufs(noise(seconds=1.0), RATE) is not None


def test_peak_and_clipping() -> None:
    """Sample peak is in dBFS (None for silence); clipped share counts samples at full scale."""
    t = np.arange(RATE) / RATE
    half = 0.5 * np.sin(2 * np.pi * 100 * t)
    assert metrics.sample_peak_dbfs(half) == pytest.approx(-6.02, abs=0.01)
    assert metrics.sample_peak_dbfs(np.zeros(100)) is None
    assert metrics.clipped_share(half) == 0.0
    clipped = np.zeros(1000)
    clipped[:100] = 1.0
    clipped[100:150] = -1.2
    assert metrics.clipped_share(clipped) == pytest.approx(0.15)


def test_silence_share_counts_quiet_50ms_frames() -> None:
    """Near-silence is the share of 50 ms frames below -60 dBFS."""
    tone = tones(1.0)
    assert metrics.silence_share(np.concatenate([tone, np.zeros_like(tone)]), RATE) == 0.5
    hiss = np.random.default_rng(0).standard_normal((RATE, 2))
    assert metrics.silence_share(hiss * 10 ** (-70 / 20), RATE) == 1.0
    assert metrics.silence_share(hiss * 10 ** (-50 / 20), RATE) == 0.0


def test_residual_measures_what_the_stems_miss() -> None:
    """Stems that sum to the mix leave no residual; a left-out part leaves exactly its energy."""
    a, b = noise(seed=1), 0.3 * noise(seed=2)
    mix = a + b
    assert metrics.residual_db(mix, a + b) < -100
    expected = 10 * math.log10(np.sum(b**2) / np.sum(mix**2))
    assert metrics.residual_db(mix, a) == pytest.approx(expected, abs=0.01)


@pytest.mark.parametrize(("rate", "channels", "block"), [(44100, 2, 65536), (48000, 1, 999)])
def test_loudness_in_blocks_is_pyloudnorms_loudness(rate: int, channels: int, block: int) -> None:
    """The streaming BS.1770 meter gives pyloudnorm's integrated loudness to 1e-5 LU."""
    rng = np.random.default_rng(rate)
    ramp = np.linspace(0.001, 0.4, 7 * rate)[:, None]  # quiet blocks fall under the gates
    audio = (rng.standard_normal((7 * rate, channels)) * ramp).astype(np.float32)
    meter = LoudnessMeter(rate, channels)
    for start in range(0, len(audio), block):
        meter.add(audio[start : start + block])
    expected = pyloudnorm.Meter(rate).integrated_loudness(audio)
    assert meter.lufs() == pytest.approx(expected, abs=1e-5)


def test_measures_fed_in_blocks_equal_the_whole_array() -> None:
    """Scores and silence shares do not depend on where the blocks are cut."""
    reference = tones(2.0)
    estimate = with_snr(reference, 12.0)
    estimate[: RATE // 3] = 0  # some near-silence, across block boundaries
    whole = metrics.Scores()
    whole.add(reference, estimate)
    parts = metrics.Scores()
    meter = metrics.StemMeter(RATE, 2)
    for start in range(0, len(reference), 7777):
        parts.add(reference[start : start + 7777], estimate[start : start + 7777])
        meter.add(estimate[start : start + 7777])
    assert parts.sdr() == pytest.approx(whole.sdr(), abs=1e-9)
    assert parts.si_sdr() == pytest.approx(whole.si_sdr(), abs=1e-9)
    frame = round(0.05 * RATE)
    power = np.mean(estimate[: len(estimate) // frame * frame].reshape(-1, frame * 2) ** 2, 1)
    assert meter.silence_share() == np.mean(power < 1e-6)


def test_long_float32_audio_keeps_precision() -> None:
    """Blockwise float64 sums keep a 60 s float32 track's SDR exact to 0.01 dB."""
    reference = noise(seconds=60.0, channels=2).astype(np.float32)
    estimate = with_snr(reference.astype(np.float64), 20.0).astype(np.float32)
    assert metrics.sdr(reference, estimate) == pytest.approx(20.0, abs=0.01)


def lag_of(anchor: np.ndarray, stem: np.ndarray, margin: int = 2000) -> int | None:
    """The offset `estimate_lag` finds for `stem` against `anchor`, or None."""
    from orchestrator.report.offset import WINDOW, WindowTap, estimate_lag, window_starts

    starts = window_starts(len(anchor), margin=margin)
    a, s = WindowTap(starts, WINDOW), WindowTap(starts, WINDOW, margin)
    a.add(metrics.as_frames(anchor))
    s.add(metrics.as_frames(stem))
    found = estimate_lag(a.windows, s.windows, margin)
    return None if found is None else found.frames


def test_offsets_are_found_both_ways_and_never_made_up() -> None:
    """A stem 300 frames late or 200 early is found so; a steady tone (alike at every
    period) stays put; an unrelated stem gets no offset at all."""
    anchor = noise(seconds=4.0, seed=21)
    late = np.concatenate([np.zeros((300, 2)), anchor])[: len(anchor)]
    early = np.concatenate([anchor[200:], np.zeros((200, 2))])
    assert lag_of(anchor, late + 0.3 * noise(seconds=4.0, seed=22)) == 300
    assert lag_of(anchor, early) == -200
    steady = tones(4.0, freqs=(441.0,))
    assert lag_of(steady, steady.copy()) == 0
    assert lag_of(anchor, noise(seconds=4.0, seed=23)) is None
