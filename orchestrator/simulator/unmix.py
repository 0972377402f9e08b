"""Songs from uploaded files: decode the real mix and split it into the three parts that the
simulated models work from. Pure: bytes and arrays in, arrays out; no network, no disk.

The simulated models of `models.separate` degrade true parts (lead, backing vocals,
instrumental) with each model's own leakage, band limit, noise and level error. An uploaded
mix has no true parts, so `split` estimates them with two classic cues, per time-frequency
bin of a short-time Fourier transform:

- harmonic or percussive (median filtering across time and across frequency, Fitzgerald
  2010): voices are harmonic, drums are not;
- where the bin sits in the stereo image (the inter-channel similarity of Avendano 2003): a
  lead voice is mixed to the centre, backing voices wide;
- and a band-pass on the range of the voice (150 Hz to 7 kHz).

The three soft masks sum to one in every bin, so the three parts sum back to the mix, and a
model's "mix minus instrumental" is a real subtraction. Each model then treats these parts as
it treats a synthesized song's, so its character (and its rank among the twelve) carries over.

The work is done in blocks of frames, so memory stays small however long the song.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import numpy.typing as npt
import soundfile as sf
from scipy.ndimage import median_filter

from orchestrator.simulator.dsp import Audio
from orchestrator.simulator.synth import Song

N_FFT = 2048
HOP = N_FFT // 4  # a periodic Hann window at 75% overlap sums (squared) to a constant
KERNEL = 9  # frames (time) and bins (frequency) of the median filters
BLOCK = 512  # frames per block
CENTRE_POWER = 8  # how sharply "centred" falls off with the stereo spread
WIDE_FROM, WIDE_SPAN = 0.85, 0.35  # similarity below which a bin counts as wide
VOICE_BAND = (150.0, 7000.0)  # Hz


class MediaError(ValueError):
    """Bytes that do not decode as audio; the message says why."""


def probe(data: bytes) -> float:
    """The duration in seconds of the audio file `data`; `MediaError` when it does not decode."""
    try:
        info = sf.info(io.BytesIO(data))
    except (sf.LibsndfileError, RuntimeError, TypeError) as exc:
        raise MediaError(f"the file does not decode as audio ({_reason(exc)})") from None
    if info.frames <= 0 or info.samplerate <= 0:
        raise MediaError("the file decodes to no audio at all")
    return float(info.frames) / float(info.samplerate)


def decode(data: bytes) -> tuple[Audio, int]:
    """The samples of `data` as stereo float32 (frames, 2), and the sample rate.

    Mono is duplicated to both sides; more channels are folded down, odd ones to the left.
    """
    try:
        samples, rate = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError) as exc:
        raise MediaError(f"the file does not decode as audio ({_reason(exc)})") from None
    if samples.shape[1] == 1:
        samples = np.repeat(samples, 2, axis=1)
    elif samples.shape[1] > 2:
        samples = np.stack([samples[:, 0::2].mean(axis=1), samples[:, 1::2].mean(axis=1)], 1)
    return np.ascontiguousarray(samples, dtype=np.float32), int(rate)


def song_from_file(data: bytes, project_id: str, title: str) -> Song:
    """The song of an uploaded file: its mix split into the parts the models work from."""
    mix, rate = decode(data)
    lead, backing, instrumental = split(mix, rate)
    return Song(
        project_id=project_id,
        title=title,
        artist="",
        sample_rate=rate,
        lead=lead,
        backing=backing,
        instrumental=instrumental,
        bpm=0.0,
    )


def split(mix: Audio, sample_rate: int) -> tuple[Audio, Audio, Audio]:
    """Estimates of (lead vocals, backing vocals, instrumental) of a stereo `mix`; they sum to
    the mix."""
    n = len(mix)
    # N_FFT of silence on each side, and whole hops, so every sample has full overlap.
    padded_len = n + 2 * N_FFT + (-(n + 2 * N_FFT)) % HOP
    padded = np.zeros((padded_len, 2), np.float32)
    padded[N_FFT : N_FFT + n] = mix
    window = _hann(N_FFT)
    frames = (padded_len - N_FFT) // HOP + 1
    views = [np.lib.stride_tricks.sliding_window_view(padded[:, ch], N_FFT)[::HOP] for ch in (0, 1)]
    freq = np.fft.rfftfreq(N_FFT, 1 / sample_rate).astype(np.float32)
    low, high = VOICE_BAND
    band = (1 / (1 + (low / np.maximum(freq, 1.0)) ** 4) / (1 + (freq / high) ** 4))[:, None]
    norm = np.float32(np.sum(window**2) / HOP)  # the constant overlap-add of window squared
    voices = np.zeros((2, padded_len // HOP, 2, HOP), np.float32)  # (lead|backing, hop, ch, t)
    margin = KERNEL // 2
    for start in range(0, frames, BLOCK):
        stop = min(frames, start + BLOCK)
        lo, hi = max(0, start - margin), min(frames, stop + margin)
        left, right = (np.fft.rfft(v[lo:hi] * window, axis=1).T for v in views)  # (bins, t)
        masks = _masks(left, right, band)
        keep = slice(start - lo, stop - lo)
        for which, mask in enumerate(masks):
            for ch, spectrum in enumerate((left, right)):
                part = np.fft.irfft(spectrum[:, keep] * mask[:, keep], n=N_FFT, axis=0).T
                segments = (part * (window / norm)).reshape(stop - start, N_FFT // HOP, HOP)
                for j in range(N_FFT // HOP):  # frame k's segment j lands on hop k + j
                    voices[which, start + j : stop + j, ch] += segments[:, j]
    lead, backing = (voices[w].transpose(0, 2, 1).reshape(-1, 2)[N_FFT : N_FFT + n] for w in (0, 1))
    instrumental = mix - lead - backing
    return _frozen(lead), _frozen(backing), _frozen(instrumental)


def _masks(
    left: npt.NDArray[np.complexfloating[Any, Any]],
    right: npt.NDArray[np.complexfloating[Any, Any]],
    band: npt.NDArray[Any],
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    """Soft masks of the lead and the backing vocals per bin (bins, frames); their sum <= 1."""
    power_l, power_r = np.abs(left) ** 2, np.abs(right) ** 2
    similarity = 2 * np.abs(left * np.conj(right)) / (power_l + power_r + 1e-12)
    mid = np.abs(left + right)
    harmonic = median_filter(mid, size=(1, KERNEL), mode="nearest")
    percussive = median_filter(mid, size=(KERNEL, 1), mode="nearest")
    tonal = harmonic**2 / (harmonic**2 + percussive**2 + 1e-12)
    centre = similarity**CENTRE_POWER
    wide = np.clip((WIDE_FROM - similarity) / WIDE_SPAN, 0, 1)
    voiced = tonal * band
    lead = voiced * centre
    backing = voiced * (1 - centre) * wide
    return lead.astype(np.float32), backing.astype(np.float32)


def _hann(n: int) -> npt.NDArray[np.float32]:
    return (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n) / n)).astype(np.float32)


def _frozen(x: npt.NDArray[Any]) -> Audio:
    out = np.ascontiguousarray(x, dtype=np.float32)
    out.flags.writeable = False
    return out


def _reason(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
