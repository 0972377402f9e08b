"""A sample per-model tree made from the simulator's songs, without the API or the runner.

For tests and for timing the report: `write_sample_tree` lays out what a run of the demo
leaves behind, `{root}/{model}/{project}/{type}.{ext}` with a `job.json` per job, and the true
parts under `{root}/_references/{project}/{type}.wav`.

`add_shared_failure` adds models that fail alike, the hard case for a ranking without
references: several clones whose instrumental and vocal stems share one error, the same
waveform in each (`FAILURES`), on top of a small error of their own. They agree with each
other more than with the truth.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Final

import numpy as np
from scipy.signal import butter, sosfiltfilt

from orchestrator.simulator import synth
from orchestrator.simulator.encoding import encode
from orchestrator.simulator.models import MODELS, model_format, separate

START = datetime(2025, 1, 6, 9, 0, tzinfo=UTC)
# The shared errors: artefact noise following the part (-10 dB), another part leaking in
# (-10 dB: the backing vocals into the instrumental, the instrumental into the vocals), or
# the part low-passed at 5 kHz.
FAILURES: Final = ("artefacts", "leak", "band")


def write_sample_tree(
    root: Path,
    *,
    projects: Sequence[str] = ("prj_0001", "prj_0002", "prj_0003"),
    models: Sequence[str] = MODELS,
    seconds: float = 20.0,
    seed: int = 7,
    references: bool = True,
    original_in_tree: bool = False,
) -> Path:
    """Write the tree under `root` and return `root`.

    `original_in_tree` also stores each project's mix as `original.wav` in every model's
    folder, as a run with the default download types (which include `original`) does.
    """
    for p_index, project in enumerate(projects):
        song = synth.synthesize_song(seed, project, seconds=seconds)
        if references:
            for kind, samples in synth.references(song).items():
                _write(
                    root / "_references" / project / f"{kind}.wav",
                    encode(samples, song.sample_rate, "wav"),
                )
        for m_index, model in enumerate(models):
            folder = root / model / project
            fmt = model_format(model)
            stems = []
            parts = separate(song, model, seed)
            if original_in_tree:
                parts = {**parts, "original": song.mix}
            for kind, samples in parts.items():
                data = encode(samples, song.sample_rate, "wav" if kind == "original" else fmt)
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


def add_shared_failure(
    root: Path,
    *,
    failure: str,
    clones: int,
    projects: Sequence[str] = ("prj_0001", "prj_0002", "prj_0003"),
    seconds: float = 20.0,
    seed: int = 7,
) -> list[str]:
    """Add `clones` models to a sample tree of the same songs whose instrumental and vocals
    share one `failure` (see FAILURES); return their names."""
    if failure not in FAILURES:
        raise ValueError(f"unknown failure {failure!r}; known: {', '.join(FAILURES)}")
    names = [f"{failure}_clone_{k + 1}" for k in range(clones)]
    for p_index, project in enumerate(projects):
        song = synth.synthesize_song(seed, project, seconds=seconds)
        refs = synth.references(song)
        rng = np.random.default_rng([seed, p_index, FAILURES.index(failure)])
        stems: dict[str, list[np.ndarray]] = {name: [] for name in names}
        kinds = ("instrumental", "vocals")
        for kind in kinds:
            part = refs[kind].astype(np.float64)
            shared = _shared_error(failure, kind, part, refs, song.sample_rate, rng)
            power = float(np.mean(part**2))
            for k, name in enumerate(names):
                own = rng.standard_normal(part.shape) * np.sqrt(power) * 10 ** (-(22 + 2 * k) / 20)
                stems[name].append(part * 10 ** ((0.3 * k - 0.5) / 20) + shared + own)
        for m_index, name in enumerate(names):
            folder = root / name / project
            for kind, samples in zip(kinds, stems[name], strict=True):
                _write(folder / f"{kind}.wav", encode(samples, song.sample_rate, "wav"))
            submitted = START + timedelta(minutes=10 * p_index + 20 + m_index)
            finished = submitted + timedelta(seconds=40)
            job = {
                "project": project,
                "model": name,
                "status": "done",
                "submitted_at": submitted.isoformat().replace("+00:00", "Z"),
                "finished_at": finished.isoformat().replace("+00:00", "Z"),
                "stems": [{"type": k, "file": f"{k}.wav"} for k in kinds],
            }
            _write(folder / "job.json", json.dumps(job, indent=2).encode())
    return names


def _shared_error(
    failure: str,
    kind: str,
    part: np.ndarray,
    refs: dict[str, np.ndarray],
    rate: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """The error every clone's stem of `kind` holds, the same waveform in each."""
    if failure == "artefacts":
        frame = 2048
        power = np.convolve(np.mean(part**2, axis=1), np.ones(frame) / frame, mode="same")
        noise = rng.standard_normal(part.shape) * np.sqrt(power)[:, None]
        return np.asarray(noise * 10 ** (-10 / 20))
    if failure == "leak":
        other = refs["backing_vocals"] if kind == "instrumental" else refs["instrumental"]
        return np.asarray(other, np.float64) * 10 ** (-10 / 20)
    sos = butter(8, 5000, fs=rate, output="sos")
    return np.asarray(sosfiltfilt(sos, part, axis=0) - part)


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
