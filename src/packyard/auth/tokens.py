"""API tokens: `pky_` and 256 random bits, stored only as their sha256.

A token is `pky_` followed by `secrets.token_urlsafe(32)` (43 characters). The
prefix makes a leaked token easy to recognise (secret scanners, logs); the
database keeps the sha256 hex of the whole string, which is enough for a
secret of 256 random bits and lets a token be found in one indexed lookup,
and the first 12 characters (`pky_` and 8 more) to tell tokens apart in
listings and audit lines.

A token created with another token (through the API) keeps its `parent_id`:
it is valid only while every token up that chain is (not revoked, not
expired, its user enabled), and reaches only the projects every scoped
token of the chain reaches. So a leaked token cannot mint itself a longer
life or a wider reach, and revoking it revokes everything made with it.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from packyard.db.accounts import ApiToken, User
from packyard.errors import AuthenticationFailed

TOKEN_PREFIX = "pky_"  # noqa: S105 (the public prefix)
DISPLAY_PREFIX_LENGTH = 12
TOKEN_LENGTH = len(TOKEN_PREFIX) + 43

# `last_used_at` is written at most this often per token, so that a client
# that sends its token with every index request does not turn reads into writes.
LAST_USED_GRANULARITY = timedelta(minutes=1)
# Chains are a few tokens long; a longer one is refused rather than walked.
MAX_LINEAGE = 32


def generate_token() -> str:
    """A new token string: `pky_` and 43 URL-safe characters (256 random bits)."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    """The sha256 hex digest of the whole token string, as stored in `token_hash`."""
    return hashlib.sha256(token.encode()).hexdigest()


def display_prefix(token: str) -> str:
    """The first characters of a token, safe to show and to log (`pky_` + 8)."""
    return token[:DISPLAY_PREFIX_LENGTH]


def verify_token(session: Session, token: str, now: datetime | None = None) -> ApiToken:
    """The stored token whose hash is `token`'s, with its user and scopes loaded.

    Marks the token as used (`last_used_at`, at most once per
    `LAST_USED_GRANULARITY`) in `session`; the caller commits.

    Raises:
        AuthenticationFailed: the token, or a token up its chain of parents, is
            unknown, revoked or expired, or its user is disabled; the message
            says which.
    """
    now = now or datetime.now(UTC)
    stored = session.scalars(
        select(ApiToken)
        .where(ApiToken.token_hash == hash_token(token))
        .options(selectinload(ApiToken.user).selectinload(User.groups))
        .options(selectinload(ApiToken.scopes))
    ).one_or_none()
    if stored is None:
        raise AuthenticationFailed(
            "Invalid API token: this server does not know it. "
            "Check that it was copied whole, or create a new one."
        )
    problem = _problem(stored, now)
    if problem is not None:
        raise AuthenticationFailed(f"Invalid API token: {stored.prefix}… {problem}.")
    for parent in ancestors(session, stored):
        problem = _problem(parent, now)
        if problem is not None:
            raise AuthenticationFailed(
                f"Invalid API token: {stored.prefix}… was created with the token "
                f"{parent.prefix}…, which {problem}."
            )
    if stored.last_used_at is None or now - stored.last_used_at >= LAST_USED_GRANULARITY:
        stored.last_used_at = now
    return stored


def ancestors(session: Session, token: ApiToken) -> list[ApiToken]:
    """The tokens `token` was created with, its parent first, with users and scopes.

    Raises:
        AuthenticationFailed: a parent no longer exists, or the chain is longer
            than `MAX_LINEAGE` (neither happens to tokens made by packyard).
    """
    chain: list[ApiToken] = []
    parent_id = token.parent_id
    while parent_id is not None:
        if len(chain) >= MAX_LINEAGE:
            raise AuthenticationFailed(f"Invalid API token: {token.prefix}… has too many parents.")
        parent = session.get(
            ApiToken,
            parent_id,
            options=[selectinload(ApiToken.user), selectinload(ApiToken.scopes)],
        )
        if parent is None:
            raise AuthenticationFailed(
                f"Invalid API token: {token.prefix}… was created with a token that is gone."
            )
        chain.append(parent)
        parent_id = parent.parent_id
    return chain


def lineage_projects(tokens: Iterable[ApiToken]) -> frozenset[str] | None:
    """The projects a token reaches, given it and its `ancestors`: those every scoped
    token of the chain names (None: no token of the chain is scoped)."""
    reach: frozenset[str] | None = None
    for token in tokens:
        if token.scopes:
            names = frozenset(scope.project_name for scope in token.scopes)
            reach = names if reach is None else reach & names
    return reach


def lineage_expiry(tokens: Iterable[ApiToken]) -> datetime | None:
    """When a token stops working, given it and its `ancestors`: the first expiry
    of the chain (None: no token of the chain expires)."""
    expiries = [token.expires_at for token in tokens if token.expires_at is not None]
    return min(expiries, default=None)


def _problem(token: ApiToken, now: datetime) -> str | None:
    """Why `token` cannot be used now (e.g. "was revoked on …"), or None."""
    if token.revoked_at is not None:
        return f"was revoked on {_day(token.revoked_at)}"
    if token.expires_at is not None and token.expires_at <= now:
        return f"expired on {_day(token.expires_at)}"
    if token.user.disabled:
        return f"belongs to '{token.user.name}', who is disabled"
    return None


def _day(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
