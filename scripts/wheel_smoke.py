"""Install stemsweep from its wheel, away from the checkout, and use it as a user would.

`make wheel-smoke` runs this, and so does CI. It builds the sdist and, from it, the wheel
(`python -m build`), installs the wheel into two fresh virtual environments in a temporary
folder, the core alone and the core with every extra, and from another temporary folder:

- the wheel holds the model catalogue, the simulator's profiles and the licence, and
  declares `License-Expression: MIT`; the build printed no warning about the licence;
- core: `stemsweep models` lists the twelve models and `plan` reads a manifest; `simulate`
  and `report` stop with exit 2 and one line naming their extra; numpy is not installed;
- full: `stemsweep simulate --profile bench` serves, and the CORE install runs a sweep
  against it as it would against the real API (what the container image does);
- full: a manifest with `api.simulator: {profile: default}` runs in-process, and
  `stemsweep report` writes the comparison page of its tree.

Prints the wheel's size and how long each install took. Needs Python >= 3.11 and PyPI.
Exits 1 at the first check that fails, saying which.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TWELVE = 12
SIM_MODELS = ("mdx23c", "demucs")
SIM_PROJECTS = ("prj_0001", "prj_0002")
STARTUP_SECONDS = 60.0  # how long `stemsweep simulate` may take to print its base URL
LEAKS = {"VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "PYTHONUSERBASE"}

IN_PROCESS = """\
version: 1
name: smoke
api:
  simulator: {profile: default, seed: 3, time_scale: 2000}
limits: {max_in_flight: 4, per_project: 2, requests_per_second: 100}
poll: {initial: 0.05s, max: 0.2s, timeout: 2m}
sweeps:
  - projects: [%s]
    models: %s
"""

AGAINST_API = """\
version: 1
name: core
limits: {max_in_flight: 4, per_project: 2, requests_per_second: 100}
poll: {initial: 0.05s, max: 0.2s, timeout: 2m}
download: {types: [vocals]}
sweeps:
  - projects: [%s]
    models: %s
