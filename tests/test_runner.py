"""End-to-end sweeps against the simulator in the same event loop, over loopback HTTP."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import anyio
import pytest
import soundfile
from conftest import StartSimulator, WriteManifest, check_tree, sweep

from orchestrator import delivery
from orchestrator.download import DEFAULT_CHUNK_SIZE
from orchestrator.errors import CredentialsError
from orchestrator.lifecycle import Mode, Status
from orchestrator.manifest import load_manifest
from orchestrator.paths import is_safe_name
from orchestrator.runner import RunOutcome
from orchestrator.simulator.models import model_format
from orchestrator.simulator.world import Stem
from orchestrator.state import StateStore

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("no_retry_waits")]

MODELS = ["mdx23c", "demucs", "bs_roformer", "uvr_mdxnet_kara_2"]


def rows(outcome: RunOutcome) -> dict[tuple[str, str], Any]:
    with StateStore.open_reader(outcome.state_path) as store:
        return {(r.project, r.model): r for r in store.iter_jobs()}


async def test_limits_never_exceeded(
    start_simulator: StartSimulator, write_manifest: WriteManifest
) -> None:
    """In-progress separations never exceed max_in_flight, per_project or per_model."""
    sim = await start_simulator(seed=1)
    manifest = write_manifest(
        projects=sim.project_ids[:4],
        models=MODELS,
        limits={
            "max_in_flight": 3,
            "per_project": 1,
            "per_model": {"demucs": 1},
            "requests_per_second": 1000,
        },
    )
    outcome = await sweep(sim, manifest)
    record = sim.record.snapshot()
    assert outcome.exit_code == 0, outcome.summary["failed"]
    assert outcome.summary["counts"] == {"done": 16}
    assert record["separations_total"] == 16
    assert record["max_in_progress"] == 3  # reached, never passed
    assert record["max_in_progress_per_project"] == 1
    assert record["max_in_progress_per_model"]["demucs"] == 1
    assert check_tree(outcome.output, outcome.state_path) > 16


async def test_storage_host_never_sees_credentials(
    start_simulator: StartSimulator, write_manifest: WriteManifest
) -> None:
    """Stems on the storage host, direct or through a redirect, are fetched without the key."""
    sim = await start_simulator(seed=2, redirect_share=0.5)
    manifest = write_manifest(projects=sim.project_ids[:2], models=MODELS[:3])
    outcome = await sweep(sim, manifest)
    record = sim.record.snapshot()
    assert outcome.exit_code == 0
    assert record["downloads"] >= 6
    assert record["storage_credentials_seen"] == 0


async def test_chaos_profile_survived(
    start_simulator: StartSimulator, write_manifest: WriteManifest
) -> None:
    """Under every fault of the chaos profile, every job ends done with correct files."""
    sim = await start_simulator("chaos", seed=4, time_scale=1000)
    manifest = write_manifest(
        projects=sim.project_ids[:3],
        models=MODELS,
        limits={"max_in_flight": 6, "per_project": 1, "requests_per_second": 1000},
        retries={"requests": 12, "tasks": 4},
    )
    outcome = await sweep(sim, manifest)
    record = sim.record.snapshot()
    assert outcome.exit_code == 0, outcome.summary["failed"]
    # The faults really happened...
    assert record["rate_limited"]["total"] > 0
    assert sum(record["server_errors"].values()) > 0
    assert record["faults"].get("truncate_body", 0) + record["faults"].get("expired_url", 0) > 0
    # ...and no separation was started twice for one attempt.
    jobs = rows(outcome)
    for (project, model), row in jobs.items():
        assert record["separations"][f"{project}:{model}"] == row.attempt
    assert check_tree(outcome.output, outcome.state_path) >= 12
    for path in outcome.output.rglob("*"):
        if path.suffix in (".wav", ".flac") and "_references" not in path.parts:
            data, rate = soundfile.read(path)
            assert rate > 0 and len(data) > 0


async def test_long_stems_arrive_whole_under_storage_faults(
    start_simulator: StartSimulator, write_manifest: WriteManifest
) -> None:
    """Stems longer than one chunk (received in worker threads once the storage host has
    sent one) arrive whole and verified under dropped, cut and slow downloads."""
    sim = await start_simulator(
        "bench",
        seed=6,
        stem_bytes=DEFAULT_CHUNK_SIZE + 40_000,
        faults={
            "drop_connection": 0.1,
            "truncate_body": 0.2,
            "slow_body": 0.1,
            "slow_chunk_bytes": 256 * 1024,
            "slow_pause": 0.01,
        },
    )
    manifest = write_manifest(
        projects=sim.project_ids[:4],
        models=MODELS[:3],
        limits={"max_in_flight": 12, "per_project": 3, "requests_per_second": 1000},
        retries={"requests": 12, "tasks": 0},
    )
    outcome = await sweep(sim, manifest)
    record = sim.record.snapshot()
    assert outcome.exit_code == 0, outcome.summary["failed"]
    assert record["faults"].get("truncate_body", 0) > 0
    assert record["storage_credentials_seen"] == 0
    assert check_tree(outcome.output, outcome.state_path) >= 12
    sizes = {p.stat().st_size for p in outcome.output.rglob("*.wav")}
    assert sizes == {DEFAULT_CHUNK_SIZE + 40_000}


async def test_a_key_rejected_mid_run_stops_the_run_and_loses_nothing(
    start_simulator: StartSimulator, write_manifest: WriteManifest
) -> None:
    """When the API starts refusing the key after the first submissions, the run stops with
    CredentialsError (exit 2) and a summary that says why; a later run with a working key
    finishes every job without a second separation of any."""
    sim = await start_simulator(seed=8, api_key="yk_first")
    manifest = write_manifest(
        projects=sim.project_ids[:2],
        models=MODELS[:3],
        limits={"max_in_flight": 2, "per_project": 1, "requests_per_second": 1000},
    )

    async def revoke_after_first_separation() -> None:
        for _ in range(5000):
            if sim.record.snapshot()["separations_total"] >= 1:
                break
            await anyio.sleep(0.002)
        sim.context.profile = sim.context.profile.replace(api_key="yk_second")

    async with anyio.create_task_group() as tg:
        tg.start_soon(revoke_after_first_separation)
        with pytest.raises(CredentialsError, match="YOUKA_API_KEY"):
            await sweep(sim, manifest)
    summary = json.loads((load_manifest(manifest).output / "summary.json").read_text())
    assert summary["exit_code"] == 2 and "YOUKA_API_KEY" in summary["stopped_by"]

    sim.context.profile = sim.context.profile.replace(api_key="yk_first")
    outcome = await sweep(sim, manifest)
    assert outcome.exit_code == 0 and outcome.summary["counts"] == {"done": 6}
    assert "stopped_by" not in outcome.summary
    assert set(sim.record.snapshot()["separations"].values()) == {1}


async def test_stems_replaced_between_separations(
    start_simulator: StartSimulator, write_manifest: WriteManifest
) -> None:
    """When each separation replaces stems[], every model still gets its own files."""
    sim = await start_simulator(seed=5, stems_mode="replace")
    manifest = write_manifest(projects=sim.project_ids[:2], models=MODELS[:3])
    outcome = await sweep(sim, manifest)
    assert outcome.exit_code == 0
    for (project, model), _row in rows(outcome).items():
        job = json.loads((outcome.output / model / project / "job.json").read_text())
        assert job["stems"]
        for stem in job["stems"]:
            own = stem["type"] != "original"  # the original is the project's own upload
            truth = await sim.context.media.stem_bytes(
                Stem(
                    id=stem["id"],
                    project_id=project,
                    type=stem["type"],
                    model=model if own else None,
                    fmt=model_format(model) if own else "wav",
                    duration=0.0,
                    redirect=False,
                    source=model if own else "original",
                )
            )
            assert (outcome.output / model / project / stem["file"]).read_bytes() == truth


async def test_unsafe_server_names_are_skipped_and_reported(
    start_simulator: StartSimulator, write_manifest: WriteManifest, tmp_path: Path
) -> None:
    """Stem types that are not safe file names are reported, and nothing leaves the tree."""
    sim = await start_simulator(seed=6, hostile_names=True)
    manifest = write_manifest(projects=sim.project_ids[:2], models=MODELS[:2])
    outcome = await sweep(sim, manifest)
    assert outcome.exit_code == 0
    notes = [n for n in outcome.summary["notes"] if n["kind"] == "unsafe"]
    assert sum(n["jobs"] for n in notes) == 4
    for project in sim.project_ids[:2]:
        for model in MODELS[:2]:
            job = json.loads((outcome.output / model / project / "job.json").read_text())
            assert job["unsafe_types"] and not any(map(is_safe_name, job["unsafe_types"]))
            assert {s["type"] for s in job["stems"]} <= {"original", "instrumental", "vocals"}
    assert_only_the_tree(outcome.output, tmp_path)


def assert_only_the_tree(out: Path, tmp_path: Path) -> None:
    """Everything written is under the output tree, in the documented layout."""
    assert {p.name for p in out.iterdir()} <= {"summary.json", ".stemsweep", *MODELS[:2]}
    for model in MODELS[:2]:
        for path in (out / model).rglob("*"):
            assert len(path.relative_to(out / model).parts) <= 2, path
    assert {p.name for p in tmp_path.iterdir()} == {"out", "manifest.yaml"}
    assert not Path("/tmp/stemsweep-evil").exists()


async def test_rerun_does_no_api_work_and_repairs_files(
    start_simulator: StartSimulator, write_manifest: WriteManifest
) -> None:
    """A finished manifest costs one key check; a lost or damaged file is only re-downloaded."""
    sim = await start_simulator(seed=7)
    manifest = write_manifest(projects=sim.project_ids[:2], models=MODELS[:2])
    first = await sweep(sim, manifest)
    assert first.exit_code == 0
    calls = sim.record.snapshot()["api_calls"]

    again = await sweep(sim, manifest)
    record = sim.record.snapshot()
    assert again.exit_code == 0 and again.summary["counts"] == {"done": 4}
    assert record["api_calls"] == calls + 1  # GET /me only
    assert again.summary["api_requests"] == 1

    job_dir = first.output / MODELS[0] / sim.project_ids[0]
    victims = sorted(p for p in job_dir.iterdir() if p.name != "job.json")
    victims[0].unlink()
    victims[1].write_bytes(b"corrupted")
    repaired = await sweep(sim, manifest)
    record = sim.record.snapshot()
    assert repaired.exit_code == 0
    assert record["separations_total"] == 4  # no new separation
    assert victims[0].exists()
    assert check_tree(repaired.output, repaired.state_path) >= 4


async def test_a_rerun_hashes_only_the_files_that_changed(
    start_simulator: StartSimulator, write_manifest: WriteManifest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Done files with their recorded size and time are not read again; a touched but intact
    file is hashed once and its new time recorded; a changed one makes its job download again."""
    sim = await start_simulator(seed=7)
    manifest = write_manifest(projects=sim.project_ids[:1], models=MODELS[:1])
    first = await sweep(sim, manifest)
    assert first.exit_code == 0
    hashed: list[str] = []
    real = delivery.digest_matches

    def counting(path: Path, digest: str) -> bool:
        hashed.append(path.name)
        return real(path, digest)

    monkeypatch.setattr(delivery, "digest_matches", counting)
    assert (await sweep(sim, manifest)).exit_code == 0
    assert hashed == []

    job_dir = first.output / MODELS[0] / sim.project_ids[0]
    touched, changed = sorted(p for p in job_dir.iterdir() if p.name != "job.json")[:2]
    later = touched.stat().st_mtime_ns + 2_000_000_000
    os.utime(touched, ns=(later, later))
    changed.write_bytes(bytes(reversed(changed.read_bytes())))  # same size, other bytes
    os.utime(changed, ns=(later, later))
    downloads = sim.record.snapshot()["downloads"]
    repaired = await sweep(sim, manifest)
    assert repaired.exit_code == 0
    assert sorted(hashed) == sorted([touched.name, changed.name])
    # The job's three files: the original mix and the model's two stems.
    assert sim.record.snapshot()["downloads"] == downloads + 3
    assert check_tree(repaired.output, repaired.state_path) >= 2

    hashed.clear()
    assert (await sweep(sim, manifest)).exit_code == 0
    assert hashed == []  # the touched file's new time was recorded


