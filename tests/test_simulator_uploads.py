"""Songs from files on the simulator: POST /uploads, the storage host's PUT, POST /projects."""

from __future__ import annotations

import hashlib
import io

import anyio
import numpy as np
import pytest
import soundfile as sf

from orchestrator.simulator import synth

pytestmark = pytest.mark.anyio


def song_file(fmt: str = "wav", seconds: float = 2.0, project: str = "prj_0001") -> bytes:
    """A synthesized song's mix, encoded as `fmt` (soundfile's format names, lower case)."""
    song = synth.synthesize_song(0, project, seconds)
    buffer = io.BytesIO()
    subtype = {"ogg": "VORBIS", "mp3": "MPEG_LAYER_III"}.get(fmt, "PCM_16")
    sf.write(buffer, song.mix, song.sample_rate, format=fmt.upper(), subtype=subtype)
    return buffer.getvalue()


CONTENT_TYPES = {
    "wav": "audio/wav",
    "flac": "audio/flac",
    "ogg": "audio/ogg",
    "mp3": "audio/mpeg",
    "aiff": "audio/aiff",
}


async def announce(api, data: bytes, content_type: str = "audio/wav", key: str | None = None):
    """POST /uploads for `data`; (status, body, headers)."""
    body = {"filename": "song.wav", "contentType": content_type, "contentLength": len(data)}
    headers = {"Idempotency-Key": key} if key else {}
    return await api.call("POST", "/uploads", json=body, headers=headers)


async def put(http, url: str, data: bytes, content_type: str = "audio/wav", **headers: str):
    """PUT `data` to a signed upload URL; (status, JSON body)."""
    async with http.put(url, data=data, headers={"Content-Type": content_type, **headers}) as r:
        return r.status, await r.json()


async def upload(api, http, data: bytes, content_type: str = "audio/wav") -> str:
    """Announce and PUT `data`; its inputFileId."""
    status, body, _ = await announce(api, data, content_type)
    assert status == 201, body
    status, stored = await put(http, body["uploadUrl"], data, content_type)
    assert status == 200, stored
    return str(body["inputFileId"])


async def create(api, file_id: str, model: str = "mdx23c", key: str | None = None, title="Song"):
    """POST /projects; (status, body, headers)."""
    headers = {"Idempotency-Key": key} if key else {}
    payload = {"title": title, "inputFileId": file_id, "splitModel": model}
    return await api.call("POST", "/projects", json=payload, headers=headers)


async def test_upload_put_create_then_the_project_separates_the_uploaded_audio(sim, api, http):
    """A created project serves the upload as its original and separates that very mix."""
    data = song_file()
    file_id = await upload(api, http, data)
    assert file_id.startswith("file_")
    status, created, _ = await create(api, file_id, "bs_roformer", title="  My Song ")
    assert status == 202, created
    assert set(created) == {"projectId", "taskId", "projectUrl", "taskUrl"}
    assert created["projectUrl"] == f"{sim.base_url}/projects/{created['projectId']}"
    task = await api.wait(created["taskId"])
    assert task["status"] in {"completed", "finalized"} and task["type"] == "project-creation"
    project = await api.project(created["projectId"])
    assert project["title"] == "My Song"
    stems = {s["type"]: s for s in project["stems"]}
    assert set(stems) == {"original", "vocals", "instrumental"}
    assert stems["vocals"]["model"] == "bs_roformer" and stems["original"]["model"] is None
    assert stems["original"]["duration"] == pytest.approx(2.0)
    async with http.get(stems["original"]["url"]) as response:
        assert response.content_type == "audio/wav"
        assert await response.read() == data  # the uploaded bytes, as they were sent
    async with http.get(stems["vocals"]["url"]) as response:
        vocals, rate = sf.read(io.BytesIO(await response.read()), dtype="float32")
    song = synth.synthesize_song(0, "prj_0001", 2.0)
    truth = song.vocals.astype(np.float64)
    error = np.sum((truth - vocals) ** 2) / np.sum(truth**2)
    assert rate == 44100 and vocals.shape == song.mix.shape
    assert error < 0.8  # closer to the true vocals than silence is: the mix was separated
    stats = sim.record.snapshot()
    assert stats["uploads"] == 1 and stats["upload_puts"] == 1 and stats["creations"] == 1
    digest = hashlib.sha256(data).hexdigest()
    assert stats["uploads_by_digest"] == {digest: 1} and stats["creations_by_digest"] == {digest: 1}
    assert stats["separations"] == {f"{created['projectId']}:bs_roformer": 1}


