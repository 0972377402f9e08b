"""What `plan`, `status` and `models` print, from the state and the catalogue (pure); and
the pieces of text the run's summary shares with them.

Each command's answer is one document (a dict of JSON values), made once: `--json` prints
it in the envelope (`envelope.py`), and the text is rendered from it by a `render_*`
function. `models_data`, `plan_data` and `status_data` make the documents here; for `run`
and `retry` it is the summary document (`tally.summary_data`, the content of
summary.json), whose text is `summary_text.py`'s.

`plan_rows` is what a run would do with each job, and `status_tally` the jobs per status
and model, both from the state alone, without any network. `format_table` lays rows out in
plain columns a script can `cut`; `not_done_lines` lists the jobs not done, for the summary
and for `status` alike.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import PurePath
from typing import Any, Protocol

from orchestrator.jobs import JobId, idempotency_key
from orchestrator.lifecycle import Action, Mode, Recorded, Status, decide
from orchestrator.tally import Failure, Tally

# How many rows of a list the text shows (jobs not done, songs, jobs not priced).
MAX_LISTED = 20


def counts_text(counts: Mapping[str, int]) -> str:
    """Counts by name, in their order: `done 30, failed 2`."""
    return ", ".join(f"{name} {n}" for name, n in counts.items())


def not_done_lines(failed: Sequence[Mapping[str, Any]], *, rest: str = "") -> list[str]:
    """The jobs not done, the first `MAX_LISTED` with their status, attempt and reason (if
    any); `rest` says where the others are listed."""
    if not failed:
        return []
    lines = [f"not done ({len(failed)}):"]
    for f in failed[:MAX_LISTED]:
        reason = f": {f['reason']}" if f["reason"] else ""
        lines.append(
            f"  {f['project']} {f['model']} [{f['status']}, attempt {f['attempt']}]{reason}"
        )
    if len(failed) > MAX_LISTED:
        lines.append(f"  ... and {len(failed) - MAX_LISTED} more{rest}")
    return lines


def format_table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """Rows as plain aligned columns (easy to read, and to `cut`/`awk` in a script)."""
    cells = [[str(h) for h in headers], *([str(c) for c in row] for row in rows)]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells
    )


# --- plan and status: what the state says, without any network -------------------------


class RecordedJob(Protocol):
    """What plan and status read of a job's state row (`state.JobRecord`)."""

    @property
    def status(self) -> Status: ...
    @property
    def attempt(self) -> int: ...
    @property
    def key(self) -> str | None: ...
    @property
    def error(self) -> str | None: ...

    def recorded(self) -> Recorded: ...


@dataclass(frozen=True)
class PlanRow:
    """One job as `stemsweep plan` shows it."""

    project: str
    model: str
    recorded: str  # the recorded status, or `new`
    action: str  # what the next run would do (`lifecycle.Action`)
    attempt: int
    key: str  # the key the next submission carries (or the recorded one)
    folder: str  # where its files go, relative to the output root


def plan_rows(
    jobs: Iterable[JobId],
    *,
    lookup: Callable[[str, str], RecordedJob | None],
    files_present: Callable[[str, str], bool],
    scope: str,
    mode: Mode,
) -> Iterator[PlanRow]:
    """What a `run` (or `retry`) would do with each job, from the state alone (streamed)."""
    for job in jobs:
        row = lookup(job.project, job.model)
        files_ok = row is not None and row.status is Status.DONE
        if files_ok:
            files_ok = files_present(job.project, job.model)
        decision = decide(row.recorded() if row else None, files_ok=files_ok, mode=mode)
        if decision.action is Action.SUBMIT or row is None or row.key is None:
            key = idempotency_key(scope, job.project, job.model, decision.attempt)
        else:
            key = row.key
        yield PlanRow(
            project=job.project,
            model=job.model,
            recorded="new" if row is None else str(row.status),
            action=str(decision.action),
            attempt=decision.attempt,
            key=key,
            folder=f"{job.model}/{job.project}",
        )


def status_tally(
    jobs: Iterable[JobId], *, lookup: Callable[[str, str], RecordedJob | None]
) -> Tally:
    """Jobs per status and model as the state records them; unstarted jobs are `pending`."""
    tally = Tally()
    for job in jobs:
        tally.total += 1
        row = lookup(job.project, job.model)
        status = Status.PENDING if row is None else row.status
        tally.move(job.model, None, str(status))
        if row is not None and status is not Status.DONE:
            reason = row.error or ""
            tally.fail(Failure(job.project, job.model, str(status), row.attempt, reason))
    return tally


# --- the documents of models, plan and status, and their text ----------------------------


