"""Simulator profiles: loading, validation with clear messages, durations, replace()."""

from __future__ import annotations

import pytest

from orchestrator.simulator.profile import (
    DEFAULT_DURATIONS,
    Profile,
    ProfileError,
    dump_profile,
    load_profile,
)


def test_shipped_profiles_load():
    """default, chaos and bench load and differ where they should."""
    default, chaos, bench = (load_profile(n) for n in ("default", "chaos", "bench"))
    assert default == Profile(name="default")
    assert chaos.stems_mode == "replace" and chaos.faults.truncate_body > 0
    assert bench.synthesize is False and bench.record_requests is False
    assert len(set(bench.durations.values())) == 1 and bench.duration_jitter == 0


def test_unknown_setting_is_refused_with_the_known_ones(tmp_path):
    """A misspelt setting names itself, the file, and the settings that exist."""
    path = tmp_path / "typo.yaml"
    path.write_text("projects: 3\nmax_inprogress: 2\n")
    with pytest.raises(ProfileError) as caught:
        load_profile(path)
    message = str(caught.value)
    assert str(path) in message and "max_inprogress" in message and "max_in_progress" in message


def test_unknown_fault_is_refused(tmp_path):
    """A misspelt fault is refused rather than silently off."""
    path = tmp_path / "typo.yaml"
    path.write_text("faults:\n  drop_conection: 0.1\n")
    with pytest.raises(ProfileError, match="faults.drop_conection"):
        load_profile(path)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("faults:\n  rate_limit: 1.5\n", "between 0 and 1"),
        ("url_ttl: soon\n", "duration like 3s"),
        ("durations:\n  spleeter: 3s\n", "unknown model 'spleeter'"),
        ("stems_mode: merge\n", "accumulate or replace"),
        ("projects: 0\n", "projects"),
        ("queue_time: [20s, 2s]\n", "queue_time"),
        ("- a list\n", "mapping"),
        ("projects: [1\n", "not valid YAML"),
    ],
)
def test_invalid_values_are_refused(tmp_path, text, fragment):
    """Out-of-range, malformed and unparseable values are refused, saying what is allowed."""
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ProfileError, match=fragment):
        load_profile(path)


def test_unknown_profile_name_lists_the_shipped_ones():
    """An unknown profile name is refused with the names that exist."""
    with pytest.raises(ProfileError, match="chaos"):
        load_profile("nope")


def test_durations_read_like_the_manifests(tmp_path):
    """Profile durations use the manifest's grammar: numbers, ms, s, m, h, `1.5m`, `1m30s`, 0."""
    path = tmp_path / "timing.yaml"
    path.write_text(
        "url_ttl: 1.5m\ncreated_time: 0\nfinalize_after: 1m30s\nqueue_time: [0s, 500ms]\n"
        "limit_retry_after: 1h\ndurations: {demucs: 7}\n"
    )
    profile = load_profile(path)
    assert profile.url_ttl == 90.0 and profile.created_time == 0.0
    assert profile.finalize_after == 90.0 and profile.queue_time == (0.0, 0.5)
    assert profile.limit_retry_after == 3600.0 and profile.duration("demucs") == 7.0
    path.write_text("url_ttl: 3 s\n")  # one spelling everywhere: no space inside
    with pytest.raises(ProfileError, match="url_ttl: must be a duration like 3s"):
        load_profile(path)


def test_replace_validates_and_merges_durations():
    """replace() validates its changes and merges durations into the table."""
    profile = load_profile("bench").replace(projects=8334, durations={"demucs": 5})
    assert profile.projects == 8334 and profile.duration("demucs") == 5
    assert profile.duration("mdx23c") == 60.0
    with pytest.raises(ProfileError):
        profile.replace(max_in_progress=0)
    assert set(Profile().durations) == set(DEFAULT_DURATIONS)


def test_dumped_profile_loads_back_equal(tmp_path):
    """dump_profile writes YAML that load_profile reads back into the same profile."""
    profile = load_profile("chaos").replace(projects=42, max_in_progress=3, api_key="yk_x")
    path = tmp_path / "custom.yaml"
    path.write_text(dump_profile(profile))
    assert load_profile(path) == profile


def test_credit_and_key_settings_are_read_and_checked(tmp_path):
    """Key retention reads as a duration; prices and the credits status are validated."""
    path = tmp_path / "p.yaml"
    path.write_text(
        "idempotency_key_ttl: 24h\nupload_url_ttl: 90s\ncredit_multipliers: {demucs: 3}\n"
        "insufficient_credits_status: 403\n"
    )
    profile = load_profile(path)
    assert profile.idempotency_key_ttl == 86400 and profile.upload_url_ttl == 90
    assert profile.credit_multipliers["demucs"] == 3 and profile.credit_multipliers["mdx23c"] == 1
    assert profile.insufficient_credits_status == 403
    dumped = tmp_path / "dumped.yaml"
    dumped.write_text(dump_profile(profile))
    assert load_profile(dumped).replace(name="p") == profile
    with pytest.raises(ProfileError, match="insufficient_credits_status: expected 402 or 403"):
        Profile().replace(insufficient_credits_status=401)
    with pytest.raises(ProfileError, match="credit_multipliers: unknown model 'spleeter'"):
        Profile().replace(credit_multipliers={"spleeter": 1})
    with pytest.raises(ProfileError, match="idempotency_key_ttl"):
        Profile().replace(idempotency_key_ttl=-1)
