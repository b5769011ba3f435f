"""Admin pages for the lifecycle of a name: delete a project, release a name.

Both remove files for good, so each goes through a confirmation page that
lists what would be deleted and asks for the name to be typed again (as a
release's deletion does, `project_admin.py`). The services check that the
viewer is an admin and audit the change or the refusal
(`publish/deletions.py`, `publish/name_release.py`).
"""

from __future__ import annotations

from urllib.parse import quote

from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response

from packyard.db.governance import AllowedName
from packyard.db.models import File, Project
from packyard.errors import InvalidRequest, NotFound, ProjectNotFound
from packyard.publish import deletions, name_release
from packyard.publish.name_guard import check_name
from packyard.publish.yanks import require_admin
from packyard.routes.ui.admin.pages import AdminSite, Flash, field, origin_of
from packyard.routes.ui.admin.sessions import Viewer
from packyard.storage.base import BlobStore

DELETIONS = "/admin/deletions"
NAMES = "/admin/names"
RELEASE = NAMES + "/release"


class LifecyclePages:
    """`/admin/project/<name>/delete-project` and `/admin/names/release`."""

    def __init__(self, site: AdminSite, store: BlobStore) -> None:
        self._site = site
        self._store = store

    async def confirm_project_deletion(
        self, request: Request, viewer: Viewer, form: FormData
    ) -> Response:
        """GET: every file the project's deletion would remove, and the form."""
        name = check_name(str(request.path_params["name"]))

        def files(session: Session) -> list[str]:
            require_admin(session, viewer.identity, "delete the project", name)
            project = session.scalar(select(Project).where(Project.name == name))
            if project is None:
                raise ProjectNotFound(name)
            return _filenames(session, project.id)

        filenames = await self._site.run(files)
        path = f"/admin/project/{quote(name, safe='')}/"
        context = {
            "heading": f"Delete the project {name}",
            "explanation": (
                "The project, its owners and maintainers and all its files will be removed "
                "for good. The file names can never be uploaded again, and anyone who pinned "
                "them will fail to install. The name is no longer in-house afterwards: a "
                "public project of that name is served instead."
            ),
            "filenames": filenames,
            "action": path + "delete-project",
            "hidden": {},
            "confirmation": name,
            "button": "Delete the project for good",
            "cancel": path,
        }
        return self._site.render(request, "admin/confirm.html", viewer, context)

    async def delete_project(self, request: Request, viewer: Viewer, form: FormData) -> Response:
        """POST: delete once the typed name matches; on to the deletions page."""
        name = check_name(str(request.path_params["name"]))
        if field(form, "confirm") != name:
            raise InvalidRequest(f"Type {name!r} exactly to confirm the deletion.")
        done = await deletions.delete_project_for_good(
            self._site.sessions, self._store, viewer.identity, name, origin=origin_of(request)
        )
        count = len(done.filenames)
        message = f"Deleted the project {done.project} ({count} file{'s' * (count != 1)})."
        return self._site.redirect(request, DELETIONS, Flash("ok", message))

    async def confirm_release(self, request: Request, viewer: Viewer, form: FormData) -> Response:
        """GET ?name=: what releasing the name would do, and the form."""
        name = check_name(request.query_params.get("name", "").strip())

        def state(session: Session) -> tuple[list[str] | None, bool]:
            require_admin(session, viewer.identity, "release the name", name)
            project = session.scalar(select(Project.id).where(Project.name == name))
            allowed = session.get(AllowedName, name) is not None
            if project is None and not allowed:
                raise NotFound(f"The name '{name}' is not in-house: there is nothing to release.")
            return (_filenames(session, project) if project is not None else None), allowed

        filenames, allowed = await self._site.run(state)
        done = []
        if filenames is not None:
            done.append("its in-house project and all its files are deleted for good")
        if allowed:
            done.append("it comes off the allow-list")
        context = {
            "heading": f"Release {name} to the upstream",
            "explanation": (
                f"The in-house name stops hiding the public project '{name}': "
                f"{' and '.join(done)}. A new upload of the name must then pass the name "
                "guard, which refuses public names."
            ),
            "filenames": filenames or [],
            "action": RELEASE,
            "hidden": {"name": name},
            "confirmation": name,
            "button": "Release the name",
            "cancel": NAMES,
        }
        return self._site.render(request, "admin/confirm.html", viewer, context)

    async def release(self, request: Request, viewer: Viewer, form: FormData) -> Response:
        """POST: release once the typed name matches; back to the names page."""
        name = check_name(field(form, "name"))
        if field(form, "confirm") != name:
            raise InvalidRequest(f"Type {name!r} exactly to confirm the release.")
        done = await name_release.release_name_for_good(
            self._site.sessions, self._store, viewer.identity, name, origin=origin_of(request)
        )
        return self._site.redirect(request, NAMES, Flash("ok", done.summary))


def _filenames(session: Session, project_id: int) -> list[str]:
    query = select(File.filename).where(File.project_id == project_id).order_by(File.filename)
    return list(session.scalars(query))
