"""The simulator's synthetic songs, simulated separations and audio encoding."""

from __future__ import annotations

import io

import numpy as np
import pytest
import soundfile as sf

from orchestrator.simulator import encoding, models, synth
from orchestrator.simulator.synth import Song

SR = 44100
SECONDS = 4.0


@pytest.fixture(scope="module")
def song() -> Song:
    return synth.synthesize_song(7, "prj_test", seconds=SECONDS)


def sdr(reference: np.ndarray, estimate: np.ndarray) -> float:
    reference = reference.astype(np.float64)
    error = reference - estimate
    return float(10 * np.log10(np.sum(reference**2) / np.sum(error**2)))


def mono(x: np.ndarray) -> np.ndarray:
    return np.asarray(x.astype(np.float64).mean(axis=1))


# --- the song ------------------------------------------------------------------------------


def test_same_seed_and_project_give_the_same_song(song: Song) -> None:
    """Synthesis is deterministic: the same (seed, project) gives identical samples and names."""
    again = synth.synthesize_song(7, "prj_test", seconds=SECONDS)
    assert (again.title, again.artist, again.bpm) == (song.title, song.artist, song.bpm)
    for part in ("lead", "backing", "instrumental"):
        assert np.array_equal(getattr(again, part), getattr(song, part))


@pytest.mark.parametrize(("seed", "project_id"), [(8, "prj_test"), (7, "prj_other")])
def test_other_seed_or_project_give_another_song(song: Song, seed: int, project_id: str) -> None:
    """Changing the seed or the project id changes every part of the song."""
    other = synth.synthesize_song(seed, project_id, seconds=SECONDS)
    for part in ("lead", "backing", "instrumental"):
        assert not np.allclose(getattr(other, part), getattr(song, part), atol=1e-3)


def test_parts_are_stereo_float32_at_the_sample_rate(song: Song) -> None:
    """Every part and the mix are (seconds * rate, 2) float32 arrays that cannot be modified."""
    assert song.sample_rate == SR
    for samples in (song.lead, song.backing, song.instrumental, song.vocals, song.mix):
        assert samples.shape == (round(SECONDS * SR), 2)
        assert samples.dtype == np.float32
        assert not samples.flags.writeable
    assert np.allclose(song.mix, song.lead + song.backing + song.instrumental, atol=1e-6)
    assert song.title and song.artist.startswith("The ")


def test_mix_peaks_just_below_full_scale(song: Song) -> None:
    """The mix does not clip: it peaks at PEAK_DBFS, and each part stays below full scale."""
    assert -3 < synth.PEAK_DBFS < 0
    assert np.max(np.abs(song.mix)) == pytest.approx(10 ** (synth.PEAK_DBFS / 20), rel=1e-3)
    for part in (song.lead, song.backing, song.instrumental):
        assert np.max(np.abs(part)) < 1.0


def test_synthesize_song_rejects_an_empty_song() -> None:
    """A song shorter than one sample is refused with a ValueError naming the length."""
    with pytest.raises(ValueError, match="0.0 seconds"):
        synth.synthesize_song(1, "prj", seconds=0.0)