async def test_a_created_project_is_re_separated_from_its_upload(api, http):
    """Another model on a created project separates the uploaded mix too, into its format."""
    file_id = await upload(api, http, song_file("flac"), "audio/flac")
    created = (await create(api, file_id))[1]
    await api.wait(created["taskId"])
    await api.run(created["projectId"], "audioshake_vocals_lead")
    project = await api.project(created["projectId"])
    [lead] = [s for s in project["stems"] if s["model"] == "audioshake_vocals_lead"]
    assert lead["url"]
    original = next(s for s in project["stems"] if s["type"] == "original")
    async with http.get(original["url"]) as response:
        assert response.content_type == "audio/flac"
    async with http.get(lead["url"]) as response:
        assert response.content_type == "audio/flac"
        samples, _ = sf.read(io.BytesIO(await response.read()))
    assert samples.shape == (88200, 2) and np.abs(samples).max() > 0.01


@pytest.mark.parametrize("fmt", ["flac", "ogg", "mp3", "aiff"])
async def test_every_decodable_format_makes_a_project(api, http, fmt):
    """FLAC, Ogg Vorbis, MP3 and AIFF uploads decode: the project has the song's duration."""
    file_id = await upload(api, http, song_file(fmt), CONTENT_TYPES[fmt])
    status, created, _ = await create(api, file_id)
    assert status == 202, created
    project = await api.project(created["projectId"])
    assert project["stems"][0]["duration"] == pytest.approx(2.0, abs=0.06)


async def test_m4a_is_refused_before_any_byte_is_sent(api):
    """MP4/AAC cannot be decoded by the simulator: 422 UNSUPPORTED_MEDIA at POST /uploads."""
    for content_type in ("audio/mp4", "audio/x-m4a", "audio/aac"):
        status, body, _ = await announce(api, b"x" * 100, content_type)
        assert status == 422 and body["error"]["code"] == "UNSUPPORTED_MEDIA"
        assert "FLAC" in body["error"]["message"]


async def test_bytes_that_do_not_decode_are_refused_at_creation(sim, api, http):
    """A PUT of non-audio is stored, but creating a project from it is 422 UNSUPPORTED_MEDIA."""
    file_id = await upload(api, http, b"not audio at all" * 10)
    status, body, _ = await create(api, file_id)
    assert status == 422 and body["error"]["code"] == "UNSUPPORTED_MEDIA"
    assert "does not decode" in body["error"]["message"]
    assert sim.record.snapshot()["creations"] == 0


async def test_creation_needs_the_bytes_a_valid_title_and_model(api):
    """No bytes yet, an unknown file, a one-letter title or an unknown model: 404 or 422."""
    status, body, _ = await announce(api, b"x" * 10)
    file_id = body["inputFileId"]
    status, body, _ = await create(api, file_id)
    assert status == 422 and "PUT them" in body["error"]["message"]
    assert (await create(api, "file_nope"))[0] == 404
    status, body, _ = await create(api, file_id, title="A")
    assert status == 422 and body["error"]["issues"][0]["path"] == ["title"]
    status, body, _ = await create(api, file_id, model="spleeter")
    assert status == 422


async def test_announce_checks_every_field(api):
    """POST /uploads lists every bad field: file name, content type, length."""
    status, body, _ = await api.call(
        "POST", "/uploads", json={"filename": "", "contentType": "text/plain", "contentLength": 0}
    )
    assert status == 422
    assert [i["path"] for i in body["error"]["issues"]] == [
        ["filename"],
        ["contentType"],
        ["contentLength"],
    ]


