"""A sample per-model tree made from the simulator's songs, without the API or the runner.

For tests and for timing the report: `write_sample_tree` lays out what a run of the demo
leaves behind, `{root}/{model}/{project}/{type}.{ext}` with a `job.json` per job, and the true
parts under `{root}/_references/{project}/{type}.wav`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

from orchestrator.simulator import audio

START = datetime(2025, 1, 6, 9, 0, tzinfo=UTC)


def write_sample_tree(
    root: Path,
    *,
    projects: Sequence[str] = ("prj_0001", "prj_0002", "prj_0003"),
    models: Sequence[str] = audio.MODELS,
    seconds: float = 20.0,
    seed: int = 7,
    references: bool = True,
    original_in_tree: bool = False,
) -> Path:
    """Write the tree under `root` and return `root`.

    `original_in_tree` also stores each project's mix as `original.wav` in the first model's
    folder, as a run that downloads the `original` stem type would.
    """
    for p_index, project in enumerate(projects):
        song = audio.synthesize_song(seed, project, seconds=seconds)
        if references:
            for kind, samples in audio.references(song).items():
                _write(
                    root / "_references" / project / f"{kind}.wav",
                    audio.encode(samples, song.sample_rate, "wav"),
                )
        for m_index, model in enumerate(models):
            folder = root / model / project
            fmt = audio.model_format(model)
            stems = []
            parts = audio.separate(song, model, seed)
            if original_in_tree and m_index == 0:
                parts = {**parts, "original": song.mix}
            for kind, samples in parts.items():
                data = audio.encode(samples, song.sample_rate, "wav" if kind == "original" else fmt)
                name = f"{kind}.{'wav' if kind == 'original' else fmt}"
                _write(folder / name, data)
                stem_id = hashlib.sha256(f"{project}/{model}/{kind}".encode()).hexdigest()[:12]
                stems.append(
                    {
                        "id": f"stm_{stem_id}",
                        "type": kind,
                        "duration": seconds,
                        "bytes": len(data),
                        "sha256": hashlib.sha256(data).hexdigest(),
                        "file": name,
                    }
                )
            submitted = START + timedelta(minutes=10 * p_index + m_index)
            finished = submitted + timedelta(seconds=30 + 7 * m_index + 3 * p_index)
            job = {
                "project": project,
                "model": model,
                "key": f"sample:{project}:{model}:1",
                "attempt": 1,
                "task_id": f"tsk_{p_index}_{m_index}",
                "status": "done",
                "submitted_at": submitted.isoformat().replace("+00:00", "Z"),
                "finished_at": finished.isoformat().replace("+00:00", "Z"),
                "stems": stems,
            }
            _write(folder / "job.json", json.dumps(job, indent=2).encode())
    return root


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
