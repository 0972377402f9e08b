"""The simulated Youka API: auth, errors, idempotency, task lifecycle, stems, credits."""

from __future__ import annotations

import anyio
import pytest

pytestmark = pytest.mark.anyio

SEPARATE = "/projects/prj_0001/tasks/stem-separation"


@pytest.mark.parametrize(
    "header",
    [None, "Basic eWtfYWJj", "Bearer abc_123", "Bearer yk_"],
    ids=["no-header", "not-bearer", "wrong-prefix", "empty-key"],
)
async def test_requests_without_a_valid_key_get_401_envelope(sim, http, header):
    """A missing or malformed key is answered 401 UNAUTHORIZED in the error envelope."""
    headers = {"Authorization": header} if header else {}
    async with http.get(sim.base_url + "/me", headers=headers) as response:
        body = await response.json()
    assert response.status == 401
    assert body["error"]["code"] == "UNAUTHORIZED"
    assert body["error"]["message"]
    assert body["error"]["issues"] == []


async def test_pinned_key_is_the_only_key_accepted(start_simulator, http):
    """A profile that pins a key refuses every other yk_ key."""
    sim = await start_simulator(api_key="yk_pinned")
    async with http.get(sim.base_url + "/me", headers={"Authorization": "Bearer yk_other"}) as r:
        assert r.status == 401
    async with http.get(sim.base_url + "/me", headers={"Authorization": "Bearer yk_pinned"}) as r:
        assert r.status == 200
        assert set(await r.json()) == {"email", "userId", "apiKeyId"}
    assert sim.api_key == "yk_pinned"


async def test_unknown_model_lists_the_allowed_models(api):
    """An unknown splitModel is a 422 whose message and issues name the allowed models."""
    status, body = await api.separate("prj_0001", "spleeter")
    assert status == 422
    assert body["error"]["code"] == "VALIDATION_ERROR"
    assert "spleeter" in body["error"]["message"]
    assert "bs_roformer" in body["error"]["message"] and "demucs" in body["error"]["message"]
    assert body["error"]["issues"][0]["path"] == ["splitModel"]


async def test_unknown_project_is_named_in_a_404(api):
    """A separation of an unknown project is a 404 naming the project."""
    status, body = await api.separate("prj_9999", "mdx23c")
    assert status == 404
    assert body["error"]["code"] == "NOT_FOUND"
    assert "prj_9999" in body["error"]["message"]
    status, body, _ = await api.call("GET", "/tasks/tsk_nope")
    assert status == 404 and "tsk_nope" in body["error"]["message"]


async def test_bad_json_says_the_body_is_not_json(sim, http, api):
    """A body that is not JSON, or not an object, is a 400 saying what to send."""
    async with http.post(sim.base_url + SEPARATE, data=b"{splitModel", headers=api.auth) as r:
        body = await r.json()
    assert r.status == 400
    assert body["error"]["code"] == "BAD_REQUEST"
    assert "not valid JSON" in body["error"]["message"]
    status, body, _ = await api.call("POST", SEPARATE, json=["mdx23c"])
    assert status == 400 and "JSON object" in body["error"]["message"]


async def test_unknown_route_and_wrong_method_get_envelopes(api):
    """Unknown paths get a 404 envelope and wrong methods a 405 envelope naming the allowed."""
    status, body, _ = await api.call("GET", "/projects/prj_0001/stems")
    assert status == 404 and body["error"]["code"] == "NOT_FOUND"
    status, body, _ = await api.call("DELETE", "/tasks/tsk_1")
    assert status == 405 and body["error"]["code"] == "METHOD_NOT_ALLOWED"
    assert "GET" in body["error"]["message"]


async def test_unexpected_exception_is_a_500_envelope_without_traceback(sim, api, monkeypatch):
    """A bug in a handler is answered 500 in the envelope, with no traceback in the body."""

    def broken(task_id):
        raise RuntimeError("boom at line 42")

    monkeypatch.setattr(sim.context.world, "task", broken)
    status, body, _ = await api.call("GET", "/tasks/tsk_x")
    assert status == 500
    assert body["error"]["code"] == "INTERNAL_SERVER_ERROR"
    assert "boom" not in str(body) and "Traceback" not in str(body)


