"""Manifest parsing and validation: defaults, the issue's example, durations, bad manifests."""

from __future__ import annotations

import dataclasses
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from orchestrator.catalog import model_names
from orchestrator.durations import format_duration, parse_duration
from orchestrator.errors import ManifestError, UsageError
from orchestrator.manifest import load_manifest
from orchestrator.spec import (
    DEFAULT_BASE_URL,
    DEFAULT_MAX_IN_FLIGHT,
    DEFAULT_PER_PROJECT,
    DEFAULT_POLL_INITIAL,
    DEFAULT_POLL_MAX,
    DEFAULT_POLL_TIMEOUT,
    DEFAULT_REQUEST_ATTEMPTS,
    DEFAULT_REQUESTS_PER_SECOND,
    DEFAULT_TASK_RETRIES,
    DEFAULT_TYPES,
    ApiSpec,
    Limits,
    Manifest,
    PollSpec,
    RetrySpec,
    SimulatorSpec,
    Sweep,
    resolve_key_scope,
)

ROOT = Path(__file__).resolve().parent.parent
BAD = Path("tests/manifests/bad")  # relative to ROOT, as a user would type it

ISSUE_EXAMPLE = """\
version: 1                          # required; anything else is refused
name: catalogue-compare             # required; [A-Za-z0-9][A-Za-z0-9._-]*
api:
  base_url: https://api.youka.io/api/v1   # default; overridden by YOUKA_API_URL, then --api-url
  simulator: false                  # true, or {profile, seed, time_scale}: run against an
                                    # in-process simulator (no key needed)
output: out/catalogue-compare       # root of the per-model tree; --out overrides
key_scope: catalogue-compare        # default: name; may contain {date} (UTC date at run start)
limits:
  max_in_flight: 8                  # separations submitted and not yet terminal, whole run
  per_project: 1                    # jobs in flight on one project
  per_model: {audioshakeai: 2}      # optional caps per model
  requests_per_second: 5            # every API request of the run, paced, not just retried
poll: {initial: 3s, max: 60s, timeout: 30m}   # per-task backoff and deadline
retries: {requests: 6, tasks: 0}    # attempts per HTTP call; automatic re-submissions
download: {types: [instrumental, vocals, backing_vocals]}   # default: every type, original included
sweeps:                             # required, one or more
  - projects: [prj_a, prj_b]        # or projects_file: catalogue.txt
    models: all                     # or a list of model names
"""

MINIMAL = "version: 1\nname: mini\nsweeps:\n  - projects: [prj_a]\n    models: [mdx23c]\n"


