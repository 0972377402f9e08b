"""The simulator's audio: songs, separated stems and reference parts, made lazily and cached.

Nothing is synthesized until a client asks for it: the first download of a project's stem
synthesizes that project's song; the first download of one model's stem separates and encodes
that model's whole set. Synthesis is CPU-bound numpy, so it runs in worker threads (at most
one per CPU) while the event loop keeps answering. A lock per cache key makes two concurrent
requests for the same thing share one synthesis.

Caches are bounded (least recently used first out), by count and by bytes: a twenty-second
stereo stem is a few megabytes, a user's four-minute song forty, and everything can be made
again, identically, from the seed (and the uploaded file).

A project created from an uploaded file (`POST /projects`) serves that file as its original
stem, byte for byte, and its models separate the decoded mix (`unmix.py`).

Profiles with `synthesize: false` (the bench) never synthesize: every stem is the same tiny
WAV of `stem_bytes`, and titles are cheap deterministic names.
"""

from __future__ import annotations

import os
import zlib
from collections import Counter, OrderedDict
from collections.abc import Callable, Hashable
from typing import TYPE_CHECKING, Any, TypeVar

import anyio
import anyio.to_thread

from orchestrator.simulator import encoding, models, synth, unmix
from orchestrator.simulator.entities import Stem
from orchestrator.simulator.profile import Profile
from orchestrator.simulator.world import HOSTILE_SOURCE, UPLOAD_SOURCE, World

if TYPE_CHECKING:
    from orchestrator.simulator.saving import Blobs

T = TypeVar("T")

MAX_SONGS = 8
MAX_STEM_SETS = 24
MAX_SONG_BYTES = 1 << 30
MAX_STEM_SET_BYTES = 512 << 20
MAX_REFERENCE_SETS = 4
DECOY_BYTES = 4096
REFERENCE_TYPES = ("original", "vocals", "backing_vocals", "instrumental")

_ADJECTIVES = ("Quiet", "Electric", "Golden", "Broken", "Midnight", "Paper", "Silver", "Wild")
_NOUNS = ("Harbour", "Engine", "Orchard", "Signal", "River", "Lantern", "Summer", "Static")
_ARTISTS = ("The Loopbacks", "Port Zero", "Ada & the Seeds", "Null Choir", "Sine Theory")


