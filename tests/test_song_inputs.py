"""Song files as a sweep's input: found, read and checked before any request."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import quick_profile
from song_files import write_aac, write_m4a, write_song

from orchestrator.errors import ManifestError
from orchestrator.jobs import Shard, song_key
from orchestrator.manifest import load_manifest
from orchestrator.paths import song_folder, song_slug
from orchestrator.simulator.server import SimulatorThread
from orchestrator.song_plan import plan_songs
from orchestrator.songfiles import read_song

CATALOGUE = ["mdx23c", "audioshakeai", "bs_roformer", "demucs"]


def manifest(tmp_path: Path, *sweeps: dict[str, Any], **sections: Any) -> Path:
    path = tmp_path / "manifest.yaml"
    data = {"version": 1, "name": "songs", "sweeps": list(sweeps), **sections}
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def test_a_folder_a_glob_and_a_list_are_read_relative_to_the_manifest(tmp_path: Path) -> None:
    """A folder is searched recursively, a glob expanded, a list read in order, once each."""
    write_song(tmp_path / "music" / "b.wav", seed=1)
    write_song(tmp_path / "music" / "deep" / "a.flac", seed=2)
    write_song(tmp_path / "other" / "c.ogg", seed=3)
    (tmp_path / "music" / "notes.txt").write_text("not a song")
    loaded = load_manifest(
        manifest(
            tmp_path,
            {"songs": "music/", "models": ["demucs"]},
            {"songs": "other/*.ogg", "models": ["mdx23c"]},
            {"songs": ["other/c.ogg", "music/b.wav", "other/c.ogg"], "models": ["demucs"]},
        )
    )
    first, second, third = loaded.sweeps
    assert [s.path.relative_to(tmp_path).as_posix() for s in first.songs] == [
        "music/b.wav",
        "music/deep/a.flac",
    ]
    assert [s.format for s in first.songs] == ["wav", "flac"]
    assert [s.path.name for s in second.songs] == ["c.ogg"]
    assert [s.path.name for s in third.songs] == ["c.ogg", "b.wav"]
    assert first.projects == () and first.songs[0].duration == pytest.approx(2.0)


@pytest.mark.parametrize("suffix", ["wav", "flac", "mp3", "ogg", "aiff"])
def test_every_decodable_format_reads_its_type_and_duration(tmp_path: Path, suffix: str) -> None:
    """Each format's header gives its upload type and its decoded duration."""
    song = read_song(write_song(tmp_path / f"My Song.{suffix}", seconds=1.5))
    expected = {
        "wav": "audio/wav",
        "flac": "audio/flac",
        "mp3": "audio/mpeg",
        "ogg": "audio/ogg",
        "aiff": "audio/aiff",
    }
    assert song.content_type == expected[suffix]
    assert song.duration == pytest.approx(1.5, abs=0.1)
    assert song.title == "My Song"


def test_m4a_and_aac_are_songs_checked_by_their_container(tmp_path: Path) -> None:
    """An MP4 with its ftyp box and an ADTS stream are songs; the MP4's title tag is used."""
    m4a = read_song(write_m4a(tmp_path / "x.m4a", title="Tagged Title"))
    aac = read_song(write_aac(tmp_path / "ab.aac"))
    assert (m4a.format, m4a.content_type, m4a.title) == ("m4a", "audio/mp4", "Tagged Title")
    assert m4a.duration == pytest.approx(2.0)
    assert (aac.format, aac.content_type, aac.title) == ("aac", "audio/aac", "ab")
    assert aac.duration > 0
    no_ftyp = tmp_path / "moov-only.m4a"
    no_ftyp.write_bytes((tmp_path / "x.m4a").read_bytes()[24:])  # the ftyp box cut off
    with pytest.raises(ValueError, match="moov-only.m4a"):
        read_song(no_ftyp)


def test_a_short_file_name_is_kept_whole_as_the_title(tmp_path: Path) -> None:
    """A title needs 2 characters: `a.wav` is titled `a.wav`."""
    assert read_song(write_song(tmp_path / "a.wav")).title == "a.wav"


def empty_wav(path: Path) -> None:
    import wave

    with wave.open(str(path), "wb") as out:
        out.setnchannels(2)
        out.setsampwidth(2)
        out.setframerate(44100)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda d: None, "no such file or folder"),
        (lambda d: (d / "music").mkdir(), "holds no audio file"),
        (lambda d: (d / "music").mkdir() or (d / "music" / "x.txt").write_text("x"), "no audio"),
        (
            lambda d: (d / "music").mkdir() or (d / "music" / "fake.wav").write_text("text"),
            "fake.wav: not a readable audio file",
        ),
        (
            lambda d: (d / "music").mkdir() or (d / "music" / "fake.mp3").write_bytes(b"\0" * 900),
            "fake.mp3: not a readable audio file",
        ),
        (
            lambda d: (d / "music").mkdir() or empty_wav(d / "music" / "ok.wav"),
            "ok.wav: holds no audio",
        ),
    ],
)
def test_bad_song_inputs_are_refused_naming_the_file(
    tmp_path: Path, make: Any, message: str
) -> None:
    """A missing path, an empty folder, a file that is not audio: refused, naming it."""
    make(tmp_path)
    with pytest.raises(ManifestError, match=message) as caught:
        load_manifest(manifest(tmp_path, {"songs": "music/", "models": ["demucs"]}))
    assert "sweeps[0].songs" in str(caught.value)


