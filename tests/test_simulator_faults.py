"""Fault injection and limits: each fault at its configured rate, reproducible from the seed."""

from __future__ import annotations

import json
import math
import time

import aiohttp
import anyio
import pytest

from orchestrator.simulator.profile import load_profile

pytestmark = pytest.mark.anyio

MODELS = ("mdx23c", "demucs", "bs_roformer", "audioshakeai")


async def _attempt(http, method, url, **kwargs):
    """(status, body bytes) of one request; status 0 when the connection failed or was cut."""
    try:
        async with http.request(method, url, **kwargs) as response:
            return response.status, await response.read()
    except aiohttp.ClientPayloadError:
        return -1, b""
    except aiohttp.ClientError:
        return 0, b""


def _within_binomial(hits: int, n: int, rate: float) -> bool:
    """Whether `hits` out of `n` is within five standard deviations of `rate`."""
    spread = 5 * math.sqrt(n * rate * (1 - rate)) + 1
    return abs(hits - n * rate) <= spread


async def test_chaos_faults_occur_at_their_configured_rates(start_simulator, http):
    """Under chaos every fault kind shows up in /_sim/stats at about its configured rate."""
    sim = await start_simulator(
        "chaos", seed=11, requests_per_second=None, max_in_progress=None, url_ttl=3600
    )
    auth = {"Authorization": f"Bearer {sim.api_key}"}
    for i in range(240):
        pid = sim.project_ids[i % len(sim.project_ids)]
        model = MODELS[i % len(MODELS)]
        await _attempt(
            http,
            "POST",
            f"{sim.base_url}/projects/{pid}/tasks/stem-separation",
            json={"splitModel": model},
            headers={**auth, "Idempotency-Key": f"key-{i}"},
        )
        await _attempt(http, "GET", f"{sim.base_url}/projects/{pid}/tasks", headers=auth)
    await anyio.sleep(0.5)  # every task ends (at most five simulated minutes)
    downloads = 0
    while downloads < 300:
        status, body = await _attempt(
            http, "GET", f"{sim.base_url}/projects/prj_0001", headers=auth
        )
        if status != 200:
            continue
        for stem in json.loads(body)["stems"]:
            await _attempt(http, "GET", stem["url"])
            downloads += 1

    async with http.get(sim.root_url + "/_sim/stats") as response:
        stats = await response.json()
    rates = {
        name: getattr(sim.profile.faults, name)
        for name in (
            "rate_limit",
            "error_before_write",
            "error_after_write",
            "error_on_get",
            "drop_connection",
            "truncate_body",
            "slow_body",
            "expired_url",
            "task_failure",
        )
    }
    for kind, rate in rates.items():
        n = stats["fault_opportunities"][kind]
        hits = stats["faults"].get(kind, 0)
        assert n >= 100, (kind, n)
        assert hits > 0, kind
        assert _within_binomial(hits, n, rate), (kind, hits, n, rate)
    limited = stats["rate_limited"]
    assert limited["by_cause"]["random"] == stats["faults"]["rate_limit"]
    assert limited["with_retry_after"] > 0 and limited["without_retry_after"] > 0
    assert stats["server_errors"] == {
        "before_write": stats["faults"]["error_before_write"],
        "after_write": stats["faults"]["error_after_write"],
        "on_get": stats["faults"]["error_on_get"],
    }
    assert stats["dropped_connections"] == stats["faults"]["drop_connection"]
    assert stats["truncated_bodies"] > 0 and stats["slow_bodies"] > 0
    assert stats["expired_url_faults"] > 0
    failed = sum(stats["tasks_by_outcome"].get(k, 0) for k in ("failed", "cancelled", "timed-out"))
    assert failed == stats["faults"]["task_failure"]


