"""The simulator's record of what clients did to it, for tests and benchmarks.

Tests prove a client's guarantees from this record: no separation started twice, limits
held, the token never sent to the storage host, every fault met at its configured rate.
It is kept on the event loop's thread; `snapshot()` returns plain data (JSON-ready), the
same that `GET /_sim/stats` serves.

Counters stay small whatever the load. Only `requests` (one entry per request) grows with
traffic, and a profile with `record_requests: false` (the bench profile) keeps none.

A world kept in a state folder keeps its record too, so that a record spans restarts. What
proves that nothing was paid twice (separations by project and model, credits charged,
creations, uploads and their PUTs, re-used expired keys) is counted again from the saved
world on start (`recount`), so it is exact even after the simulator was killed; the other
counters (`soft_state`) are saved about once a second and at shutdown.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Iterable
from typing import Any


class Record:
    """Counters of requests, separations, limits and faults."""

    def __init__(self, *, keep_requests: bool = True) -> None:
        self.keep_requests = keep_requests
        self.requests: list[dict[str, Any]] = []
        self.by_route: Counter[str] = Counter()
        self.by_status: Counter[str] = Counter()
        self.by_route_status: Counter[str] = Counter()
        self.api_calls = 0
        self.separations: Counter[str] = Counter()
        self.replays = 0
        self.conflicts = 0
        self.rate_limited: Counter[str] = Counter()
        self.rate_limited_with_retry_after = 0
        self.rate_limited_without_retry_after = 0
        self.server_errors: Counter[str] = Counter()
        self.faults: Counter[str] = Counter()
        self.fault_opportunities: Counter[str] = Counter()
        self.storage_credentials_seen = 0
        self.tasks_by_outcome: Counter[str] = Counter()
        self.downloads = 0
        self.bytes_served = 0
        self.max_in_progress = 0
        self.max_in_progress_per_project = 0
        self.max_in_progress_per_model: Counter[str] = Counter()
        self.requests_per_second_peak = 0
        self.credits_charged = 0
        self.insufficient_credits_refusals = 0
        self.quotes = 0
        self.uploads = 0
        self.upload_puts = 0
        self.upload_bytes = 0
        self.uploads_by_digest: Counter[str] = Counter()
        self.creations = 0
        self.creations_by_digest: Counter[str] = Counter()
        self.expired_key_reuses = 0
        self._window: deque[float] = deque()
        self.saved_requests = 0  # how many of `requests` a state folder holds already

    def request(self, method: str, route: str, status: int, t: float) -> None:
        """One request answered (`status` 0: the connection was dropped) at real time `t`."""
        self.by_route[f"{method} {route}"] += 1
        self.by_status[str(status)] += 1
        self.by_route_status[f"{method} {route} {status}"] += 1
        if self.keep_requests:
            self.requests.append({"method": method, "route": route, "status": status, "t": t})

    def api_call(self, t: float) -> None:
        """One API call arrived at real time `t` (counts toward the requests-per-second peak)."""
        self.api_calls += 1
        window = self._window
        window.append(t)
        while window and window[0] <= t - 1.0:
            window.popleft()
        self.requests_per_second_peak = max(self.requests_per_second_peak, len(window))

    def separation(self, project_id: str, model: str) -> None:
        """A new separation task was created (replays are not separations)."""
        self.separations[f"{project_id}:{model}"] += 1

    def replay(self) -> None:
        """A submission was answered with an earlier task (same key, same payload)."""
        self.replays += 1

    def conflict(self) -> None:
        """A submission reused a key with a different payload (409)."""
        self.conflicts += 1

    def charged(self, credits: int) -> None:
        """A separation or creation was accepted and charged `credits`."""
        self.credits_charged += credits

    def insufficient_credits(self) -> None:
        """A separation or creation was refused for want of credits."""
        self.insufficient_credits_refusals += 1

    def quoted(self) -> None:
        """A quote was answered."""
        self.quotes += 1

    def upload_announced(self) -> None:
        """`POST /uploads` registered a new file (replays are not counted)."""
        self.uploads += 1

    def upload_stored(self, n_bytes: int, digest: str, previous: str | None) -> None:
        """A `PUT` stored a file's bytes (sha256 `digest`) over `previous` (None: none)."""
        self.upload_puts += 1
        self.upload_bytes += n_bytes
        if digest != previous:
            if previous is not None:
                self.uploads_by_digest[previous] -= 1
                if not self.uploads_by_digest[previous]:
                    del self.uploads_by_digest[previous]
            self.uploads_by_digest[digest] += 1

    def creation(self, digest: str) -> None:
        """A project was created from a file whose bytes have sha256 `digest`."""
        self.creations += 1
        self.creations_by_digest[digest] += 1

    def expired_key_reused(self) -> None:
        """A request carried a key the account had forgotten: it was done anew (and paid)."""
        self.expired_key_reuses += 1

    def throttled(self, cause: str, *, retry_after: bool) -> None:
        """A 429, by cause (`random`, `account_cap`, `requests_per_second`)."""
        self.rate_limited[cause] += 1
        if retry_after:
            self.rate_limited_with_retry_after += 1
        else:
            self.rate_limited_without_retry_after += 1

    def server_error(self, kind: str) -> None:
        """An injected 5xx, by kind (`before_write`, `after_write`, `on_get`)."""
        self.server_errors[kind] += 1

    def fault_opportunity(self, kind: str, hit: bool) -> None:
        """One chance for fault `kind`, and whether it happened."""
        self.fault_opportunities[kind] += 1
        if hit:
            self.faults[kind] += 1

    def credentials_at_storage(self) -> None:
        """The storage host received a request carrying `Authorization`."""
        self.storage_credentials_seen += 1

    def task_settled(self, outcome: str) -> None:
        """A task reached its terminal state (`completed`, `failed`, ...)."""
        self.tasks_by_outcome[outcome] += 1

    def download(self, n_bytes: int) -> None:
        """The storage host sent a stem body (possibly cut short by a fault)."""
        self.downloads += 1
        self.bytes_served += n_bytes

    def in_progress(self, total: int, project: int, model: str, per_model: int) -> None:
        """Separations now in progress: the account's, one project's, one model's."""
        self.max_in_progress = max(self.max_in_progress, total)
        self.max_in_progress_per_project = max(self.max_in_progress_per_project, project)
        if per_model > self.max_in_progress_per_model[model]:
            self.max_in_progress_per_model[model] = per_model

    def snapshot(self) -> dict[str, Any]:
        """Everything recorded, as plain JSON-ready data."""
        return {
            "requests": list(self.requests) if self.keep_requests else None,
            "requests_total": sum(self.by_route.values()),
            "api_calls": self.api_calls,
            "by_route": dict(self.by_route),
            "by_status": dict(self.by_status),
            "by_route_status": dict(self.by_route_status),
            "separations": dict(self.separations),
            "separations_total": sum(self.separations.values()),
            "duplicate_separations": sum(1 for n in self.separations.values() if n > 1),
            "replays": self.replays,
            "conflicts": self.conflicts,
            "rate_limited": {
                "total": sum(self.rate_limited.values()),
                "with_retry_after": self.rate_limited_with_retry_after,
                "without_retry_after": self.rate_limited_without_retry_after,
                "by_cause": dict(self.rate_limited),
            },
            "server_errors": dict(self.server_errors),
            "faults": dict(self.faults),
            "fault_opportunities": dict(self.fault_opportunities),
            "dropped_connections": self.faults["drop_connection"],
            "truncated_bodies": self.faults["truncate_body"],
            "slow_bodies": self.faults["slow_body"],
            "expired_url_faults": self.faults["expired_url"],
            "storage_credentials_seen": self.storage_credentials_seen,
            "tasks_by_outcome": dict(self.tasks_by_outcome),
            "downloads": self.downloads,
            "bytes_served": self.bytes_served,
            "max_in_progress": self.max_in_progress,
            "max_in_progress_per_project": self.max_in_progress_per_project,
            "max_in_progress_per_model": dict(self.max_in_progress_per_model),
            "requests_per_second_peak": self.requests_per_second_peak,
            "credits_charged": self.credits_charged,
            "insufficient_credits_refusals": self.insufficient_credits_refusals,
            "quotes": self.quotes,
            "uploads": self.uploads,
            "upload_puts": self.upload_puts,
            "upload_bytes": self.upload_bytes,
            "uploads_by_digest": dict(self.uploads_by_digest),
            "creations": self.creations,
            "creations_by_digest": dict(self.creations_by_digest),
            "expired_key_reuses": self.expired_key_reuses,
        }

    # -- a state folder ------------------------------------------------------------------

    _SOFT_COUNTERS = (
        "by_route",
        "by_status",
        "by_route_status",
        "rate_limited",
        "server_errors",
        "faults",
        "fault_opportunities",
        "max_in_progress_per_model",
    )
    _SOFT_NUMBERS = (
        "api_calls",
        "replays",
        "conflicts",
        "rate_limited_with_retry_after",
        "rate_limited_without_retry_after",
        "storage_credentials_seen",
        "downloads",
        "bytes_served",
        "max_in_progress",
        "max_in_progress_per_project",
        "requests_per_second_peak",
        "insufficient_credits_refusals",
        "quotes",
        "upload_bytes",
    )

    def soft_state(self) -> dict[str, Any]:
        """The counters that are not counted again from the world, as plain data."""
        state: dict[str, Any] = {name: dict(getattr(self, name)) for name in self._SOFT_COUNTERS}
        state.update({name: getattr(self, name) for name in self._SOFT_NUMBERS})
        return state

    def restore_soft(self, state: dict[str, Any]) -> None:
        """Take back counters saved by `soft_state` (unknown names are ignored)."""
        for name in self._SOFT_COUNTERS:
            if name in state:
                setattr(self, name, Counter(state[name]))
        for name in self._SOFT_NUMBERS:
            if name in state:
                setattr(self, name, state[name])

    def recount(
        self, tasks: Iterable[Any], uploads: Iterable[Any], creation_digests: Iterable[str]
    ) -> None:
        """Count again, from a saved world, what proves nothing was paid twice: its tasks,
        its uploads, and the sha256 of the file of each project created from one."""
        tasks, uploads = list(tasks), list(uploads)
        self.separations = Counter(f"{t.project_id}:{t.model}" for t in tasks)
        self.credits_charged = sum(t.cost for t in tasks)
        self.tasks_by_outcome = Counter(t.outcome for t in tasks if t.settled)
        self.uploads = len(uploads)
        self.upload_puts = sum(u.puts for u in uploads)
        self.uploads_by_digest = Counter(u.sha256 for u in uploads if u.sha256)
        self.creations_by_digest = Counter(creation_digests)
        self.creations = sum(self.creations_by_digest.values())
        self.expired_key_reuses = sum(t.rekeyed for t in tasks) + sum(u.rekeyed for u in uploads)
