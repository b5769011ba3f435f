"""`/admin/project/<name>/`: yanks, roles and deletions of one in-house project.

Who sees what is decided by the services' own rule functions: the page opens
for whoever `publish.yanks.require_maintainer` lets yank (owners, maintainers,
admins); the role forms show when `auth.permissions.require_manage` passes
(owners, admins); deletion links for admins (`publish.yanks.require_admin`).
Every change goes through `publish.yanks`, `publish.ownership` or
`publish.deletions`, which check again and write the audit trail; a refusal
is audited too (`refusals_recorded`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar
from urllib.parse import quote

import anyio.to_thread
from packaging.version import Version
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response

from packyard.auth.identity import Identity
from packyard.auth.permissions import require_manage
from packyard.db.models import File, Project
from packyard.errors import InvalidRequest, PermissionDenied, ProjectNotFound
from packyard.publish import attestation_rules, deletions, ownership, yanks
from packyard.publish.name_guard import check_name
from packyard.routes.ui.admin.pages import AdminSite, Flash, field, origin_of
from packyard.routes.ui.admin.sessions import Viewer
from packyard.settings import AttestationRequirement
from packyard.storage.base import BlobStore

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class ReleaseFiles:
    version: str
    files: tuple[File, ...]

    @property
    def yanked(self) -> bool:
        return all(dist.yanked for dist in self.files)


@dataclass(frozen=True, slots=True)
class ProjectAdminView:
    name: str
    display_name: str
    status: str
    releases: tuple[ReleaseFiles, ...]
    roles: tuple[ownership.RoleEntry, ...]
    can_manage: bool
    is_admin: bool
    attestation_requirement: str | None  # the project's own; None: the configured one


def page_path(request: Request) -> str:
    """The project admin page of the request's project (where forms go back to);
    never raises, even for an invalid name (that page then says so)."""
    return "/admin/project/" + quote(str(request.path_params["name"]), safe="") + "/"


class ProjectAdminPages:
    """The project admin page and its forms."""

    def __init__(
        self,
        site: AdminSite,
        store: BlobStore,
        attestations_default: AttestationRequirement = "none",
    ) -> None:
        """`attestations_default`: the configured `[attestations] require`."""
        self._site = site
        self._store = store
        self._attestations_default = attestations_default

    async def show(self, request: Request, viewer: Viewer, form: FormData) -> Response:
        """GET: releases with their files and yanks, the roles, and the forms the
        viewer may use. 403 for anyone who may not yank; 404 for a project that
        is not in-house (an upstream's yanks are the command line's and API's)."""
        name = _name(request)
        view = await self._site.run(lambda session: _load(session, viewer.identity, name))
        context = {"managed": view, "attestations_default": self._attestations_default}
        return self._site.render(request, "admin/project.html", viewer, context)

    async def set_attestations(self, request: Request, viewer: Viewer, form: FormData) -> Response:
        """POST …/attestations (admins): which uploads must carry an attestation."""
        wanted = field(form, "requirement")

        def change(session: Session) -> attestation_rules.ProjectRequirement:
            return attestation_rules.set_requirement(
                session,
                viewer.identity,
                _name(request),
                None if wanted == "default" else wanted,
                configured=self._attestations_default,
                origin=origin_of(request),
            )

        found = await self._audited(request, viewer, "attestation-requirement", change)
        origin = "" if found.own else " (the configured default)"
        return self._done(request, f"Attestations required: {found.requirement}{origin}.")

    async def yank(self, request: Request, viewer: Viewer, form: FormData) -> Response:
        """POST …/yank: yank a release (no filename) or one file, with a reason."""
        name, version, filename = _name(request), field(form, "version"), field(form, "filename")
        reason = field(form, "reason") or None

        def change(session: Session) -> yanks.YankResult:
            return yanks.yank(
                session,
                viewer.identity,
                name,
                version,
                filename or None,
                reason,
                origin=origin_of(request),
            )

        await self._audited(request, viewer, "yank", change, version, filename or None)
        return self._done(request, f"Yanked {filename or name + ' ' + version}.")

    async def unyank(self, request: Request, viewer: Viewer, form: FormData) -> Response:
        """POST …/unyank: undo the yank of a release or one file."""
        name, version, filename = _name(request), field(form, "version"), field(form, "filename")

        def change(session: Session) -> yanks.YankResult:
            return yanks.unyank(
                session,
                viewer.identity,
                name,
                version,
                filename or None,
                origin=origin_of(request),
            )

        await self._audited(request, viewer, "unyank", change, version, filename or None)
        return self._done(request, f"Un-yanked {filename or name + ' ' + version}.")

    async def add_role(self, request: Request, viewer: Viewer, form: FormData) -> Response:
        """POST …/roles: make a user or group owner or maintainer."""
        role, member = field(form, "role"), _member(form)

        def change(session: Session) -> object:
            return ownership.add_role(
                session, viewer.identity, _name(request), role, origin=origin_of(request), **member
            )

        await self._audited(request, viewer, "role-add", change)
        return self._done(request, f"{_label(member)} is now {role}.")

    async def remove_role(self, request: Request, viewer: Viewer, form: FormData) -> Response:
        """POST …/roles/remove: take away a user's or group's role."""
        member = _member(form)

        def change(session: Session) -> None:
            ownership.remove_role(
                session, viewer.identity, _name(request), origin=origin_of(request), **member
            )

        await self._audited(request, viewer, "role-remove", change)
        return self._done(request, f"{_label(member)} has no role any more.")

    async def confirm_delete(self, request: Request, viewer: Viewer, form: FormData) -> Response:
        """GET …/delete?version=V[&filename=F]: what would be deleted, and a form that
        asks for the file name (or `name version`) to be typed again. Admins only."""
        name = _name(request)
        version = request.query_params.get("version", "")
        filename = request.query_params.get("filename") or None

        def targets(session: Session) -> list[str]:
            yanks.require_admin(session, viewer.identity, "delete files of", name)
            project = _project(session, name)
            found = yanks.find_files(session, project, yanks.normalise_version(version), filename)
            return [dist.filename for dist in found]

        filenames = await self._site.run(targets)
        context = {
            "name": name,
            "version": version,
            "filename": filename,
            "filenames": filenames,
            "confirmation": filename or f"{name} {version}",
        }
        return self._site.render(request, "admin/delete_confirm.html", viewer, context)

    async def delete(self, request: Request, viewer: Viewer, form: FormData) -> Response:
        """POST …/delete: delete for good, once the confirmation text matches."""
        name, version, filename = _name(request), field(form, "version"), field(form, "filename")
        expected = filename or f"{name} {version}"
        if field(form, "confirm") != expected:
            raise InvalidRequest(f"Type {expected!r} exactly to confirm the deletion.")
        deletion = await deletions.delete(
            self._site.sessions,
            self._store,
            viewer.identity,
            name,
            version,
            filename or None,
            origin=origin_of(request),
        )
        return self._done(request, f"Deleted {', '.join(deletion.filenames)}.")

    async def _audited(
        self,
        request: Request,
        viewer: Viewer,
        action: str,
        change: Callable[[Session], T],
        version: str | None = None,
        filename: str | None = None,
    ) -> T:
        """`change` in one transaction; a PermissionDenied is audited as refused."""
        sessions = self._site.sessions

        def work() -> T:
            where = {"project": _name(request), "version": version, "filename": filename}
            refusals = yanks.refusals_recorded(
                sessions, viewer.identity, action, origin=origin_of(request), **where
            )
            with refusals, sessions.begin() as session:
                return change(session)

        return await anyio.to_thread.run_sync(work)

    def _done(self, request: Request, message: str) -> Response:
        return self._site.redirect(request, page_path(request), Flash("ok", message))


def _name(request: Request) -> str:
    """The normalised project name of the URL. Raises InvalidRequest if invalid."""
    return check_name(str(request.path_params["name"]))


def _project(session: Session, name: str) -> Project:
    project = session.scalar(select(Project).where(Project.name == name))
    if project is None:
        raise ProjectNotFound(name)
    return project


def _load(session: Session, identity: Identity, name: str) -> ProjectAdminView:
    project = _project(session, name)
    yanks.require_maintainer(session, identity, project, "manage")
    try:
        admin = require_manage(session, identity, project)
        can_manage = True
    except PermissionDenied:
        admin = can_manage = False
    rows = session.scalars(select(File).where(File.project_id == project.id)).all()
    by_version: dict[str, list[File]] = {}
    for row in sorted(rows, key=lambda r: r.filename):
        by_version.setdefault(row.version, []).append(row)
    releases = tuple(
        ReleaseFiles(version, tuple(files))
        for version, files in sorted(
            by_version.items(), key=lambda item: Version(item[0]), reverse=True
        )
    )
    roles = tuple(ownership.list_roles(session, name))
    session.expunge_all()  # the rows are read after the transaction, by the template
    return ProjectAdminView(
        project.name,
        project.display_name,
        project.status,
        releases,
        roles,
        can_manage,
        admin,
        project.attestation_requirement,
    )


def _member(form: FormData) -> dict[str, str]:
    kind, member = field(form, "kind"), field(form, "member")
    if kind not in ("user", "group") or not member:
        raise InvalidRequest("Name a user or a group.")
    return {kind: member}


def _label(member: dict[str, str]) -> str:
    ((kind, name),) = member.items()
    return f"The {kind} '{name}'"
