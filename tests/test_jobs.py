"""Jobs: expansion order and uniqueness, streaming, idempotency keys, shards."""

from __future__ import annotations

import hashlib
import inspect
import os
import re
import subprocess
import sys
import tracemalloc
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orchestrator.errors import UsageError
from orchestrator.jobs import (
    MAX_KEY_LENGTH,
    JobId,
    Shard,
    count_jobs,
    idempotency_key,
    in_shard,
    iter_jobs,
    parse_shard,
    select_shard,
    shard_of,
)
from orchestrator.manifest import load_manifest
from orchestrator.spec import (
    ApiSpec,
    Limits,
    Manifest,
    PollSpec,
    RetrySpec,
    Sweep,
)

ROOT = Path(__file__).resolve().parent.parent
KEY_CHARSET = re.compile(r"[A-Za-z0-9._:-]+")


def manifest_of(*sweeps: tuple[list[str], list[str]]) -> Manifest:
    """A manifest with the given (projects, models) sweeps and every other field at default."""
    return Manifest(
        path=Path("m.yaml"),
        version=1,
        name="m",
        api=ApiSpec(),
        output=Path("out/m"),
        key_scope="m",
        limits=Limits(),
        poll=PollSpec(),
        retries=RetrySpec(),
        download_types=("vocals",),
        sweeps=tuple(Sweep(projects=tuple(p), models=tuple(m)) for p, m in sweeps),
    )


# --- expansion ---------------------------------------------------------------------------


def test_jobs_are_project_major_in_manifest_order() -> None:
    """Within a sweep, every model of the first project comes before the second project."""
    manifest = manifest_of((["a", "b"], ["m1", "m2"]))
    assert list(iter_jobs(manifest)) == [
        JobId("a", "m1"),
        JobId("a", "m2"),
        JobId("b", "m1"),
        JobId("b", "m2"),
    ]


def test_jobs_repeated_across_sweeps_are_yielded_once() -> None:
    """A (project, model) pair of an earlier sweep is skipped; the rest keep their order."""
    manifest = manifest_of((["a", "b"], ["m1", "m2"]), (["b", "c"], ["m2", "m3"]))
    assert list(iter_jobs(manifest)) == [
        JobId("a", "m1"),
        JobId("a", "m2"),
        JobId("b", "m1"),
        JobId("b", "m2"),
        JobId("b", "m3"),  # (b, m2) was in the first sweep
        JobId("c", "m2"),
        JobId("c", "m3"),
    ]


def test_jobs_repeated_within_a_sweep_are_yielded_once() -> None:
    """Repeated projects or models inside one sweep produce each pair once."""
    manifest = manifest_of((["a", "b", "a"], ["m1", "m1", "m2"]))
    assert list(iter_jobs(manifest)) == [
        JobId("a", "m1"),
        JobId("a", "m2"),
        JobId("b", "m1"),
        JobId("b", "m2"),
    ]


def test_pair_is_a_repeat_only_when_one_sweep_holds_both_halves() -> None:
    """A project seen with another model, and a model seen with another project, is a new job."""
    manifest = manifest_of((["a"], ["m1"]), (["b"], ["m2"]), (["a", "b"], ["m2", "m1"]))
    assert list(iter_jobs(manifest)) == [
        JobId("a", "m1"),
        JobId("b", "m2"),
        JobId("a", "m2"),
        JobId("b", "m1"),
    ]


def test_count_jobs_counts_unique_jobs() -> None:
    """count_jobs equals the number of unique jobs iter_jobs yields."""
    manifest = manifest_of((["a", "b", "c"], ["m1", "m2"]), (["a", "d"], ["m1", "m3"]))
    assert count_jobs(manifest) == len(set(iter_jobs(manifest))) == len(list(iter_jobs(manifest)))
    assert count_jobs(manifest) == 6 + 3


