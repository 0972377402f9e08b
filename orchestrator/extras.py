"""The optional parts of stemsweep, and the extra that installs each.

    extra       needed by                                    brings
    simulator   `simulate`, a manifest with `api.simulator`  numpy, soundfile, scipy
    report      `report`                                     numpy, soundfile, scipy, pyloudnorm

The core (`run`, `retry`, `plan`, `status`, `models` against the real API) imports none of
them. A command that reaches a missing one is stopped by the CLI with exit 2 and the line
`missing_extra` writes, naming the extra to install, instead of a traceback.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

# The importable modules each extra installs (pyproject.toml's optional-dependencies; a test
# checks that the two agree). Every one is imported under the name it is installed as.
EXTRAS: Mapping[str, frozenset[str]] = MappingProxyType(
    {
        "simulator": frozenset({"numpy", "soundfile", "scipy"}),
        "report": frozenset({"numpy", "soundfile", "scipy", "pyloudnorm"}),
    }
)

# Per command: the extra it needs, and what needs it, for the message.
_COMMANDS: Mapping[str, tuple[str, str]] = MappingProxyType(
    {
        "report": ("report", "stemsweep report"),
        "simulate": ("simulator", "stemsweep simulate"),
        "run": ("simulator", "a manifest with api.simulator"),
        "retry": ("simulator", "a manifest with api.simulator"),
    }
)


def missing_extra(module: str | None, command: str | None) -> str | None:
    """What to install when `command` failed to import `module`; None if no extra has it.

    `module` is `ModuleNotFoundError.name` (a submodule counts as its package). The extra is
    the command's own when it provides the module, otherwise the first extra that does.
    """
    root = (module or "").partition(".")[0]
    providers = [extra for extra, modules in EXTRAS.items() if root in modules]
    if not providers:
        return None
    extra, what = _COMMANDS.get(command or "", ("", ""))
    if extra not in providers:
        extra, what = providers[0], f"stemsweep {command}" if command else "stemsweep"
    return (
        f"{what} needs the {extra} extra ({root} is not installed): "
        f"pip install 'stemsweep[{extra}]'"
    )