def write(tmp_path: Path, text: str, name: str = "m.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def refusal(tmp_path: Path, text: str) -> str:
    """The message `load_manifest` refuses `text` with."""
    with pytest.raises(ManifestError) as info:
        load_manifest(write(tmp_path, text))
    return str(info.value)


# --- what a valid manifest becomes -------------------------------------------------------


def test_minimal_manifest_gets_every_default(tmp_path: Path) -> None:
    """A manifest with only version, name and sweeps has every other field at its default."""
    path = write(tmp_path, MINIMAL)
    manifest = load_manifest(path)
    assert manifest == Manifest(
        path=path,
        version=1,
        name="mini",
        api=ApiSpec(base_url=DEFAULT_BASE_URL, simulator=None),
        output=Path("out/mini"),
        key_scope="mini",
        limits=Limits(
            max_in_flight=DEFAULT_MAX_IN_FLIGHT,
            per_project=DEFAULT_PER_PROJECT,
            per_model={},
            requests_per_second=DEFAULT_REQUESTS_PER_SECOND,
        ),
        poll=PollSpec(
            initial=DEFAULT_POLL_INITIAL, max=DEFAULT_POLL_MAX, timeout=DEFAULT_POLL_TIMEOUT
        ),
        retries=RetrySpec(requests=DEFAULT_REQUEST_ATTEMPTS, tasks=DEFAULT_TASK_RETRIES),
        download_types=DEFAULT_TYPES,
        sweeps=(Sweep(projects=("prj_a",), models=("mdx23c",)),),
        references=None,
    )


def test_defaults_are_the_documented_values() -> None:
    """The named defaults are the values the issue documents."""
    assert (DEFAULT_MAX_IN_FLIGHT, DEFAULT_PER_PROJECT, DEFAULT_REQUESTS_PER_SECOND) == (8, 1, 5.0)
    assert (DEFAULT_POLL_INITIAL, DEFAULT_POLL_MAX, DEFAULT_POLL_TIMEOUT) == (3.0, 60.0, 1800.0)
    assert (DEFAULT_REQUEST_ATTEMPTS, DEFAULT_TASK_RETRIES) == (6, 0)
    assert DEFAULT_TYPES == ("original", "instrumental", "vocals", "backing_vocals")
    assert DEFAULT_BASE_URL == "https://api.youka.io/api/v1"


def test_issue_example_parses_to_expected_objects(tmp_path: Path) -> None:
    """The full example manifest of the issue parses to exactly the expected frozen objects."""
    path = write(tmp_path, ISSUE_EXAMPLE)
    manifest = load_manifest(path)
    assert manifest == Manifest(
        path=path,
        version=1,
        name="catalogue-compare",
        api=ApiSpec(base_url="https://api.youka.io/api/v1", simulator=None),
        output=Path("out/catalogue-compare"),
        key_scope="catalogue-compare",
        limits=Limits(
            max_in_flight=8, per_project=1, per_model={"audioshakeai": 2}, requests_per_second=5.0
        ),
        poll=PollSpec(initial=3.0, max=60.0, timeout=1800.0),
        retries=RetrySpec(requests=6, tasks=0),
        download_types=("instrumental", "vocals", "backing_vocals"),
        sweeps=(Sweep(projects=("prj_a", "prj_b"), models=model_names()),),
        references=None,
    )
    assert isinstance(manifest.limits.requests_per_second, float)


def test_models_all_is_the_twelve_in_catalogue_order(tmp_path: Path) -> None:
    """`models: all` expands to the twelve catalogue models, in catalogue order."""
    manifest = load_manifest(write(tmp_path, MINIMAL.replace("[mdx23c]", "all")))
    assert manifest.sweeps[0].models == model_names()
    assert len(manifest.sweeps[0].models) == 12


def test_manifest_objects_are_frozen(tmp_path: Path) -> None:
    """The manifest and its parts cannot be changed after loading, per_model included."""
    manifest = load_manifest(write(tmp_path, ISSUE_EXAMPLE))
    with pytest.raises(dataclasses.FrozenInstanceError):
        manifest.name = "other"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        manifest.limits.max_in_flight = 99  # type: ignore[misc]
    with pytest.raises(TypeError):
        manifest.limits.per_model["demucs"] = 5  # type: ignore[index]
    assert isinstance(manifest.sweeps[0].projects, tuple)


def test_simulator_forms(tmp_path: Path) -> None:
    """`simulator: true` is the default simulator; a mapping sets profile, seed and time_scale."""
    on = load_manifest(write(tmp_path, MINIMAL + "api: {simulator: true}\n"))
    assert on.api.simulator == SimulatorSpec()
    off = load_manifest(write(tmp_path, MINIMAL + "api: {simulator: false}\n"))
    assert off.api.simulator is None
    custom = load_manifest(
        write(tmp_path, MINIMAL + "api: {simulator: {profile: chaos, seed: 7, time_scale: 40}}\n")
    )
    assert custom.api.simulator == SimulatorSpec(profile="chaos", seed=7, time_scale=40.0)


def test_projects_file_is_read_relative_to_the_manifest(tmp_path: Path) -> None:
    """`projects_file` is read from the manifest's folder; comments and blank lines are skipped."""
    (tmp_path / "jobs").mkdir()
    (tmp_path / "jobs" / "ids.txt").write_text(
        "# catalogue\n\nprj_a\n  prj_b   # trailing note\nprj_a\n", encoding="utf-8"
    )
    text = "version: 1\nname: f\nsweeps: [{projects_file: ids.txt, models: [demucs]}]\n"
    manifest = load_manifest(write(tmp_path / "jobs", text))
    assert manifest.sweeps[0].projects == ("prj_a", "prj_b")  # repeated ids kept once
    assert manifest.sweeps[0].projects_file == tmp_path / "jobs" / "ids.txt"


def test_output_is_relative_to_the_current_directory(tmp_path: Path) -> None:
    """`output` is taken as written (not joined to the manifest's folder); `{name}` is filled."""
    sub = tmp_path / "jobs"
    sub.mkdir()
    given = load_manifest(write(sub, MINIMAL + "output: results/x\n"))
    assert given.output == Path("results/x")
    templated = load_manifest(write(sub, MINIMAL + "output: runs/{name}\n"))
    assert templated.output == Path("runs/mini")


def test_references_are_relative_to_the_manifest(tmp_path: Path) -> None:
    """`references` is joined to the manifest's folder, and need not exist yet."""
    manifest = load_manifest(write(tmp_path, MINIMAL + "references: refs\n"))
    assert manifest.references == tmp_path / "refs"


def test_key_scope_with_date_is_kept_as_template(tmp_path: Path) -> None:
    """A `{date}` key scope is stored as a template, to be filled at run start."""
    manifest = load_manifest(write(tmp_path, MINIMAL + "key_scope: nightly-{date}\n"))
    assert manifest.key_scope == "nightly-{date}"


def test_base_url_trailing_slash_is_dropped(tmp_path: Path) -> None:
    """A base URL is kept without its trailing slash, so paths can be appended."""
    manifest = load_manifest(
        write(tmp_path, MINIMAL + "api: {base_url: 'http://127.0.0.1:8080/v1/'}\n")
    )
    assert manifest.api.base_url == "http://127.0.0.1:8080/v1"


def test_shipped_manifests_load(tmp_path: Path) -> None:
    """The manifests shipped in jobs/ are valid, and the demo is the one the issue describes.

    The songs demo reads the folder `make demo` writes (out/songs-demo-music): it is
    checked in a copy of the checkout's layout, with the files the demo's script writes."""
    for path in sorted((ROOT / "jobs").glob("*.yaml")):
        if path.name == "songs-demo.yaml":
            continue
        load_manifest(path)
    jobs = tmp_path / "jobs"
    jobs.mkdir()
    songs_demo = jobs / "songs-demo.yaml"
    songs_demo.write_bytes((ROOT / "jobs" / "songs-demo.yaml").read_bytes())
    subprocess.run(
        [sys.executable, ROOT / "scripts" / "demo_songs.py", tmp_path / "out" / "songs-demo-music"],
        check=True,
        capture_output=True,
    )
    songs = load_manifest(songs_demo)
    [sweep] = songs.sweeps
    assert len(sweep.songs) == 4  # three songs and a copy of one
    demo = load_manifest(ROOT / "jobs" / "demo.yaml")
    assert demo.name == "demo"
    assert demo.api.simulator == SimulatorSpec(profile="default", seed=7, time_scale=40.0)
    assert demo.output == Path("out/demo")
    assert demo.sweeps == (
        Sweep(projects=("prj_0001", "prj_0002", "prj_0003"), models=model_names()),
    )
    assert demo.limits == Limits(max_in_flight=8, per_project=1, requests_per_second=20.0)
    assert demo.poll == PollSpec(initial=0.25, max=2.0, timeout=300.0)
    assert demo.retries == RetrySpec(requests=6, tasks=1)
    assert demo.download_types == DEFAULT_TYPES
    nightly = load_manifest(ROOT / "jobs" / "nightly.yaml")
    assert "{date}" in nightly.key_scope


# --- durations and key scopes ------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("3s", 3.0),
        ("0.5s", 0.5),
        ("250ms", 0.25),
        ("10m", 600.0),
        ("1h", 3600.0),
        ("1m30s", 90.0),
        ("1h30m", 5400.0),
        ("2h0m5s", 7205.0),
        ("1s500ms", 1.5),
        ("1.5m", 90.0),
        (".5s", 0.5),
        ("90", 90.0),
        ("0", 0.0),
        ("0s", 0.0),
        (0, 0.0),
        (" 3s ", 3.0),
        (90, 90.0),
        (2.5, 2.5),
    ],
)
def test_duration_accepted(text: str | float, seconds: float) -> None:
    """Each accepted duration spelling is the expected number of seconds, as a float."""
    parsed = parse_duration(text)
    assert parsed == pytest.approx(seconds)
    assert isinstance(parsed, float)


