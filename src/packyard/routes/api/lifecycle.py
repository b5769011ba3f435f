"""The lifecycle of a name: delete an in-house project, release a name to the upstream.

Administrators only (`publish/deletions.py`, `publish/name_release.py` check
it and audit every change and refusal). Both remove files for good: their
filenames can never be uploaded again.
"""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, Field

from packyard.publish import deletions, name_release
from packyard.routes.api.deps import Caller, RequestOrigin, Services

router = APIRouter(tags=["lifecycle"])


class DeletedProject(BaseModel):
    project: str = Field(description="Normalised.")
    deleted_files: list[str]


class ReleasedName(BaseModel):
    name: str = Field(description="Normalised.")
    deleted_files: list[str] = Field(description="The files of the in-house project deleted.")
    project_deleted: bool = Field(description="False: no in-house project had the name.")
    was_allowed: bool = Field(description="Whether the name was on the allow-list.")


@router.delete("/projects/{project}", summary="Delete an in-house project")
async def delete_project(
    project: str, identity: Caller, services: Services, origin: RequestOrigin
) -> DeletedProject:
    """Every file for good (their filenames are never reused), the owners and
    maintainers, and the project. An upstream project of the name is served
    again; a new upload of it is a new project, which the name guard checks."""
    done = await deletions.delete_project_for_good(
        services.sessions, services.store, identity, project, origin=origin
    )
    return DeletedProject(project=done.project, deleted_files=list(done.filenames))


@router.post("/names/{name}/release", summary="Give a name back to the upstream")
async def release_name(
    name: str, identity: Caller, services: Services, origin: RequestOrigin
) -> ReleasedName:
    """The in-house project of the name, if any, is deleted (its files for good)
    and the name comes off the allow-list: the upstream project of that name
    is served from the next request on."""
    done = await name_release.release_name_for_good(
        services.sessions, services.store, identity, name, origin=origin
    )
    deleted = done.deletion
    return ReleasedName(
        name=done.name,
        deleted_files=list(deleted.filenames) if deleted is not None else [],
        project_deleted=deleted is not None,
        was_allowed=done.was_allowed,
    )
