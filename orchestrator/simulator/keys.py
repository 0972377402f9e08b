"""Idempotency keys: what each key answered, for how long it is remembered. Pure, no HTTP.

A key is bound, on its first use, to a fingerprint of its request (method, path and body)
and to what that request made (`kind`: `task`, `upload` or `project`; `ref`: its id).
The same key with the same fingerprint is a replay of that answer; with another fingerprint
it is a conflict. A key is remembered for `ttl` simulated seconds from its first use (None:
forever); after that it is forgotten, and a request carrying it starts anew, as a real API
that expires keys would do.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any


class Seen(Enum):
    """What a key says about a request."""

    NEW = "new"  # never used: do the work
    EXPIRED = "expired"  # used, then forgotten: do the work (again)
    REPLAY = "replay"  # same request as its first: answer what it answered
    CONFLICT = "conflict"  # another request: refuse


@dataclass(slots=True)
class KeyEntry:
    """One remembered key."""

    fingerprint: str
    kind: str
    ref: str
    at: float  # simulated seconds of its first use

    def row(self) -> dict[str, Any]:
        return {"fingerprint": self.fingerprint, "kind": self.kind, "ref": self.ref, "at": self.at}

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> KeyEntry:
        return cls(**row)


class KeyBook:
    """The account's idempotency keys."""

    def __init__(self, ttl: float | None) -> None:
        self.ttl = ttl
        self.entries: dict[str, KeyEntry] = {}

    def look(self, key: str | None, fingerprint: str, now: float) -> tuple[Seen, KeyEntry | None]:
        """What `key` says about a request with `fingerprint` at `now`, and its entry."""
        if key is None:
            return Seen.NEW, None
        entry = self.entries.get(key)
        if entry is None:
            return Seen.NEW, None
        if self.ttl is not None and now >= entry.at + self.ttl:
            return Seen.EXPIRED, entry
        if entry.fingerprint != fingerprint:
            return Seen.CONFLICT, entry
        return Seen.REPLAY, entry

    def bind(self, key: str, fingerprint: str, kind: str, ref: str, now: float) -> None:
        """Remember that `key`, first used at `now`, made `ref` of `kind`."""
        self.entries[key] = KeyEntry(fingerprint, kind, ref, now)
