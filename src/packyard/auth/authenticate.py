"""From an `Authorization` header to an `Identity`: passwords, API tokens, CI ID tokens.

    authenticators = Authenticators(session_factory, settings.auth, http_client)
    identity = await authenticators.authenticate(request.headers.get("authorization"),
                                                 client=request.client.host)

Database work and password hashing run in worker threads (`anyio.to_thread`),
so a sign-in never blocks the event loop. Guessing and flooding are kept
cheap for the server (docs/decisions.md, "Brute force"):

- failed password sign-ins are limited per account and per client address
  (`auth.throttle`, 429 with Retry-After), checked before any hashing;
- a value that just failed is refused again from memory (`auth.failed_credentials`);
- argon2 (~50 ms and 64 MiB each) runs in a bounded pool (`auth.check_pool`):
  when it is full, a sign-in is refused at once (503), never queued.

A valid credential pays one throttle query more than before; the read path's
credential cache (`routes/read_auth.py`) still spares it everything else.
"""

from __future__ import annotations

from collections.abc import Callable

import anyio.to_thread
import httpx
from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload, sessionmaker

from packyard.auth.basic import (
    ApiTokenCredentials,
    JwtCredentials,
    PasswordCredentials,
    parse_authorization,
)
from packyard.auth.check_pool import CheckPool
from packyard.auth.failed_credentials import FailedCredentials
from packyard.auth.identity import Identity, IdentityKind
from packyard.auth.oidc import OidcVerifier
from packyard.auth.passwords import hash_password, needs_rehash, verify_password
from packyard.auth.throttle import SignInThrottle
from packyard.auth.tokens import ancestors, lineage_projects, verify_token
from packyard.db.accounts import User
from packyard.errors import AuthenticationFailed, Overloaded, TooManyFailures
from packyard.settings import AuthSettings

# Where the messages send people; the page explains users, tokens and CI tokens.
AUTH_HELP = "the packyard documentation on publishing (docs/publishing.md)"
NO_CREDENTIALS = (
    f"Invalid or non-existent authentication information. See {AUTH_HELP} for more information."
)
WRONG_PASSWORD = "Invalid username or password."  # noqa: S105 (a message)
PASSWORDS_OFF = (
    "Passwords are turned off here (local_passwords = false): use an API token, made "
    "on your account page after signing in with your organisation's account."
)

PasswordCheckObserver = Callable[[str], None]
"""Told the outcome of each password sign-in: `ok` and `wrong` (argon2 ran),
`remembered` (refused from memory), `throttled` (429), `busy` (503)."""