async def test_bad_idempotency_key_is_refused(api):
    """An Idempotency-Key longer than 255 characters or with other characters is a 400."""
    status, body = await api.separate("prj_0001", "mdx23c", key="a" * 256)
    assert status == 400 and body["error"]["issues"][0]["path"] == ["Idempotency-Key"]
    status, body = await api.separate("prj_0001", "mdx23c", key="has space")
    assert status == 400


async def test_replay_returns_the_same_task_and_counts_one_separation(sim, api):
    """The same key and payload again returns the same task, marked replayed, one separation."""
    status, first = await api.separate("prj_0001", "mdx23c", key="restems-prj_0001-mdx23c")
    assert status == 202
    assert set(first) == {"taskId", "projectId", "taskUrl", "status"}
    status, again, headers = await api.call(
        "POST",
        SEPARATE,
        json={"splitModel": "mdx23c"},
        headers={"Idempotency-Key": "restems-prj_0001-mdx23c"},
    )
    assert status == 202
    assert headers["Idempotent-Replayed"] == "true"
    assert again["taskId"] == first["taskId"]
    stats = sim.record.snapshot()
    assert stats["separations"] == {"prj_0001:mdx23c": 1}
    assert stats["replays"] == 1


async def test_same_key_with_other_payload_is_409(sim, api):
    """Reusing a key with a different payload is 409 CONFLICT and starts nothing."""
    assert (await api.separate("prj_0001", "mdx23c", key="k-1"))[0] == 202
    status, body = await api.separate("prj_0001", "demucs", key="k-1")
    assert status == 409 and body["error"]["code"] == "CONFLICT"
    status, body = await api.separate("prj_0002", "mdx23c", key="k-1")
    assert status == 409
    stats = sim.record.snapshot()
    assert stats["conflicts"] == 2
    assert stats["separations_total"] == 1


async def test_missing_key_always_starts_a_new_task(sim, api):
    """Without an Idempotency-Key every submission is a new separation."""
    first = (await api.separate("prj_0001", "mdx23c"))[1]["taskId"]
    second = (await api.separate("prj_0001", "mdx23c"))[1]["taskId"]
    assert first != second
    assert sim.record.snapshot()["separations"] == {"prj_0001:mdx23c": 2}


async def test_lifecycle_walks_the_states_in_order_then_lists_the_stems(start_simulator, api_for):
    """A task moves created, queued, in-progress, completed, finalized; then stems are listed."""
    sim = await start_simulator(
        time_scale=10,  # each state lasts 100 ms: plenty of polls see it
        created_time=1,
        queue_time=(1, 1),
        durations={"mdx23c": 1},
        duration_jitter=0,
        finalize_after=1,
    )
    api = api_for(sim)
    status, body = await api.separate("prj_0001", "mdx23c")
    seen = [body["status"]]
    with anyio.fail_after(5):
        while seen[-1] != "finalized":
            task = (await api.call("GET", f"/tasks/{body['taskId']}"))[1]
            if task["status"] != seen[-1]:
                seen.append(task["status"])
            await anyio.sleep(0.005)
    assert seen == ["created", "queued", "in-progress", "completed", "finalized"]
    assert task == {
        "id": body["taskId"],
        "type": "stem-separation",
        "status": "finalized",
        "error": None,
        "output": {"projectId": "prj_0001"},
    }
    project = await api.project("prj_0001")
    mdx = {s["type"] for s in project["stems"] if s["model"] == "mdx23c"}
    assert mdx == {"vocals", "instrumental"}


async def test_project_starts_with_its_original_stem_only(api):
    """A fresh project has the documented fields and one original stem without a model."""
    project = await api.project("prj_0003")
    assert {
        "id",
        "title",
        "artists",
        "stems",
        "alignments",
        "exports",
        "settings",
        "lyrics",
    } <= set(project)
    assert project["title"] and project["artists"]
    [original] = project["stems"]
    assert original["type"] == "original" and original["model"] is None
    assert original["id"].startswith("stm_") and original["duration"] == 2.0


