"""`ExpiringCache`: what was just decided about an Authorization value, for a while.

Checking a credential costs an argon2 hash (tens of milliseconds) or a
database query; pip and twine send the same value with every request. Both
a success (`routes.read_auth.CredentialCache`) and a failure
(`auth.failed_credentials.FailedCredentials`) are therefore remembered for a
short `ttl`.

Keys are a keyed BLAKE2b hash of the whole header value, under a random key
of this process: no credential, nor an unsalted hash of one, is kept in
memory. Bounded: past `max_entries`, the least recently used entry goes first.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Generic, TypeVar

DEFAULT_MAX_ENTRIES = 8192
V = TypeVar("V")


class ExpiringCache(Generic[V]):
    """Values remembered per Authorization header value for `ttl` seconds (0: none)."""

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
        self._entries: OrderedDict[bytes, tuple[float, V]] = OrderedDict()

    def get(self, authorization: str | bytes) -> V | None:
        """The value remembered for this header value, unless it expired."""
        digest = self._digest(authorization)
        entry = self._entries.get(digest)
        if entry is None:
            return None
        expires, value = entry
        if expires <= self._clock():
            del self._entries[digest]
            return None
        self._entries.move_to_end(digest)
        return value

    def put(self, authorization: str | bytes, value: V) -> None:
        """Remember `value` for this header value (nothing when the TTL is 0)."""
        if self._ttl <= 0:
            return
        digest = self._digest(authorization)
        self._entries[digest] = (self._clock() + self._ttl, value)
        self._entries.move_to_end(digest)
        while len(self._entries) > self._max_entries:
            self._entries.popitem(last=False)

    def _digest(self, authorization: str | bytes) -> bytes:
        if isinstance(authorization, str):
            authorization = authorization.encode("utf-8", "surrogateescape")
        return hashlib.blake2b(authorization, key=self._key, digest_size=16).digest()
