"""The results table: one row per measure, Markdown, as the README shows it."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any


def load_results(results_dir: Path, names: Iterable[str]) -> list[dict[str, Any]]:
    """The result documents of `names` that exist in `results_dir`, in that order."""
    documents = []
    for name in names:
        path = results_dir / f"{name}.json"
        if path.exists():
            documents.append(json.loads(path.read_text(encoding="utf-8")))
    return documents


def _value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 1000 else f"{value:,.0f}"
    return str(value)


def render_table(documents: Sequence[Mapping[str, Any]]) -> str:
    """A Markdown table of every target and shown number, then the machine and date."""
    rows = [
        "| benchmark | measure | result | target | met |",
        "|---|---|---|---|---|",
    ]
    for doc in documents:
        if doc.get("skipped"):
            rows.append(f"| {doc['name']} | skipped | {doc['skipped']} | | |")
            continue
        for t in doc["targets"]:
            met = "yes" if t["met"] else "**no**"
            rows.append(
                f"| {doc['name']} | {t['metric']} | {_value(t['value'])} | {t['target']} | {met} |"
            )
        for label, text in doc.get("shown", []):
            rows.append(f"| {doc['name']} | {label} | {text} | | |")
    lines = ["\n".join(rows)]
    if documents:
        first = documents[0]
        m = first["machine"]
        dates = sorted(d["date"] for d in documents)
        loads = [d["load"]["before"][0] for d in documents if d["load"].get("before")]
        quick = any(d.get("quick") for d in documents)
        lines.append(
            f"\nMachine: {m['cpu']}, {m['cpus']} CPUs, {m['memory_gib']} GiB, Python "
            f"{m['python']}, {m['os']}; run {dates[0][:10]}"
            + (
                f", 1-minute load before each benchmark {min(loads):g} to {max(loads):g}"
                if loads
                else ""
            )
            + (" (QUICK smoke sizes)" if quick else "")
            + "."
        )
    return "\n".join(lines)