async def test_account_cap_answers_429_to_the_submission_beyond_it(start_simulator, api_for):
    """With max_in_progress 2, a third separation in progress is refused 429 with Retry-After."""
    sim = await start_simulator(max_in_progress=2, time_scale=1)
    api = api_for(sim)
    assert (await api.separate("prj_0001", "mdx23c", key="a"))[0] == 202
    assert (await api.separate("prj_0002", "mdx23c", key="b"))[0] == 202
    status, body, headers = await api.call(
        "POST",
        "/projects/prj_0003/tasks/stem-separation",
        json={"splitModel": "mdx23c"},
        headers={"Idempotency-Key": "c"},
    )
    assert status == 429 and body["error"]["code"] == "TOO_MANY_REQUESTS"
    assert headers["Retry-After"] == "1"
    assert (await api.separate("prj_0001", "mdx23c", key="a"))[0] == 202  # a replay still works
    stats = sim.record.snapshot()
    assert stats["rate_limited"]["by_cause"] == {"account_cap": 1}
    assert stats["separations_total"] == 2 and stats["max_in_progress"] == 2


async def test_account_cap_frees_a_slot_when_a_task_ends(start_simulator, api_for):
    """Once a separation is terminal, a new submission fits under the cap again."""
    api = api_for(await start_simulator(max_in_progress=1))
    await api.run("prj_0001", "uvr_mdxnet_kara_2")
    assert (await api.separate("prj_0002", "uvr_mdxnet_kara_2"))[0] == 202


async def test_requests_per_second_limit_answers_429(start_simulator, api_for):
    """Beyond requests_per_second (token bucket) API calls get 429; the peak is recorded."""
    sim = await start_simulator(requests_per_second=5)
    api = api_for(sim)
    statuses = [(await api.call("GET", "/me"))[0] for _ in range(10)]
    assert statuses[:5] == [200] * 5
    assert statuses.count(429) >= 4
    stats = sim.record.snapshot()
    assert stats["rate_limited"]["by_cause"]["requests_per_second"] == statuses.count(429)
    assert stats["requests_per_second_peak"] == 10
    await anyio.sleep(0.3)
    assert (await api.call("GET", "/me"))[0] == 200


async def test_random_429_with_and_without_retry_after(start_simulator, api_for):
    """Random 429s carry Retry-After at the configured share and value."""
    sim = await start_simulator(faults={"rate_limit": 1.0, "retry_after_share": 0.5})
    api = api_for(sim)
    headers = [(await api.call("GET", "/me"))[2] for _ in range(60)]
    with_header = [h["Retry-After"] for h in headers if "Retry-After" in h]
    assert 10 < len(with_header) < 50
    assert set(with_header) == {"1"}
    assert sim.record.snapshot()["rate_limited"]["by_cause"] == {"random": 60}


async def test_error_after_write_then_retry_with_same_key_returns_same_task(
    start_simulator, api_for
):
    """A 5xx after the write applied, retried with the same key, gives the one task created."""
    sim = await start_simulator(seed=5, faults={"error_after_write": 0.5})
    api = api_for(sim)
    errors = 0
    for pid in sim.project_ids:
        key = f"restems-{pid}-mdx23c"
        for _ in range(30):
            status, body = await api.separate(pid, "mdx23c", key=key)
            if status == 202:
                break
            assert status >= 500, body
            errors += 1
        assert status == 202
        [task] = (await api.call("GET", f"/projects/{pid}/tasks"))[1]
        assert task["id"] == body["taskId"]
    stats = sim.record.snapshot()
    assert errors > 0 and stats["server_errors"] == {"after_write": errors}
    assert stats["separations_total"] == len(sim.project_ids)
    assert stats["duplicate_separations"] == 0
    assert stats["replays"] >= errors


async def test_error_before_write_applies_nothing(start_simulator, api_for):
    """A 5xx before the write leaves no task behind."""
    sim = await start_simulator(faults={"error_before_write": 1.0})
    api = api_for(sim)
    status, body = await api.separate("prj_0001", "mdx23c", key="k")
    assert status in (500, 502, 503) and body["error"]["code"]
    assert (await api.call("GET", "/projects/prj_0001/tasks"))[1] == []
    assert sim.record.snapshot()["separations_total"] == 0


async def test_dropped_connection_sends_no_response(start_simulator, http):
    """A dropped connection closes without a response and is recorded with status 0."""
    sim = await start_simulator(faults={"drop_connection": 1.0})
    status, _ = await _attempt(
        http, "GET", sim.base_url + "/me", headers={"Authorization": "Bearer yk_a"}
    )
    assert status == 0
    stats = sim.record.snapshot()
    assert stats["dropped_connections"] >= 1  # aiohttp retries a GET whose connection dropped
    assert [r["status"] for r in stats["requests"]] == [0] * stats["dropped_connections"]


