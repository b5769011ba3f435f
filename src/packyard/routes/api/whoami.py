"""`/whoami`: who the credentials sent are, as this server sees them. Any caller.

A script's first check that its token works and reaches what it should:
the account, whether it is an admin, its groups, and for a token its
prefix and the projects it is limited to.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from packyard.auth.permissions import active_user, is_admin
from packyard.routes.api.deps import Caller, audited

router = APIRouter(tags=["whoami"])


class WhoAmI(BaseModel):
    name: str = Field(description="The user's name, or a CI job's subject.")
    kind: Literal["user", "token", "ci", "cli"] = Field(
        description="How the caller signed in: a password, an API token, a CI ID token."
    )
    actor: str = Field(description="How the audit log names the caller.")
    is_admin: bool
    groups: list[str]
    token: str | None = Field(description="The API token's prefix, as listed.")
    projects: list[str] | None = Field(
        description="The only projects this credential may publish; null: not limited."
    )


@router.get("/whoami", summary="Who am I")
def whoami(identity: Caller, session: Annotated[Session, audited("whoami")]) -> WhoAmI:
    user = active_user(session, identity)
    return WhoAmI(
        name=identity.name,
        kind=identity.kind,
        actor=identity.actor,
        is_admin=identity.projects is None and is_admin(identity, user),
        groups=sorted(group.name for group in user.groups) if user is not None else [],
        token=identity.token_prefix,
        projects=sorted(identity.projects) if identity.projects is not None else None,
    )
