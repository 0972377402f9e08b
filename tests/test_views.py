"""What the commands print: one document per command, the text rendered from it."""

from __future__ import annotations

import json
from typing import Any

from orchestrator.catalog import model_names
from orchestrator.summary_text import render_summary
from orchestrator.tally import Failure, Note, Tally, summary_data
from orchestrator.views import (
    PlanRow,
    plan_data,
    render_plan,
    render_status,
    state_data,
    status_data,
)

MODELS = model_names()


def done_run(notes: list[Note]) -> dict[str, Any]:
    """The summary of a run where every model did three jobs, with `notes`."""
    tally = Tally(3 * len(MODELS))
    for model in MODELS:
        for _ in range(3):
            tally.move(model, None, "done")
    for note in notes:
        tally.note(note)
    return summary_data(tally, run={"mode": "run", "name": "n"}, interrupted=False)


def test_a_type_most_models_do_not_deliver_is_one_line() -> None:
    """backing_vocals missing from 11 models is one line, not eleven; a type missing from
    a few models names them; an unsafe name is reported in the same way."""
    lacking = [m for m in MODELS if m != "musicai_lead_backing_other"]
    notes = [
        Note(f"prj_{i}", model, "missing", ("backing_vocals",))
        for model in lacking
        for i in range(3)
    ]
    notes += [Note("prj_0", "musicai_instrumental_only", "missing", ("backing_vocals", "vocals"))]
    notes += [Note("prj_1", "demucs", "unsafe", ("../x",))]
    text = render_summary(done_run(notes))
    lines = text.splitlines()
    start = lines.index("done, with types not delivered (details in each job.json):")
    assert lines[start + 1 :] == [
        "  ../x unsafe from 1 of 12 models (1 job): demucs",
        "  backing_vocals missing from 11 of 12 models (34 jobs)",
        "  vocals missing from 1 of 12 models (1 job): musicai_instrumental_only",
    ]


def test_no_notes_no_lines() -> None:
    """A run whose models delivered every type says nothing about types."""
    assert "not delivered" not in render_summary(done_run([]))


def test_the_summary_lists_the_first_jobs_not_done_and_points_at_the_rest() -> None:
    """The summary's text lists twenty jobs not done with their reasons, then says how
    many more summary.json holds."""
    tally = Tally(25)
    for i in range(25):
        tally.move("demucs", None, "failed")
        tally.fail(Failure(f"prj_{i:02d}", "demucs", "failed", 2, "separation failed: boom"))
    data = summary_data(tally, run={"mode": "run", "name": "n"}, interrupted=False)
    lines = render_summary(json.loads(json.dumps(data))).splitlines()
    start = lines.index("not done (25):")
    assert lines[start + 1] == "  prj_00 demucs [failed, attempt 2]: separation failed: boom"
    assert lines[start + 20] == "  prj_19 demucs [failed, attempt 2]: separation failed: boom"
    assert lines[start + 21] == "  ... and 5 more in summary.json"


def test_plan_text_and_json_come_from_the_same_document() -> None:
    """The plan's text is the same from its document and from that document read back from
    JSON; rows past the limit are counted, not listed."""
    rows = [
        PlanRow(
            f"prj_{i}", "mdx23c", "new", "submit", 1, f"ss1:s:prj_{i}:mdx23c:1", f"mdx23c/prj_{i}"
        )
        for i in range(5)
    ]
    head = {
        "manifest": "m.yaml",
        "name": "s",
        "output": "out/s",
        "mode": "run",
        **state_data(
            "out/s/.stemsweep/state.db",
            exists=True,
            others=["out/s/.stemsweep/state-shard-0-of-2.db"],
            shard=None,
        ),
    }
    data = plan_data(iter(rows), head=head, limit=3)
    assert data["jobs"] == 5 and data["more"] == 2 and len(data["rows"]) == 3
    text = render_plan(data)
    assert render_plan(json.loads(json.dumps(data))) == text
    assert text.splitlines()[:4] == [
        "manifest: m.yaml (s)",
        "output:   out/s/MODEL/PROJECT/TYPE.EXT",
        "state:    out/s/.stemsweep/state.db",
        "          with the records of state-shard-0-of-2.db (other splits)",
    ]
    assert text.splitlines()[-1] == "... 2 more jobs (--all lists every one)"


def test_status_lists_every_job_not_done_in_its_document() -> None:
    """The status document keeps every failure; its text lists the first twenty."""
    tally = Tally(30)
    for i in range(30):
        tally.move("demucs", None, "failed")
        tally.fail(Failure(f"prj_{i:02d}", "demucs", "failed", 1, "boom"))
    head = state_data("s.db", exists=False, others=[], shard="1/4")
    data = status_data(tally, head=head)
    assert len(data["failed"]) == 30 and data["counts"] == {"failed": 30}
    text = render_status(json.loads(json.dumps(data)))
    assert text.splitlines()[:2] == ["state: s.db (none yet)", "jobs:  30 in shard 1/4: failed 30"]
    assert "  prj_19 demucs [failed, attempt 1]: boom" in text
    assert "prj_20" not in text and text.endswith("  ... and 10 more")
