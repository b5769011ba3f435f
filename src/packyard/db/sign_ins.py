"""What signing in keeps on the server, shared by every worker and replica.

- `browser_sessions`: one row per signed-in browser session, so that signing
  out ends the session for every copy of its cookie, not only the browser's;
- `sign_in_failures`: failed password sign-ins per account and per client
  address in the current window, so that guessing is slowed down across
  processes and replicas alike (`auth/throttle.py`);
- `used_ci_tokens`: the `jti` of each CI ID token that uploaded, and the release
  it uploaded to, kept until the token expires (`auth/ci_replay.py`).

Each table is pruned of rows past their time by the code that writes it.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Double, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from packyard.db.models import Base, UTCDateTime


class BrowserSession(Base):
    """A signed-in browser session; its cookie is honoured only while this row exists."""

    __tablename__ = "browser_sessions"

    # sha256 hex of the cookie's `sid` (the sid itself derives the CSRF token).
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)


class SignInFailure(Base):
    """Failed sign-ins of one account (`user:<name>`) or address (`addr:<ip>`) in a window."""

    __tablename__ = "sign_in_failures"

    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    # Unix seconds: compared and reset in SQL, alike on SQLite and PostgreSQL.
    window_start: Mapped[float] = mapped_column(Double(), index=True)
    failures: Mapped[int] = mapped_column(Integer)


class UsedCiToken(Base):
    """A CI ID token that has uploaded: it may upload again only to the same release."""

    __tablename__ = "used_ci_tokens"

    # sha256 hex of "<iss> <jti>": a jti is unique per issuer only (RFC 7519 §4.1.7).
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    project: Mapped[str] = mapped_column(String(255))
    version: Mapped[str] = mapped_column(String(255))
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
