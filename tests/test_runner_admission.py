"""Admission of buffered jobs under max_in_flight, per_project and per_model (no I/O)."""

from __future__ import annotations

from orchestrator.jobs import JobId
from orchestrator.lifecycle import Action, Decision
from orchestrator.scheduling import ALL_GATES, SEPARATION_GATES, Admission, Ticket
from orchestrator.spec import Limits

SUBMIT = Decision(Action.SUBMIT, 1)
DOWNLOAD = Decision(Action.DOWNLOAD_ONLY, 1)


def entry(project: str, model: str, decision: Decision = SUBMIT) -> Ticket:
    return Ticket(JobId(project, model), decision)


def test_max_in_flight_bounds_separations() -> None:
    """No more separations than max_in_flight start; a finished one lets the next in."""
    adm = Admission(Limits(max_in_flight=2, per_project=5), active=100)
    a, b, c = entry("p1", "m"), entry("p2", "m"), entry("p3", "m")
    assert adm.offer(a) and adm.offer(b)
    assert not adm.offer(c) and adm.waiting == 1
    assert adm.release(a, SEPARATION_GATES) == [c]
    assert adm.waiting == 0 and adm.in_flight.used == 2


def test_blocked_project_lets_later_projects_go() -> None:
    """A job waiting for its project does not hold back a later job of another project."""
    adm = Admission(Limits(max_in_flight=4, per_project=1), active=100)
    first, same, other = entry("p1", "a"), entry("p1", "b"), entry("p2", "a")
    assert adm.offer(first)
    assert not adm.offer(same)
    assert adm.offer(other)


def test_project_slot_is_held_until_download_ends() -> None:
    """Ending the separation frees in_flight, not the project: that waits for the files."""
    adm = Admission(Limits(max_in_flight=4, per_project=1), active=100)
    first, same = entry("p1", "a"), entry("p1", "b")
    adm.offer(first)
    adm.offer(same)
    assert adm.release(first, SEPARATION_GATES) == []
    assert adm.in_flight.used == 0
    assert adm.release(first, ALL_GATES) == [same]


def test_per_model_cap() -> None:
    """A capped model runs at most its cap at once; other models are not held back."""
    adm = Admission(Limits(max_in_flight=8, per_project=8, per_model={"demucs": 1}), active=100)
    d1, d2, m1 = entry("p1", "demucs"), entry("p2", "demucs"), entry("p3", "mdx23c")
    assert adm.offer(d1)
    assert not adm.offer(d2)
    assert adm.offer(m1)
    assert adm.release(d1, SEPARATION_GATES) == [d2]


def test_downloads_take_no_separation_slot() -> None:
    """A download-only job needs its project and an active slot, not in_flight."""
    adm = Admission(Limits(max_in_flight=1, per_project=1), active=100)
    sep, dl = entry("p1", "a"), entry("p2", "a", DOWNLOAD)
    assert adm.offer(sep)
    assert adm.offer(dl)
    assert adm.in_flight.used == 1


def test_woken_job_blocked_elsewhere_passes_the_turn_on() -> None:
    """When a freed slot's first waiter is blocked by another gate, the next waiter gets it."""
    adm = Admission(Limits(max_in_flight=1, per_project=1), active=100)
    running = entry("p1", "a")
    assert adm.offer(running)
    same_project = entry("p1", "b")  # blocked by p1
    other = entry("p2", "a")  # passes p2, blocked by in_flight
    assert not adm.offer(same_project) and not adm.offer(other)
    started = adm.release(running, SEPARATION_GATES)
    assert started == [other]
    assert adm.waiting == 1


def test_idle_project_gates_are_forgotten() -> None:
    """Memory follows the running jobs: a project with nothing running or waiting is dropped."""
    adm = Admission(Limits(max_in_flight=10, per_project=1), active=100)
    jobs = [entry(f"p{i}", "a") for i in range(50)]
    for job in jobs:
        adm.offer(job)
    for job in jobs:
        adm.release(job, ALL_GATES)
    assert adm._projects == {}
    assert adm.in_flight.used == 0 and adm.active.used == 0


def test_limits_hold_under_many_random_releases() -> None:
    """Whatever the order of releases, no gate ever exceeds its capacity."""
    import random

    rng = random.Random(5)
    limits = Limits(max_in_flight=3, per_project=1, per_model={"x": 1})
    adm = Admission(limits, active=5)
    pending = [entry(f"p{rng.randrange(6)}", rng.choice("xyz")) for _ in range(300)]
    running: list[Ticket] = []
    for job in pending:
        if adm.offer(job):
            running.append(job)
    finished = 0
    while running:
        job = running.pop(rng.randrange(len(running)))
        running.extend(adm.release(job, SEPARATION_GATES))
        running.extend(adm.release(job, ALL_GATES))
        finished += 1
        per_project: dict[str, int] = {}
        for r in running:
            per_project[r.job.project] = per_project.get(r.job.project, 0) + 1
        assert len(running) <= 3
        assert max(per_project.values(), default=0) <= 1
        assert sum(1 for r in running if r.job.model == "x") <= 1
    assert finished == 300 and adm.waiting == 0