def test_demo_manifest_has_36_jobs() -> None:
    """The demo runs three projects with all twelve models: 36 jobs."""
    demo = load_manifest(ROOT / "jobs" / "demo.yaml")
    assert count_jobs(demo) == 36
    assert next(iter(iter_jobs(demo))) == JobId("prj_0001", "mdx23c")


def test_iter_jobs_is_a_generator() -> None:
    """iter_jobs returns a lazy generator, not a list."""
    jobs = iter_jobs(manifest_of((["a"], ["m1"])))
    assert inspect.isgenerator(jobs)
    assert next(jobs) == JobId("a", "m1")


def test_iter_jobs_streams_a_100000_job_manifest(tmp_path: Path) -> None:
    """The first jobs of a 100,000-job projects_file come without materialising the job list."""
    ids = "".join(f"prj_{n:06d}\n" for n in range(100_000))
    (tmp_path / "ids.txt").write_text("# big catalogue\n" + ids, encoding="utf-8")
    (tmp_path / "big.yaml").write_text(
        "version: 1\nname: big\nsweeps: [{projects_file: ids.txt, models: [mdx23c]}]\n",
        encoding="utf-8",
    )
    manifest = load_manifest(tmp_path / "big.yaml")

    tracemalloc.start()
    jobs = iter_jobs(manifest)
    first = [next(jobs) for _ in range(10)]
    streamed_peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()

    tracemalloc.start()
    everything = list(iter_jobs(manifest))
    listed_peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()

    assert first[0] == JobId("prj_000000", "mdx23c") and first[-1] == JobId("prj_000009", "mdx23c")
    assert len(everything) == 100_000
    assert streamed_peak * 100 < listed_peak, (streamed_peak, listed_peak)


# --- idempotency keys --------------------------------------------------------------------


def test_key_golden_value() -> None:
    """The key of a fixed submission is a known string: the format must never drift."""
    assert idempotency_key("catalogue-compare", "prj_a", "mdx23c", 1) == (
        "ss1:catalogue-compare:prj_a:mdx23c:1"
    )
    assert idempotency_key("nightly-2026-03-01", "prj_0001", "bs_roformer", 2) == (
        "ss1:nightly-2026-03-01:prj_0001:bs_roformer:2"
    )


def test_long_key_golden_value() -> None:
    """A key over 255 characters is its first 189 characters, `:h`, and the full key's sha256."""
    full = f"ss1:{'s' * 300}:prj_a:mdx23c:1"
    key = idempotency_key("s" * 300, "prj_a", "mdx23c", 1)
    assert key == (
        "ss1:" + "s" * 185 + ":ha86ef82a11c4111a3b3a1ca2fcfe861780deed52efee2605a3372617ae283555"
    )
    assert key == full[:189] + ":h" + hashlib.sha256(full.encode()).hexdigest()
    assert len(key) == MAX_KEY_LENGTH


def test_key_at_the_length_limit_is_not_shortened() -> None:
    """A key of exactly 255 characters is kept whole; one character more is shortened."""
    fixed = len("ss1:::mdx23c:1")
    exact = idempotency_key("s" * (255 - fixed - 1), "p", "mdx23c", 1)
    assert len(exact) == 255 and exact.endswith(":p:mdx23c:1")
    longer = idempotency_key("s" * (255 - fixed), "p", "mdx23c", 1)
    assert len(longer) == 255 and ":h" in longer[-66:-64]


@pytest.mark.parametrize(
    "changed",
    [
        ("scope-b", "prj_a", "mdx23c", 1),
        ("scope-a", "prj_b", "mdx23c", 1),
        ("scope-a", "prj_a", "demucs", 1),
        ("scope-a", "prj_a", "mdx23c", 2),
    ],
)
def test_key_changes_with_each_input(changed: tuple[str, str, str, int]) -> None:
    """Changing any one of scope, project, model or attempt changes the key."""
    assert idempotency_key(*changed) != idempotency_key("scope-a", "prj_a", "mdx23c", 1)


