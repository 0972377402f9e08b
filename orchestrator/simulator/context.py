"""What every HTTP handler of one simulator shares: its clock, state, audio, record, secret."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import NoReturn

from aiohttp import web
from yarl import URL

from orchestrator.simulator.clock import SimClock
from orchestrator.simulator.errors import Dropped
from orchestrator.simulator.faults import Dice, FaultRoller, TokenBucket
from orchestrator.simulator.media import Media
from orchestrator.simulator.profile import Profile
from orchestrator.simulator.record import Record
from orchestrator.simulator.signing import expiry_ms, sign
from orchestrator.simulator.world import Stem, World

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
    storage_port: int = 0

    @classmethod
    def create(cls, profile: Profile, seed: int, time_scale: float) -> Context:
        """A fresh simulator state for `profile`, all randomness drawn from `seed`."""
        dice = Dice(seed)
        record = Record(keep_requests=profile.record_requests)
        rate = profile.requests_per_second
        return cls(
            profile=profile,
            seed=seed,
            clock=SimClock(time_scale),
            dice=dice,
            record=record,
            world=World(profile, dice, record),
            media=Media(profile, seed),
            faults=FaultRoller(dice, record),
            # Not from the seed: URLs depend on real time anyway, and no two simulators
            # should accept each other's URLs.
            secret=secrets.token_bytes(32),
            bucket=TokenBucket(rate) if rate is not None else None,
        )

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

    def _signature(self, stem: Stem) -> dict[str, str]:
        expires = expiry_ms(self.clock.now(), self.profile.url_ttl)
        return {"expires": str(expires), "signature": sign(self.secret, stem.id, expires)}


CONTEXT = web.AppKey("context", Context)


def drop(request: web.BaseRequest) -> NoReturn:
    """Close the client's connection at once, sending nothing more."""
    if request.transport is not None:
        request.transport.close()
    raise Dropped
