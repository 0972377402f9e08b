"""The Dockerfile: the wheel built and installed in one stage, copied into a small image
that runs as a non-root user with `stemsweep` as its entry point; the build context holds
what the wheel is made of. (`scripts/check_image.sh` builds and runs it.)"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = (ROOT / "Dockerfile").read_text()


def stages() -> list[str]:
    """The Dockerfile's stages, each from its FROM line on."""
    return re.split(r"^(?=FROM )", DOCKERFILE, flags=re.MULTILINE)[1:]


def test_the_wheel_is_built_in_one_stage_and_only_its_venv_is_kept() -> None:
    """Two stages on the same base; the image takes the venv the wheel was installed into."""
    build, image = stages()
    assert build.startswith("FROM ${PYTHON_IMAGE} AS build")
    assert image.startswith("FROM ${PYTHON_IMAGE}\n")
    assert re.search(r"pip wheel [^\n]*--no-deps", build)
    assert "--python /opt/stemsweep/bin/python install" in build
    assert '"${wheel}${EXTRAS:+[$EXTRAS]}"' in build  # the wheel, with the extras asked for
    copies = re.findall(r"^COPY (.+)$", image, flags=re.MULTILINE)
    assert copies == ["--from=build /opt/stemsweep /opt/stemsweep"]


def test_the_image_runs_stemsweep_as_a_numeric_non_root_user() -> None:
    """USER is numeric (Kubernetes' runAsNonRoot can check it) and not 0; the entry point."""
    image = stages()[-1]
    user = re.search(r"^USER (\d+):(\d+)$", image, flags=re.MULTILINE)
    assert user and int(user[1]) > 0 and int(user[2]) > 0
    assert re.search(rf"useradd --uid {user[1]} ", image)
    assert re.search(r'^ENTRYPOINT \["stemsweep"\]$', image, flags=re.MULTILINE)


def test_the_build_context_holds_every_file_the_wheel_is_made_of() -> None:
    """pyproject.toml, its readme and licence files, and the package are copied, not ignored."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    needed = {"pyproject.toml", project["readme"], *project["license-files"], "orchestrator"}
    build = stages()[0]
    copied = {
        source.rstrip("/")
        for line in re.findall(r"^COPY (?!--)(.+)$", build, flags=re.MULTILINE)
        for source in line.split()[:-1]
    }
    assert needed <= copied
    rules = [
        line
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line and not line.startswith("#")
    ]
    assert rules[0] == "*"  # everything else stays out of the context (.venv, out/, .git)
    allowed = {rule[1:].rstrip("/") for rule in rules if rule.startswith("!")}
    assert needed <= allowed
