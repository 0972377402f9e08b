"""What every HTTP handler of one simulator shares: its clock, state, audio, record, secret."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

from aiohttp import web
from yarl import URL

from orchestrator.simulator.clock import SimClock
from orchestrator.simulator.entities import Stem, Upload
from orchestrator.simulator.errors import Dropped
from orchestrator.simulator.faults import Dice, FaultRoller, TokenBucket
from orchestrator.simulator.media import Media
from orchestrator.simulator.profile import Profile
from orchestrator.simulator.record import Record
from orchestrator.simulator.saving import Blobs, Keeper, MemoryBlobs, Parts, new_parts
from orchestrator.simulator.signing import expiry_ms, sign
from orchestrator.simulator.world import World

API_PREFIX = "/api/v1"
SIM_PREFIX = "/_sim/"
DEFAULT_API_KEY = "yk_simulator"


@dataclass
class Context:
    """One simulator's moving parts, built once and handed to both HTTP apps."""

    profile: Profile
    seed: int
    clock: SimClock
    dice: Dice
    record: Record
    world: World
    media: Media
    faults: FaultRoller
    secret: bytes
    bucket: TokenBucket | None
    blobs: Blobs
    keeper: Keeper | None = None
    storage_port: int = 0

    @classmethod
    def create(
        cls, profile: Profile, seed: int, time_scale: float, state: Path | None = None
    ) -> Context:
        """The simulator state for `profile`, all randomness drawn from `seed`: a new world,
        or the world kept in the state folder `state` (locked until `close`)."""
        keeper = None
        blobs: Blobs
        if state is None:
            parts: Parts = new_parts(profile, seed, time_scale)
            blobs = MemoryBlobs()
        else:
            keeper = Keeper.open(state, profile, seed, time_scale)
            parts, blobs = keeper.parts, keeper.folder
        rate = profile.requests_per_second
        world = parts.world
        return cls(
            profile=profile,
            seed=seed,
            clock=parts.clock,
            dice=parts.dice,
            record=parts.record,
            world=world,
            media=Media(profile, seed, world=world, blobs=blobs),
            faults=FaultRoller(parts.dice, parts.record),
            secret=parts.secret,
            bucket=TokenBucket(rate) if rate is not None else None,
            blobs=blobs,
            keeper=keeper,
        )

    def after_request(self) -> None:
        """Save what the request changed (state folder), before its answer leaves."""
        if self.keeper is not None:
            self.keeper.after_request()
        else:
            self.world.changes.clear()

    def close(self) -> None:
        """Save the whole world and release the state folder (nothing without one)."""
        keeper, self.keeper = self.keeper, None
        if keeper is not None:
            keeper.close()

    @property
    def api_key(self) -> str:
        """A key the simulator accepts."""
        return self.profile.api_key or DEFAULT_API_KEY

    def accepts(self, key: str) -> bool:
        """Whether `key` authenticates: the pinned key, or by default any `yk_...` key."""
        if self.profile.api_key is not None:
            return key == self.profile.api_key
        return key.startswith("yk_") and len(key) > 3

    def storage_url(self, request: web.Request, stem: Stem) -> str:
        """A freshly signed URL of `stem`'s file on the storage host."""
        return str(
            URL.build(
                scheme="http",
                host=request.url.host or "127.0.0.1",
                port=self.storage_port,
                path=f"/files/{stem.id}.{stem.fmt}",
                query=self._signature(stem),
            )
        )

    def stem_url(self, request: web.Request, stem: Stem) -> str:
        """The `url` a project read reports: a redirect on the API host or a storage URL."""
        if not stem.redirect:
            return self.storage_url(request, stem)
        return str(
            URL.build(
                scheme="http",
                host=request.url.host or "127.0.0.1",
                port=request.url.port,
                path=f"{API_PREFIX}/stems/{stem.id}/download",
                query=self._signature(stem),
            )
        )

    def upload_url(self, request: web.Request, upload: Upload) -> str:
        """A freshly signed URL to `PUT` the bytes of `upload` to, on the storage host."""
        expires = expiry_ms(self.clock.now(), self.profile.upload_url_ttl)
        return str(
            URL.build(
                scheme="http",
                host=request.url.host or "127.0.0.1",
                port=self.storage_port,
                path=f"/uploads/{upload.id}",
                query={
                    "expires": str(expires),
                    "signature": sign(self.secret, upload_subject(upload.id), expires),
                },
            )
        )

    def _signature(self, stem: Stem) -> dict[str, str]:
        expires = expiry_ms(self.clock.now(), self.profile.url_ttl)
        return {"expires": str(expires), "signature": sign(self.secret, stem.id, expires)}


def upload_subject(upload_id: str) -> str:
    """What an upload URL's signature covers: never the same as a stem download's."""
    return f"put:{upload_id}"


CONTEXT = web.AppKey("context", Context)


def drop(request: web.BaseRequest) -> NoReturn:
    """Close the client's connection at once, sending nothing more."""
    if request.transport is not None:
        request.transport.close()
    raise Dropped
