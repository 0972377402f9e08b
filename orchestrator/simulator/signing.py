"""Signed, expiring stem URLs: an HMAC over the stem id and the expiry time.

Each simulator draws its own secret, so a URL signed by one simulator is refused by every
other. Expiry times are simulated seconds on the simulator's clock, written as whole
milliseconds so that a URL survives a round trip through its query string unchanged.
"""

from __future__ import annotations

import hashlib
import hmac
from enum import Enum


class Verdict(Enum):
    """What a storage request's signature says."""

    VALID = "valid"
    BAD = "bad"
    EXPIRED = "expired"


def expiry_ms(now: float, ttl: float) -> int:
    """The expiry, in whole simulated milliseconds, of a URL signed at `now` for `ttl` seconds."""
    return int((now + ttl) * 1000)


def sign(secret: bytes, stem_id: str, expires: int) -> str:
    """The signature of `stem_id` valid until `expires` (simulated milliseconds)."""
    message = f"{stem_id}\n{expires}".encode()
    return hmac.new(secret, message, hashlib.sha256).hexdigest()[:32]


def verify(secret: bytes, stem_id: str, expires: str, signature: str, now: float) -> Verdict:
    """Check a URL's `expires` and `signature` query values for `stem_id` at simulated `now`."""
    if not expires.isdigit():
        return Verdict.BAD
    if not hmac.compare_digest(sign(secret, stem_id, int(expires)), signature):
        return Verdict.BAD
    if int(expires) <= now * 1000:
        return Verdict.EXPIRED
    return Verdict.VALID