class Authenticators:
    """Every way of signing in, tried by the form of the credentials.

    Satisfies the `Authenticator` protocol of `auth.identity`, but never
    returns None: a header it cannot use is refused with a message.
    """

    def __init__(
        self,
        session_factory: sessionmaker[Session],
        auth_settings: AuthSettings,
        http_client: httpx.AsyncClient,
        observe: PasswordCheckObserver | None = None,
    ) -> None:
        """`http_client` fetches the CI issuers' keys; it is owned (closed) by the caller.
        `observe` counts password checks (the metrics)."""
        self._sessions = session_factory
        self._oidc = OidcVerifier(auth_settings.oidc, http_client) if auth_settings.oidc else None
        self._throttle = SignInThrottle(session_factory, auth_settings)
        self._failed = FailedCredentials(auth_settings.failed_credential_cache_seconds)
        self._pool = CheckPool(
            auth_settings.password_check_threads, auth_settings.password_check_queue
        )
        self._observe = observe or _ignore
        self._local_passwords = auth_settings.local_passwords

    async def authenticate(self, authorization: str | None, client: str | None = None) -> Identity:
        """The identity behind an `Authorization` header value.

        - user name and password → `user` identity (unless `local_passwords` is off);
        - API token (Basic `__token__`, Bearer or token) → `token` identity,
          limited to the token's projects if it has any;
        - CI ID token (a JWT) → `ci` identity (see `auth.oidc`).

        `client`: the caller's address, which failed password sign-ins are counted by.

        Raises:
            AuthenticationFailed: no header; a malformed header; a wrong
                password; an unknown, revoked or expired token; a disabled
                user; a CI token that is refused (or no CI issuer configured).
            TooManyFailures: too many failed password sign-ins for this user
                or from this address, lately.
            Overloaded: every password check slot is taken.
            UpstreamUnavailable, UpstreamError: a CI issuer's keys could not be
                fetched.
        """
        if authorization is None or not authorization.strip():
            raise AuthenticationFailed(NO_CREDENTIALS)
        credentials = parse_authorization(authorization)
        if isinstance(credentials, PasswordCredentials):
            return await self._password(credentials, authorization, client)
        remembered = self._failed.get(authorization)
        if remembered is not None:
            raise AuthenticationFailed(remembered)
        try:
            if isinstance(credentials, ApiTokenCredentials):
                return await anyio.to_thread.run_sync(self._token_identity, credentials.token)
            if self._oidc is None:
                raise AuthenticationFailed(
                    "CI ID tokens are not accepted here: no CI issuer is configured ([auth.oidc])."
                )
            assert isinstance(credentials, JwtCredentials)
            return await self._oidc.authenticate(credentials.token)
        except AuthenticationFailed as exc:
            self._failed.put(authorization, exc.message)
            raise

    async def _password(
        self, credentials: PasswordCredentials, authorization: str, client: str | None
    ) -> Identity:
        """A password sign-in, cheapest refusals first: a block this process knows,
        a value that just failed, the shared counters; then argon2 in the pool."""
        if not self._local_passwords:
            raise AuthenticationFailed(PASSWORDS_OFF)
        keys = self._throttle.keys(credentials.username, client)
        remembered = self._failed.get(authorization)
        try:
            self._throttle.check_memory(keys)
            if remembered is None:
                had_failures = await anyio.to_thread.run_sync(self._throttle.check, keys)
                identity = await self._pool.run(self._password_identity, credentials)
        except TooManyFailures:
            self._observe("throttled")
            raise
        except Overloaded:
            self._observe("busy")
            raise
        except AuthenticationFailed as exc:
            self._observe("wrong")
            self._failed.put(authorization, exc.message)
            await anyio.to_thread.run_sync(self._throttle.failed, keys)
            raise
        if remembered is not None:
            self._observe("remembered")
            raise AuthenticationFailed(remembered)
        self._observe("ok")
        if had_failures:
            await anyio.to_thread.run_sync(self._throttle.succeeded, keys)
        return identity

    def _password_identity(self, credentials: PasswordCredentials) -> Identity:
        with self._sessions() as session:
            user = session.scalars(
                select(User)
                .where(User.name == credentials.username.lower())
                .options(selectinload(User.groups))
            ).one_or_none()
            password_hash = user.password_hash if user is not None else None
            # Always one verification, known user or not: the timing tells nothing.
            if not verify_password(password_hash, credentials.password):
                raise AuthenticationFailed(WRONG_PASSWORD)
            assert user is not None
            if user.disabled:
                raise AuthenticationFailed(f"The user '{user.name}' is disabled.")
            if user.password_hash is not None and needs_rehash(user.password_hash):
                user.password_hash = hash_password(credentials.password)
                session.commit()
            return _identity_of(user, kind="user")

    def _token_identity(self, token: str) -> Identity:
        with self._sessions() as session:
            stored = verify_token(session, token)
            # Commits the `last_used_at` mark, if verify_token set one.
            session.commit()
            # A token made with another reaches only what the whole chain reaches.
            projects = lineage_projects([stored, *ancestors(session, stored)])
            return _identity_of(
                stored.user,
                kind="token",
                projects=projects,
                token_id=stored.id,
                token_prefix=stored.prefix,
            )


def _identity_of(
    user: User,
    *,
    kind: IdentityKind,
    projects: frozenset[str] | None = None,
    token_id: int | None = None,
    token_prefix: str | None = None,
) -> Identity:
    return Identity(
        kind=kind,
        name=user.name,
        user_id=user.id,
        is_admin=user.is_admin,
        groups=frozenset(group.name for group in user.groups),
        projects=projects,
        token_id=token_id,
        token_prefix=token_prefix,
    )


def _ignore(outcome: str) -> None:
    """The observer when nothing counts password checks."""
