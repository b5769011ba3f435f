"""`/tokens`: API tokens. Everyone manages their own; administrators anyone's.

A credential limited to some projects (a scoped token) cannot list, create or
revoke tokens: it could otherwise mint itself a token without that limit. A CI
identity has no user, so no tokens.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from packyard.auth.identity import Identity
from packyard.auth.permissions import active_user, is_admin
from packyard.errors import NotFound, PermissionDenied
from packyard.publish import accounts
from packyard.routes.api.deps import Caller, RequestOrigin, audited

router = APIRouter(prefix="/tokens", tags=["tokens"])


class TokenOut(BaseModel):
    id: int
    prefix: str = Field(description="The token's first characters, as listed; never the secret.")
    user: str
    projects: list[str] = Field(description="Empty: every project the user may publish.")
    description: str | None
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None


class CreatedToken(TokenOut):
    token: str = Field(description="The token itself: shown this once, never stored.")


class NewToken(BaseModel):
    user: str | None = Field(default=None, description="Whose token; default: the caller's.")
    projects: list[str] = Field(default_factory=list, description="Limit it to these projects.")
    expires_days: int | None = Field(default=None, description="None: it never expires.")
    description: str | None = None


def _out(summary: accounts.TokenSummary) -> TokenOut:
    return TokenOut(
        id=summary.id,
        prefix=summary.prefix,
        user=summary.user,
        projects=list(summary.projects),
        description=summary.description,
        created_at=summary.created_at,
        expires_at=summary.expires_at,
        revoked_at=summary.revoked_at,
        last_used_at=summary.last_used_at,
    )


def _allowed_user(session: Session, identity: Identity, user: str | None) -> str | None:
    """Whose tokens the caller may manage: `user` (None: everyone's, for admins;
    the caller's own otherwise).

    Raises:
        PermissionDenied: a CI or scoped credential, or someone else's tokens
            asked for by a non-administrator.
    """
    stored = active_user(session, identity)
    if identity.projects is not None or stored is None:
        raise PermissionDenied(
            "Tokens are managed with a password or a token not limited to projects."
        )
    if is_admin(identity, stored):
        return user
    if user is not None and user.lower() != stored.name:
        raise PermissionDenied(
            f"'{identity.name}' isn't allowed to manage the tokens of '{user}': "
            "only their own, unless an administrator."
        )
    return stored.name


@router.get("", summary="List tokens (your own; an administrator's: anyone's)")
def list_tokens(
    identity: Caller,
    session: Annotated[Session, audited("token-list")],
    user: str | None = None,
) -> list[TokenOut]:
    return [_out(t) for t in accounts.list_tokens(session, _allowed_user(session, identity, user))]


@router.post("", status_code=201, summary="Create a token (the answer shows it once)")
def create_token(
    body: NewToken,
    identity: Caller,
    session: Annotated[Session, audited("token-create")],
    origin: RequestOrigin,
) -> CreatedToken:
    owner = _allowed_user(session, identity, body.user) or identity.name
    plaintext, row = accounts.create_token(
        session,
        owner,
        body.projects,
        body.expires_days,
        body.description,
        actor=identity,
        origin=origin,
    )
    session.flush()
    summary = next(t for t in accounts.list_tokens(session, owner) if t.id == row.id)
    return CreatedToken(token=plaintext, **_out(summary).model_dump())


@router.delete("/{token_id}", summary="Revoke a token")
def revoke_token(
    token_id: int,
    identity: Caller,
    session: Annotated[Session, audited("token-revoke")],
    origin: RequestOrigin,
) -> TokenOut:
    """Revoke by number (`id` in the listing).

    A token of another user is "not found" to a non-administrator: the number
    alone says nothing about whose it is."""
    owner = _allowed_user(session, identity, None)
    mine = [t for t in accounts.list_tokens(session, owner) if t.id == token_id]
    if not mine:
        raise NotFound(f"There is no token {token_id} of yours.")
    accounts.revoke_token(session, str(token_id), actor=identity, origin=origin)
    session.flush()
    revoked = next(t for t in accounts.list_tokens(session, mine[0].user) if t.id == token_id)
    return _out(revoked)
