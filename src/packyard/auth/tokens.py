"""API tokens: `pky_` and 256 random bits, stored only as their sha256.

A token is `pky_` followed by `secrets.token_urlsafe(32)` (43 characters). The
prefix makes a leaked token easy to recognise (secret scanners, logs); the
database keeps the sha256 hex of the whole string, which is enough for a
secret of 256 random bits and lets a token be found in one indexed lookup,
and the first 12 characters (`pky_` and 8 more) to tell tokens apart in
listings and audit lines.
"""

from __future__ import annotations

import hashlib
import secrets
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
        AuthenticationFailed: the token is unknown, revoked or expired, or its
            user is disabled; the message says which.
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
    if stored.revoked_at is not None:
        raise AuthenticationFailed(
            f"Invalid API token: {stored.prefix}… was revoked on {_day(stored.revoked_at)}."
        )
    if stored.expires_at is not None and stored.expires_at <= now:
        raise AuthenticationFailed(
            f"Invalid API token: {stored.prefix}… expired on {_day(stored.expires_at)}."
        )
    if stored.user.disabled:
        raise AuthenticationFailed(f"Invalid API token: its user '{stored.user.name}' is disabled.")
    if stored.last_used_at is None or now - stored.last_used_at >= LAST_USED_GRANULARITY:
        stored.last_used_at = now
    return stored


def _day(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
