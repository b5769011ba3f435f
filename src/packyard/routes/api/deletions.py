"""Deleting in-house releases and files for good (administrators only).

`publish/deletions.py` does it all: the admin check, one transaction with the
audit event (or a `refused` event), then removing the blobs. A deleted
filename can never be uploaded again; yank instead where you can.
"""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, Field

from packyard.auth.identity import Identity
from packyard.publish import deletions
from packyard.publish.audit import Origin
from packyard.routes.api.deps import ApiServices, Caller, RequestOrigin, Services

router = APIRouter(prefix="/projects/{project}/releases/{version}", tags=["deletions"])


class DeletionOut(BaseModel):
    project: str
    version: str | None = Field(description="None: the whole project was deleted.")
    deleted_files: list[str]


@router.delete("", summary="Delete a release and all its files")
async def delete_release(
    project: str, version: str, identity: Caller, services: Services, origin: RequestOrigin
) -> DeletionOut:
    return await _delete(services, identity, project, version, None, origin)


@router.delete("/files/{filename}", summary="Delete one file")
async def delete_file(
    project: str,
    version: str,
    filename: str,
    identity: Caller,
    services: Services,
    origin: RequestOrigin,
) -> DeletionOut:
    return await _delete(services, identity, project, version, filename, origin)


async def _delete(
    services: ApiServices,
    identity: Identity,
    project: str,
    version: str,
    filename: str | None,
    origin: Origin,
) -> DeletionOut:
    done = await deletions.delete(
        services.sessions, services.store, identity, project, version, filename, origin=origin
    )
    return DeletionOut(
        project=done.project, version=done.version, deleted_files=list(done.filenames)
    )
