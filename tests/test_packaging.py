"""What an installed stemsweep reads: package data, declared for the wheel, and its copies
in configs/. (`make wheel-smoke` installs the wheel and uses it away from the checkout.)"""

from __future__ import annotations

import tomllib
from fnmatch import fnmatch
from pathlib import Path

import orchestrator
from orchestrator import catalog
from orchestrator.simulator import profile

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = Path(orchestrator.__file__).parent
HEADER = (
    "# A copy of {source}, the one stemsweep reads:\n# edit that one, then run `make configs`.\n"
)


def package_data_patterns() -> dict[Path, list[str]]:
    """pyproject.toml's package-data: each package's folder and its glob patterns."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    data = config["tool"]["setuptools"]["package-data"]
    return {ROOT / name.replace(".", "/"): patterns for name, patterns in data.items()}


def test_every_yaml_of_the_package_is_declared_as_package_data() -> None:
    """Each YAML file in the package matches a package-data pattern, so the wheel holds it."""
    patterns = package_data_patterns()
    files = sorted(PACKAGE.rglob("*.yaml"))
    assert len(files) >= 4  # the catalogue and the three shipped profiles
    for path in files:
        assert any(
            path.is_relative_to(folder)
            and any(fnmatch(path.relative_to(folder).as_posix(), p) for p in globs)
            for folder, globs in patterns.items()
        ), f"{path.relative_to(ROOT)} is not package data: the wheel would lack it"


def test_the_catalogue_and_the_profiles_are_read_from_inside_the_package() -> None:
    """Both are package resources (found wherever stemsweep is installed), not checkout files."""
    assert Path(str(catalog.MODELS_RESOURCE)).is_relative_to(PACKAGE)
    assert Path(str(profile.PROFILES)).is_relative_to(PACKAGE)
    assert len(catalog.model_names()) == 12
    names = profile.shipped_profiles()
    assert names == ["bench", "chaos", "default"]
    assert [profile.load_profile(name).name for name in names] == names


def test_configs_holds_an_exact_copy_of_the_catalogue_and_each_shipped_profile() -> None:
    """configs/ has one copy per packaged file, its text under a header (`make configs`)."""
    sources = {ROOT / "configs" / "models.yaml": PACKAGE / "models.yaml"}
    for source in (PACKAGE / "simulator" / "profiles").glob("*.yaml"):
        sources[ROOT / "configs" / "simulator" / source.name] = source
    copies = {*(ROOT / "configs").glob("*.yaml"), *(ROOT / "configs" / "simulator").glob("*")}
    assert copies == set(sources), "configs/ and the package differ: run `make configs`"
    for copy, source in sources.items():
        expected = HEADER.format(source=source.relative_to(ROOT).as_posix()) + source.read_text()
        assert copy.read_text() == expected, f"{copy} is not {source}: run `make configs`"