async def test_retry_resubmits_failed_separations_with_new_keys(
    start_simulator: StartSimulator, write_manifest: WriteManifest
) -> None:
    """`run` reports failed separations; `retry` gives them attempt + 1 with a new key."""
    sim = await start_simulator(seed=8, faults={"task_failure": 0.5})
    manifest = write_manifest(projects=sim.project_ids[:3], models=MODELS[:3])
    first = await sweep(sim, manifest)
    failed = {k for k, r in rows(first).items() if r.status in (Status.FAILED, Status.CANCELLED)}
    assert first.exit_code == 1 and failed  # seed 8 fails some
    assert {(f["project"], f["model"]) for f in first.summary["failed"]} == failed

    rerun = await sweep(sim, manifest)  # `run` does not re-submit them
    assert sim.record.snapshot()["separations_total"] == 9
    assert rerun.exit_code == 1

    outcome = first
    for _ in range(8):
        outcome = await sweep(sim, manifest, mode=Mode.RETRY)
        if outcome.exit_code == 0:
            break
    assert outcome.exit_code == 0
    record = sim.record.snapshot()
    final = rows(outcome)
    for key, row in final.items():
        assert record["separations"][f"{key[0]}:{key[1]}"] == row.attempt
        assert row.key.endswith(f":{row.attempt}")
        assert (row.attempt >= 2) == (key in failed)
    with StateStore.open_reader(outcome.state_path) as store:
        keys = store._conn.execute("SELECT key FROM attempts").fetchall()
    assert len(keys) == len(set(keys)) == sum(r.attempt for r in final.values())


