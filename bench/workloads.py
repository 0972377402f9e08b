"""Simulated workloads the benchmarks share."""

from __future__ import annotations

from orchestrator.simulator.profile import DEFAULT_DURATIONS, Profile, load_profile

# How long one separation runs, per model, in simulated seconds: the default profile's,
# with its shortest and longest stretched to the range of 30 s to 5 min.
REALISTIC_DURATIONS: dict[str, float] = {
    **DEFAULT_DURATIONS,
    "uvr_mdxnet_kara_2": 30.0,
    "demucs": 300.0,
}


def realistic_profile() -> Profile:
    """The bench profile with varied durations: each model's +-25%, after 1 s created and
    2 to 20 s queued (the default profile's), and the tiny stems of the bench."""
    return load_profile("bench").replace(
        durations=REALISTIC_DURATIONS,
        duration_jitter=0.25,
        created_time=1.0,
        queue_time=(2.0, 20.0),
    )
