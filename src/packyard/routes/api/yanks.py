"""Yanking releases and files (PEP 592).

`PUT …/yank` yanks (again: replaces the reason), `DELETE …/yank` un-yanks.
In-house projects: their owners, maintainers and administrators. Projects of
an upstream: administrators only; the yank is this site's override of the
upstream's page. The rules are `publish/yanks.py`'s.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from packyard.publish import yanks
from packyard.routes.api.deps import Caller, RequestOrigin, audited

router = APIRouter(prefix="/projects/{project}/releases/{version}", tags=["yanks"])

Transaction = Annotated[Session, audited("yank")]
UndoTransaction = Annotated[Session, audited("unyank")]


class YankIn(BaseModel):
    reason: str | None = Field(default=None, description="Installers show it (PEP 592).")


class YankOut(BaseModel):
    project: str
    version: str
    filename: str | None = Field(description="None: the whole release.")
    changed_files: list[str] = Field(description="In-house files whose state changed.")
    override: bool = Field(description="True: an upstream project, yanked on this site only.")


def _out(result: yanks.YankResult) -> YankOut:
    return YankOut(
        project=result.project,
        version=result.version,
        filename=result.filename,
        changed_files=list(result.filenames),
        override=result.override,
    )


@router.put("/yank", summary="Yank a release")
def yank_release(
    project: str,
    version: str,
    identity: Caller,
    session: Transaction,
    origin: RequestOrigin,
    body: YankIn | None = None,
) -> YankOut:
    reason = body.reason if body is not None else None
    return _out(yanks.yank(session, identity, project, version, None, reason, origin=origin))


@router.delete("/yank", summary="Un-yank a release")
def unyank_release(
    project: str, version: str, identity: Caller, session: UndoTransaction, origin: RequestOrigin
) -> YankOut:
    return _out(yanks.unyank(session, identity, project, version, None, origin=origin))


@router.put("/files/{filename}/yank", summary="Yank one file")
def yank_file(
    project: str,
    version: str,
    filename: str,
    identity: Caller,
    session: Transaction,
    origin: RequestOrigin,
    body: YankIn | None = None,
) -> YankOut:
    reason = body.reason if body is not None else None
    return _out(yanks.yank(session, identity, project, version, filename, reason, origin=origin))


@router.delete("/files/{filename}/yank", summary="Un-yank one file")
def unyank_file(
    project: str,
    version: str,
    filename: str,
    identity: Caller,
    session: UndoTransaction,
    origin: RequestOrigin,
) -> YankOut:
    return _out(yanks.unyank(session, identity, project, version, filename, origin=origin))