@pytest.mark.parametrize(
    "text",
    [
        "3 parsecs",
        "3 s",
        "s",
        "",
        "1d",
        "30s1m",
        "1m1m",
        "-3s",
        -1.0,
        True,
        float("inf"),
        float("nan"),
        "1e3s",
        "3sec",
        None,
        [3],
    ],
)
def test_duration_refused(text: object) -> None:
    """Unparseable, negative, infinite and boolean durations are refused."""
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


def test_manifest_durations_read_1_5m_and_refuse_zero(tmp_path: Path) -> None:
    """The manifest reads the shared grammar (`1.5m` is 90 s) and wants its durations > 0."""
    loaded = load_manifest(write(tmp_path, MINIMAL + "poll: {initial: 1.5m, max: 1.5m}\n"))
    assert loaded.poll.initial == loaded.poll.max == 90.0
    message = refusal(tmp_path, MINIMAL + "poll: {timeout: 0}\n")
    assert "poll.timeout" in message and "must be a positive duration (got 0)" in message


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0.25, "250ms"), (3.0, "3s"), (600.0, "10m"), (90.0, "1m30s"), (3600.0, "1h")],
)
def test_format_duration_round_trips(seconds: float, text: str) -> None:
    """`format_duration` spells seconds the way a manifest would, and parses back."""
    assert format_duration(seconds) == text
    assert parse_duration(text) == seconds