async def test_truncated_body_is_shorter_than_its_content_length(start_simulator, api_for, http):
    """A truncated download announces the full length, sends less, and closes."""
    sim = await start_simulator(redirect_share=0.0, faults={"truncate_body": 1.0})
    url = (await api_for(sim).project("prj_0001"))["stems"][0]["url"]
    async with http.get(url) as response:
        assert response.content_length == 88200 * 4 + 44
        with pytest.raises(aiohttp.ClientPayloadError):
            await response.read()
    assert sim.record.snapshot()["truncated_bodies"] == 1


async def test_slow_body_arrives_whole_but_slowly(start_simulator, api_for, http):
    """A slow download arrives complete, in chunks with pauses between them."""
    sim = await start_simulator(
        redirect_share=0.0, faults={"slow_body": 1.0, "slow_pause": 0.05, "slow_chunk_bytes": 65536}
    )
    url = (await api_for(sim).project("prj_0001"))["stems"][0]["url"]
    started = time.monotonic()
    async with http.get(url) as response:
        data = await response.read()
    assert len(data) == response.content_length == 88200 * 4 + 44
    assert time.monotonic() - started >= 0.25  # six chunks, five pauses at least
    assert sim.record.snapshot()["slow_bodies"] == 1


async def test_expired_url_fault_refuses_a_fresh_url(start_simulator, api_for, http):
    """The expired_url fault answers 403 URL_EXPIRED to a URL that is still valid."""
    sim = await start_simulator(redirect_share=0.0, faults={"expired_url": 1.0})
    url = (await api_for(sim).project("prj_0001"))["stems"][0]["url"]
    async with http.get(url) as response:
        assert response.status == 403
        assert (await response.json())["error"]["code"] == "URL_EXPIRED"
    assert sim.record.snapshot()["expired_url_faults"] == 1


async def test_hostile_names_add_stems_unsafe_as_file_names(start_simulator, api_for, http):
    """hostile_names adds stems whose type or model would escape a directory, still fetchable."""
    api = api_for(await start_simulator(hostile_names=True))
    await api.run("prj_0001", "mdx23c")
    stems = (await api.project("prj_0001"))["stems"]
    unsafe = [s for s in stems if "/" in s["type"] or "\\" in s["type"] or s["type"] == ".."]
    assert any(s["model"] == "mdx23c" for s in unsafe)
    assert any(s["model"] and "/" in s["model"] for s in stems)
    async with http.get(unsafe[0]["url"]) as response:
        assert response.status == 200 and response.content_type == "audio/wav"


async def _request_sequence(start_simulator, api_for, seed):
    """A fixed sequence of requests under chaos; the outcomes and ids it met."""
    sim = await start_simulator("chaos", seed=seed, max_in_progress=None, requests_per_second=None)
    api = api_for(sim)
    seen = []
    for i in range(40):
        try:
            status, body = await api.separate(sim.project_ids[i % 6], MODELS[i % 4], key=f"k{i}")
        except aiohttp.ClientError:
            seen.append((0, "dropped"))
            continue
        seen.append((status, body.get("taskId") if status == 202 else body["error"]["code"]))
    return seen


async def test_same_seed_same_requests_same_outcomes(start_simulator, api_for):
    """Two runs with the same seed and request sequence meet the same faults and ids."""
    first = await _request_sequence(start_simulator, api_for, seed=3)
    second = await _request_sequence(start_simulator, api_for, seed=3)
    other = await _request_sequence(start_simulator, api_for, seed=4)
    assert first == second
    assert first != other
    assert any(status != 202 for status, _ in first)


def test_chaos_profile_turns_every_fault_on_and_default_none():
    """Every fault rate is zero in the default profile and positive in chaos."""
    default, chaos = load_profile("default"), load_profile("chaos")
    kinds = [k for k in vars(default.faults) if k not in {"retry_after_share", "retry_after"}]
    rates = [k for k in kinds if k not in {"slow_pause", "slow_chunk_bytes"}]
    assert all(getattr(default.faults, k) == 0 for k in rates)
    assert all(getattr(chaos.faults, k) > 0 for k in rates)
    assert default.max_in_progress is None and chaos.max_in_progress
    assert default.requests_per_second is None and chaos.requests_per_second
