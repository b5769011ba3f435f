"""`/admin/groups`: list, create and delete groups, add and remove members (admins only).

Registered with `admin=True`, which is what guards these: the account
services trust their caller, as the command line is trusted.
"""

from __future__ import annotations

from sqlalchemy.orm import Session
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response

from packyard.publish import accounts
from packyard.routes.ui.admin.pages import AdminSite, Flash, field, origin_of
from packyard.routes.ui.admin.sessions import Viewer

GROUPS = "/admin/groups"


class GroupPages:
    """The groups page and its forms."""

    def __init__(self, site: AdminSite) -> None:
        self._site = site

    async def show(self, request: Request, viewer: Viewer, form: FormData) -> Response:
        """GET /admin/groups: every group with its members, and the forms."""
        groups = await self._site.run(accounts.list_groups)
        users = await self._site.run(accounts.list_users)
        context = {"groups": groups, "users": [user.name for user in users]}
        return self._site.render(request, "admin/groups.html", viewer, context)

    async def create(self, request: Request, viewer: Viewer, form: FormData) -> Response:
        """POST /admin/groups: a new, empty group."""
        name = field(form, "name")

        def create(session: Session) -> str:
            group = accounts.create_group(
                session, name, actor=viewer.identity, origin=origin_of(request)
            )
            return group.name

        created = await self._site.run(create)
        return self._done(request, f"Created the group '{created}'.")

    async def delete(self, request: Request, viewer: Viewer, form: FormData) -> Response:
        """POST /admin/groups/{name}/delete: the members stay users, the roles go."""
        name = str(request.path_params["name"])

        def delete(session: Session) -> list[str]:
            return accounts.delete_group(
                session, name, actor=viewer.identity, origin=origin_of(request)
            )

        orphaned = await self._site.run(delete)
        message = f"Deleted the group '{name}'."
        if orphaned:
            message += f" These projects have no owner now: {', '.join(orphaned)}."
        return self._done(request, message)

    async def add_member(self, request: Request, viewer: Viewer, form: FormData) -> Response:
        """POST /admin/groups/{name}/members: add a user."""
        name, user = str(request.path_params["name"]), field(form, "user")

        def add(session: Session) -> None:
            accounts.add_member(
                session, name, user, actor=viewer.identity, origin=origin_of(request)
            )

        await self._site.run(add)
        return self._done(request, f"Added '{user.lower()}' to the group '{name}'.")

    async def remove_member(self, request: Request, viewer: Viewer, form: FormData) -> Response:
        """POST /admin/groups/{name}/members/remove: take a user out."""
        name, user = str(request.path_params["name"]), field(form, "user")

        def remove(session: Session) -> None:
            accounts.remove_member(
                session, name, user, actor=viewer.identity, origin=origin_of(request)
            )

        await self._site.run(remove)
        return self._done(request, f"Took '{user.lower()}' out of the group '{name}'.")

    def _done(self, request: Request, message: str) -> Response:
        return self._site.redirect(request, GROUPS, Flash("ok", message))
