"""The benchmarks, in the order `python -m bench` runs them."""

from __future__ import annotations

from types import ModuleType

from bench import cpu, downloads, makespan, polling, recipe, report, scale, songs, versus

BENCHMARKS: dict[str, ModuleType] = {
    module.NAME: module
    for module in (makespan, polling, cpu, downloads, songs, recipe, scale, report, versus)
}
