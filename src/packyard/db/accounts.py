"""Accounts: users, groups and API tokens (the tables behind `auth/`).

Secrets are never stored: passwords as argon2 hashes, API tokens as the
sha256 of the token (a token is 256 random bits, so a fast hash is enough and
lets a token be found by its hash in one indexed lookup).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Integer, String, Text, UniqueConstraint, false
from sqlalchemy.orm import Mapped, mapped_column, relationship

from packyard.db.models import Base, UTCDateTime


class User(Base):
    """A person or a service account; `name` is unique and compared case-insensitively
    (stored lower-case)."""

    __tablename__ = "users"
    __table_args__ = (UniqueConstraint("directory", "subject", name="uq_users_directory_subject"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    # None: the user cannot sign in with a password (tokens only).
    password_hash: Mapped[str | None] = mapped_column(Text)
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    disabled: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    email: Mapped[str | None] = mapped_column(Text)
    full_name: Mapped[str | None] = mapped_column(Text)
    # The `[[auth.sso]]` provider this person signs in with and their `sub` there
    # (None: a local account). The pair is unique: one person, one account.
    directory: Mapped[str | None] = mapped_column(String(40))
    subject: Mapped[str | None] = mapped_column(String(255))
    # The user name of this person's manager, from the directory: their successor
    # for the projects they leave without an owner (`publish/succession.py`).
    manager: Mapped[str | None] = mapped_column(String(100))
    last_sign_in_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # When the directory last told us this person's groups; `groups_stale`: the
    # last attempt failed (the directory was down), the groups are older.
    directory_checked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    groups_stale: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # Set when LDAP no longer knows this person: the account is disabled with it.
    directory_removed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # The directory groups the provider's ID token named at the last sign-in (a
    # JSON list): the scheduled refresh adds them to LDAP's, so that memberships
    # from the token do not come and go between sign-ins.
    claimed_groups: Mapped[str | None] = mapped_column(Text)

    groups: Mapped[list[Group]] = relationship(secondary="group_members", back_populates="members")
    tokens: Mapped[list[ApiToken]] = relationship(back_populates="user")


class Group(Base):
    """A named set of users; groups can own or maintain projects."""

    __tablename__ = "groups"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # "local": made by an admin; "directory": made for a directory group
    # (`[auth.directory_groups]`), whose members the directory keeps.
    source: Mapped[str] = mapped_column(String(20), default="local", server_default="local")

    members: Mapped[list[User]] = relationship(secondary="group_members", back_populates="groups")


class GroupMember(Base):
    __tablename__ = "group_members"

    group_id: Mapped[int] = mapped_column(
        ForeignKey("groups.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    # "local": added by an admin, kept until an admin removes it; "directory":
    # the directory says so, removed when it no longer does.
    source: Mapped[str] = mapped_column(String(20), default="local", server_default="local")


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
