"""The model catalogue: `orchestrator/models.yaml`, shipped inside the package.

It is read with `importlib.resources`, so it is found wherever stemsweep is installed (a
wheel, pipx, the container image) and from any working directory. `configs/models.yaml` in
the source tree is a copy for reading, kept equal by a test (`make configs` refreshes it).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib.resources import files
from importlib.resources.abc import Traversable

import yaml

MODELS_RESOURCE: Traversable = files("orchestrator") / "models.yaml"


@dataclass(frozen=True)
class ModelInfo:
    """One Youka split model and its documented purpose."""

    name: str
    purpose: str


@cache
def models() -> tuple[ModelInfo, ...]:
    """The twelve split models, in catalogue order."""
    data = yaml.safe_load(MODELS_RESOURCE.read_text(encoding="utf-8"))
    return tuple(ModelInfo(name=m["name"], purpose=m["purpose"]) for m in data["models"])


def model_names() -> tuple[str, ...]:
    """The names of the twelve split models, in catalogue order."""
    return tuple(m.name for m in models())
