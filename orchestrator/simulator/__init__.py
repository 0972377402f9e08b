"""A local Youka-compatible API: projects, tasks, faults and synthesized audio."""

from __future__ import annotations

from typing import Any

__all__ = ["Simulator", "SimulatorThread"]


def __getattr__(name: str) -> Any:
    # Imported on first use, so that a module of the simulator used alone (`synth`'s songs,
    # say) does not load the server.
    if name in __all__:
        from orchestrator.simulator import server

        return getattr(server, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
