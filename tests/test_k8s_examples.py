"""The Kubernetes examples in configs/k8s: valid for every Kubernetes version the README
claims, running the Dockerfile's image, with shards that cover the whole sweep."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes_validate import ValidationError, validate
from kubernetes_validate.utils import all_versions

from orchestrator.cli import cli
from orchestrator.commands.common import EXIT_USAGE
from orchestrator.jobs import Shard, count_jobs, iter_jobs, select_shard
from orchestrator.manifest import load_manifest

ROOT = Path(__file__).resolve().parent.parent
K8S = ROOT / "configs" / "k8s"
INDEX = "$(JOB_COMPLETION_INDEX)"
IMAGE = "registry.example.com/stemsweep"  # the name the README builds and pushes
EXAMPLES = sorted(p.name for p in K8S.glob("*.yaml"))
VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]


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


def claimed_minimum() -> tuple[int, int]:
    """The oldest Kubernetes the README says the examples run on ("Kubernetes 1.N or later")."""
    match = re.search(r"Kubernetes (\d+)\.(\d+) or later", (ROOT / "README.md").read_text())
    assert match, "the README's Kubernetes section names the oldest version the examples need"
    return int(match[1]), int(match[2])


def claimed_versions() -> list[str]:
    """Every minor version from the README's minimum on that the validator has schemas for."""
    minors = {tuple(int(n) for n in v.split(".")[:2]) for v in all_versions()}
    low = claimed_minimum()
    return [f"{major}.{minor}" for major, minor in sorted(minors) if (major, minor) >= low]


def test_the_validated_versions_start_at_the_readme_claim() -> None:
    """The schemas checked begin at the version the README claims and run to the newest."""
    versions = claimed_versions()
    assert versions[0] == "{}.{}".format(*claimed_minimum())
    assert len(versions) >= 6  # 1.29 to 1.34 at least, the versions the examples are used on


@pytest.mark.parametrize("version", claimed_versions())
def test_every_example_validates_strictly_against_the_version_schema(version: str) -> None:
    """Each example passes the API schema of `version`: no missing, unknown or mistyped field."""
    for name in EXAMPLES:
        for document in yaml.safe_load_all((K8S / name).read_text(encoding="utf-8")):
            try:
                used = validate(document, version, strict=True)
            except ValidationError as exc:
                where = ".".join(str(p) for p in exc.path)
                pytest.fail(f"{name} on Kubernetes {version}: {where}: {exc.message}")
            assert used == version  # its own schema, not that of an older version


def test_the_claim_is_the_shared_read_write_many_tree() -> None:
    """pvc.yaml is the claim both Jobs mount for the tree, writable by every pod at once."""
    pvc = load("pvc.yaml")
    assert pvc["kind"] == "PersistentVolumeClaim"
    assert pvc["spec"]["accessModes"] == ["ReadWriteMany"]
    assert pvc["spec"]["resources"]["requests"]["storage"]
    for spec in job_specs():
        volumes = spec["template"]["spec"]["volumes"]
        claims = [v["persistentVolumeClaim"] for v in volumes if "persistentVolumeClaim" in v]
        assert [c["claimName"] for c in claims] == [pvc["metadata"]["name"]]


@pytest.mark.parametrize("spec", job_specs(), ids=["job", "cronjob"])
def test_the_pods_run_this_version_of_the_image_as_its_user(spec: dict[str, Any]) -> None:
    """The image is the Dockerfile's, tagged with the package's version, run as its user."""
    assert container(spec)["image"] == f"{IMAGE}:{VERSION}"
    assert f"{IMAGE}:{VERSION}" in (ROOT / "README.md").read_text()  # the build it documents
    user = re.search(r"^USER (\d+):(\d+)$", (ROOT / "Dockerfile").read_text(), re.MULTILINE)
    assert user, "the Dockerfile names its user by number"
    pod = spec["template"]["spec"]["securityContext"]
    assert pod["runAsNonRoot"]
    assert (pod["runAsUser"], pod["fsGroup"]) == (int(user[1]), int(user[2]))


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
