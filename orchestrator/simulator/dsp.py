"""The sample types and small signal helpers shared by the simulator's songs (`synth`), its
simulated models (`models`) and its encoding (`encoding`). Pure: arrays in, arrays out.

`seeded` is the one source of randomness of all three, so that the same arguments always
give the same samples.
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
import numpy.typing as npt

Audio = npt.NDArray[np.float32]  # (frames, 2); full scale is +-1
Signal = npt.NDArray[np.floating[Any]]  # samples on their way to Audio


def seeded(*key: object) -> np.random.Generator:
    """A generator seeded from the key's text: stable across processes, unlike hash()."""
    digest = hashlib.blake2b("\x1f".join(map(str, key)).encode(), digest_size=16).digest()
    return np.random.default_rng(int.from_bytes(digest, "little"))


def from_db(db: float) -> float:
    """The amplitude ratio of `db` decibels."""
    return float(10 ** (db / 20))


def rms(x: Signal) -> float:
    """The root mean square of `x`, summed in float64."""
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))


def normalise(x: Signal) -> Signal:
    """`x` scaled to unit RMS (silence stays silence)."""
    return x / max(rms(x), 1e-12)


def frozen(x: Signal) -> Audio:
    """`x` as contiguous, read-only float32."""
    out = np.ascontiguousarray(x, dtype=np.float32)
    out.flags.writeable = False
    return out
