"""The model catalogue (`configs/models.yaml`) and where the project's configs live."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

import yaml

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"
MODELS_FILE = CONFIG_DIR / "models.yaml"


@dataclass(frozen=True)
class ModelInfo:
    """One Youka split model and its documented purpose."""

    name: str
    purpose: str


@cache
def models() -> tuple[ModelInfo, ...]:
    """The twelve split models, in catalogue order."""
    data = yaml.safe_load(MODELS_FILE.read_text(encoding="utf-8"))
    return tuple(ModelInfo(name=m["name"], purpose=m["purpose"]) for m in data["models"])


def model_names() -> tuple[str, ...]:
    """The names of the twelve split models, in catalogue order."""
    return tuple(m.name for m in models())
