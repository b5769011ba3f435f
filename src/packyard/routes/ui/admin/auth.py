"""`/admin/sign-in` and `/admin/sign-out`: password sign-in for the browser.

The password is checked by `auth.authenticate.Authenticators`, exactly as for
an upload with a user name and password (argon2id, the same timing for an
unknown user, a disabled user refused, hashes upgraded): the form's fields
are handed over as Basic credentials. API tokens and CI tokens do not sign in
here: a browser session is a person's.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from typing import Protocol

import anyio.to_thread
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response

from packyard.auth.identity import Identity
from packyard.errors import AuthenticationFailed, Overloaded, PermissionDenied, TooManyFailures
from packyard.publish.accounts import ACCOUNT_NAME
from packyard.routes.ui.admin.pages import AdminSite, Flash, field
from packyard.routes.ui.admin.sessions import SessionData

WRONG = "Invalid username or password."
PASSWORDS_OFF = (
    "Signing in with a password is turned off here: use your organisation's sign-in above."
)
HOME = "/admin/"


class Authenticate(Protocol):
    """`auth.authenticate.Authenticators`: an Authorization header → an Identity."""

    async def authenticate(self, authorization: str | None, client: str | None = None) -> Identity:
        """Raises AuthenticationFailed for missing, wrong or disabled credentials,
        TooManyFailures and Overloaded when the sign-in is refused before checking."""
        ...


def safe_next(value: str | None) -> str:
    """Where to go after signing in: a path of this site, else the admin home.
    Refuses `//host` and `/\\host`, which browsers treat as other sites."""
    if not value or not value.startswith("/") or value.startswith(("//", "/\\")):
        return HOME
    if any(ord(character) < 32 for character in value):
        return HOME
    return value


class SignIn:
    """The sign-in and sign-out endpoints."""

    def __init__(
        self,
        site: AdminSite,
        authenticators: Authenticate,
        providers: Sequence[str] = (),
        local_passwords: bool = True,
    ) -> None:
        """`providers`: the `[[auth.sso]]` names offered as buttons; `local_passwords`
        False: no password form, and a posted one is refused."""
        self._site = site
        self._authenticators = authenticators
        self._providers = tuple(providers)
        self._local_passwords = local_passwords

    async def form(self, request: Request) -> Response:
        """GET /admin/sign-in: the form (already signed in: straight on to `next`)."""
        target = safe_next(request.query_params.get("next"))
        if await self._site.resolver.viewer(request) is not None:
            return self._site.redirect(request, target)
        return self.page(request, target, None, 200)

    async def submit(self, request: Request) -> Response:
        """POST /admin/sign-in: a new session and 303 to `next`; else the form again
        with the reason (401), or 403 for a failed CSRF check."""
        form = await request.form(max_files=0)
        target = safe_next(field(form, "next"))
        try:
            self._site.csrf.check(request, form, self._site.resolver.read(request))
        except PermissionDenied as exc:
            return self._site.error_page(request, None, exc)
        if not self._local_passwords:
            return self.page(request, target, PASSWORDS_OFF, 403)
        try:
            identity = await self._check_password(request, form)
        except AuthenticationFailed as exc:
            return self.page(request, target, exc.message, 401, field(form, "username"))
        except (TooManyFailures, Overloaded) as exc:
            status = 429 if isinstance(exc, TooManyFailures) else 503
            page = self.page(request, target, exc.message, status, field(form, "username"))
            page.headers["Retry-After"] = str(exc.retry_after)
            return page
        assert identity.user_id is not None
        password_hash = await anyio.to_thread.run_sync(
            self._site.resolver.password_hash, identity.user_id
        )
        session = self._site.resolver.signed_in(identity, password_hash)
        await anyio.to_thread.run_sync(self._site.resolver.begin, session)
        response = self._site.redirect(request, target)
        self._site.resolver.store(request, response, session)
        return response

    async def sign_out(self, request: Request) -> Response:
        """POST /admin/sign-out (CSRF-checked): the session ends on the server (every
        copy of its cookie is refused from now on), the cookie is removed, 303 to the
        sign-in page."""
        form = await request.form(max_files=0)
        viewer = await self._site.resolver.viewer(request)
        session = self._site.resolver.read(request)
        try:
            self._site.csrf.check(request, form, session)
        except PermissionDenied as exc:
            return self._site.error_page(request, viewer, exc)
        if session is not None and session.uid is not None:
            await anyio.to_thread.run_sync(self._site.resolver.end, session)
        response = self._site.redirect(
            request, "/admin/sign-in", Flash("ok", "You are signed out.")
        )
        self._site.resolver.clear(request, response)
        return response

    async def _check_password(self, request: Request, form: FormData) -> Identity:
        username, password = field(form, "username").lower(), form.get("password")
        if not isinstance(password, str) or not password or not ACCOUNT_NAME.fullmatch(username):
            # Not a name any user can have (`__token__` among them): nothing to look up.
            raise AuthenticationFailed(WRONG)
        basic = base64.b64encode(f"{username}:{password}".encode()).decode()
        client = request.client.host if request.client is not None else None
        identity = await self._authenticators.authenticate("Basic " + basic, client=client)
        if identity.kind != "user":
            raise AuthenticationFailed(WRONG)
        return identity

    def page(
        self, request: Request, target: str, error: str | None, status: int, username: str = ""
    ) -> Response:
        """The sign-in page: the providers' buttons, the password form (when local
        passwords are on), and `error` if there is one."""
        resolver = self._site.resolver
        session: SessionData | None = resolver.read(request)
        fresh = session is None or session.uid is not None
        if session is None or fresh:
            session = resolver.visitor()
        context = {
            "next": target,
            "error": error,
            "username": username,
            "sign_in_token": self._site.csrf.token(session),
            "providers": self._providers,
            "passwords": self._local_passwords,
        }
        response = self._site.render(request, "admin/sign_in.html", None, context, status)
        if fresh:
            resolver.store(request, response, session)
        return response