def test_resolve_key_scope_fills_utc_date() -> None:
    """`{date}` becomes the UTC date of the given moment, even when it is another day locally."""
    late_in_tokyo = datetime(2026, 3, 1, 7, 30, tzinfo=timezone(timedelta(hours=9)))
    assert resolve_key_scope("nightly-{date}", late_in_tokyo) == "nightly-2026-02-28"
    assert resolve_key_scope("plain", datetime(2026, 3, 1, tzinfo=UTC)) == "plain"


def test_resolve_key_scope_refuses_naive_datetime() -> None:
    """A naive datetime is refused, since its date depends on the machine's time zone."""
    with pytest.raises(ValueError, match="timezone"):
        resolve_key_scope("nightly-{date}", datetime(2026, 3, 1))


# --- refusals ----------------------------------------------------------------------------


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    """A manifest that does not exist is refused with its path and `not found`."""
    with pytest.raises(ManifestError, match=r"nope\.yaml: file not found"):
        load_manifest(tmp_path / "nope.yaml")


def test_directory_is_a_clear_error(tmp_path: Path) -> None:
    """A directory given as the manifest is refused as such."""
    with pytest.raises(ManifestError, match="is a directory"):
        load_manifest(tmp_path)


def test_binary_file_is_a_clear_error(tmp_path: Path) -> None:
    """A manifest that is not UTF-8 text is refused as such."""
    path = tmp_path / "m.yaml"
    path.write_bytes(b"version: 1\nname: \xff\xfe\n")
    with pytest.raises(ManifestError, match="not UTF-8 text"):
        load_manifest(path)


def test_deeply_nested_yaml_is_a_clear_error(tmp_path: Path) -> None:
    """YAML nested deeper than the parser can follow is refused with a message, not a crash."""
    message = refusal(tmp_path, "version: 1\nname: deep\nx: " + "[" * 20_000 + "]" * 20_000)
    assert "nested too deeply" in message


def test_manifest_error_is_a_usage_error() -> None:
    """Manifest refusals are usage errors, which the CLI maps to exit 2."""
    assert issubclass(ManifestError, UsageError)
    assert ManifestError("x").exit_code == 2


def test_unknown_model_lists_allowed_when_nothing_is_close(tmp_path: Path) -> None:
    """An unknown model far from every name lists all twelve allowed models."""
    message = refusal(tmp_path, MINIMAL.replace("[mdx23c]", "[zzzz]"))
    for name in model_names():
        assert name in message