class Media:
    """Lazily made, cached audio for one simulator."""

    def __init__(self, profile: Profile, seed: int, *, world: World, blobs: Blobs) -> None:
        self._profile = profile
        self._seed = seed
        self._world = world
        self._blobs = blobs
        self._caches: dict[str, _Lru] = {
            "song": _Lru(MAX_SONGS, MAX_SONG_BYTES),
            "stems": _Lru(MAX_STEM_SETS, MAX_STEM_SET_BYTES),
            "references": _Lru(MAX_REFERENCE_SETS),
            "tiny": _Lru(2),
        }
        self._locks: dict[tuple[str, Hashable], anyio.Lock] = {}
        self._workers = anyio.CapacityLimiter(max(1, os.cpu_count() or 1))
        self._titles: dict[str, tuple[str, str]] = {}
        self.synthesis_count: Counter[str] = Counter()  # values made, by cache

    async def metadata(self, pid: str) -> tuple[str, str]:
        """The title and artist of project `pid`."""
        project = self._world.projects.get(pid)
        if project is not None and project.title is not None:
            return project.title, ""
        if not self._profile.synthesize:
            return cheap_title(self._seed, pid)
        if pid not in self._titles:  # kept for good: songs leave their cache, titles do not
            song = await self.song(pid)
            self._titles[pid] = (song.title, song.artist)
        return self._titles[pid]

    async def song(self, pid: str) -> synth.Song:
        """The song of project `pid`: synthesized, or split from its uploaded file."""
        p = self._profile
        project = self._world.projects.get(pid)
        if project is not None and project.upload is not None:
            upload, title = project.upload, project.title or pid
            return await self._cached(
                "song",
                pid,
                lambda: unmix.song_from_file(self._blobs.get_blob(upload), pid, title),
            )
        return await self._cached(
            "song",
            pid,
            lambda: synth.synthesize_song(self._seed, pid, p.song_seconds, p.sample_rate),
        )

    async def stem_bytes(self, stem: Stem) -> bytes:
        """The encoded file of `stem`, in its format."""
        if stem.source == UPLOAD_SOURCE:
            upload = self._world.projects[stem.project_id].upload or ""
            return await anyio.to_thread.run_sync(self._blobs.get_blob, upload)
        uploaded = self._world.projects[stem.project_id].upload is not None
        if not self._profile.synthesize and not uploaded:
            return await self._tiny(self._profile.stem_bytes)
        if stem.source == HOSTILE_SOURCE:
            return await self._tiny(DECOY_BYTES)
        if stem.source == "original":
            return (await self.references(stem.project_id))["original"]
        song = await self.song(stem.project_id)
        model, fmt = stem.source, stem.fmt

        def separate_and_encode() -> dict[str, bytes]:
            parts = models.separate(song, model, self._seed)
            return {kind: encoding.encode(a, song.sample_rate, fmt) for kind, a in parts.items()}

        files = await self._cached("stems", (stem.project_id, model), separate_and_encode)
        return files[stem.type]

    async def references(self, pid: str) -> dict[str, bytes]:
        """The true parts of project `pid` (the song before any separation), as WAV files."""
        if not self._profile.synthesize:
            tiny = await self._tiny(self._profile.stem_bytes)
            return dict.fromkeys(REFERENCE_TYPES, tiny)
        song = await self.song(pid)

        def encode_all() -> dict[str, bytes]:
            parts = synth.references(song)
            return {kind: encoding.encode(a, song.sample_rate, "wav") for kind, a in parts.items()}

        return await self._cached("references", pid, encode_all)

    async def _tiny(self, n_bytes: int) -> bytes:
        return await self._cached("tiny", n_bytes, lambda: encoding.tiny_wav(n_bytes, self._seed))

    async def _cached(self, kind: str, key: Hashable, make: Callable[[], T]) -> T:
        """The cached value of `key`, made once in a worker thread when missing."""
        cache = self._caches[kind]
        if key in cache:
            return cache.get(key)  # type: ignore[no-any-return]
        lock_key = (kind, key)
        lock = self._locks.setdefault(lock_key, anyio.Lock())
        try:
            async with lock:
                if key not in cache:
                    self.synthesis_count[kind] += 1
                    value = await anyio.to_thread.run_sync(make, limiter=self._workers)
                    cache.put(key, value)
                return cache.get(key)  # type: ignore[no-any-return]
        finally:
            if not lock.locked() and lock.statistics().tasks_waiting == 0:
                self._locks.pop(lock_key, None)


def cheap_title(seed: int, pid: str) -> tuple[str, str]:
    """A deterministic title and artist without any synthesis."""
    n = zlib.crc32(f"{seed}:{pid}".encode())
    title = f"{_ADJECTIVES[n % len(_ADJECTIVES)]} {_NOUNS[(n // 7) % len(_NOUNS)]}"
    return title, _ARTISTS[(n // 3) % len(_ARTISTS)]


class _Lru:
    """A small least-recently-used cache, bounded by count and (roughly) by bytes."""

    def __init__(self, size: int, max_bytes: int | None = None) -> None:
        self._size = size
        self._max_bytes = max_bytes
        self._bytes = 0
        self._items: OrderedDict[Hashable, Any] = OrderedDict()

    def __contains__(self, key: Hashable) -> bool:
        return key in self._items

    def get(self, key: Hashable) -> Any:
        self._items.move_to_end(key)
        return self._items[key]

    def put(self, key: Hashable, value: Any) -> None:
        if key in self._items:
            self._bytes -= _weight(self._items[key])
        self._items[key] = value
        self._bytes += _weight(value)
        self._items.move_to_end(key)
        while len(self._items) > self._size or (
            self._max_bytes is not None and self._bytes > self._max_bytes and len(self._items) > 1
        ):
            _, dropped = self._items.popitem(last=False)
            self._bytes -= _weight(dropped)


def _weight(value: Any) -> int:
    """Roughly how many bytes a cached value holds."""
    if isinstance(value, bytes):
        return len(value)
    if isinstance(value, dict):
        return sum(_weight(v) for v in value.values())
    if isinstance(value, synth.Song):
        return 3 * value.lead.nbytes
    return 0
