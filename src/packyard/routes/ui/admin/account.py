"""`/admin/account`: who I am, my API tokens (create, list, revoke), and the
projects handed to me (or to my groups) when their last owner left.

The token services (`publish/accounts.py`) trust their caller, as the command
line is trusted; here the caller is the signed-in user, so every call names
the viewer's own account, and a revoke is refused unless the token is one of
the viewer's.
"""

from __future__ import annotations

from sqlalchemy.orm import Session
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response

from packyard.errors import InvalidRequest, NotFound
from packyard.publish import accounts, directory_accounts, ownership, succession
from packyard.routes.ui.admin.pages import AdminSite, Flash, field, origin_of
from packyard.routes.ui.admin.sessions import Viewer

PAGE = "/admin/account"


class AccountPages:
    """The "My account" page and its forms."""

    def __init__(self, site: AdminSite) -> None:
        self._site = site

    async def show(self, request: Request, viewer: Viewer, form: FormData) -> Response:
        """GET /admin/account: my tokens, newest first, never their secrets."""
        return await self._page(request, viewer, None)

    async def create_token(self, request: Request, viewer: Viewer, form: FormData) -> Response:
        """POST /admin/account/tokens: a new token of mine, shown on this one answer
        only (never stored in plain text, so it cannot be shown again).

        This answer is the page itself, not a redirect: passing the token on to
        another request would mean writing it somewhere. It is `no-store`.
        """
        projects = field(form, "projects").replace(",", " ").split()
        days_text = field(form, "expires_days")
        if days_text and not days_text.isdigit():
            raise InvalidRequest("The expiry is a number of days.")
        description = field(form, "description") or None

        def create(session: Session) -> str:
            plaintext, _ = accounts.create_token(
                session,
                viewer.name,
                projects,
                int(days_text) if days_text else None,
                description,
                actor=viewer.identity,
                origin=origin_of(request),
            )
            return plaintext

        token = await self._site.run(create)
        return await self._page(request, viewer, token)

    async def revoke_token(self, request: Request, viewer: Viewer, form: FormData) -> Response:
        """POST /admin/account/tokens/{id}/revoke: revoke one of my tokens.

        Raises:
            NotFound: no token of mine has that number.  Conflict: revoked already.
        """
        number = str(request.path_params["id"])

        def revoke(session: Session) -> str:
            mine = {str(t.id) for t in accounts.list_tokens(session, viewer.name)}
            if number not in mine:
                raise NotFound("You have no such token.")
            token = accounts.revoke_token(
                session, number, actor=viewer.identity, origin=origin_of(request)
            )
            return token.prefix

        prefix = await self._site.run(revoke)
        return self._site.redirect(request, PAGE, Flash("ok", f"The token {prefix}… is revoked."))

    async def dismiss_handover(self, request: Request, viewer: Viewer, form: FormData) -> Response:
        """POST /admin/account/handovers/{id}/dismiss: I have seen that a project was
        handed to me (for a group's, seen for all its members).

        Raises:
            NotFound: no hand-over of that number was addressed to me or my groups.
        """
        number = int(request.path_params["id"])
        await self._site.run(lambda session: succession.dismiss(session, viewer.name, number))
        return self._site.redirect(request, PAGE, Flash("ok", "The notice is dismissed."))

    async def _page(self, request: Request, viewer: Viewer, new_token: str | None) -> Response:
        tokens = await self._site.run(lambda session: accounts.list_tokens(session, viewer.name))
        groups = await self._site.run(lambda session: accounts.groups_of(session, viewer.name))
        handovers = await self._site.run(lambda session: succession.notices(session, viewer.name))
        directory = await self._site.run(
            lambda session: directory_accounts.directory_status(session, viewer.name)
        )
        projects = await self._site.run(lambda session: ownership.projects_of(session, viewer.name))
        context = {
            "projects": projects,
            "directory": directory,
            "tokens": list(reversed(tokens)),
            "new_token": new_token,
            "groups": groups,
            "handovers": handovers,
        }
        return self._site.render(request, "admin/account.html", viewer, context)
