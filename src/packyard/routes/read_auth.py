"""Credentials for reading: the whole site, when `auth.read_requires_auth` is set.

    guard = read_guard(authenticators, cache_seconds=60.0, sessions=browser_sessions)
    app = guard(dispatcher)                     # app.py: around every route

Deny by default: every path needs credentials except the few listed in
`PUBLIC_PATHS` and `PUBLIC_PREFIXES` (liveness, readiness, static assets and
the sign-in page, which reveal nothing of the repository) and the upload URL,
whose handler refuses every request without upload credentials itself (with
the 403 messages twine and uv show, STANDARDS §2.4). A route added later
(`/advisories/…`, `/osv/…`, `/integrity/…`) is therefore private from its
first day, without anyone remembering to list it.

Credentials are an `Authorization` header (anything that may sign in: a
user's password, an API token, a CI ID token) or a browser's signed-in
session cookie (`routes/ui/admin/sessions.py`). Reading is not limited by
project, except for a CI ID token: it reads only the index pages and files of
the projects it publishes, and gets 403 elsewhere (`routes/read_scope.py`).
Without either:

- a browser asking for a page (GET or HEAD, `Accept` naming `text/html`,
  outside the index) is sent to the sign-in page, which comes back afterwards
  (`?next=`);
- anything else gets 401 with `WWW-Authenticate: Basic realm="packyard"` and
  `Cache-Control: no-store`: pip sends credentials only after such a challenge
  (STANDARDS §4), never after a 403 or 404. pip's `Accept` names `text/html`
  too, which is why the index paths always get the challenge.

The refusal comes before the route runs, so an anonymous request never makes
packyard fetch anything from an upstream.

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
A session cookie is checked against the database on each request, as the
admin pages check it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final, Protocol
from urllib.parse import quote

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from packyard.auth.expiring import ExpiringCache
from packyard.auth.identity import Identity
from packyard.auth.permissions import reads_everything
from packyard.errors import AuthenticationFailed, PackyardError
from packyard.routes.asgi import request_header, send_response
from packyard.routes.errors import error_parts
from packyard.routes.read_scope import read_refusal

IDENTITY = "packyard.identity"
"""Scope key: the `Identity.actor` of the caller who passed the guard."""
CHALLENGE = (b"www-authenticate", b'Basic realm="packyard"')
# What anyone may read with the setting on: nothing that reveals the repository.
PUBLIC_PATHS: Final = frozenset({"/healthz", "/readyz", "/admin/sign-in"})
# `/admin/sso/`: signing in with a provider (`routes/ui/admin/sso.py`).
PUBLIC_PREFIXES: Final = ("/static/", "/admin/sso/")
# Handlers that refuse every request without credentials of their own kind.
SELF_AUTHENTICATED: Final = frozenset({"/legacy", "/legacy/"})
# Installers' paths: always the 401 challenge, whatever `Accept` says.
INDEX_PREFIXES: Final = ("/simple", "/files/", "/snapshot/", "/integrity/")
SIGN_IN: Final = "/admin/sign-in"


class Authenticate(Protocol):
    """`auth.authenticate.Authenticators`: an Authorization header value -> an Identity."""

    async def authenticate(self, authorization: str | None, client: str | None = None) -> Identity:
        """Raises AuthenticationFailed for missing or wrong credentials, TooManyFailures
        and Overloaded when sign-ins are refused before checking them (`client`: the
        address failed sign-ins are counted by)."""
        ...


class BrowserSessions(Protocol):
    """The signed-in user of a request's session cookie (`routes/ui/admin`)."""

    async def identity(self, scope: Scope) -> Identity | None:
        """The user as stored now, or None: no cookie, expired, or the user disabled."""
        ...


class CredentialCache(ExpiringCache[Identity]):
    """Identities of recently checked Authorization header values, for `ttl` seconds."""


