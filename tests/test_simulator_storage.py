"""Stem files: signed URLs on a second host, redirects, credentials refused, expiry."""

from __future__ import annotations

import io

import anyio
import pytest
import soundfile as sf
from yarl import URL

pytestmark = pytest.mark.anyio


async def test_stems_decode_as_audio_of_the_song_length(api, http):
    """Each stem downloads with its Content-Type and decodes to two seconds of stereo audio."""
    await api.run("prj_0001", "mdx23c")
    await api.run("prj_0001", "audioshakeai")
    stems = (await api.project("prj_0001"))["stems"]
    seen = {}
    for stem in stems:
        async with http.get(stem["url"]) as response:
            assert response.status == 200
            data = await response.read()
            assert response.content_length == len(data)
        audio, rate = sf.read(io.BytesIO(data))
        assert rate == 44100 and audio.shape == (88200, 2)
        seen[(stem["model"], stem["type"])] = response.content_type
    assert seen[(None, "original")] == "audio/wav"
    assert seen[("mdx23c", "vocals")] == "audio/wav"
    assert seen[("audioshakeai", "instrumental")] == "audio/flac"


async def test_stem_urls_point_at_the_storage_host_or_redirect_there(start_simulator, api_for):
    """Direct URLs name the storage host; the others are API-host URLs that 302 to it."""
    sim = await start_simulator(redirect_share=1.0)
    api = api_for(sim)
    [original] = (await api.project("prj_0001"))["stems"]
    url = URL(original["url"])
    assert url.port == URL(sim.base_url).port and url.path.endswith("/download")
    async with api.session.get(url, allow_redirects=False) as response:
        assert response.status == 302
        location = URL(response.headers["Location"])
    assert location.port == URL(sim.storage_url).port
    assert {"expires", "signature"} <= set(location.query)
    async with api.session.get(url) as response:  # following, like curl -L
        assert response.status == 200 and response.content_type == "audio/wav"
        assert response.url.port == URL(sim.storage_url).port

    direct = await start_simulator(redirect_share=0.0)
    [original] = (await api_for(direct).project("prj_0001"))["stems"]
    assert URL(original["url"]).port == URL(direct.storage_url).port


async def test_storage_refuses_authorization_and_counts_it(sim, api, http):
    """A download carrying Authorization is refused (400) and counted in the record."""
    [original] = (await api.project("prj_0001"))["stems"]
    storage_url = await _storage_url(http, original["url"])
    async with http.get(storage_url, headers=api.auth) as response:
        body = await response.json()
    assert response.status == 400
    assert body["error"]["code"] == "CREDENTIALS_NOT_ALLOWED"
    assert sim.record.snapshot()["storage_credentials_seen"] == 1


async def test_every_project_read_signs_a_fresh_url(api):
    """Two project reads give two different signed URLs for the same stem."""
    first = (await api.project("prj_0001"))["stems"][0]["url"]
    await anyio.sleep(0.01)
    second = (await api.project("prj_0001"))["stems"][0]["url"]
    assert first != second


async def test_expired_url_is_403(start_simulator, api_for, http):
    """A signed URL used after url_ttl (simulated) is refused with 403 URL_EXPIRED."""
    api = api_for(await start_simulator(url_ttl=5.0, redirect_share=0.0))  # 5 ms real
    url = (await api.project("prj_0001"))["stems"][0]["url"]
    await anyio.sleep(0.05)
    async with http.get(url) as response:
        body = await response.json()
    assert response.status == 403
    assert body["error"]["code"] == "URL_EXPIRED"
    assert "re-read the project" in body["error"]["message"]


async def test_tampered_signature_is_403(api, http):
    """A URL whose signature does not match is refused with 403."""
    url = URL(await _storage_url(http, (await api.project("prj_0001"))["stems"][0]["url"]))
    forged = url.update_query(signature="0" * 32)
    async with http.get(forged) as response:
        assert response.status == 403
        assert (await response.json())["error"]["code"] == "FORBIDDEN"


async def test_range_requests_get_206(api, http):
    """A Range request gets 206 with exactly the bytes asked for."""
    url = await _storage_url(http, (await api.project("prj_0001"))["stems"][0]["url"])
    async with http.get(url) as response:
        whole = await response.read()
    async with http.get(url, headers={"Range": "bytes=10-19"}) as response:
        assert response.status == 206
        assert await response.read() == whole[10:20]
        assert response.headers["Content-Range"] == f"bytes 10-19/{len(whole)}"


async def test_replaced_stems_are_gone(start_simulator, api_for, http):
    """After a replacing separation, the previous set's URLs answer 404."""
    api = api_for(await start_simulator(stems_mode="replace", redirect_share=0.0))
    await api.run("prj_0001", "mdx23c")
    old = [s["url"] for s in (await api.project("prj_0001"))["stems"] if s["model"]]
    await api.run("prj_0001", "demucs")
    async with http.get(old[0]) as response:
        assert response.status == 404


async def test_concurrent_downloads_synthesize_once(sim, api, http):
    """Many concurrent downloads of one model's stems share one synthesis of the song."""
    await api.run("prj_0002", "bs_roformer")
    urls = [s["url"] for s in (await api.project("prj_0002"))["stems"] if s["model"]] * 4
    bodies = []

    async def fetch(url):
        async with http.get(url) as response:
            bodies.append(await response.read())

    async with anyio.create_task_group() as tg:
        for url in urls:
            tg.start_soon(fetch, url)
    assert len(bodies) == 8 and len(set(bodies)) == 2
    assert sim.context.media.synthesis_count == {"song": 1, "stems": 1}


async def _storage_url(http, url: str) -> str:
    """The storage-host URL behind a stem URL (following one redirect)."""
    async with http.get(url, allow_redirects=False) as response:
        if response.status == 302:
            return response.headers["Location"]
    return url


async def test_storage_refuses_credentials_on_any_path(sim, http):
    """Even a request for no file at all is refused when it carries credentials."""
    async with http.get(sim.storage_url + "/anything", headers={"Authorization": "x"}) as r:
        assert r.status == 400
    assert sim.record.snapshot()["storage_credentials_seen"] == 1
