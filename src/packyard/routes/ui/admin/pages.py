"""What every admin page shares: who is signed in, CSRF checks, errors, flash messages.

    site.page(handler)                 GET: a signed-in user, else the sign-in page
    site.page(handler, admin=True)     … and an admin (as stored now), else 403
    site.action(handler, back=...)     POST: the same, plus the CSRF checks

Handlers receive `(request, viewer, form)` and return a response. The rules
themselves stay in `publish/*` and `auth/permissions`: a `PermissionDenied`
they raise becomes a 403 page; any other refusal of a POST is shown on the
page the form came from (POST-redirect-GET, with a one-time flash message).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import quote

import anyio.to_thread
from sqlalchemy.orm import Session, sessionmaker
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from packyard.auth.permissions import active_user, is_admin
from packyard.errors import InvalidRequest, NotFound, PackyardError, PermissionDenied
from packyard.publish.audit import Origin
from packyard.routes.errors import status_for
from packyard.routes.ui.admin.csrf import FIELD, CsrfProtection
from packyard.routes.ui.admin.sessions import SessionResolver, Viewer, sign, unsign
from packyard.routes.ui.templating import Templates

T = TypeVar("T")
Handler = Callable[[Request, Viewer, FormData], Awaitable[Response]]
Endpoint = Callable[[Request], Awaitable[Response]]
FLASH_COOKIE = "packyard_flash"
FLASH_SECONDS = 120
MAX_FIELD = 2000  # characters; a form field longer than this is refused


@dataclass(frozen=True, slots=True)
class Flash:
    """A one-time message shown on the next page: `kind` is `ok` or `error`."""

    kind: str
    message: str


class AdminSite:
    """The admin pages' shared machinery, built once by `admin_routes`."""

    def __init__(
        self,
        templates: Templates,
        sessions: sessionmaker[Session],
        resolver: SessionResolver,
    ) -> None:
        self.templates = templates
        self.sessions = sessions
        self.resolver = resolver
        self.csrf = CsrfProtection(resolver.keys, templates.public_url)

    async def run(self, function: Callable[[Session], T]) -> T:
        """`function(session)` in a worker thread, in a transaction committed if it returns."""

        def work() -> T:
            with self.sessions.begin() as session:
                return function(session)

        return await anyio.to_thread.run_sync(work)

    def page(self, handler: Handler, *, admin: bool = False) -> Endpoint:
        """A GET endpoint for signed-in users (admins only when `admin`)."""

        async def endpoint(request: Request) -> Response:
            viewer = await self.resolver.viewer(request)
            if viewer is None:
                return self.to_sign_in(request)
            try:
                if admin:
                    await self.require_admin(viewer)
                return await handler(request, viewer, FormData())
            except PackyardError as exc:
                return self.error_page(request, viewer, exc)

        return endpoint

    def action(
        self, handler: Handler, *, back: Callable[[Request], str], admin: bool = False
    ) -> Endpoint:
        """A POST endpoint: signed in, CSRF-checked, then `handler`; a refusal other
        than PermissionDenied goes back to the page `back(request)` names, with a flash."""

        async def endpoint(request: Request) -> Response:
            form = await request.form(max_files=0)
            viewer = await self.resolver.viewer(request)
            try:
                self.csrf.check(request, form, viewer.session if viewer else None)
                if viewer is None:
                    raise PermissionDenied("Sign in first.")
                _check_lengths(form)
                if admin:
                    await self.require_admin(viewer)
                return await handler(request, viewer, form)
            except PermissionDenied as exc:
                return self.error_page(request, viewer, exc)
            except PackyardError as exc:
                return self.redirect(request, back(request), Flash("error", exc.message))

        return endpoint

    async def require_admin(self, viewer: Viewer) -> None:
        """Pass if the viewer is an admin as stored now (`auth.permissions`).

        Raises:
            PermissionDenied: the viewer is not an admin, or was disabled meanwhile.
        """

        def check(session: Session) -> bool:
            return is_admin(viewer.identity, active_user(session, viewer.identity))

        if not await self.run(check):
            raise PermissionDenied(
                f"'{viewer.name}' isn't allowed to see this page: only admins are."
            )

    def render(
        self,
        request: Request,
        template: str,
        viewer: Viewer | None,
        context: Mapping[str, Any],
        status_code: int = 200,
    ) -> Response:
        """An admin page: `viewer`, its CSRF token and the pending flash in the context;
        never cached (it shows one user's data)."""
        flash = self._take_flash(request)
        values = {
            "viewer": viewer,
            "csrf_field": FIELD,
            "csrf_token": self.csrf.token(viewer.session) if viewer else "",
            "flash": flash,
            **context,
        }
        response = self.templates.render(request, template, values, status_code)
        response.headers["Cache-Control"] = "no-store"
        if flash is not None:
            response.delete_cookie(FLASH_COOKIE, path=_admin_path(request), httponly=True)
        return response

    def error_page(self, request: Request, viewer: Viewer | None, error: PackyardError) -> Response:
        """The refusal as a page with its status (403 for PermissionDenied)."""
        status = status_for(error)
        context = {
            "status": status,
            "message": error.message,
            "not_found": isinstance(error, NotFound),
        }
        return self.render(request, "admin/error.html", viewer, context, status)

    def redirect(self, request: Request, path: str, flash: Flash | None = None) -> Response:
        """303 See Other to `path` (below the site's root), with a one-time message."""
        response = RedirectResponse(root(request) + path, status_code=303)
        if flash is not None:
            value = sign(self.resolver.keys("flash"), {"k": flash.kind, "m": flash.message[:500]})
            response.set_cookie(
                FLASH_COOKIE,
                value,
                max_age=FLASH_SECONDS,
                path=_admin_path(request),
                secure=self.resolver.is_secure(request),
                httponly=True,
                samesite="lax",
            )
        return response

    def to_sign_in(self, request: Request) -> Response:
        """303 to the sign-in page, which comes back here afterwards."""
        target = request.url.path[len(root(request)) :]
        if request.url.query:
            target += "?" + request.url.query
        return self.redirect(request, "/admin/sign-in?next=" + quote(target, safe="/"))

    def _take_flash(self, request: Request) -> Flash | None:
        raw = request.cookies.get(FLASH_COOKIE)
        payload = unsign(self.resolver.keys("flash"), raw) if raw else None
        if payload is None:
            return None
        kind, message = payload.get("k"), payload.get("m")
        if kind not in ("ok", "error") or not isinstance(message, str):
            return None
        return Flash(str(kind), message)


def origin_of(request: Request) -> Origin:
    """The audit trail's view of where a request came from."""
    client = request.client
    return Origin(client.host if client else None, request.headers.get("user-agent"))


def field(form: FormData, name: str) -> str:
    """A text field of `form`, stripped; "" when absent."""
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


def root(request: Request) -> str:
    """The path the site is mounted at, without a trailing slash."""
    return str(request.scope.get("root_path", "")).rstrip("/")


def _admin_path(request: Request) -> str:
    return root(request) + "/admin/"


def _check_lengths(form: FormData) -> None:
    for key, value in form.multi_items():
        if isinstance(value, str) and len(value) > MAX_FIELD:
            raise InvalidRequest(f"The form field {key!r} is too long.")
