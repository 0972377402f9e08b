"""Write the song files of `jobs/songs-demo.yaml`: three synthesized songs as WAV, FLAC and
MP3, and a copy of the first under another name (the same bytes: one song).

    python scripts/demo_songs.py out/songs-demo-music

Needs the simulator extra (numpy, soundfile). Files already there are left as they are, so
a second `make demo` finds the same bytes and uploads nothing again.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import soundfile

from orchestrator.simulator.synth import synthesize_song

SONGS = (
    ("Morning Light.wav", "PCM_16"),
    ("Night Drive.flac", "PCM_16"),
    ("Last Call.mp3", "MPEG_LAYER_III"),
)
SECONDS = 30.0


def main(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for seed, (name, subtype) in enumerate(SONGS, start=1):
        path = folder / name
        if not path.exists():
            song = synthesize_song(seed, f"demo-song-{seed}", SECONDS)
            fmt = path.suffix.lstrip(".").upper()
            soundfile.write(path, song.mix, song.sample_rate, format=fmt, subtype=subtype)
    copy = folder / "morning light (copy).wav"
    if not copy.exists():
        shutil.copyfile(folder / SONGS[0][0], copy)
    print(f"songs in {folder}: {', '.join(sorted(p.name for p in folder.iterdir()))}")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(Path(sys.argv[1]))
