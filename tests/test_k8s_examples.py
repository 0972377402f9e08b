"""The Kubernetes examples in configs/k8s: valid YAML whose shards cover the whole sweep."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from orchestrator.cli import EXIT_USAGE, cli
from orchestrator.jobs import Shard, count_jobs, iter_jobs, select_shard
from orchestrator.manifest import load_manifest

ROOT = Path(__file__).resolve().parent.parent
K8S = ROOT / "configs" / "k8s"
INDEX = "$(JOB_COMPLETION_INDEX)"


def load(name: str) -> dict[str, Any]:
    data = yaml.safe_load((K8S / name).read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def job_specs() -> list[dict[str, Any]]:
    """The Job spec of indexed-job.yaml and the one cronjob.yaml starts."""
    return [load("indexed-job.yaml")["spec"], load("cronjob.yaml")["spec"]["jobTemplate"]["spec"]]


def container(spec: dict[str, Any]) -> dict[str, Any]:
    [only] = spec["template"]["spec"]["containers"]
    return dict(only)


def option(args: list[str], name: str) -> str:
    return args[args.index(name) + 1]


@pytest.mark.parametrize("spec", job_specs(), ids=["job", "cronjob"])
def test_indexed_job_runs_one_shard_per_index(spec: dict[str, Any]) -> None:
    """Indexed completions, and `--shard $(JOB_COMPLETION_INDEX)/N` with N == completions."""
    assert spec["completionMode"] == "Indexed"
    assert 1 <= spec["parallelism"] <= spec["completions"]
    assert spec["backoffLimitPerIndex"] >= 1
    assert spec["template"]["spec"]["restartPolicy"] == "Never"
    main = container(spec)
    assert main["command"] == ["stemsweep"] and main["args"][0] == "run"
    shard = option(main["args"], "--shard")
    assert re.fullmatch(re.escape(INDEX) + r"/\d+", shard)
    assert int(shard.split("/")[1]) == spec["completions"]
    [index_env] = [e for e in main["env"] if e["name"] == "JOB_COMPLETION_INDEX"]
    assert "job-completion-index" in index_env["valueFrom"]["fieldRef"]["fieldPath"]


@pytest.mark.parametrize("spec", job_specs(), ids=["job", "cronjob"])
def test_key_secret_volume_and_resources(spec: dict[str, Any]) -> None:
    """The key comes from a Secret, the tree from a PVC, and the pod states its resources."""
    pod = spec["template"]["spec"]
    main = container(spec)
    [key] = [e for e in main["env"] if e["name"] == "YOUKA_API_KEY"]
    assert set(key) == {"name", "valueFrom"} and "secretKeyRef" in key["valueFrom"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["mountPath"]: volumes[m["name"]] for m in main["volumeMounts"]}
    out = option(main["args"], "--out")
    [tree] = [v for path, v in mounts.items() if out.startswith(path + "/")]
    assert "persistentVolumeClaim" in tree
    manifest = main["args"][1]
    [jobs] = [v for path, v in mounts.items() if manifest.startswith(path + "/")]
    assert "configMap" in jobs
    for kind in ("requests", "limits"):
        assert {"cpu", "memory"} <= set(main["resources"][kind])
    rules = spec["podFailurePolicy"]["rules"]
    assert any(
        r["action"] == "FailJob" and r["onExitCodes"]["values"] == [EXIT_USAGE]
        for r in rules
        if "onExitCodes" in r
    )


def test_cronjob_runs_nightly_one_at_a_time_with_the_same_pods() -> None:
    """The CronJob forbids overlapping nights and starts exactly the Job of indexed-job.yaml."""
    cron = load("cronjob.yaml")["spec"]
    assert cron["concurrencyPolicy"] == "Forbid"
    assert len(cron["schedule"].split()) == 5
    assert cron["jobTemplate"]["spec"] == load("indexed-job.yaml")["spec"]


def test_the_example_command_parses_and_its_shards_cover_the_manifest() -> None:
    """Each index's arguments are valid for `stemsweep run`; the shards hold every job once."""
    spec = load("indexed-job.yaml")["spec"]
    args = container(spec)["args"]
    manifest = load_manifest(ROOT / "jobs" / Path(args[1]).name)  # the ConfigMap's source
    seen: list[Any] = []
    for index in range(spec["completions"]):
        filled = [a.replace(INDEX, str(index)) for a in args]
        context = cli.commands["run"].make_context("run", filled[1:])  # type: ignore[attr-defined]
        seen += select_shard(iter_jobs(manifest), Shard.parse(context.params["shard"]))
    assert len(seen) == len(set(seen)) == count_jobs(manifest)