def local_path(scope: Scope) -> str:
    """The request path below the mount point, as `routes.simple.local_path` (which
    imports this module for `IDENTITY`, hence not imported from there)."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    return path[len(root) :] if root and path.startswith(root) else path


def is_public(path: str) -> bool:
    """Whether `path` (below the mount point) is served without credentials."""
    return path in PUBLIC_PATHS or path in SELF_AUTHENTICATED or path.startswith(PUBLIC_PREFIXES)


class ReadAuth:
    """Wraps the application: only requests with valid credentials reach it,
    apart from the public paths (`is_public`)."""

    def __init__(
        self,
        app: ASGIApp,
        authenticators: Authenticate,
        cache: CredentialCache,
        sessions: BrowserSessions | None = None,
    ) -> None:
        self._app = app
        self._authenticators = authenticators
        self._cache = cache
        self._sessions = sessions

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = local_path(scope) if scope["type"] == "http" else ""
        if not path or is_public(path):
            await self._app(scope, receive, send)
            return
        authorization = request_header(scope, b"authorization")
        identity = self._cache.get(authorization) if authorization is not None else None
        if identity is None and authorization is None and self._sessions is not None:
            identity = await self._sessions.identity(scope)
        if identity is None:
            try:
                identity = await self._authenticators.authenticate(
                    authorization.decode("latin-1") if authorization is not None else None,
                    client=_client_address(scope),
                )
            except PackyardError as error:
                await _refuse(scope, send, error, browser=authorization is None)
                return
            assert authorization is not None  # authenticate refuses a missing header
            self._cache.put(authorization, identity)
        # Only an identity limited to some projects (CI) is refused any path.
        refusal = None if reads_everything(identity) else read_refusal(identity, path)
        if refusal is not None:  # a CI token outside its projects (`routes/read_scope.py`)
            await _refuse(scope, send, refusal, browser=False)
            return
        scope[IDENTITY] = identity.actor
        await self._app(scope, receive, _private(send))


def read_guard(
    authenticators: Authenticate, cache_seconds: float, sessions: BrowserSessions | None = None
) -> Callable[[ASGIApp], ASGIApp]:
    """The wrapper of the whole application (`app.create_app`); `sessions`, if
    given, lets browsers that signed in through."""
    cache = CredentialCache(cache_seconds)

    def guard(app: ASGIApp) -> ASGIApp:
        return ReadAuth(app, authenticators, cache, sessions)

    return guard


async def _refuse(scope: Scope, send: Send, error: PackyardError, *, browser: bool) -> None:
    """To the sign-in page for a browser's page view; else 401 and the Basic
    challenge for credentials; other errors (a CI issuer down) through the one
    table of `routes/errors.py`."""
    if browser and isinstance(error, AuthenticationFailed) and _wants_page(scope):
        await _to_sign_in(scope, send)
        return
    status, headers, body = error_parts(error)
    if isinstance(error, AuthenticationFailed):
        headers.append(CHALLENGE)
    await send_response(send, status, headers, body, head=scope["method"] == "HEAD")


def _wants_page(scope: Scope) -> bool:
    """A browser's page view: GET or HEAD of a web page, HTML accepted."""
    if scope["method"] not in ("GET", "HEAD") or local_path(scope).startswith(INDEX_PREFIXES):
        return False
    accept = request_header(scope, b"accept")
    return accept is not None and b"text/html" in accept


async def _to_sign_in(scope: Scope, send: Send) -> None:
    """303 to the sign-in page, which comes back to this page afterwards.

    Relative, as every redirect of packyard: never built from the Host header."""
    target = local_path(scope)
    query = scope.get("query_string", b"")
    if query:
        target += "?" + query.decode("latin-1")
    location = scope.get("root_path", "") + SIGN_IN + "?next=" + quote(target, safe="/")
    headers = [
        (b"location", location.encode("latin-1")),
        (b"content-type", b"text/plain; charset=utf-8"),
        (b"cache-control", b"no-store"),
    ]
    body = f"Sign in to see this page: {location}\n".encode()
    await send_response(send, 303, headers, body, head=scope["method"] == "HEAD")


def _client_address(scope: Scope) -> str | None:
    """The client's address, which failed sign-ins are counted by (`auth.throttle`)."""
    client = scope.get("client")
    return str(client[0]) if client else None


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
