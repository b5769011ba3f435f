"""`/users`: list, create, disable, retire and enable users, reset passwords
(administrators only). Disabling or retiring a user hands the projects only they
owned to a successor (`publish/succession.py`); the answer says to whom."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Response
from pydantic import BaseModel, Field, SecretStr
from sqlalchemy.orm import Session

from packyard.publish import accounts, succession
from packyard.routes.api.deps import Caller, RequestOrigin, Services, audited, require_admin

router = APIRouter(prefix="/users", tags=["users"])


class UserOut(BaseModel):
    name: str
    is_admin: bool
    disabled: bool
    has_password: bool = Field(description="False: signs in with API tokens only.")
    groups: list[str]
    created_at: datetime


class NewUser(BaseModel):
    name: str = Field(description="1 to 100 of a-z 0-9 . _ -; stored lower-case.")
    password: SecretStr | None = Field(
        default=None, description="At least 8 characters; none: API tokens only."
    )
    admin: bool = False


def _out(summary: accounts.UserSummary) -> UserOut:
    return UserOut(
        name=summary.name,
        is_admin=summary.is_admin,
        disabled=summary.disabled,
        has_password=summary.has_password,
        groups=list(summary.groups),
        created_at=summary.created_at,
    )


@router.get("", summary="List users")
def list_users(
    identity: Caller, session: Annotated[Session, audited("user-list")]
) -> list[UserOut]:
    require_admin(session, identity)
    return [_out(summary) for summary in accounts.list_users(session)]


@router.post("", status_code=201, summary="Create a user")
def create_user(
    body: NewUser,
    identity: Caller,
    session: Annotated[Session, audited("user-add")],
    origin: RequestOrigin,
) -> UserOut:
    require_admin(session, identity)
    password = body.password.get_secret_value() if body.password is not None else None
    user = accounts.add_user(
        session, body.name, password, body.admin, actor=identity, origin=origin
    )
    session.flush()
    return UserOut(
        name=user.name,
        is_admin=user.is_admin,
        disabled=user.disabled,
        has_password=user.password_hash is not None,
        groups=[],
        created_at=user.created_at,
    )


class Handover(BaseModel):
    project: str
    to_user: str | None = Field(description="The user who owns the project now.")
    to_group: str | None = Field(description="The group that owns the project now.")
    orphaned: str | None = Field(
        description="Neither: nobody could take the project over, and why (it has no "
        "owner now; `GET /projects/orphaned` lists it)."
    )


class LeftUser(BaseModel):
    name: str
    handovers: list[Handover] = Field(
        description="The projects only this user owned, and who owns each now."
    )


def _left(name: str, results: list[succession.HandoverResult]) -> LeftUser:
    return LeftUser(
        name=name.lower(),
        handovers=[
            Handover(project=r.project, to_user=r.to_user, to_group=r.to_group, orphaned=r.why)
            for r in results
        ],
    )


@router.post("/{name}/disable", summary="Disable a user")
def disable_user(
    name: str,
    identity: Caller,
    services: Services,
    session: Annotated[Session, audited("user-disable")],
    origin: RequestOrigin,
) -> LeftUser:
    """No sign-in, no token, no right any more; the roles stay for the record. The
    projects only this user owned go to their manager, else the configured
    `[auth.succession] fallback_group`."""
    require_admin(session, identity)
    results = succession.disable(
        session,
        name,
        fallback_group=services.succession.fallback_group,
        actor=identity,
        origin=origin,
    )
    return _left(name, results)


class Successor(BaseModel):
    to: str | None = Field(
        default=None,
        description="USER or group:GROUP; none: the user's manager, else the configured "
        "`[auth.succession] fallback_group`.",
    )


@router.post("/{name}/retire", summary="Retire a user, handing over their projects")
def retire_user(
    name: str,
    identity: Caller,
    services: Services,
    session: Annotated[Session, audited("user-retire")],
    origin: RequestOrigin,
    body: Successor | None = None,
) -> LeftUser:
    """Disable the user (unless they are already) and make the successor an owner of
    every project only they owned."""
    require_admin(session, identity)
    results = succession.retire(
        session,
        name,
        to=body.to if body is not None else None,
        fallback_group=services.succession.fallback_group,
        actor=identity,
        origin=origin,
    )
    return _left(name, results)


@router.post("/{name}/enable", status_code=204, summary="Enable a disabled user")
def enable_user(
    name: str,
    identity: Caller,
    session: Annotated[Session, audited("user-enable")],
    origin: RequestOrigin,
) -> Response:
    """Sign-in, tokens and roles work again as before the user was disabled."""
    require_admin(session, identity)
    accounts.enable_user(session, name, actor=identity, origin=origin)
    return Response(status_code=204)


class NewPassword(BaseModel):
    password: SecretStr = Field(description="At least 8 characters, no line breaks.")


@router.put("/{name}/password", status_code=204, summary="Reset a user's password")
def reset_password(
    name: str,
    body: NewPassword,
    identity: Caller,
    session: Annotated[Session, audited("user-password-reset")],
    origin: RequestOrigin,
) -> Response:
    """The user's browser sessions end; their API tokens keep working."""
    require_admin(session, identity)
    accounts.set_password(
        session, name, body.password.get_secret_value(), actor=identity, origin=origin
    )
    return Response(status_code=204)
