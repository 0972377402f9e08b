"""Signed, expiring stem URLs: an HMAC over the stem id and the expiry time.

Each simulator draws its own secret, so a URL signed by one simulator is refused by every
other. Expiry times are simulated seconds on the simulator's clock, written as whole
milliseconds so that a URL survives a round trip through its query string unchanged.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Mapping
from enum import Enum

from orchestrator.simulator.errors import ApiProblem


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


def require_signed(
    secret: bytes,
    subject: str,
    query: Mapping[str, str],
    now: float,
    *,
    hint: str,
    expired: Callable[[], ApiProblem],
) -> None:
    """A signed URL's query (`expires`, `signature`) checked for `subject` at simulated
    `now`: 403 `FORBIDDEN` (with `hint`, how to get a fresh URL) when it was not signed
    for it, `expired()` when its time is past."""
    verdict = verify(secret, subject, query.get("expires", ""), query.get("signature", ""), now)
    if verdict is Verdict.BAD:
        raise ApiProblem(
            403, "FORBIDDEN", f"the URL's signature is missing or does not match; {hint}"
        )
    if verdict is Verdict.EXPIRED:
        raise expired()
