"""Admin-only pages: users, allowed public names, deletions and the audit log
(groups: `group_admin.py`; deleting a project and releasing a name: `lifecycle_admin.py`).

Every endpoint here is registered with `admin=True` (`AdminSite.page` and
`.action`), which passes only admins as stored now (`auth.permissions`). The
account services trust their caller (as the command line is trusted), so that
check is what guards them; the name and deletion services check again.
"""

from __future__ import annotations

from urllib.parse import urlencode

from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response

from packyard.db.governance import DeletedFile
from packyard.errors import InvalidRequest
from packyard.publish import accounts, succession
from packyard.publish.name_guard import allow_name, allowed_names, check_name, disallow_name
from packyard.publish.succession import HandoverResult
from packyard.routes.ui.admin.audit_log import AuditFilter, read_audit
from packyard.routes.ui.admin.pages import AdminSite, Flash, field, origin_of
from packyard.routes.ui.admin.sessions import Viewer

USERS, NAMES, DELETIONS = "/admin/users", "/admin/names", "/admin/deletions"
RECENT_DELETIONS = 200


class SiteAdminPages:
    """Users, allowed names, deletions and the audit log."""

    def __init__(self, site: AdminSite, fallback_group: str | None = None) -> None:
        """`fallback_group`: `[auth.succession] fallback_group`, who takes over the
        projects of a user disabled or retired here when their manager cannot."""
        self._site = site
        self._fallback_group = fallback_group

    async def users(self, request: Request, viewer: Viewer, form: FormData) -> Response:
        """GET /admin/users: every user, with a form to add one."""
        users = await self._site.run(accounts.list_users)
        return self._site.render(request, "admin/users.html", viewer, {"users": users})

    async def add_user(self, request: Request, viewer: Viewer, form: FormData) -> Response:
        """POST /admin/users: a new user with a password (optionally an admin)."""
        name, password = field(form, "name"), form.get("password")
        if not isinstance(password, str) or not password:
            raise InvalidRequest("Give the new user a password.")
        admin = form.get("admin") == "on"

        def add(session: Session) -> str:
            user = accounts.add_user(
                session, name, password, admin, actor=viewer.identity, origin=origin_of(request)
            )
            return user.name

        created = await self._site.run(add)
        return self._site.redirect(request, USERS, Flash("ok", f"Added the user '{created}'."))

    async def disable_user(self, request: Request, viewer: Viewer, form: FormData) -> Response:
        """POST /admin/users/{name}/disable: the user's sessions and tokens stop at once;
        the projects only they owned go to their manager, else the fallback group."""
        name = str(request.path_params["name"])
        if name.lower() == viewer.name:
            raise InvalidRequest("You cannot disable yourself: ask another admin.")

        def disable(session: Session) -> list[HandoverResult]:
            return succession.disable(
                session,
                name,
                fallback_group=self._fallback_group,
                actor=viewer.identity,
                origin=origin_of(request),
            )

        results = await self._site.run(disable)
        message = f"Disabled the user '{name}'. {_handed_over(results)}"
        return self._site.redirect(request, USERS, Flash("ok", message))

    async def retire_user(self, request: Request, viewer: Viewer, form: FormData) -> Response:
        """POST /admin/users/{name}/retire: disable the user (unless they are already)
        and hand the projects only they owned to the successor in the form (a user
        or group:NAME), else to their manager, else to the fallback group."""
        name, to = str(request.path_params["name"]), field(form, "to") or None
        if name.lower() == viewer.name:
            raise InvalidRequest("You cannot retire yourself: ask another admin.")

        def retire(session: Session) -> list[HandoverResult]:
            return succession.retire(
                session,
                name,
                to=to,
                fallback_group=self._fallback_group,
                actor=viewer.identity,
                origin=origin_of(request),
            )

        results = await self._site.run(retire)
        message = f"Retired the user '{name}'. {_handed_over(results)}"
        return self._site.redirect(request, USERS, Flash("ok", message))

    async def enable_user(self, request: Request, viewer: Viewer, form: FormData) -> Response:
        """POST /admin/users/{name}/enable: sign-in, tokens and roles work again."""
        name = str(request.path_params["name"])

        def enable(session: Session) -> None:
            accounts.enable_user(session, name, actor=viewer.identity, origin=origin_of(request))

        await self._site.run(enable)
        return self._site.redirect(request, USERS, Flash("ok", f"Enabled the user '{name}'."))

    async def reset_password(self, request: Request, viewer: Viewer, form: FormData) -> Response:
        """POST /admin/users/{name}/password: a new password; the user's browser
        sessions end, their tokens keep working."""
        name, password = str(request.path_params["name"]), form.get("password")
        if not isinstance(password, str) or not password:
            raise InvalidRequest("Give the new password.")

        def reset(session: Session) -> None:
            accounts.set_password(
                session, name, password, actor=viewer.identity, origin=origin_of(request)
            )

        await self._site.run(reset)
        message = f"Set a new password for the user '{name}'."
        return self._site.redirect(request, USERS, Flash("ok", message))

    async def names(self, request: Request, viewer: Viewer, form: FormData) -> Response:
        """GET /admin/names: the allow-list of the name guard."""

        def read(session: Session) -> list[dict[str, object]]:
            return [
                {"name": r.name, "reason": r.reason, "by": r.allowed_by, "at": r.created_at}
                for r in allowed_names(session)
            ]

        rows = await self._site.run(read)
        return self._site.render(request, "admin/names.html", viewer, {"names": rows})

    async def allow(self, request: Request, viewer: Viewer, form: FormData) -> Response:
        """POST /admin/names: let a new in-house project take a public name."""
        name, reason = field(form, "name"), field(form, "reason") or None

        def change(session: Session) -> str:
            row = allow_name(session, viewer.identity, name, reason, origin=origin_of(request))
            return row.name

        allowed = await self._site.run(change)
        return self._site.redirect(request, NAMES, Flash("ok", f"'{allowed}' is allowed."))

    async def disallow(self, request: Request, viewer: Viewer, form: FormData) -> Response:
        """POST /admin/names/{name}/disallow: take a name off the allow-list."""
        name = str(request.path_params["name"])

        def change(session: Session) -> None:
            disallow_name(session, viewer.identity, name, origin=origin_of(request))

        await self._site.run(change)
        return self._site.redirect(request, NAMES, Flash("ok", f"'{name}' is no longer allowed."))

    async def deletions(self, request: Request, viewer: Viewer, form: FormData) -> Response:
        """GET /admin/deletions: recent deletions, and a form that leads to the
        confirmation page of a release's or a file's deletion."""

        def read(session: Session) -> list[DeletedFile]:
            query = select(DeletedFile).order_by(DeletedFile.deleted_at.desc())
            rows = list(session.scalars(query.limit(RECENT_DELETIONS)))
            session.expunge_all()
            return rows

        rows = await self._site.run(read)
        return self._site.render(request, "admin/deletions.html", viewer, {"deleted": rows})

    async def start_deletion(self, request: Request, viewer: Viewer, form: FormData) -> Response:
        """GET /admin/deletions/confirm?project=&version=&filename=: on to the project's
        confirmation page (which checks the project, release and file)."""
        params = request.query_params
        project = check_name(params.get("project", "").strip())
        query = {"version": params.get("version", "").strip()}
        if params.get("filename", "").strip():
            query["filename"] = params["filename"].strip()
        return self._site.redirect(request, f"/admin/project/{project}/delete?{urlencode(query)}")

    async def audit(self, request: Request, viewer: Viewer, form: FormData) -> Response:
        """GET /admin/audit?project=&actor=&action=&page=: the audit trail, 50 a page."""
        params = request.query_params
        wanted = AuditFilter(
            params.get("project", "").strip(),
            params.get("actor", "").strip(),
            params.get("action", "").strip(),
        )
        page_text = params.get("page", "1")
        page = int(page_text) if page_text.isdigit() else 1
        result = await self._site.run(lambda session: read_audit(session, wanted, page))
        context = {"audit": result, "filter": wanted, "filter_query": wanted.as_query()}
        return self._site.render(request, "admin/audit.html", viewer, context)


def _handed_over(results: list[HandoverResult]) -> str:
    """What became of the projects only the user owned, in a sentence or two."""
    if not results:
        return "No project was left without an owner."
    handed = [f"{r.project} to {r.successor}" for r in results if r.successor is not None]
    orphaned = [f"{r.project} ({r.why})" for r in results if r.successor is None]
    sentences = []
    if handed:
        sentences.append(f"Handed over: {', '.join(handed)}.")
    if orphaned:
        sentences.append(f"Left without an owner: {'; '.join(orphaned)}.")
    return " ".join(sentences)