"""


class SmokeError(Exception):
    """A check that failed; the message says which."""


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="stemsweep-smoke-") as tmp:
        base = Path(tmp)
        try:
            smoke(base)
        except SmokeError as exc:
            print(f"wheel smoke FAILED: {exc}", file=sys.stderr)
            return 1
    print("wheel smoke passed")
    return 0


def smoke(base: Path) -> None:
    wheel = build_wheel(base / "dist")
    check_wheel(wheel)
    print(f"wheel: {wheel.name}, {wheel.stat().st_size / 1024:.0f} KiB")
    core = make_venv(base / "core", f"{wheel}", "core")
    full = make_venv(base / "full", f"{wheel}[all]", "core and every extra")
    work = base / "work"
    work.mkdir()
    check_core(core, work)
    check_core_against_simulator(core, full, work)
    check_in_process_simulator_and_report(full, work)


def build_wheel(dist: Path) -> Path:
    """The wheel built from the sdist of the checkout (its working tree)."""
    done = run([sys.executable, "-m", "build", "--outdir", str(dist), str(ROOT)], cwd=ROOT)
    licence_warnings = [
        line
        for line in (done.stdout + done.stderr).splitlines()
        if "licen" in line.lower() and re.search(r"warn|deprecat", line, re.IGNORECASE)
    ]
    if licence_warnings:
        raise SmokeError("the build warned about the licence:\n" + "\n".join(licence_warnings))
    [wheel] = dist.glob("*.whl")
    return wheel


def check_wheel(wheel: Path) -> None:
    """The package data and the licence are in the wheel."""
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        [metadata] = [n for n in names if n.endswith(".dist-info/METADATA")]
        headers = archive.read(metadata).decode()
    wanted = {
        "orchestrator/models.yaml",
        "orchestrator/simulator/profiles/default.yaml",
        "orchestrator/simulator/profiles/chaos.yaml",
        "orchestrator/simulator/profiles/bench.yaml",
    }
    if missing := wanted - names:
        raise SmokeError(f"the wheel lacks {sorted(missing)}")
    if not any(n.endswith(".dist-info/licenses/LICENSE") for n in names):
        raise SmokeError("the wheel lacks its LICENSE")
    if "License-Expression: MIT" not in headers.splitlines():
        raise SmokeError("the wheel's METADATA has no `License-Expression: MIT`")


def make_venv(folder: Path, requirement: str, label: str) -> Path:
    """A fresh venv with `requirement` installed; its bin folder."""
    run([sys.executable, "-m", "venv", str(folder)], cwd=folder.parent)
    start = time.monotonic()
    pip = [str(folder / "bin" / "python"), "-m", "pip", "install", "--quiet"]
    run([*pip, "--disable-pip-version-check", requirement], cwd=folder.parent)
    print(f"install, {label}: {time.monotonic() - start:.1f} s")
    return folder / "bin"


def check_core(core: Path, work: Path) -> None:
    """The core install lists the models, plans, and names the extra a command lacks."""
    listed = stemsweep(core, "models", cwd=work).stdout.splitlines()
    if len(listed) != TWELVE or not listed[0].startswith("mdx23c"):
        raise SmokeError(f"`stemsweep models` printed {listed!r}")
    manifest = write(work / "core.yaml", AGAINST_API % (", ".join(SIM_PROJECTS), "all"))
    plan = stemsweep(core, "plan", str(manifest), cwd=work).stdout
    if not re.search(rf"^jobs:\s+{len(SIM_PROJECTS) * TWELVE}:", plan, re.MULTILINE):
        raise SmokeError(f"`stemsweep plan` printed {plan!r}")
    if run([str(core / "python"), "-c", "import numpy"], cwd=work, check=False).returncode == 0:
        raise SmokeError("the core install brought numpy")
    for args, extra in ((["simulate"], "simulator"), (["report", str(work)], "report")):
        done = stemsweep(core, *args, cwd=work, expect=2)
        lines = done.stderr.strip().splitlines()  # the error, then what to run next
        if (
            len(lines) != 2
            or f"pip install 'stemsweep[{extra}]'" not in lines[0]
            or not lines[1].startswith("next: install the extra")
        ):
            raise SmokeError(f"`stemsweep {args[0]}` without its extra said {done.stderr!r}")


def check_core_against_simulator(core: Path, full: Path, work: Path) -> None:
    """The core install runs a sweep against `stemsweep simulate --profile bench`."""
    command = [str(full / "stemsweep"), "simulate", "--profile", "bench"]
    command += ["--port", "0", "--storage-port", "0", "--time-scale", "600"]
    pipe = subprocess.PIPE
    server = subprocess.Popen(command, cwd=work, env=environment(), stdout=pipe, text=True)
    try:
        base_url = read_base_url(server)
        manifest = work / "core.yaml"
        out = work / "out-core"
        env = {"YOUKA_API_KEY": "yk_smoke"}
        args = ["run", str(manifest), "--api-url", base_url, "--out", str(out), "--no-progress"]
        stemsweep(core, *args, cwd=work, env=env)
        check_tree(out, SIM_PROJECTS, ("mdx23c", "demucs", "bs_roformer"), TWELVE)
    finally:
        server.terminate()
        server.wait(timeout=30)


def read_base_url(server: subprocess.Popen[str]) -> str:
    """The base URL `stemsweep simulate` prints; it is killed if it prints none in time."""
    assert server.stdout is not None
    watchdog = threading.Timer(STARTUP_SECONDS, server.kill)
    watchdog.start()
    try:
        for line in server.stdout:
            if line.startswith("base URL:"):
                return line.split(":", 1)[1].strip()
    finally:
        watchdog.cancel()
    raise SmokeError(f"`stemsweep simulate` exited {server.wait()} without serving")


def check_in_process_simulator_and_report(full: Path, work: Path) -> None:
    """`api.simulator: {profile: default}` runs in-process; the report is written."""
    text = IN_PROCESS % (", ".join(SIM_PROJECTS), f"[{', '.join(SIM_MODELS)}]")
    manifest = write(work / "smoke.yaml", text)
    out = work / "out-smoke"
    stemsweep(full, "run", str(manifest), "--out", str(out), "--no-progress", cwd=work)
    check_tree(out, SIM_PROJECTS, SIM_MODELS, len(SIM_MODELS))
    html = Path(stemsweep(full, "report", str(out), cwd=work).stdout.strip())
    if not html.is_file() or not (html.parent / "report.json").is_file():
        raise SmokeError(f"`stemsweep report` wrote no page at {html}")


def check_tree(out: Path, projects: tuple[str, ...], models: tuple[str, ...], per: int) -> None:
    """Every job of the run is done, with its job.json and audio files in the tree."""
    summary = json.loads((out / "summary.json").read_text())
    done = summary["counts"].get("done", 0)
    if done != len(projects) * per:
        raise SmokeError(f"{out}: {done} jobs done, expected {len(projects) * per}: {summary}")
    for model in models:
        for project in projects:
            folder = out / model / project
            if not (folder / "job.json").is_file() or not any(folder.glob("*.wav")):
                raise SmokeError(f"{folder}: no job.json or no stem")


def stemsweep(
    bin_dir: Path, *args: str, cwd: Path, expect: int = 0, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    command = [str(bin_dir / "stemsweep"), *args]
    done = run(command, cwd=cwd, check=False, env=env)
    if done.returncode != expect:
        raise SmokeError(
            f"`stemsweep {' '.join(args)}` exited {done.returncode}, expected {expect}:\n"
            f"{done.stdout}\n{done.stderr}"
        )
    if "Traceback" in done.stderr:
        raise SmokeError(f"`stemsweep {' '.join(args)}` printed a traceback:\n{done.stderr}")
    return done


def run(
    command: list[str], *, cwd: Path, check: bool = True, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        command, cwd=cwd, env={**environment(), **(env or {})}, capture_output=True, text=True
    )
    if check and done.returncode != 0:
        raise SmokeError(f"{' '.join(command)} exited {done.returncode}:\n{done.stderr}")
    return done


def environment() -> dict[str, str]:
    """The caller's environment (proxies, pip's settings) less what would point a command at
    the checkout's venv or at a real API."""
    return {k: v for k, v in os.environ.items() if k not in LEAKS and not k.startswith("YOUKA_")}


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


if __name__ == "__main__":
    sys.exit(main())