async def test_upload_and_creation_replay_with_their_key_and_409_on_another_body(sim, api, http):
    """Same key and body: the same file (fresh URL) and project; another body: 409."""
    data = song_file()
    first = await announce(api, data, key="up-1")
    again = await announce(api, data, key="up-1")
    assert first[0] == again[0] == 201
    assert again[1]["inputFileId"] == first[1]["inputFileId"]
    assert again[2]["Idempotent-Replayed"] == "true"
    status, body, _ = await announce(api, data + b"x", key="up-1")
    assert status == 409 and body["error"]["code"] == "CONFLICT"
    assert (await put(http, again[1]["uploadUrl"], data))[0] == 200
    file_id = first[1]["inputFileId"]
    created = await create(api, file_id, key="mk-1")
    replay = await create(api, file_id, key="mk-1")
    assert replay[0] == 202 and replay[1] == created[1]
    assert replay[2]["Idempotent-Replayed"] == "true"
    assert (await create(api, file_id, "demucs", key="mk-1"))[0] == 409
    stats = sim.record.snapshot()
    assert stats["uploads"] == 1 and stats["creations"] == 1 and stats["replays"] == 2


async def test_put_refuses_credentials_and_records_them(sim, api, http):
    """The upload host refuses a PUT carrying Authorization (400) and counts it."""
    data = song_file()
    body = (await announce(api, data))[1]
    status, answer = await put(http, body["uploadUrl"], data, Authorization=f"Bearer {sim.api_key}")
    assert status == 400 and answer["error"]["code"] == "CREDENTIALS_NOT_ALLOWED"
    stats = sim.record.snapshot()
    assert stats["storage_credentials_seen"] == 1 and stats["upload_puts"] == 0


async def test_put_checks_type_length_and_signature(sim, api, http):
    """Another Content-Type or length, a forged or expired signature: refused, nothing stored."""
    data = song_file()
    url = (await announce(api, data))[1]["uploadUrl"]
    status, body = await put(http, url, data, "audio/flac")
    assert status == 400 and body["error"]["code"] == "CONTENT_TYPE_MISMATCH"
    status, body = await put(http, url, data[:-1])
    assert status == 400 and body["error"]["code"] == "CONTENT_LENGTH_MISMATCH"
    status, body = await put(http, url.replace("signature=", "signature=0"), data)
    assert status == 403 and body["error"]["code"] == "FORBIDDEN"
    assert not url.startswith(sim.base_url.rsplit("/api/", 1)[0])  # another origin
    assert sim.record.snapshot()["upload_puts"] == 0


async def test_upload_url_expires_and_a_replay_signs_a_fresh_one(start_simulator, api_for, http):
    """An upload URL past upload_url_ttl is 403 URL_EXPIRED; the same key answers a fresh URL."""
    sim = await start_simulator(upload_url_ttl=0.5)  # 0.5 ms of real time at scale 1000
    api = api_for(sim)
    data = song_file()
    old = (await announce(api, data, key="k"))[1]["uploadUrl"]
    await anyio.sleep(0.01)
    status, body = await put(http, old, data)
    assert status == 403 and body["error"]["code"] == "URL_EXPIRED"
    # The fresh URL gets a lifetime no loaded machine outruns, so its PUT cannot race it.
    sim.context.profile = sim.context.profile.replace(upload_url_ttl=3600)
    fresh = (await announce(api, data, key="k"))[1]["uploadUrl"]
    assert fresh != old and (await put(http, fresh, data))[0] == 200


async def test_write_faults_on_uploads_and_creations(start_simulator, api_for, http):
    """5xx before and after the write hit uploads, PUTs and creations; a retry with the key
    never makes a second file or project."""
    sim = await start_simulator(faults={"error_before_write": 0.7, "error_after_write": 0.7})
    api = api_for(sim)
    data = song_file()

    async def until_ok(call, ok):
        for _ in range(50):
            result = await call()
            if result[0] == ok:
                return result
            assert result[0] in (500, 502, 503), result
        raise AssertionError("no success in 50 tries")

    body = (await until_ok(lambda: announce(api, data, key="u"), 201))[1]
    await until_ok(lambda: put(http, body["uploadUrl"], data), 200)
    await until_ok(lambda: create(api, body["inputFileId"], key="c"), 202)
    stats = sim.record.snapshot()
    assert stats["uploads"] == 1 and stats["creations"] == 1
    # Three writes, each its before-write chances until one passes: met at the drawn rate.
    assert stats["fault_opportunities"]["error_before_write"] >= 3
    assert stats["server_errors"]["before_write"] >= 1
    assert stats["server_errors"]["after_write"] >= 1