async def test_retry_of_failed_download_only_downloads(
    start_simulator: StartSimulator, write_manifest: WriteManifest
) -> None:
    """A job whose download failed is downloaded again by `retry`, never separated again."""
    sim = await start_simulator(seed=9)
    manifest = write_manifest(projects=sim.project_ids[:1], models=MODELS[:2])
    out = load_manifest(manifest).output
    blocker = out / MODELS[0] / sim.project_ids[0]
    blocker.parent.mkdir(parents=True)
    blocker.write_text("a file where the job's folder should be")
    first = await sweep(sim, manifest)
    state = rows(first)
    assert first.exit_code == 1
    assert state[(sim.project_ids[0], MODELS[0])].status is Status.DOWNLOAD_FAILED
    assert state[(sim.project_ids[0], MODELS[1])].status is Status.DONE

    blocker.unlink()
    second = await sweep(sim, manifest, mode=Mode.RETRY)
    record = sim.record.snapshot()
    assert second.exit_code == 0
    assert record["separations_total"] == 2
    assert rows(second)[(sim.project_ids[0], MODELS[0])].attempt == 1
    assert check_tree(second.output, second.state_path) >= 2


async def test_poll_timeout_then_resume_same_task(
    start_simulator: StartSimulator, write_manifest: WriteManifest
) -> None:
    """A task past poll.timeout is `timed_out`; the next run polls that same task to the end."""
    sim = await start_simulator(seed=10, durations={"demucs": 600.0})  # 0.6 s at x1000
    short = write_manifest(
        projects=sim.project_ids[:1],
        models=["demucs"],
        poll={"initial": "0.01s", "max": "0.02s", "timeout": "0.1s"},
    )
    first = await sweep(sim, short)
    row = rows(first)[(sim.project_ids[0], "demucs")]
    assert first.exit_code == 1 and row.status is Status.TIMED_OUT and row.task_id

    long = write_manifest(projects=sim.project_ids[:1], models=["demucs"])
    second = await sweep(sim, long)
    after = rows(second)[(sim.project_ids[0], "demucs")]
    assert second.exit_code == 0
    assert after.status is Status.DONE and after.task_id == row.task_id
    assert sim.record.snapshot()["separations_total"] == 1


