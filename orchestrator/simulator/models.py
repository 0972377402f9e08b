"""The twelve Youka split models, simulated. Pure and deterministic: the same arguments
always give the same stems, and nothing here touches the network or the disk.

`separate(song, model, seed)` plays one of the twelve: each derives its stems from the true
parts of a song (`synth.Song`, or one split from an uploaded file by `unmix`) with its own
imperfections (leakage, band limit, artefact noise, level error, smearing), all listed in
`MODEL_SPECS`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

import numpy as np

from orchestrator.simulator.dsp import Audio, Signal, from_db, frozen, seeded
from orchestrator.simulator.synth import Song

STEM_TYPES: Final = ("vocals", "backing_vocals", "instrumental")

_PARTS: Final = ("lead", "backing", "instrumental")
# Which stems a family of models returns, each as the true parts it is made from. None means
# "the mix minus this model's instrumental estimate": instrumental models invert for vocals.
_LAYOUTS: Final[Mapping[str, Mapping[str, tuple[str, ...] | None]]] = {
    "vocals": {"vocals": ("lead", "backing"), "instrumental": ("instrumental",)},
    "karaoke": {"vocals": ("lead",), "instrumental": ("instrumental", "backing")},
    "lead": {"vocals": ("lead",)},
    "inst": {"instrumental": ("instrumental",)},
    "lead+backing": {
        "vocals": ("lead",),
        "backing_vocals": ("backing",),
        "instrumental": ("instrumental",),
    },
    "inst+inverted": {"instrumental": ("instrumental",), "vocals": None},
}
NO_STEM: Final = math.nan  # the leak of a kind of stem the model does not estimate


@dataclass(frozen=True)
class ModelSpec:
    """How one simulated split model turns the true parts into stems."""

    layout: str  # a key of _LAYOUTS: which stems it returns and what each holds
    fmt: str  # the file format it stores: "wav" or "flac"
    vocal_leak_db: float  # level of the other parts left in a vocal stem, dB
    inst_leak_db: float  # level of the vocal parts left in an instrumental stem, dB
    cutoff_hz: float  # band limit: the response is -3 dB here and falls steeply above
    noise_db: float  # artefact noise following the stem's envelope, dB below the stem's RMS
    level_db: float  # gain error of every stem, dB
    smear_ms: float = 0.0  # pre- and post-echo at -26 dB this far away (0 = none)


# Every model's imperfections, in one place. Calibrated so that the SDRs the report measures
# on these songs come out near the public figures in youka-api.md (quoted per model) and rank
# the models the same way. Noise dominates the instrumental's error, leakage the vocals'.
# Columns: layout, format, vocal leak, instrumental leak, cutoff, noise, level error, smear.
MODEL_SPECS: Final[Mapping[str, ModelSpec]] = {
    # The default, balanced: close behind bs_roformer (public: vocals 10.2, instrumental 16.5).
    "mdx23c": ModelSpec("vocals", "wav", -17.2, -27.0, 17500, 16.0, -0.4),
    # AudioShake's general model: no public figures; assumed a little above mdx23c on vocals
    # and below it on the instrumental.
    "audioshakeai": ModelSpec("vocals", "flac", -18.6, -27.0, 19000, 16.1, 0.4),
    # AudioShake's lead model: as clean as audioshakeai, but the backing vocals are left out.
    "audioshake_vocals_lead": ModelSpec("lead", "flac", -18.6, NO_STEM, 19000, 16.1, 0.4),
    # Music.ai instrumental only: a little behind the mel-band instrumental models.
    "musicai_instrumental_only": ModelSpec("inst", "wav", NO_STEM, -28.0, 16000, 15.0, 0.3),
    # Music.ai lead / backing / other: more leakage and smearing, since it also splits the
    # voices apart; the quiet backing stem is the hardest of all.
    "musicai_lead_backing_other": ModelSpec(
        "lead+backing", "flac", -17.0, -26.0, 16000, 16.0, -0.6, 3.0
    ),
    # Music.ai with backing vocals: all the vocals together, slightly below mdx23c.
    "musicai_with_backing_vocals": ModelSpec("vocals", "wav", -17.0, -26.0, 16000, 15.2, -0.5),
    # Music.ai without backing vocals: the lead alone; the backing goes to the instrumental.
    "musicai_without_backing_vocals": ModelSpec("karaoke", "wav", -17.0, -26.0, 16000, 15.2, -0.5),
    # UVR karaoke: the lead alone (public: about 5 dB against all vocals); its instrumental
    # keeps the backing vocals. Band-limited at 17.5 kHz like the MDX-Net models.
    "uvr_mdxnet_kara_2": ModelSpec("karaoke", "wav", -16.5, -25.0, 17500, 15.5, -0.7),
    # The strongest open model of the twelve (public: vocals 10.9, instrumental 17.2).
    "bs_roformer": ModelSpec("vocals", "wav", -18.6, -29.0, 20000, 16.8, -0.2),
    # Instrumental-focused (public: instrumental 16.5): a strong, full-band instrumental. Its
    # vocals are the mix minus that estimate, so they carry all of its error.
    "mel_band_roformer_instrumental_becruily": ModelSpec(
        "inst+inverted", "wav", NO_STEM, -29.0, 20000, 16.5, -0.2
    ),
    "mel_band_roformer_instrumental_instv7_gabox": ModelSpec(
        "inst+inverted", "wav", NO_STEM, -28.0, 20000, 16.4, 0.3
    ),
    # Demucs (htdemucs_ft): clearly weaker (public: vocals 8.4, instrumental 14.0), with
    # smeared transients.
    "demucs": ModelSpec("vocals", "wav", -14.8, -24.0, 16000, 15.8, -0.8, 6.0),
}
MODELS: Final = tuple(MODEL_SPECS)


def model_spec(model: str) -> ModelSpec:
    """The simulated behaviour of `model`; KeyError naming the known models otherwise."""
    try:
        return MODEL_SPECS[model]
    except KeyError:
        raise KeyError(f"unknown split model {model!r}; known: {', '.join(MODELS)}") from None


def model_stem_types(model: str) -> tuple[str, ...]:
    """The stem types `model` returns, in the order of STEM_TYPES."""
    layout = _LAYOUTS[model_spec(model).layout]
    return tuple(stem for stem in STEM_TYPES if stem in layout)


def model_format(model: str) -> str:
    """The file format `model`'s stems are stored in: "wav" or "flac"."""
    return model_spec(model).fmt