def test_key_is_the_same_in_another_process() -> None:
    """Another interpreter with another hash seed computes the same key and shard."""
    code = (
        "from orchestrator.jobs import idempotency_key, shard_of;"
        "print(idempotency_key('x' * 300, 'prj_a', 'demucs', 3), shard_of('prj_a', 97))"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    ).stdout.split()
    assert out == [
        idempotency_key("x" * 300, "prj_a", "demucs", 3),
        str(shard_of("prj_a", 97)),
    ]


@pytest.mark.parametrize(
    ("scope", "project", "model", "attempt"),
    [
        ("a:b", "prj_a", "mdx23c", 1),
        ("", "prj_a", "mdx23c", 1),
        ("scope", "prj/a", "mdx23c", 1),
        ("scope", "prj_a", "mdx 23c", 1),
        ("scope", "prj_a", "mdx23c", 0),
        ("scope", "prj_a", "mdx23c", True),
        ("scope", "prj_a", "mdx23c", "1"),
        ("{date}", "prj_a", "mdx23c", 1),
    ],
)
def test_key_refuses_ambiguous_inputs(scope: str, project: str, model: str, attempt: int) -> None:
    """Components with `:` or other characters, empty ones, and attempts below 1 are refused."""
    with pytest.raises(ValueError):
        idempotency_key(scope, project, model, attempt)


COMPONENT = st.text(
    alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-",
    min_size=1,
    max_size=300,
)
PROJECT = st.from_regex(r"[A-Za-z0-9_-]{1,128}", fullmatch=True)
ATTEMPT = st.integers(min_value=1, max_value=10**12)
SUBMISSION = st.tuples(COMPONENT, PROJECT, COMPONENT, ATTEMPT)


@given(SUBMISSION)
def test_key_is_short_and_safe(submission: tuple[str, str, str, int]) -> None:
    """Every key is at most 255 characters of [A-Za-z0-9._:-], and the same on every call."""
    key = idempotency_key(*submission)
    assert len(key) <= MAX_KEY_LENGTH
    assert KEY_CHARSET.fullmatch(key)
    assert key == idempotency_key(*submission)


@given(SUBMISSION, SUBMISSION)
def test_different_submissions_have_different_keys(
    one: tuple[str, str, str, int], other: tuple[str, str, str, int]
) -> None:
    """Two different (scope, project, model, attempt) never share a key."""
    if one != other:
        assert idempotency_key(*one) != idempotency_key(*other)


@given(SUBMISSION, st.integers(min_value=0, max_value=3), COMPONENT)
def test_changing_one_component_changes_the_key(
    submission: tuple[str, str, str, int], index: int, replacement: str
) -> None:
    """Replacing any single component with a different value gives a different key."""
    changed = list(submission)
    if index == 3:
        changed[3] = submission[3] + len(replacement)
    elif index == 1:
        changed[1] = replacement.replace(".", "_")[:128]
    else:
        changed[index] = replacement
    if tuple(changed) != submission:
        assert idempotency_key(*changed) != idempotency_key(*submission)  # type: ignore[arg-type]


def test_keys_of_a_long_sweep_are_distinct() -> None:
    """Long keys that share their readable prefix still differ, through their digest."""
    scope = "s" * 250
    keys = {idempotency_key(scope, f"prj_{n}", "mdx23c", a) for n in range(200) for a in (1, 2)}
    assert len(keys) == 400
    assert all(key.startswith("ss1:" + "s" * 185) for key in keys)


# --- shards ------------------------------------------------------------------------------

JOBS = [JobId(f"prj_{n:04d}", m) for n in range(300) for m in ("mdx23c", "demucs", "bs_roformer")]


def test_shard_golden_values() -> None:
    """Shards are a fixed function of (project, N): known values never change."""
    assert shard_of("prj_a", 1000) == 692
    assert shard_of("prj_0001", 7) == 0
    digest = hashlib.sha256(b"prj_a").digest()
    assert shard_of("prj_a", 1000) == int.from_bytes(digest[:8], "big") % 1000


