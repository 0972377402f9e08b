"""Spectrogram images: a valid PNG of fixed size whose bright rows follow the frequencies."""

from __future__ import annotations

import struct
import zlib

import numpy as np

from orchestrator.report import spectrogram

RATE = 44100


def decode_png(data: bytes) -> np.ndarray:
    """The pixels of an unfiltered 8-bit RGB PNG, as written by `encode_png`."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    chunks: dict[bytes, bytes] = {}
    pos = 8
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])
        assert crc == zlib.crc32(kind + body)
        chunks[kind] = chunks.get(kind, b"") + body
        pos += 12 + length
    width, height, depth, colour = struct.unpack(">IIBB", chunks[b"IHDR"][:10])
    assert (depth, colour) == (8, 2)
    raw = np.frombuffer(zlib.decompress(chunks[b"IDAT"]), np.uint8).reshape(height, -1)
    assert not raw[:, 0].any()  # filter type 0 on every row
    return raw[:, 1:].reshape(height, width, 3)


def test_png_is_valid_and_has_the_fixed_size() -> None:
    """Any length of audio gives a WIDTH x HEIGHT RGB PNG with valid chunks and CRCs."""
    for seconds in (0.01, 1.0, 7.3):
        audio = np.random.default_rng(0).standard_normal((round(seconds * RATE), 2)) * 0.1
        pixels = decode_png(spectrogram.spectrogram_png(audio, RATE))
        assert pixels.shape == (spectrogram.HEIGHT, spectrogram.WIDTH, 3)


def test_a_tone_lights_the_row_of_its_frequency() -> None:
    """A 1 kHz tone is brightest on the row of 1 kHz on the log axis; silence is the floor."""
    t = np.arange(2 * RATE) / RATE
    tone = 0.5 * np.sin(2 * np.pi * 1000 * t)
    db = spectrogram.levels(tone, RATE)
    edges = np.geomspace(spectrogram.LOW_HZ, spectrogram.HIGH_HZ, spectrogram.HEIGHT + 1)
    row_from_bottom = int(np.searchsorted(edges, 1000.0)) - 1
    brightest = spectrogram.HEIGHT - 1 - int(np.argmax(db.mean(axis=1)))
    assert abs(brightest - row_from_bottom) <= 1
    silent = decode_png(spectrogram.spectrogram_png(np.zeros((RATE, 2)), RATE))
    assert (silent == spectrogram.PALETTE[0]).all()
