"""Accounts: users, groups and API tokens (the tables behind `auth/`).

Secrets are never stored: passwords as argon2 hashes, API tokens as the
sha256 of the token (a token is 256 random bits, so a fast hash is enough and
lets a token be found by its hash in one indexed lookup).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Integer, String, Text, false
from sqlalchemy.orm import Mapped, mapped_column, relationship

from packyard.db.models import Base, UTCDateTime


class User(Base):
    """A person or a service account; `name` is unique and compared case-insensitively
    (stored lower-case)."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    # None: the user cannot sign in with a password (tokens only).
    password_hash: Mapped[str | None] = mapped_column(Text)
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    disabled: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())

    groups: Mapped[list[Group]] = relationship(secondary="group_members", back_populates="members")
    tokens: Mapped[list[ApiToken]] = relationship(back_populates="user")


class Group(Base):
    """A named set of users; groups can own or maintain projects."""

    __tablename__ = "groups"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())

    members: Mapped[list[User]] = relationship(secondary="group_members", back_populates="groups")


class GroupMember(Base):
    __tablename__ = "group_members"

    group_id: Mapped[int] = mapped_column(
        ForeignKey("groups.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )


class ApiToken(Base):
    """An API token of a user, optionally limited to some projects and to a date."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    # sha256 hex of the whole token string.
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    # The first characters of the token, to tell tokens apart in listings.
    prefix: Mapped[str] = mapped_column(String(16))
    description: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # The token that created this one through the API: this one is valid only
    # while every token up its chain is (not revoked, not expired).
    parent_id: Mapped[int | None] = mapped_column(
        ForeignKey("api_tokens.id", ondelete="CASCADE"), index=True
    )

    user: Mapped[User] = relationship(back_populates="tokens")
    scopes: Mapped[list[TokenProject]] = relationship(
        cascade="all, delete-orphan", back_populates="token"
    )


class TokenProject(Base):
    """One project a scoped token may publish to; a token with none may publish to all
    the projects its user may."""

    __tablename__ = "token_projects"

    token_id: Mapped[int] = mapped_column(
        ForeignKey("api_tokens.id", ondelete="CASCADE"), primary_key=True
    )
    # Normalised name; the project need not exist yet (a token for a first upload).
    project_name: Mapped[str] = mapped_column(String(255), primary_key=True)

    token: Mapped[ApiToken] = relationship(back_populates="scopes")