@pytest.mark.parametrize("count", [1, 2, 3, 4, 7, 16])
def test_shards_cover_every_job_exactly_once(count: int) -> None:
    """Shards 0..N-1 together hold every job, each in exactly one shard."""
    for job in JOBS:
        assert sum(in_shard(job, index, count) for index in range(count)) == 1
    shards = [[job for job in JOBS if in_shard(job, index, count)] for index in range(count)]
    assert Counter(job for shard in shards for job in shard) == Counter(JOBS)


def test_a_project_lives_in_one_shard() -> None:
    """Every job of a project is in the same shard, so per_project holds across shards."""
    for count in (2, 5, 16):
        shards_per_project: dict[str, set[int]] = {}
        for job in JOBS:
            index = next(i for i in range(count) if in_shard(job, i, count))
            shards_per_project.setdefault(job.project, set()).add(index)
        assert all(len(found) == 1 for found in shards_per_project.values())


def test_shards_are_roughly_balanced() -> None:
    """300 projects over 4 shards put between 20% and 30% of the jobs in each shard."""
    sizes = Counter(shard_of(job.project, 4) for job in JOBS)
    assert all(0.20 * len(JOBS) < sizes[i] < 0.30 * len(JOBS) for i in range(4)), sizes


def test_adding_projects_or_models_does_not_move_jobs() -> None:
    """A job keeps its shard when projects or models are added to the manifest."""
    before = manifest_of((["a", "b", "c"], ["mdx23c", "demucs"]))
    after = manifest_of((["z", "a", "x", "b", "c", "y"], ["bs_roformer", "mdx23c", "demucs"]))
    placed = {job: shard_of(job.project, 5) for job in iter_jobs(before)}
    moved = [
        job for job in iter_jobs(after) if job in placed and shard_of(job.project, 5) != placed[job]
    ]
    assert len(placed) == 6 and not moved


def test_shard_of_refuses_zero_shards() -> None:
    """Zero shards is a programming error."""
    with pytest.raises(ValueError):
        shard_of("prj_a", 0)


def test_shard_selects_and_names() -> None:
    """`Shard` parses I/N, names its files, and `select_shard` keeps only its jobs, in order."""
    shard = Shard.parse("1/3")
    assert (str(shard), shard.name) == ("1/3", "shard-1-of-3")
    chosen = list(select_shard(JOBS, shard))
    assert chosen == [job for job in JOBS if shard_of(job.project, 3) == 1]
    assert list(select_shard(JOBS, None)) == JOBS
    manifest = manifest_of(([f"prj_{n}" for n in range(40)], ["mdx23c", "demucs"]))
    counts = [count_jobs(manifest, Shard(i, 3)) for i in range(3)]
    assert sum(counts) == count_jobs(manifest) == 80 and all(counts)


@pytest.mark.parametrize(
    ("text", "parsed"), [("0/1", (0, 1)), ("3/4", (3, 4)), (" 0 / 4 ", (0, 4))]
)
def test_parse_shard_accepts_zero_based_index(text: str, parsed: tuple[int, int]) -> None:
    """`I/N` with 0 <= I < N is parsed to (I, N)."""
    assert parse_shard(text) == parsed


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("4/4", "between 0 and 3"),
        ("1/0", "at least 1"),
        ("-1/4", "must be I/N"),
        ("a/b", "must be I/N"),
        ("2", "must be I/N"),
        ("", "must be I/N"),
        ("1/2/3", "must be I/N"),
        ("1.5/4", "must be I/N"),
    ],
)
def test_parse_shard_refuses_with_a_usage_error(text: str, message: str) -> None:
    """A malformed or out-of-range shard is a UsageError (exit 2) saying what is allowed."""
    with pytest.raises(UsageError, match=message) as info:
        parse_shard(text)
    assert info.value.exit_code == 2
