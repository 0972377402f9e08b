"""The run's summary as text: what `run` and `retry` print on stdout (pure).

The summary document is `tally.summary_data` (the content of summary.json, and the data of
the `--json` envelope); `render_summary` makes the text from it: counts, per model, the jobs
not done with their reasons, the types done jobs did not deliver, credits, songs, what to
do about jobs only `retry` can move, and where the files are.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from orchestrator.views import MAX_LISTED, counts_text, not_done_lines

# A type missing from this many models or fewer names them.
NAMED_MODELS = 3


def render_summary(data: Mapping[str, Any]) -> str:
    """The summary as text for stdout: counts, per model, failures with reasons, where to look."""
    shard = f" (shard {data['shard']})" if data.get("shard") else ""
    lines = [
        f"stemsweep {data.get('mode', 'run')} {data.get('name', '')}{shard}: "
        f"{data['jobs']} jobs in {data.get('wall_seconds', 0.0):.1f}s, "
        f"{data.get('api_requests', 0)} API requests"
        + (" (interrupted)" if data["interrupted"] else ""),
        "  " + counts_text(data["counts"]),
    ]
    per_model: Mapping[str, Mapping[str, int]] = data["per_model"]
    if per_model:
        width = max(len(m) for m in per_model)
        lines.append("per model:")
        for model, counts in per_model.items():
            lines.append(f"  {model:<{width}}  {counts_text(counts)}")
    lines.extend(not_done_lines(data["failed"], rest=" in summary.json"))
    lines.extend(_note_lines(data["notes"], per_model))
    lines.extend(_credit_lines(data.get("credits")))
    lines.extend(_song_lines(data.get("songs")))
    lines.extend(_advice(data))
    if data.get("output"):
        where = f"files in {data['output']}"
        lines.append(where + (f", summary in {data['summary']}" if data.get("summary") else ""))
    return "\n".join(lines)


def _note_lines(
    notes: Sequence[Mapping[str, Any]], per_model: Mapping[str, Mapping[str, int]]
) -> list[str]:
    """The types done jobs did not deliver, one line per type and kind for all models:
    `backing_vocals missing from 11 of 12 models (33 jobs)` rather than a line per model."""
    if not notes:
        return []
    models: dict[tuple[str, str], set[str]] = {}
    jobs: Counter[tuple[str, str]] = Counter()
    for note in notes:
        for stem_type in note["types"]:
            models.setdefault((stem_type, note["kind"]), set()).add(note["model"])
            jobs[(stem_type, note["kind"])] += note["jobs"]
    done_models = sum(1 for counts in per_model.values() if counts.get("done"))
    lines = ["done, with types not delivered (details in each job.json):"]
    for (stem_type, kind), names in sorted(models.items()):
        of = max(done_models, len(names))
        n = jobs[(stem_type, kind)]
        line = f"  {stem_type} {kind} from {len(names)} of {of} model{_s(of)} ({n} job{_s(n)})"
        if len(names) <= NAMED_MODELS:
            line += ": " + ", ".join(sorted(names))
        lines.append(line)
    return lines


def _s(n: int) -> str:
    return "" if n == 1 else "s"


def _credit_lines(credits: Mapping[str, Any] | None) -> list[str]:
    """The credits a run priced and submitted, its ceiling, and why submissions stopped."""
    if not credits or (credits.get("quoted") is None and not credits.get("stopped_by")):
        return []
    line = f"credits: quoted {credits['quoted']}, submitted {credits['submitted']}"
    if credits.get("ceiling") is not None:
        line += (
            f" (max_credits {credits['ceiling']}: {credits['reserved']} reserved, "
            f"{credits['left']} left)"
        )
    lines = [line]
    if credits.get("stopped_by"):
        lines.append(f"  submissions stopped: {credits['stopped_by']}")
    return lines


def _song_lines(songs: Mapping[str, Any] | None) -> list[str]:
    """How many songs, and which files are one song (the same bytes)."""
    if not songs:
        return []
    lines = [f"songs: {songs['songs']} from {songs['files']} files, listed in {songs['list']}"]
    for paths in songs.get("same_bytes", [])[:MAX_LISTED]:
        lines.append(f"  one song (the same bytes): {', '.join(paths)}")
    return lines


def _advice(data: Mapping[str, Any]) -> list[str]:
    """What the summary asks of its reader: jobs only `retry` can move, what it costs, and
    a state that was rebuilt."""
    lines = []
    counts: Mapping[str, int] = data["counts"]
    stranded, attention = counts.get("stranded", 0), counts.get("needs_attention", 0)
    if stranded:
        lines.append(
            f"{stranded} job(s) stranded: the API no longer lists their stems; "
            "`stemsweep retry` separates them again (new separations: they cost credits)"
        )
    if attention:
        lines.append(
            f"{attention} job(s) need attention: a submission whose task cannot be told "
            "apart; each reason says what to check and how to re-send it (`retry --resend`)"
        )
    again: Mapping[str, int] = data.get("new_attempts") or {}
    if again:
        shown = ", ".join(f"{n} {status}" for status, n in again.items())
        lines.append(f"separated again, as new attempts that cost credits: {shown}")
    rebuilt: Mapping[str, Any] | None = data.get("state_rebuilt")
    if rebuilt:
        aside = f", kept aside as {rebuilt['kept_aside']}" if rebuilt.get("kept_aside") else ""
        lines.append(
            f"state was {rebuilt['found']}{aside}: rebuilt from "
            f"{rebuilt['jobs_from_job_json']} job.json file(s)"
        )
    return lines
