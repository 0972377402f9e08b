"""What a run may spend: quotes, the ceiling `limits.max_credits`, and too few credits.

Without a ceiling a run asks for no quote and reserves nothing: its submissions go as they
did. With `limits.max_credits: N`, every submission (a separation, or a song's creation)
is priced first (`POST /projects/quote` with its model and its song's duration: the
project's `original` stem, or the song file's decoded length; quotes are cached per model
and duration), and its credits are reserved in the state store in the same durable
transaction that commits its key, before the request (`ledger.Ledger.reserver`): the
credits reserved in the output tree never pass N, whatever is in flight, retried or killed.
A key re-sent after a crash already holds its reservation; one that holds none (committed
by a run without a ceiling) gets one before it is sent again. A store rebuilt from the
tree's job.json files lost its reservations: every job it restored is priced again and
counted before any submission (`count_restored`), whatever run did it; one that cannot be
priced stops submissions, as the tree's spending is then unknown.

Once a submission would pass the ceiling, or the API answers that the account has too
few credits (402, or 403 `INSUFFICIENT_CREDITS`), the run sends no further submission:
what is in flight finishes, the rest ends `not_started` with its reason, `budget: ...`
(`failures.Outcome`). A refused submission's credits are released: nothing started.

`price_jobs` prices the jobs a run would submit, for `stemsweep plan --quote`.

`summary` is the `credits` part of `summary.json`: `quoted` (what the jobs this run priced
cost), `submitted` (what it reserved for the submissions it sent), and with a ceiling
`ceiling`, `reserved` (in the whole tree) and `left`; null where nothing was priced.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import anyio

from orchestrator.api import YoukaClient
from orchestrator.errors import ApiError, CredentialsError
from orchestrator.ledger import Ledger, OverBudget
from orchestrator.logs import get_logger
from orchestrator.wire import Project

MAX_QUOTE_SECONDS = 1200.0  # the API prices songs of at most 20 minutes

log = get_logger()

Commit = Callable[[Callable[[], None] | None], None]
"""Commits a submission's key in one durable transaction with the reservation it is given
(None: no ceiling, nothing to reserve); raises what the reservation raises."""


def original_seconds(project: Project) -> float | None:
    """The duration of the project's song: its `original` stem's, when the API says it."""
    for stem in project.stems:
        if stem.type == "original" and stem.duration is not None and stem.duration > 0:
            return stem.duration
    return None


class Budget:
    """The ceiling of one run, its quotes and what it reserved (see the module docstring)."""

    def __init__(self, client: YoukaClient, ledger: Ledger | None, ceiling: int | None) -> None:
        self._client = client
        self._ledger = ledger
        self.ceiling = ceiling
        self._prices: dict[tuple[str, float], int] = {}
        self._asking: dict[tuple[str, float], anyio.Event] = {}
        self.stopped_by: str | None = None
        self.quoted: int | None = None if ceiling is None else 0
        self.submitted: int | None = None if ceiling is None else 0
        self.quotes = 0
        self.balance: int | None = None

    @property
    def active(self) -> bool:
        """Whether submissions are priced and reserved (a ceiling is set)."""
        return self.ceiling is not None

    def check(self) -> None:
        """Raise `OverBudget` with the reason once submissions have stopped."""
        if self.stopped_by is not None:
            raise OverBudget(f"submissions stopped: {self.stopped_by}")

    def stop(self, reason: str) -> None:
        """No further submission in this run (the first reason is kept)."""
        if self.stopped_by is None:
            self.stopped_by = reason
            log.warning("run.budget_stopped", reason=reason)

    async def admit(
        self,
        key: str,
        *,
        subject: str,
        model: str,
        seconds: Callable[[], Awaitable[float | None]],
        commit: Commit | None,
    ) -> None:
        """Let the submission with `key` go: price it and commit it with its reservation.

        `commit` commits a new key with the reservation (`StateStore.commit_key`); None
        for a key already committed, which then only gets a reservation if it holds none.
        Raises `OverBudget` when submissions have stopped, when the submission cannot be
        priced, or when it would pass the ceiling (then submissions stop).
        """
        self.check()
        if self.ceiling is None:
            if commit is not None:
                commit(None)
            return
        assert self._ledger is not None, "a ceiling needs the ledger"
        if commit is None and self._ledger.holds(key):
            return
        credits = await self._price(model, await seconds())
        self.check()  # another submission may have stopped the run meanwhile
        reserve = self._ledger.reserver(
            key, subject=subject, model=model, credits=credits, ceiling=self.ceiling
        )
        try:
            if commit is None:
                self._ledger.reserve_alone(reserve)
            else:
                commit(reserve)
        except OverBudget:
            self.stop(self._reached())
            raise
        assert self.submitted is not None
        self.submitted += credits

    async def count_restored(self, seconds: Callable[[str, str], Awaitable[float | None]]) -> int:
        """Price the jobs a rebuilt store restored from their job.json files, whose
        reservations were lost with it (`ledger.Ledger.unpriced`), and count their credits
        as reserved, before any submission; how many credits. `seconds(project, model)` is
        a job's song duration. A job that cannot be priced stops every submission: what the
        tree spent is then unknown. Without a ceiling, nothing is priced."""
        if self.ceiling is None or self._ledger is None:
            return 0
        counted = 0
        for key, project, model in self._ledger.unpriced():
            try:
                credits = await self._price(model, await seconds(project, model), count=False)
            except (OverBudget, ApiError) as exc:  # a rejected key is no ApiError: it stops
                self.stop(
                    f"{project} {model}, restored from its job.json, cannot be priced ({exc}): "
                    "what the tree spent before its state was lost is unknown"
                )
                break
            self._ledger.price(key, credits)
            counted += credits
        if counted:
            log.warning("run.budget_restored", credits=counted, reserved=self._ledger.reserved())
        return counted

    async def precheck(self, model: str, seconds: float) -> None:
        """Raise `OverBudget` when a submission of `model` over `seconds` of song would not
        fit now (before a song's upload: its creation is reserved only after it)."""
        self.check()
        if self.ceiling is None:
            return
        credits = await self._price(model, seconds, count=False)
        assert self._ledger is not None
        if self._ledger.reserved() + credits > self.ceiling:
            self.stop(self._reached())
            raise OverBudget(
                f"limits.max_credits {self.ceiling} reached: {self._ledger.reserved()} "
                f"reserved, this {model} separation costs {credits}"
            )

    def refused(self, key: str, reason: str) -> None:
        """The API refused the submission with `key` for too few credits: its credits are
        released, and no further submission is sent."""
        released = self._ledger.release(key) if self._ledger is not None else 0
        if self.submitted is not None:
            self.submitted -= released
        self.stop(reason)

    async def quote(self, model: str, seconds: float) -> int:
        """What a separation of `seconds` of song with `model` costs (cached); `ApiError`."""
        key = (model, round(seconds, 3))
        while key not in self._prices:
            asking = self._asking.get(key)
            if asking is not None:
                await asking.wait()
                continue
            asking = self._asking[key] = anyio.Event()
            try:
                quote = await self._client.quote(model, key[1])
                self.quotes += 1
                self._prices[key] = quote.credits
                if quote.balance is not None:
                    self.balance = quote.balance
            finally:
                del self._asking[key]
                asking.set()
        return self._prices[key]

    def summary(self) -> dict[str, Any]:
        """The `credits` part of the summary (module docstring)."""
        ledger, ceiling = self._ledger, self.ceiling
        reserved = ledger.reserved() if ceiling is not None and ledger is not None else None
        return {
            "quoted": self.quoted,
            "submitted": self.submitted,
            "ceiling": self.ceiling,
            "reserved": reserved,
            "left": None if self.ceiling is None else self.ceiling - (reserved or 0),
            "quotes": self.quotes,
            "stopped_by": self.stopped_by,
        }

    def _reached(self) -> str:
        reserved = self._ledger.reserved() if self._ledger is not None else 0
        return f"limits.max_credits {self.ceiling} reached ({reserved} reserved)"

    async def _price(self, model: str, seconds: float | None, *, count: bool = True) -> int:
        if seconds is None:
            raise OverBudget(f"{model}: the song's duration is unknown, so it cannot be priced")
        if seconds > MAX_QUOTE_SECONDS:
            raise OverBudget(
                f"{model}: a song of {seconds:.0f} s cannot be priced (the API quotes up to "
                f"{MAX_QUOTE_SECONDS:.0f} s)"
            )
        try:
            credits = await self.quote(model, seconds)
        except CredentialsError:
            raise
        except ApiError as exc:
            raise OverBudget(f"{model}: no price: {exc}") from None
        if count and self.quoted is not None:
            self.quoted += credits
        return credits


@dataclass
class PriceList:
    """What `plan --quote` prints: credits and jobs per model, the total, the balance the
    quotes reported, and the jobs that could not be priced (with why)."""

    credits: dict[str, int] = field(default_factory=dict)
    jobs: dict[str, int] = field(default_factory=dict)
    unpriced: list[str] = field(default_factory=list)
    balance: int | None = None
    quotes: int = 0

    @property
    def total(self) -> int:
        return sum(self.credits.values())


async def price_jobs(
    client: YoukaClient, wanted: Iterable[tuple[str, str, float | None]]
) -> PriceList:
    """Price every (model, project, seconds) of `wanted`: a song's own duration when given,
    else its project's `original` stem (one read per project); one quote per model and
    duration."""
    prices = PriceList()
    budget = Budget(client, None, None)
    durations: dict[str, float | None] = {}
    for model, project, seconds in wanted:
        if seconds is None:
            if project not in durations:
                try:
                    durations[project] = original_seconds(await client.project(project))
                except ApiError as exc:
                    durations[project] = None
                    prices.unpriced.append(f"{project}: {exc}")
            seconds = durations[project]
        try:
            credits = await budget._price(model, seconds)
        except OverBudget as exc:
            prices.unpriced.append(f"{project} {model}: {exc}")
            continue
        prices.credits[model] = prices.credits.get(model, 0) + credits
        prices.jobs[model] = prices.jobs.get(model, 0) + 1
    prices.balance, prices.quotes = budget.balance, budget.quotes
    return prices