def test_projects_file_line_numbers_and_many_bad_ids(tmp_path: Path) -> None:
    """Bad ids in a projects_file are reported with line numbers: the first five, then a count."""
    ids = "\n".join(["prj_ok"] + [f"bad/{n}" for n in range(8)])
    (tmp_path / "ids.txt").write_text(ids, encoding="utf-8")
    message = refusal(
        tmp_path, "version: 1\nname: f\nsweeps: [{projects_file: ids.txt, models: all}]\n"
    )
    assert "line 2: 'bad/0'" in message
    assert "line 6: 'bad/4'" in message
    assert "bad/5" not in message
    assert "and 3 more" in message


def test_projects_file_without_ids_is_refused(tmp_path: Path) -> None:
    """A projects_file of comments only is refused: a sweep needs at least one project."""
    (tmp_path / "ids.txt").write_text("# nothing yet\n\n", encoding="utf-8")
    message = refusal(
        tmp_path, "version: 1\nname: f\nsweeps: [{projects_file: ids.txt, models: all}]\n"
    )
    assert "sweeps[0].projects_file" in message
    assert "lists no project ids" in message


def test_project_id_length_limit(tmp_path: Path) -> None:
    """A project id of 128 characters is accepted, one of 129 refused."""
    ok = load_manifest(write(tmp_path, MINIMAL.replace("prj_a", "p" * 128)))
    assert ok.sweeps[0].projects == ("p" * 128,)
    message = refusal(tmp_path, MINIMAL.replace("prj_a", "p" * 129))
    assert "sweeps[0].projects[0]" in message
    assert "at most 128 characters" in message


def test_many_problems_are_capped(tmp_path: Path) -> None:
    """Hundreds of problems are reported as the first twenty and a count of the rest."""
    projects = ", ".join(f"'bad/{n}'" for n in range(300))
    message = refusal(tmp_path, MINIMAL.replace("[prj_a]", f"[{projects}]"))
    assert message.startswith(f"{tmp_path / 'm.yaml'}: 300 problems:")
    assert "and 280 more" in message
    assert len(message.splitlines()) == 22


def test_merge_keys_are_not_duplicates(tmp_path: Path) -> None:
    """A YAML merge key that a sibling key overrides is allowed; it is not a duplicate key."""
    text = (
        "version: 1\nname: m\nx-base: &base {max_in_flight: 2, per_project: 1}\n"
        "limits: {<<: *base, max_in_flight: 4}\nsweeps: [{projects: [a], models: [demucs]}]\n"
    )
    message = refusal(tmp_path, text)  # `x-base` is still an unknown key...
    assert "x-base" in message and "duplicate" not in message  # ...but no duplicate is claimed


def _expectations(path: Path) -> tuple[list[str], list[str]]:
    """The `# expect:` and `# forbid:` substrings at the top of a bad manifest."""
    expect: list[str] = []
    forbid: list[str] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        found = re.match(r"#\s*(expect|forbid):(.*)", line)
        if not found:
            break
        (expect if found[1] == "expect" else forbid).append(found[2].strip())
    return expect, forbid


BAD_MANIFESTS = sorted(p.name for p in (ROOT / BAD).glob("*.yaml"))


def test_bad_corpus_is_large_enough() -> None:
    """The corpus of bad manifests covers at least fifteen distinct mistakes."""
    assert len(BAD_MANIFESTS) >= 15


@pytest.mark.parametrize("name", BAD_MANIFESTS)
def test_bad_manifest_is_refused_clearly(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each bad manifest raises ManifestError naming the file, the field and what is allowed."""
    monkeypatch.chdir(ROOT)
    path = BAD / name
    expect, forbid = _expectations(path)
    assert expect, f"{name} has no `# expect:` line"
    with pytest.raises(ManifestError) as info:
        load_manifest(path)
    message = str(info.value)
    assert message.startswith(f"{path}:"), message
    for wanted in expect:
        assert wanted in message, f"{wanted!r} not in:\n{message}"
    for unwanted in forbid:
        assert unwanted not in message, f"{unwanted!r} echoed in:\n{message}"
    assert "Traceback" not in message and "pydantic" not in message
    assert "_Manifest" not in message and "_Limits" not in message  # no internal names