@pytest.fixture(scope="module")
def sim() -> Iterator[SimulatorThread]:
    """A simulator that counts every request; it must see none."""
    with SimulatorThread(quick_profile(), seed=5, time_scale=1000) as simulator:
        yield simulator


@pytest.mark.slow
@pytest.mark.parametrize("bad", ["missing", "not-audio", "empty-folder"])
def test_bad_song_inputs_exit_2_with_zero_requests(
    tmp_path: Path, sim: SimulatorThread, bad: str
) -> None:
    """`stemsweep run` on a bad song input exits 2 naming the file, before any request."""
    write_song(tmp_path / "music" / "good.wav")
    if bad == "not-audio":
        (tmp_path / "music" / "broken.flac").write_bytes(b"fLaC" + b"\0" * 64)
        songs: Any = "music/"
    elif bad == "missing":
        songs = ["music/good.wav", "music/gone.wav"]
    else:
        (tmp_path / "empty").mkdir()
        songs = "empty/"
    path = manifest(tmp_path, {"songs": songs, "models": ["demucs"]}, output=str(tmp_path / "out"))
    before = sim.stats()["requests_total"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("YOUKA_")}
    env.update(YOUKA_API_KEY=sim.api_key, YOUKA_API_URL=sim.base_url)
    done = subprocess.run(
        [sys.executable, "-m", "orchestrator", "run", str(path), "--no-progress"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, done.stderr
    named = {"missing": "gone.wav", "not-audio": "broken.flac", "empty-folder": "empty"}[bad]
    assert named in done.stderr and "Traceback" not in done.stderr
    assert sim.stats()["requests_total"] == before
    assert not (tmp_path / "out").exists()


def test_the_same_bytes_under_two_names_are_one_song(tmp_path: Path) -> None:
    """Songs are grouped by digest: one song, every path listed, the models of every sweep."""
    a = write_song(tmp_path / "Album" / "Track One.wav", seed=1)
    b = tmp_path / "copy.wav"
    b.write_bytes(a.read_bytes())
    c = write_song(tmp_path / "Other" / "track one.flac", seed=2)
    loaded = load_manifest(
        manifest(
            tmp_path,
            {"songs": [str(a), str(c)], "models": ["demucs", "bs_roformer"]},
            {"songs": [str(b)], "models": ["mdx23c"]},
            {"projects": ["track-one"], "models": ["mdx23c"]},
        )
    )
    digests = {a: "aa" * 32, b: "aa" * 32, c: "cc" * 32}
    first, second = plan_songs(loaded, digests, CATALOGUE, recorded={})
    assert first.paths == (a, b) and first.file.path == a
    assert first.models == ("mdx23c", "bs_roformer", "demucs")  # catalogue order
    assert second.models == ("bs_roformer", "demucs")
    # `track-one` twice among the songs, and a project's id: both get their digest's mark.
    assert (first.folder, second.folder) == ("track-one-aaaaaaaa", "track-one-cccccccc")
    kept = plan_songs(loaded, digests, CATALOGUE, recorded={"cc" * 32: "track-one"})
    assert kept[1].folder == "track-one" and kept[0].folder == "track-one-aaaaaaaa"


def test_song_keys_depend_on_the_digest_not_the_path() -> None:
    """A song's keys are the scope, its digest, the step and the attempt; never a project's."""
    digest = "ab" * 32
    assert song_key("scope", digest, "upload", 1) == f"ss1:scope:b3.{digest}:upload:1"
    assert song_key("scope", digest, "create", 2) == f"ss1:scope:b3.{digest}:create:2"
    assert song_key("scope", digest, "create", 1) != song_key("scope", "cd" * 32, "create", 1)
    with pytest.raises(ValueError):
        song_key("scope", digest, "separate", 1)


def test_songs_go_to_shards_by_digest() -> None:
    """Every song is in exactly one of N shards, by the digest of its bytes."""
    digests = [f"{i:064x}" for i in range(200)]
    shards = [Shard(i, 4) for i in range(4)]
    owners = [[s.index for s in shards if s.has_song(d)] for d in digests]
    assert all(len(o) == 1 for o in owners)
    assert {o[0] for o in owners} == {0, 1, 2, 3}


@pytest.mark.parametrize(
    ("name", "slug"),
    [
        ("My Song (live).flac", "my-song-live"),
        ("Ünïcode – Track 01.ogg", "unicode-track-01"),
        ("CON.mp3", "con-song"),
        ("___.wav", "song"),
        ("../../etc/passwd.wav", "passwd"),
    ],
)
def test_song_slugs_are_safe_folder_names(name: str, slug: str) -> None:
    """A song's folder is a plain name made of its file name, whatever the name holds."""
    assert song_slug(name) == slug
    assert song_folder(slug, "0123456789" * 7, unique=False) == f"{slug}-01234567"
