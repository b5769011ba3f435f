"""`GET /projects/{project}/releases/{version}/findings`: the requirements of an
in-house release that admit only versions of a dependency with known
vulnerabilities (`advisories/findings.py` has the rule).

Anyone signed in who may read the project may read them (a CI identity: its
own projects). The findings are as of the last upload of the release's files
or the last advisory import, whichever came later.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from packyard.advisories.dependency_findings import release_findings
from packyard.auth.permissions import may_read
from packyard.db.models import Project
from packyard.errors import NotFound, PermissionDenied
from packyard.publish.name_guard import check_name
from packyard.publish.yanks import find_files, normalise_version
from packyard.routes.api.deps import Caller, audited

router = APIRouter(prefix="/projects/{project}/releases/{version}", tags=["advisories"])


class FindingOut(BaseModel):
    requirement: str = Field(description="The Requires-Dist entry, marker included.")
    dependency: str = Field(description="The normalised name of the project it requires.")
    advisory_ids: list[str] = Field(
        description="The advisories that affect every version the requirement admits."
    )
    found_at: datetime


class ReleaseFindingsOut(BaseModel):
    project: str
    version: str
    findings: list[FindingOut] = Field(description="Empty: no requirement is flagged.")


@router.get("/findings", summary="A release's requirements that admit only affected versions")
def findings_of_release(
    project: str,
    version: str,
    identity: Caller,
    session: Annotated[Session, audited("findings-list")],
) -> ReleaseFindingsOut:
    name, wanted = check_name(project), normalise_version(version)
    if not may_read(identity, name):
        raise PermissionDenied(f"'{identity.name}' may not read project {name!r}.")
    row = session.scalar(select(Project).where(Project.name == name))
    if row is None:
        raise NotFound(f"There is no in-house project {name!r}.")
    # `1.0` and `1.0.0` are one release (PEP 440), whatever its files say.
    stored = sorted({file.version for file in find_files(session, row, wanted, None)})
    found = [item for text in stored for item in release_findings(session, name, text)]
    return ReleaseFindingsOut(
        project=name,
        version=stored[0],
        findings=[
            FindingOut(
                requirement=item.finding.requirement,
                dependency=item.finding.dependency,
                advisory_ids=list(item.finding.advisory_ids),
                found_at=item.found_at,
            )
            for item in found
        ],
    )
