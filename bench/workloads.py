"""Simulated workloads the benchmarks share."""

from __future__ import annotations

from orchestrator.simulator.profile import Profile, load_profile

# How long one separation runs, per model, in simulated seconds: 30 s to 5 min, in the
# order of the default profile's (heavier models take longer).
REALISTIC_DURATIONS: dict[str, float] = {
    "mdx23c": 60.0,
    "audioshakeai": 120.0,
    "audioshake_vocals_lead": 90.0,
    "musicai_instrumental_only": 75.0,
    "musicai_lead_backing_other": 150.0,
    "musicai_with_backing_vocals": 100.0,
    "musicai_without_backing_vocals": 90.0,
    "uvr_mdxnet_kara_2": 30.0,
    "bs_roformer": 180.0,
    "mel_band_roformer_instrumental_becruily": 150.0,
    "mel_band_roformer_instrumental_instv7_gabox": 150.0,
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