def separate(song: Song, model: str, seed: int) -> dict[str, Audio]:
    """The stems `model` makes of `song`, by stem type; the same for the same arguments.

    Each stem is its true parts at the model's level error, plus the other parts at its leak
    level, plus noise that follows the stem, band-limited and smeared as the model is.
    """
    spec = model_spec(model)
    parts = {"lead": song.lead, "backing": song.backing, "instrumental": song.instrumental}
    layout = _LAYOUTS[spec.layout]
    stems: dict[str, Audio] = {}
    for stem, made_of in layout.items():
        if made_of is None:
            continue
        leak = spec.inst_leak_db if stem == "instrumental" else spec.vocal_leak_db
        target = sum((parts[p] for p in made_of), np.zeros_like(song.mix))
        others = sum((parts[p] for p in _PARTS if p not in made_of), np.zeros_like(song.mix))
        estimate = from_db(spec.level_db) * (target + from_db(leak) * others)
        rng = seeded("separate", seed, song.project_id, model, stem)
        estimate += _artefacts(target, spec.noise_db, rng)
        stems[stem] = _filter(estimate, spec, song.sample_rate)
    if "vocals" in layout and layout["vocals"] is None:
        stems["vocals"] = frozen(song.mix - stems["instrumental"])
    return {stem: stems[stem] for stem in model_stem_types(model)}


def _artefacts(target: Audio, noise_db: float, rng: np.random.Generator) -> Signal:
    """Noise `noise_db` below the target's RMS that swells and fades with the target."""
    frame = 1024
    frames = len(target) // frame
    if frames == 0:
        return np.zeros_like(target)
    power = np.mean(np.square(target[: frames * frame].reshape(frames, -1)), axis=1)
    centres = (np.arange(frames) + 0.5) * frame
    envelope = np.interp(np.arange(len(target)), centres, np.sqrt(power)).astype(np.float32)
    # Uniform noise scaled to unit variance: as good as Gaussian here, and much cheaper.
    noise = rng.random(target.shape, dtype=np.float32) - np.float32(0.5)
    noise *= (envelope * np.float32(from_db(-noise_db) * math.sqrt(12)))[:, None]
    return noise


def _filter(audio: Signal, spec: ModelSpec, sr: int) -> Audio:
    """Band-limit (and smear) `audio` as the model does, with a zero-phase response."""
    size = _fft_size(len(audio))  # the zero padding also keeps echoes from wrapping around
    freq = np.fft.rfftfreq(size, 1 / sr)
    response = 1 / np.sqrt(1 + (freq / spec.cutoff_hz) ** 16)
    if spec.smear_ms:
        # An echo at -26 dB before and after: the pre-echo of mask-based separation.
        response *= 1 + 0.1 * np.cos(2 * np.pi * freq * spec.smear_ms / 1000)
    spectrum = np.fft.rfft(audio.T.astype(np.float32), n=size, axis=1)
    spectrum *= response.astype(np.float32)
    return frozen(np.fft.irfft(spectrum, n=size, axis=1)[:, : len(audio)].T)


def _fft_size(n: int) -> int:
    """The smallest 2^a 3^b 5^c >= n: pocketfft is several times faster on such lengths."""
    best = 1 << max(n - 1, 0).bit_length()
    power5 = 1
    while power5 < best:
        power35 = power5
        while power35 < best:
            # The smallest power of two that lifts power35 to n or above.
            size = power35 << max(0, -(-n // power35) - 1).bit_length()
            best = min(best, size)
            power35 *= 3
        power5 *= 5
    return best