def models_data(models: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """`models`: the catalogue's (name, purpose) pairs, in catalogue order."""
    return {"models": [{"name": name, "purpose": purpose} for name, purpose in models]}


def render_models(data: Mapping[str, Any]) -> str:
    """One line per model: its name, then its purpose."""
    models: Sequence[Mapping[str, str]] = data["models"]
    width = max((len(m["name"]) for m in models), default=0)
    return "\n".join(f"{m['name']:<{width}}  {m['purpose']}" for m in models)


def state_data(
    state: str, *, exists: bool, others: Sequence[str], shard: str | None, note: str | None = None
) -> dict[str, Any]:
    """Where `plan` and `status` read the state: the store, whether it exists yet, the
    stores of the tree's other splits read with it, the shard, and what was found wrong with
    the store (`state_note`: read as the next run rebuilds it), if anything."""
    return {
        "state": state,
        "state_exists": exists,
        "state_note": note,
        "other_states": list(others),
        "shard": shard,
    }


def plan_data(
    rows: Iterable[PlanRow], *, head: Mapping[str, Any], limit: int | None
) -> dict[str, Any]:
    """`plan`: `head` (the manifest, output, mode and `state_data`), the jobs per next
    action, and the first `limit` rows (None: every row); `more` counts those left out."""
    shown: list[dict[str, Any]] = []
    actions: Counter[str] = Counter()
    total = 0
    for row in rows:
        total += 1
        actions[row.action] += 1
        if limit is None or len(shown) < limit:
            shown.append(asdict(row))
    return {
        **head,
        "jobs": total,
        "actions": dict(actions.most_common()),
        "rows": shown,
        "more": total - len(shown),
    }


PLAN_COLUMNS = (
    ("project", "project"),
    ("model", "model"),
    ("state", "recorded"),
    ("next", "action"),
    ("attempt", "attempt"),
    ("key", "key"),
    ("folder", "folder"),
)


def render_plan(data: Mapping[str, Any]) -> str:
    """The plan as text: the manifest, output, state and jobs, then a table of rows."""
    lines = [
        f"manifest: {data['manifest']} ({data['name']})",
        f"output:   {data['output']}/MODEL/PROJECT/TYPE.EXT",
        *_state_lines("state:    ", data),
        f"jobs:     {_jobs_line(data['jobs'], data['shard'], data['actions'])}",
        format_table(
            [header for header, _ in PLAN_COLUMNS],
            ([row[key] for _, key in PLAN_COLUMNS] for row in data["rows"]),
        ),
    ]
    if data["more"]:
        lines.append(f"... {data['more']} more jobs (--all lists every one)")
    if data.get("quote") is not None:
        lines.extend(_quote_lines(data["quote"]))
    return "\n".join(lines)


def quote_data(prices: Any, *, jobs: int, ceiling: int | None) -> dict[str, Any]:
    """`plan --quote`: credits and jobs per model, the total, the account's balance as the
    quotes reported it (None: unknown), the ceiling, and the jobs that could not be priced.
    `prices` is a `budget.PriceList`."""
    return {
        "jobs": jobs,
        "quotes": prices.quotes,
        "per_model": {m: {"jobs": prices.jobs[m], "credits": c} for m, c in prices.credits.items()},
        "total": prices.total,
        "available_balance": prices.balance,
        "max_credits": ceiling,
        "unpriced": list(prices.unpriced),
    }


def _quote_lines(quote: Mapping[str, Any]) -> list[str]:
    """The price of a plan: a table of credits per model, the total, the balance."""
    rows: list[tuple[object, ...]] = [
        (model, per["jobs"], per["credits"]) for model, per in quote["per_model"].items()
    ]
    jobs = sum(per["jobs"] for per in quote["per_model"].values())
    rows.append(("total", jobs, quote["total"]))
    balance = quote["available_balance"]
    lines = [
        f"credits:  {quote['jobs']} jobs to submit, {quote['quotes']} quotes asked",
        format_table(("model", "jobs", "credits"), rows),
        f"available balance: {'unknown' if balance is None else f'{balance} credits'}",
    ]
    if quote["max_credits"] is not None:
        lines.append(f"limits.max_credits: {quote['max_credits']}")
    if quote["unpriced"]:
        lines.append(f"not priced ({len(quote['unpriced'])}):")
        lines.extend(f"  {reason}" for reason in quote["unpriced"][:MAX_LISTED])
    return lines


def status_data(tally: Tally, *, head: Mapping[str, Any]) -> dict[str, Any]:
    """`status`: `head` (`state_data`), then jobs per status, per model, and every job not
    done with its reason (the keys of the summary document)."""
    return {
        **head,
        "jobs": tally.total,
        "counts": tally.by_status(),
        "per_model": tally.by_model(),
        "failed": [asdict(f) for f in tally.failures],
    }


def render_status(data: Mapping[str, Any]) -> str:
    """The status as text: the state, jobs per status, a table per model, what is not done."""
    counts: Mapping[str, int] = data["counts"]
    statuses = list(counts)
    lines = [
        *_state_lines("state: ", data),
        f"jobs:  {_jobs_line(data['jobs'], data['shard'], counts)}",
        format_table(
            ("model", *statuses),
            ((m, *(per.get(s, 0) for s in statuses)) for m, per in data["per_model"].items()),
        ),
    ]
    lines.extend(not_done_lines(data["failed"]))
    return "\n".join(lines)


def _state_lines(label: str, data: Mapping[str, Any]) -> list[str]:
    state, note = data["state"], data.get("state_note")
    shown = f" ({note})" if note else "" if data["state_exists"] else " (none yet)"
    lines = [f"{label}{state}{shown}"]
    if data["other_states"]:
        names = ", ".join(PurePath(p).name for p in data["other_states"])
        lines.append(f"{' ' * len(label)}with the records of {names} (other splits)")
    return lines


def _jobs_line(total: int, shard: str | None, counts: Mapping[str, int]) -> str:
    where = f" in shard {shard}" if shard is not None else ""
    return f"{total}{where}: " + counts_text(counts)
