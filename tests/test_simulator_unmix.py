"""Splitting an uploaded mix: the parts sum to the mix, and the models keep their rank."""

from __future__ import annotations

import io

import numpy as np
import pytest
import soundfile as sf
from scipy.stats import spearmanr

from orchestrator.simulator import encoding, models, synth, unmix


def sdr(truth: np.ndarray, estimate: np.ndarray) -> float:
    """Whole-track SDR in dB."""
    truth = truth.astype(np.float64)
    return float(10 * np.log10(np.sum(truth**2) / np.sum((truth - estimate) ** 2)))


@pytest.fixture(scope="module")
def song() -> synth.Song:
    """An eight-second synthesized song, whose true parts are known."""
    return synth.synthesize_song(0, "prj_0002", 8.0)


@pytest.fixture(scope="module")
def uploaded(song: synth.Song) -> synth.Song:
    """The same song as a user would upload it: its mix only, as a WAV file."""
    return unmix.song_from_file(encoding.encode(song.mix, song.sample_rate, "wav"), "prj_up", "T")


def test_the_parts_sum_to_the_mix_and_find_the_voices(song, uploaded):
    """Lead, backing and instrumental add up to the mix; each is nearer its truth than zero."""
    total = uploaded.lead + uploaded.backing + uploaded.instrumental
    assert np.max(np.abs(total - song.mix)) < 1e-3  # 16-bit WAV rounding
    assert sdr(song.lead, uploaded.lead) > 1
    assert sdr(song.instrumental, uploaded.instrumental) > 6
    assert sdr(song.vocals, uploaded.lead + uploaded.backing) > 2


def test_the_twelve_models_rank_roughly_as_on_synthesized_songs(song, uploaded):
    """Per stem type, the models' SDRs on the uploaded mix follow their order on the true parts."""
    truth = synth.references(song)
    for kind in ("vocals", "instrumental"):
        on_parts, on_upload = [], []
        for model in models.MODELS:
            if kind not in models.model_stem_types(model):
                continue
            on_parts.append(sdr(truth[kind], models.separate(song, model, 0)[kind]))
            on_upload.append(sdr(truth[kind], models.separate(uploaded, model, 0)[kind]))
        assert spearmanr(on_parts, on_upload).statistic > 0.6, (kind, on_parts, on_upload)


def test_mono_and_multichannel_files_become_stereo():
    """Mono is doubled to both sides; four channels fold to two; non-audio is a MediaError."""
    mono = io.BytesIO()
    sf.write(mono, np.linspace(-0.5, 0.5, 800, dtype=np.float32), 8000, format="WAV")
    samples, rate = unmix.decode(mono.getvalue())
    assert samples.shape == (800, 2) and rate == 8000
    assert np.array_equal(samples[:, 0], samples[:, 1])
    quad = io.BytesIO()
    sf.write(quad, np.full((100, 4), 0.25, np.float32), 8000, format="WAV")
    assert unmix.decode(quad.getvalue())[0].shape == (100, 2)
    assert unmix.probe(mono.getvalue()) == pytest.approx(0.1)
    with pytest.raises(unmix.MediaError, match="does not decode"):
        unmix.probe(b"RIFF....WAVEjunk")
