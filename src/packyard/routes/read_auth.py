"""Credentials for reading: `/simple/`, `/files/` and `/snapshot/` when
`auth.read_requires_auth` is set.

    guard = read_guard(authenticators, cache_seconds=60.0)
    simple = guard(SimpleRoute(chain))          # app.py, for each read handler

A request without valid credentials gets 401 with `WWW-Authenticate: Basic
realm="packyard"` and `Cache-Control: no-store`: pip sends credentials only
after such a challenge (STANDARDS §4), never after a 403 or 404. Any credential
that may sign in passes (a user's password, an API token, a CI ID token):
reading is not limited by project.

The caller's `Identity.actor` is left in the scope (`IDENTITY`) for the routes'
`RequestContext.identity`, so download events name who downloaded.

Responses to authenticated requests are rewritten from `Cache-Control:
public` to `private`: `public` would let a shared cache keep a response to a
request with credentials (RFC 9111 §3.5) and hand it to anyone.

The hot path: pip sends Basic user:password on every request, and an argon2
check costs tens of milliseconds and 64 MiB. A successful check is therefore
remembered for `cache_seconds` per Authorization header value (keyed by its
sha256, so no secret is kept in memory as such), in a bounded LRU. The
trade-off: a user disabled, or a token revoked, keeps READ access for at most
that long in each worker. Failures are never remembered; 0 turns the cache off.
"""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Protocol

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from packyard.auth.identity import Identity
from packyard.errors import AuthenticationFailed, PackyardError
from packyard.routes.asgi import request_header, send_response
from packyard.routes.errors import error_parts

IDENTITY = "packyard.identity"
"""Scope key: the `Identity.actor` of the caller who passed the guard."""
CHALLENGE = (b"www-authenticate", b'Basic realm="packyard"')
DEFAULT_MAX_ENTRIES = 4096


class Authenticate(Protocol):
    """`auth.authenticate.Authenticators`: an Authorization header value -> an Identity."""

    async def authenticate(self, authorization: str | None) -> Identity:
        """Raises AuthenticationFailed for missing or wrong credentials."""
        ...


class CredentialCache:
    """Identities of recently checked Authorization header values, for `ttl` seconds.

    Bounded: past `max_entries`, the least recently used entry goes first.
    """

    def __init__(
        self,
        ttl: float,
        max_entries: int = DEFAULT_MAX_ENTRIES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._ttl = ttl
        self._max_entries = max_entries
        self._clock = clock
        self._entries: OrderedDict[bytes, tuple[float, Identity]] = OrderedDict()

    def get(self, authorization: bytes) -> Identity | None:
        """The identity remembered for this header value, unless it expired."""
        key = hashlib.sha256(authorization).digest()
        entry = self._entries.get(key)
        if entry is None:
            return None
        expires, identity = entry
        if expires <= self._clock():
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return identity

    def put(self, authorization: bytes, identity: Identity) -> None:
        """Remember a successful check (no-op when the TTL is 0)."""
        if self._ttl <= 0:
            return
        key = hashlib.sha256(authorization).digest()
        self._entries[key] = (self._clock() + self._ttl, identity)
        self._entries.move_to_end(key)
        while len(self._entries) > self._max_entries:
            self._entries.popitem(last=False)


class ReadAuth:
    """Wraps one read handler: only requests with valid credentials reach it."""

    def __init__(self, app: ASGIApp, authenticators: Authenticate, cache: CredentialCache) -> None:
        self._app = app
        self._authenticators = authenticators
        self._cache = cache

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        authorization = request_header(scope, b"authorization")
        identity = self._cache.get(authorization) if authorization is not None else None
        if identity is None:
            try:
                identity = await self._authenticators.authenticate(
                    authorization.decode("latin-1") if authorization is not None else None
                )
            except PackyardError as error:
                await _refuse(scope, send, error)
                return
            assert authorization is not None  # authenticate refuses a missing header
            self._cache.put(authorization, identity)
        scope[IDENTITY] = identity.actor
        await self._app(scope, receive, _private(send))


def read_guard(authenticators: Authenticate, cache_seconds: float) -> Callable[[ASGIApp], ASGIApp]:
    """A wrapper for each read handler; they share one credential cache."""
    cache = CredentialCache(cache_seconds)

    def guard(app: ASGIApp) -> ASGIApp:
        return ReadAuth(app, authenticators, cache)

    return guard


async def _refuse(scope: Scope, send: Send, error: PackyardError) -> None:
    """401 and the Basic challenge for credentials; other errors (a CI issuer down)
    through the one table of `routes/errors.py`."""
    status, headers, body = error_parts(error)
    if isinstance(error, AuthenticationFailed):
        headers.append(CHALLENGE)
    await send_response(send, status, headers, body, head=scope["method"] == "HEAD")


def _private(send: Send) -> Send:
    """`send`, with `public` in Cache-Control turned into `private` (see the module doc)."""

    async def send_private(message: Message) -> None:
        if message["type"] == "http.response.start":
            message["headers"] = [
                (key, value.replace(b"public", b"private") if key == b"cache-control" else value)
                for key, value in message["headers"]
            ]
        await send(message)

    return send_private
