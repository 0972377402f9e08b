"""The manifest's `references:` folder reaches `stemsweep report` through the run's summary."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import FAST_CLIENT, StartSimulator, WriteManifest, quick_profile

from orchestrator.errors import UsageError
from orchestrator.jobs import Shard
from orchestrator.manifest import load_manifest
from orchestrator.report import build_report
from orchestrator.report.tree import discover, recorded_references
from orchestrator.runner import run_manifest
from orchestrator.simulator.server import Simulator
from orchestrator.spec import SimulatorSpec


def wav(path: Path, seconds: float = 0.5, rate: int = 8000) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, np.zeros((round(seconds * rate), 2), np.float32), rate)
    return path


@pytest.mark.anyio
@pytest.mark.usefixtures("no_retry_waits")
async def test_report_scores_against_the_manifests_references(
    start_simulator: StartSimulator, write_manifest: WriteManifest, tmp_path: Path
) -> None:
    """A run records the manifest's references folder; the report then scores with it."""
    sim = await start_simulator(seed=51)
    project = sim.project_ids[0]
    for kind, data in (await sim.context.media.references(project)).items():
        path = tmp_path / "truth" / project / f"{kind}.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    manifest = write_manifest(projects=[project], models=["mdx23c"], references="truth")
    outcome = await run_manifest(
        load_manifest(manifest),
        api_url=sim.base_url,
        environ={"YOUKA_API_KEY": sim.api_key},
        client_options=FAST_CLIENT,
    )
    assert outcome.exit_code == 0
    summary = json.loads((outcome.output / "summary.json").read_text())
    assert summary["references"] == str((tmp_path / "truth").resolve())
    assert not (outcome.output / "_references").exists()  # not the simulator's own copy

    result = build_report([outcome.output])  # no --references
    report = json.loads(result.json.read_text())
    scored = [e for e in report["entries"] if e["sdr"] is not None]
    assert {e["type"] for e in scored} >= {"vocals", "instrumental"}
    assert report["references"] == [str((tmp_path / "truth").resolve())]


@pytest.mark.anyio
@pytest.mark.usefixtures("no_retry_waits")
async def test_a_simulator_run_saves_the_true_parts_of_its_own_projects(
    write_manifest: WriteManifest,
) -> None:
    """`api.simulator` runs in process through the `local_api` seam, with no key; the run
    saves its projects' true parts under `_references`, a shard only those of its own."""
    started: list[SimulatorSpec] = []

    def local_api(spec: SimulatorSpec, folder: Path) -> Simulator:
        started.append(spec)
        return Simulator(quick_profile(), seed=spec.seed, time_scale=spec.time_scale, state=folder)

    projects = ["prj_0001", "prj_0002", "prj_0003"]
    simulator = {"seed": 5, "time_scale": 1000}
    manifest = load_manifest(
        write_manifest(projects=projects, models=["mdx23c"], api={"simulator": simulator})
    )
    shard = Shard(1, 2)  # prj_0002 only
    outcome = await run_manifest(
        manifest, shard=shard, environ={}, client_options=FAST_CLIENT, local_api=local_api
    )
    assert outcome.exit_code == 0 and started == [SimulatorSpec(seed=5, time_scale=1000)]
    saved = sorted(
        p.relative_to(outcome.output / "_references").as_posix()
        for p in (outcome.output / "_references").rglob("*.wav")
    )
    kinds = ["backing_vocals", "instrumental", "original", "vocals"]
    assert saved == [f"prj_0002/{kind}.wav" for kind in kinds]
    with pytest.raises(UsageError, match="api.simulator"):
        await run_manifest(manifest, environ={}, client_options=FAST_CLIENT)


def test_given_references_win_over_the_recorded_ones(tmp_path: Path) -> None:
    """`--references` replaces the folder a summary names; without it, the named one is used."""
    tree = tmp_path / "out"
    wav(tree / "mdx23c" / "prj_a" / "vocals.wav")
    recorded = wav(tmp_path / "recorded" / "prj_a" / "vocals.wav")
    given = wav(tmp_path / "given" / "prj_a" / "vocals.wav")
    (tree / "summary-shard-1-of-2.json").write_text(
        json.dumps({"references": str(tmp_path / "recorded"), "failed": []})
    )
    assert recorded_references([tree]) == [tmp_path / "recorded"]
    assert discover([tree]).references == {"prj_a": {"vocals": recorded}}
    chosen = discover([tree], references=tmp_path / "given")
    assert chosen.references == {"prj_a": {"vocals": given}}
    assert chosen.reference_dirs == [tmp_path / "given"]


def test_a_recorded_references_folder_that_is_gone_is_a_problem(tmp_path: Path) -> None:
    """A summary naming a missing folder lists it as a problem; the rest is still found."""
    tree = tmp_path / "out"
    wav(tree / "mdx23c" / "prj_a" / "vocals.wav")
    (tree / "summary.json").write_text(json.dumps({"references": str(tmp_path / "gone")}))
    found = discover([tree])
    assert found.reference_dirs == [] and list(found.jobs) == [("prj_a", "mdx23c")]
    assert [(p.file, "not found" in p.reason) for p in found.problems] == [
        (tmp_path / "gone", True)
    ]


def test_shard_summaries_list_their_failed_jobs(tmp_path: Path) -> None:
    """Failed jobs listed in each shard's summary reach the report, beside done ones."""
    tree = tmp_path / "out"
    wav(tree / "mdx23c" / "prj_a" / "vocals.wav")
    for index, project in ((0, "prj_b"), (1, "prj_c")):
        failed = [{"project": project, "model": "demucs", "status": "failed", "reason": "x"}]
        (tree / f"summary-shard-{index}-of-2.json").write_text(json.dumps({"failed": failed}))
    found = discover([tree])
    assert {k: j.status for k, j in found.jobs.items()} == {
        ("prj_a", "mdx23c"): "done",
        ("prj_b", "demucs"): "failed",
        ("prj_c", "demucs"): "failed",
    }
