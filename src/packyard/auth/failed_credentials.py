"""Authorization values that just failed, answered from memory without checking again.

A client that repeats a wrong password (a misconfigured pip, a script in a
loop, a guesser replaying one value) would otherwise cost an argon2 check
and a database query each time. A failed value is remembered for a short
`ttl` with its refusal message, and refused again at once.

Keys are a keyed BLAKE2b hash of the whole header value, under a random key of
this process: no credential is kept in memory, and the keys tell nothing
outside it. Bounded: past `max_entries` the oldest entry goes first. The
trade-off: a password set to the value a client keeps sending works for that
client `ttl` seconds later, not at once.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable

DEFAULT_MAX_ENTRIES = 8192


class FailedCredentials:
    """Refusal messages of recently failed Authorization values, for `ttl` seconds."""

    def __init__(
        self,
        ttl: float,
        max_entries: int = DEFAULT_MAX_ENTRIES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._ttl = ttl
        self._max_entries = max_entries
        self._clock = clock
        self._key = secrets.token_bytes(32)
        self._entries: OrderedDict[bytes, tuple[float, str]] = OrderedDict()

    def get(self, authorization: str) -> str | None:
        """The refusal remembered for this value, unless it expired."""
        if self._ttl <= 0:
            return None
        digest = self._digest(authorization)
        entry = self._entries.get(digest)
        if entry is None:
            return None
        expires, message = entry
        if expires <= self._clock():
            del self._entries[digest]
            return None
        return message

    def put(self, authorization: str, message: str) -> None:
        """Remember a failure (no-op when the TTL is 0)."""
        if self._ttl <= 0:
            return
        digest = self._digest(authorization)
        self._entries[digest] = (self._clock() + self._ttl, message)
        self._entries.move_to_end(digest)
        while len(self._entries) > self._max_entries:
            self._entries.popitem(last=False)

    def _digest(self, authorization: str) -> bytes:
        data = authorization.encode("utf-8", "surrogateescape")
        return hashlib.blake2b(data, key=self._key, digest_size=16).digest()