async def test_missing_project_is_skipped_without_a_key(
    start_simulator: StartSimulator, write_manifest: WriteManifest
) -> None:
    """A project the API does not know is reported and never submitted."""
    sim = await start_simulator(seed=11)
    manifest = write_manifest(projects=["prj_nope", sim.project_ids[0]], models=["mdx23c"])
    outcome = await sweep(sim, manifest)
    row = rows(outcome)[("prj_nope", "mdx23c")]
    assert outcome.exit_code == 1
    assert row.status is Status.SKIPPED and row.key is None and "404" in (row.error or "")
    assert sim.record.snapshot()["separations_total"] == 1


async def test_summary_written(
    start_simulator: StartSimulator, write_manifest: WriteManifest
) -> None:
    """summary.json holds counts per status and model, requests and wall time."""
    sim = await start_simulator(seed=12)
    manifest = write_manifest(projects=sim.project_ids[:1], models=MODELS[:2])
    outcome = await sweep(sim, manifest)
    data = json.loads((outcome.output / "summary.json").read_text())
    assert data["counts"] == {"done": 2}
    assert data["per_model"] == {m: {"done": 1} for m in sorted(MODELS[:2])}
    assert data["api_requests"] == outcome.summary["api_requests"] > 0
    assert data["exit_code"] == 0 and data["wall_seconds"] > 0


async def test_unconfirmed_submission_is_resent_with_the_same_key(
    start_simulator: StartSimulator, write_manifest: WriteManifest
) -> None:
    """A POST applied but never confirmed stays `submitting`; the next run's re-send replays it."""
    sim = await start_simulator(seed=13, faults={"error_after_write": 1.0})
    manifest = write_manifest(
        projects=sim.project_ids[:2], models=["mdx23c"], retries={"requests": 2, "tasks": 0}
    )
    first = await sweep(sim, manifest)
    before = rows(first)
    assert first.exit_code == 1
    assert {r.status for r in before.values()} == {Status.SUBMITTING}
    assert all("not confirmed" in (r.error or "") for r in before.values())
    assert sim.record.snapshot()["separations_total"] == 2  # applied, once each

    sim.context.profile = sim.profile.replace(
        faults=sim.profile.faults.replace(error_after_write=0)
    )
    second = await sweep(sim, manifest)
    after = rows(second)
    record = sim.record.snapshot()
    assert second.exit_code == 0
    assert record["separations_total"] == 2 and record["duplicate_separations"] == 0
    assert record["replays"] >= 2
    assert {k: r.key for k, r in after.items()} == {k: r.key for k, r in before.items()}