async def test_accumulate_keeps_every_set(api):
    """With stems_mode accumulate, each separation adds its own set with new stem ids."""
    await api.run("prj_0001", "mdx23c", key="a")
    await api.run("prj_0001", "mdx23c", key="b")
    await api.run("prj_0001", "musicai_instrumental_only", key="c")
    stems = (await api.project("prj_0001"))["stems"]
    vocals = [s["id"] for s in stems if s["model"] == "mdx23c" and s["type"] == "vocals"]
    assert len(vocals) == 2 and len(set(vocals)) == 2
    assert [s["type"] for s in stems if s["model"] == "musicai_instrumental_only"] == [
        "instrumental"
    ]


async def test_replace_keeps_only_the_latest_set(start_simulator, api_for):
    """With stems_mode replace, a separation replaces every non-original stem."""
    api = api_for(await start_simulator(stems_mode="replace"))
    await api.run("prj_0001", "mdx23c")
    await api.run("prj_0001", "musicai_lead_backing_other")
    stems = (await api.project("prj_0001"))["stems"]
    assert [(s["type"], s["model"]) for s in stems] == [
        ("original", None),
        ("vocals", "musicai_lead_backing_other"),
        ("backing_vocals", "musicai_lead_backing_other"),
        ("instrumental", "musicai_lead_backing_other"),
    ]


async def test_project_tasks_lists_the_history_in_order(api):
    """GET /projects/{id}/tasks lists the project's tasks, oldest first."""
    first = (await api.separate("prj_0002", "mdx23c"))[1]["taskId"]
    second = (await api.separate("prj_0002", "demucs"))[1]["taskId"]
    await api.separate("prj_0003", "demucs")
    status, tasks, _ = await api.call("GET", "/projects/prj_0002/tasks")
    assert status == 200
    assert [t["id"] for t in tasks] == [first, second]
    assert all(t["type"] == "stem-separation" for t in tasks)


async def test_task_failures_end_with_an_error_and_no_stems(start_simulator, api_for):
    """A failed task ends failed, cancelled or timed-out with a message, and adds no stems."""
    api = api_for(await start_simulator(faults={"task_failure": 1.0}))
    task = await api.run("prj_0001", "mdx23c")
    assert task["status"] in {"failed", "cancelled", "timed-out"}
    assert task["error"]
    assert len((await api.project("prj_0001"))["stems"]) == 1


async def test_quote_prices_and_refuses_long_durations(api):
    """The quote has the documented fields; durationSeconds over 1200 is a 422 with issues."""
    status, quote, _ = await api.call(
        "POST", "/projects/quote", json={"splitModel": "demucs", "durationSeconds": 200}
    )
    assert status == 200
    assert quote["creditsRequired"] == 4 and quote["sufficientBalance"] is True
    assert set(quote) == {
        "creditsRequired",
        "availableBalance",
        "sufficientBalance",
        "durationSeconds",
        "breakdown",
    }
    status, body, _ = await api.call(
        "POST", "/projects/quote", json={"splitModel": "demucs", "durationSeconds": 1201}
    )
    assert status == 422
    assert body["error"]["issues"][0]["path"] == ["durationSeconds"]


async def test_separations_spend_credits_until_402(start_simulator, api_for):
    """Each separation spends credits; with too few the submission is 402 INSUFFICIENT_CREDITS."""
    api = api_for(await start_simulator(credits=2))
    assert (await api.call("GET", "/credits"))[1]["balance"] == 2
    assert (await api.separate("prj_0001", "mdx23c"))[0] == 202
    assert (await api.separate("prj_0002", "mdx23c"))[0] == 202
    status, body = await api.separate("prj_0003", "mdx23c")
    assert status == 402 and body["error"]["code"] == "INSUFFICIENT_CREDITS"
    assert (await api.call("GET", "/credits"))[1]["balance"] == 0


async def test_record_peaks_of_separations_in_progress(start_simulator, api_for):
    """The record keeps the most separations in progress at once: account, project, model."""
    sim = await start_simulator(time_scale=1)
    api = api_for(sim)
    for pid, model in [("prj_0001", "mdx23c"), ("prj_0001", "demucs"), ("prj_0002", "mdx23c")]:
        assert (await api.separate(pid, model))[0] == 202
    stats = sim.record.snapshot()
    assert stats["max_in_progress"] == 3
    assert stats["max_in_progress_per_project"] == 2
    assert stats["max_in_progress_per_model"] == {"mdx23c": 2, "demucs": 1}
