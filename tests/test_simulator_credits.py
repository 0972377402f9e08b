"""Credits and key retention on the simulator: prices, quotes, charges, refusals, forgotten keys."""

from __future__ import annotations

import anyio
import pytest
from test_simulator_uploads import create, song_file, upload

from orchestrator.simulator.profile import load_profile

pytestmark = pytest.mark.anyio


def test_price_is_per_started_minute_times_the_model_factor():
    """A separation costs ceil(minutes) x credits_per_minute x the model's factor, at least 1."""
    profile = load_profile("default")
    assert profile.separation_cost(200, "demucs") == 4
    assert profile.separation_cost(200, "audioshakeai") == 8
    assert profile.separation_cost(61, "musicai_lead_backing_other") == 3
    assert profile.replace(credits_per_minute=0).separation_cost(30, "demucs") == 1


async def test_quote_prices_a_duration_or_an_uploaded_file(api, http):
    """The quote takes durationSeconds or an inputFileId (its decoded length); one is needed."""
    status, quote, _ = await api.call(
        "POST", "/projects/quote", json={"splitModel": "audioshakeai", "durationSeconds": 150.5}
    )
    assert status == 200
    assert quote == {
        "creditsRequired": 6,
        "availableBalance": 1_000_000,
        "sufficientBalance": True,
        "durationSeconds": 150.5,
        "breakdown": {"split": 6, "sync": 0},
    }
    file_id = await upload(api, http, song_file())
    status, quote, _ = await api.call(
        "POST", "/projects/quote", json={"splitModel": "mdx23c", "inputFileId": file_id}
    )
    assert status == 200 and quote["durationSeconds"] == pytest.approx(2.0)
    assert quote["creditsRequired"] == 1
    status, body, _ = await api.call("POST", "/projects/quote", json={"splitModel": "mdx23c"})
    assert status == 422 and body["error"]["issues"][0]["path"] == ["durationSeconds"]
    status, body, _ = await api.call(
        "POST", "/projects/quote", json={"splitModel": "mdx23c", "inputFileId": "file_nope"}
    )
    assert status == 404


async def test_charges_on_acceptance_never_on_replay(sim, api, http):
    """Separations and creations are charged once each; replays and quotes cost nothing."""
    await api.separate("prj_0001", "audioshakeai", key="s-1")
    await api.separate("prj_0001", "audioshakeai", key="s-1")
    file_id = await upload(api, http, song_file())
    await create(api, file_id, "demucs", key="c-1")
    await create(api, file_id, "demucs", key="c-1")
    await api.call("POST", "/projects/quote", json={"splitModel": "demucs", "durationSeconds": 9})
    status, balance, _ = await api.call("GET", "/credits")
    assert status == 200 and balance == {"balance": 1_000_000 - 2 - 1, "currency": "credits"}
    stats = sim.record.snapshot()
    assert stats["credits_charged"] == 3 and stats["quotes"] == 1 and stats["replays"] == 2


async def test_insufficient_credits_is_402_by_default_and_403_when_asked(start_simulator, api_for):
    """Too few credits: 402 INSUFFICIENT_CREDITS, or 403 with that code; nothing is started."""
    for status_wanted in (402, 403):
        sim = await start_simulator(credits=1, insufficient_credits_status=status_wanted)
        api = api_for(sim)
        assert (await api.separate("prj_0001", "mdx23c"))[0] == 202
        status, body = await api.separate("prj_0002", "audioshakeai")
        assert status == status_wanted and body["error"]["code"] == "INSUFFICIENT_CREDITS"
        stats = sim.record.snapshot()
        assert stats["separations_total"] == 1 and stats["insufficient_credits_refusals"] == 1
        assert stats["credits_charged"] == 1


async def test_creation_without_credits_starts_nothing(start_simulator, api_for, http):
    """A creation the balance cannot pay is refused; no project appears."""
    sim = await start_simulator(credits=0)
    api = api_for(sim)
    file_id = await upload(api, http, song_file())
    status, body, _ = await create(api, file_id)
    assert status == 402 and body["error"]["code"] == "INSUFFICIENT_CREDITS"
    assert sim.record.snapshot()["creations"] == 0 and len(sim.project_ids) == 6


async def test_a_key_is_forgotten_after_its_window_and_a_resend_pays_again(
    start_simulator, api_for
):
    """Past idempotency_key_ttl the same key starts (and charges) a second separation,
    and the record counts it."""
    sim = await start_simulator(idempotency_key_ttl=20)  # 20 ms of real time at scale 1000
    api = api_for(sim)
    first = (await api.separate("prj_0001", "mdx23c", key="k"))[1]["taskId"]
    again = (await api.separate("prj_0001", "mdx23c", key="k"))[1]["taskId"]
    assert again == first  # within the window: a replay
    await anyio.sleep(0.05)
    status, late = await api.separate("prj_0001", "mdx23c", key="k")
    assert status == 202 and late["taskId"] != first
    stats = sim.record.snapshot()
    assert stats["separations"] == {"prj_0001:mdx23c": 2} and stats["duplicate_separations"] == 1
    assert stats["expired_key_reuses"] == 1 and stats["credits_charged"] == 2
    status, body = await api.separate("prj_0001", "demucs", key="k")
    assert status == 409  # the key now belongs to the second task, with its payload


async def test_keys_are_remembered_forever_by_default(sim, api):
    """Without idempotency_key_ttl a key replays however much simulated time passes."""
    assert sim.profile.idempotency_key_ttl is None
    first = (await api.separate("prj_0001", "mdx23c", key="k"))[1]["taskId"]
    await anyio.sleep(0.1)  # 100 simulated seconds
    assert (await api.separate("prj_0001", "mdx23c", key="k"))[1]["taskId"] == first
