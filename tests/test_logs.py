"""Logging: the pipeline renders events as data on stderr, with secrets and signatures removed,
and a job's events, the libraries' included, carry its project and model."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog
from conftest import FAST_CLIENT, StartSimulator, WriteManifest
from yarl import URL

from orchestrator.logs import (
    REDACTED,
    Redactor,
    configure_logging,
    get_logger,
    redact_text,
    redact_url,
    shared_processors,
)
from orchestrator.manifest import load_manifest
from orchestrator.runner import run_manifest
from orchestrator.state import StateStore

KEY = "yk_live_5ecret5ecret"
SIGNED = "https://storage.example/files/stm_1.wav?expires=99&signature=abad1dea"


@pytest.fixture(autouse=True)
def clean_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    structlog.reset_defaults()
    root.handlers[:] = handlers
    root.setLevel(level)


def captured(secrets: list[str]) -> structlog.testing.LogCapture:
    """Configure the real pre-render chain with a capture at its end."""
    capture = structlog.testing.LogCapture()
    structlog.configure(processors=[*shared_processors(secrets), capture])
    return capture


def json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (SIGNED, "https://storage.example/files/stm_1.wav"),
        ("http://127.0.0.1:8080/api/v1/me", "http://127.0.0.1:8080/api/v1/me"),
        ("https://user:pw@host/p?q=1#frag", "https://host/p"),
        ("http://[::1]:9000/x?sig=1", "http://[::1]:9000/x"),
        (URL("https://cdn/a.flac?X-Amz-Signature=1"), "https://cdn/a.flac"),
        ("http://[::1/broken", "[unparseable URL]"),
    ],
)
def test_redact_url(url: object, expected: str) -> None:
    """Query strings, fragments and user info are dropped; scheme, host, port, path stay."""
    assert redact_url(url) == expected


def test_redact_text_scrubs_secrets_and_every_url_in_free_text() -> None:
    """Each secret becomes [REDACTED] and each URL in a sentence loses its query string."""
    text = f"GET {SIGNED} failed; retry http://h/x?a=1 with Bearer {KEY}."
    assert redact_text(text, [KEY, ""]) == (
        f"GET https://storage.example/files/stm_1.wav failed; retry http://h/x with Bearer "
        f"{REDACTED}."
    )
    assert redact_text("no secrets here", []) == "no secrets here"


def test_the_redactor_reaches_keys_nested_values_and_objects() -> None:
    """Secrets in keys, nested dicts, lists, tuples, exceptions and URL objects are scrubbed."""
    event = {
        "event": "job.failed",
        KEY: "as a key",
        "nested": {"deeper": [f"x{KEY}x", (KEY, 3)], "url": SIGNED},
        "error": ValueError(f"refused {KEY} at {SIGNED}"),
        "link": URL(SIGNED),
        "path": Path("/out/mdx23c/prj_1/vocals.wav"),
        "count": 3,
        "ratio": 0.5,
        "flag": True,
        "none": None,
    }
    out = Redactor([KEY])(None, "error", event)
    text = repr(out)
    assert KEY not in text and "abad1dea" not in text and "expires=" not in text
    assert out[REDACTED] == "as a key"
    assert out["nested"]["deeper"] == [f"x{REDACTED}x", (REDACTED, 3)]
    assert (
        out["error"] == f"ValueError: refused {REDACTED} at https://storage.example/files/stm_1.wav"
    )
    assert out["link"] == "https://storage.example/files/stm_1.wav"
    assert out["path"] == Path("/out/mdx23c/prj_1/vocals.wav")  # nothing to scrub: kept as is
    assert (out["count"], out["ratio"], out["flag"], out["none"]) == (3, 0.5, True, None)


def test_exception_text_is_redacted_in_captured_events() -> None:
    """A logged exception is rendered to data first, so its message and traceback are scrubbed."""
    capture = captured([KEY])
    log = get_logger()
    try:
        raise RuntimeError(f"upstream said {KEY} for {SIGNED}")
    except RuntimeError:
        log.exception("download.failed", stem="stm_1", request={"headers": {"Auth": KEY}})
    [entry] = capture.entries
    assert entry["event"] == "download.failed" and entry["log_level"] == "error"
    assert entry["request"] == {"headers": {"Auth": REDACTED}}
    rendered = json.dumps(entry["exception"])
    assert "RuntimeError" in rendered
    assert KEY not in rendered and "abad1dea" not in rendered
    assert KEY not in repr(capture.entries)


def test_json_logs_go_to_stderr_as_data(capsys: pytest.CaptureFixture[str]) -> None:
    """`json`: one JSON object per event on stderr, nothing on stdout, the key redacted."""
    configure_logging("json", secrets=[KEY])
    log = get_logger("stemsweep", run="r1")
    log.info("job.submitted", project="prj_1", model="demucs", key=f"sweep-{KEY}")
    log.debug("poll.tick")  # below INFO: filtered
    out, err = capsys.readouterr()
    assert out == ""
    [event] = json_lines(err)
    assert event["event"] == "job.submitted" and event["level"] == "info"
    assert event["run"] == "r1" and event["key"] == f"sweep-{REDACTED}"
    assert "timestamp" in event
    assert KEY not in err


def test_no_format_on_a_pipe_means_json(capsys: pytest.CaptureFixture[str]) -> None:
    """With no format asked and stderr not a terminal, the logs are JSON."""
    configure_logging(None)
    get_logger().warning("download.retry", url=SIGNED)
    [event] = json_lines(capsys.readouterr().err)
    assert event["url"] == "https://storage.example/files/stm_1.wav"


def test_console_logs_render_a_redacted_traceback(capsys: pytest.CaptureFixture[str]) -> None:
    """`console`: the traceback of a logged exception is printed without the key or signature."""
    configure_logging("console", secrets=[KEY])
    try:
        raise ConnectionError(f"lost {SIGNED} with {KEY}")
    except ConnectionError:
        get_logger().exception("job.crashed", project="prj_1")
    err = capsys.readouterr().err
    assert "job.crashed" in err and "ConnectionError" in err and REDACTED in err
    assert KEY not in err and "abad1dea" not in err


def test_standard_library_logs_are_redacted_too(capsys: pytest.CaptureFixture[str]) -> None:
    """Warnings logged by libraries through `logging` pass the same redaction."""
    configure_logging("json", secrets=[KEY])
    logging.getLogger("aiohttp.client").warning("retrying %s with %s", SIGNED, KEY)
    logging.getLogger("aiohttp.access").info("quiet below warning")
    [event] = json_lines(capsys.readouterr().err)
    assert event["event"] == (f"retrying https://storage.example/files/stm_1.wav with {REDACTED}")
    assert event["logger"] == "aiohttp.client"


def test_configuring_twice_keeps_one_handler(capsys: pytest.CaptureFixture[str]) -> None:
    """Calling configure_logging again replaces its handler instead of doubling every line."""
    configure_logging("json")
    configure_logging("json")
    logging.getLogger("x").warning("once")
    assert len(json_lines(capsys.readouterr().err)) == 1


@pytest.mark.anyio
@pytest.mark.usefixtures("no_retry_waits")
async def test_stamina_retry_events_carry_the_jobs_project_and_model(
    start_simulator: StartSimulator, write_manifest: WriteManifest
) -> None:
    """Every retry stamina logs, of a project read, a submission or a poll, names the job
    whose request it was: the project and model of the task in its message."""
    sim = await start_simulator(seed=5, faults={"error_on_get": 0.15, "error_before_write": 0.15})
    projects, models = sim.project_ids[:3], ["mdx23c", "demucs"]
    manifest = write_manifest(projects=projects, models=models)
    capture = captured([])
    outcome = await run_manifest(
        load_manifest(manifest),
        api_url=sim.base_url,
        environ={"YOUKA_API_KEY": sim.api_key},
        client_options=FAST_CLIENT,
    )
    assert outcome.exit_code == 0, outcome.summary["failed"]
    retries = [e for e in capture.entries if e["event"] == "stamina.retry_scheduled"]
    with StateStore.open_reader(outcome.state_path) as store:
        job_of_task = {row.task_id: (row.project, row.model) for row in store.iter_jobs()}
    polls = 0
    for event in retries:
        assert (event.get("project"), event.get("model")) in {
            (p, m) for p in projects for m in models
        }, event
        task_id = re.search(r"/tasks/(tsk_\w+)", event["caused_by"])
        if task_id:
            polls += 1
            assert job_of_task[task_id[1]] == (event["project"], event["model"]), event
        else:
            assert event["project"] in event["caused_by"], event  # a project read or a POST
    assert polls and len(retries) > polls  # polls and other calls were retried