def test_lead_vocal_is_pitched_not_noise(song: Song) -> None:
    """The lead has a clear fundamental in the sung range and a spectrum far from flat."""
    lead = mono(song.lead)
    frame = 2048
    frames = lead[: len(lead) // frame * frame].reshape(-1, frame) * np.hanning(frame)
    power = np.abs(np.fft.rfft(frames, axis=1)) ** 2 + 1e-20
    flatness = np.exp(np.mean(np.log(power), axis=1)) / np.mean(power, axis=1)
    voiced = np.sum(frames**2, axis=1) > 0.1 * np.max(np.sum(frames**2, axis=1))
    noise = np.random.default_rng(0).standard_normal(frame) * np.hanning(frame)
    noise_power = np.abs(np.fft.rfft(noise)) ** 2
    noise_flatness = np.exp(np.mean(np.log(noise_power))) / np.mean(noise_power)
    assert noise_flatness > 0.4
    assert np.median(flatness[voiced]) < 0.05

    start = int(np.argmax(np.convolve(lead**2, np.ones(frame), "valid")))
    loudest = lead[start : start + frame]
    corr = np.correlate(loudest, loudest, "full")[frame - 1 :]
    lags = np.arange(SR // 1000, SR // 70)
    best = lags[np.argmax(corr[lags])]
    assert corr[best] / corr[0] > 0.7
    assert 150 < SR / best < 1000


def test_drums_hit_on_the_tempo_grid(song: Song) -> None:
    """Onsets in the instrumental fall on the eighth-note grid of the song's tempo."""
    assert 88 <= song.bpm <= 128
    high = np.diff(mono(song.instrumental))  # emphasises the attacks of drums and plucks
    hop = 256
    energy = np.log(np.sum(high[: len(high) // hop * hop].reshape(-1, hop) ** 2, axis=1) + 1e-12)
    rise = np.maximum(energy[2:] - energy[:-2], 0)  # over about 12 ms, centred on a frame
    onset = np.concatenate([[0.0], rise, [0.0]])
    eighth = 30 / song.bpm
    grid = np.arange(0, SECONDS - eighth, eighth)

    def strength(times: np.ndarray) -> float:
        frames = np.round(times * SR / hop).astype(int)
        return float(np.mean([onset[max(f - 1, 0) : f + 2].max() for f in frames]))

    assert strength(grid) > 4 * strength(grid + eighth / 2)
    assert strength(grid) > 4 * strength(grid + eighth / 4)


def test_references_are_the_true_parts(song: Song) -> None:
    """references() gives the mix and the true parts under Youka's stem type names."""
    refs = synth.references(song)
    assert set(refs) == {"original", "vocals", "backing_vocals", "instrumental"}
    assert np.array_equal(refs["original"], song.mix)
    assert np.allclose(refs["vocals"], song.lead + song.backing, atol=1e-6)
    assert np.array_equal(refs["backing_vocals"], song.backing)
    assert np.array_equal(refs["instrumental"], song.instrumental)


# --- the simulated models --------------------------------------------------------------------

EXPECTED_STEMS = {
    "mdx23c": {"vocals", "instrumental"},
    "audioshakeai": {"vocals", "instrumental"},
    "audioshake_vocals_lead": {"vocals"},
    "musicai_instrumental_only": {"instrumental"},
    "musicai_lead_backing_other": {"vocals", "backing_vocals", "instrumental"},
    "musicai_with_backing_vocals": {"vocals", "instrumental"},
    "musicai_without_backing_vocals": {"vocals", "instrumental"},
    "uvr_mdxnet_kara_2": {"vocals", "instrumental"},
    "bs_roformer": {"vocals", "instrumental"},
    "mel_band_roformer_instrumental_becruily": {"vocals", "instrumental"},
    "mel_band_roformer_instrumental_instv7_gabox": {"vocals", "instrumental"},
    "demucs": {"vocals", "instrumental"},
}
FLAC_MODELS = {"audioshakeai", "audioshake_vocals_lead", "musicai_lead_backing_other"}


def test_the_twelve_models_are_known() -> None:
    """MODELS names exactly the twelve Youka split models, each with one spec."""
    assert set(models.MODELS) == set(EXPECTED_STEMS)
    assert len(models.MODELS) == 12
    assert set(models.MODEL_SPECS) == set(models.MODELS)


@pytest.mark.parametrize("model", sorted(EXPECTED_STEMS))
def test_every_model_returns_its_documented_stem_types(song: Song, model: str) -> None:
    """Each model returns exactly the stem types its purpose implies, as stereo float32."""
    stems = models.separate(song, model, seed=1)
    assert set(stems) == EXPECTED_STEMS[model]
    assert set(models.model_stem_types(model)) == EXPECTED_STEMS[model]
    for samples in stems.values():
        assert samples.shape == song.mix.shape
        assert samples.dtype == np.float32
        assert np.all(np.isfinite(samples))


@pytest.mark.parametrize("model", sorted(EXPECTED_STEMS))
def test_model_format_is_flac_for_three_models_and_wav_otherwise(model: str) -> None:
    """model_format() is "flac" for the AudioShake models and lead/backing, else "wav"."""
    assert models.model_format(model) == ("flac" if model in FLAC_MODELS else "wav")
    assert models.model_format(model) in encoding.CONTENT_TYPES


def test_unknown_model_is_a_key_error_naming_it(song: Song) -> None:
    """An unknown model raises KeyError with its name and the known models in the message."""
    for call in (
        lambda: models.separate(song, "nope_v2", seed=1),
        lambda: models.model_stem_types("nope_v2"),
        lambda: models.model_format("nope_v2"),
    ):
        with pytest.raises(KeyError, match=r"nope_v2.*bs_roformer"):
            call()


def test_separation_is_deterministic_per_seed(song: Song) -> None:
    """The same (seed, song, model) gives identical stems; another seed other noise."""
    first = models.separate(song, "mdx23c", seed=1)
    again = models.separate(song, "mdx23c", seed=1)
    other = models.separate(song, "mdx23c", seed=2)
    for stem in first:
        assert np.array_equal(first[stem], again[stem])
        assert not np.array_equal(first[stem], other[stem])
        assert sdr(first[stem], other[stem]) > 10  # only the noise differs


def test_karaoke_instrumental_keeps_the_backing_vocals(song: Song) -> None:
    """uvr_mdxnet_kara_2's instrumental contains the backing vocals; mdx23c's does not."""

    def backing_in(stem: np.ndarray, true_part: np.ndarray) -> float:
        """Least-squares weight of the backing vocals in what the stem adds to its part."""
        backing = song.backing.astype(np.float64)
        return float(np.sum((stem - true_part) * backing) / np.sum(backing**2))

    uvr = models.separate(song, "uvr_mdxnet_kara_2", 1)
    mdx = models.separate(song, "mdx23c", 1)
    assert backing_in(uvr["instrumental"], song.instrumental) > 0.7
    assert backing_in(mdx["instrumental"], song.instrumental) < 0.15
    assert backing_in(uvr["vocals"], song.lead) < 0.3  # only leakage, like any other part


def test_lead_backing_model_splits_the_voices(song: Song) -> None:
    """musicai_lead_backing_other's backing stem follows the backing vocals, not the lead."""
    stems = models.separate(song, "musicai_lead_backing_other", 1)
    assert sdr(song.backing, stems["backing_vocals"]) > 0
    assert sdr(song.lead, stems["vocals"]) > sdr(song.vocals, stems["vocals"])


def test_mel_band_vocals_are_the_mix_minus_its_instrumental(song: Song) -> None:
    """The mel-band models invert for vocals, so their two stems add up to the mix."""
    stems = models.separate(song, "mel_band_roformer_instrumental_becruily", 1)
    assert np.allclose(stems["vocals"] + stems["instrumental"], song.mix, atol=1e-5)
    refs = synth.references(song)
    assert sdr(refs["instrumental"], stems["instrumental"]) > sdr(refs["vocals"], stems["vocals"])


def test_sdr_ranks_the_models_like_the_public_figures(song: Song) -> None:
    """Scored against the true parts, bs_roformer beats demucs, and uvr's lead-only vocals
    score well below bs_roformer's against all vocals."""
    refs = synth.references(song)
    scores = {
        (model, stem): sdr(refs[stem], samples)
        for model in ("bs_roformer", "mdx23c", "demucs", "uvr_mdxnet_kara_2")
        for stem, samples in models.separate(song, model, 1).items()
    }
    for stem in ("vocals", "instrumental"):
        assert scores["bs_roformer", stem] > scores["mdx23c", stem] > scores["demucs", stem] + 1
    assert scores["uvr_mdxnet_kara_2", "vocals"] < scores["bs_roformer", "vocals"] - 3
    assert scores["demucs", "vocals"] > 5


# --- encoding ------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["wav", "flac"])
def test_encode_round_trips_through_soundfile(song: Song, fmt: str) -> None:
    """encode() gives a 16-bit file of the format asked for, at the rate, in stereo."""
    data = encoding.encode(song.mix, SR, fmt)
    decoded, rate = sf.read(io.BytesIO(data), dtype="float32")
    info = sf.info(io.BytesIO(data))
    assert (info.format, info.subtype, rate) == (fmt.upper(), "PCM_16", SR)
    assert decoded.shape == song.mix.shape
    assert np.max(np.abs(decoded - song.mix)) < 2 / 32768


def test_encode_clips_out_of_range_samples() -> None:
    """Samples beyond full scale are clipped, not wrapped around to the other sign."""
    loud = np.full((100, 2), 1.5, np.float32)
    decoded, _ = sf.read(io.BytesIO(encoding.encode(loud, SR, "wav")), dtype="float32")
    assert np.all(decoded > 0.99)


def test_encode_rejects_an_unknown_format(song: Song) -> None:
    """Only WAV and FLAC are offered; anything else is a ValueError naming the format."""
    with pytest.raises(ValueError, match="mp3"):
        encoding.encode(song.mix, SR, "mp3")


@pytest.mark.parametrize("n_bytes", [44, 47, 1000, 65_539, 3_000_001])
def test_tiny_wav_has_the_requested_size_and_decodes(n_bytes: int) -> None:
    """tiny_wav() is a valid, quiet stereo WAV of n_bytes minus at most 3."""
    data = encoding.tiny_wav(n_bytes, seed=3)
    assert n_bytes - 3 <= len(data) <= n_bytes
    samples, rate = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
    assert rate == SR
    assert samples.shape == ((len(data) - 44) // 4, 2)
    assert np.max(np.abs(samples), initial=0) < 0.05
    assert encoding.tiny_wav(n_bytes, seed=3) == data


def test_tiny_wav_payload_depends_on_the_seed() -> None:
    """Two seeds give two different payloads of the same size."""
    assert encoding.tiny_wav(5000, seed=1) != encoding.tiny_wav(5000, seed=2)


def test_tiny_wav_rejects_sizes_below_a_header() -> None:
    """A WAV cannot be smaller than its 44-byte header."""
    with pytest.raises(ValueError, match="43"):
        encoding.tiny_wav(43, seed=1)
