"""`/admin/sso/<provider>/start` and `/admin/sso/<provider>/callback`: people sign
in with the organisation's OpenID Connect providers (`[[auth.sso]]`).

    start:    a new attempt (state, nonce, PKCE) in a signed cookie, 303 to the provider
    callback: the attempt checked against the answer, the code exchanged, the ID
              token verified (`auth/sso/provider.py`); the person's groups read
              from LDAP too when `[auth.ldap]` is set; their account made or
              brought up to date (`publish/directory_accounts.py`); a session.

Every refusal is a page that says what happened and what to do, with the
right status: 400 for an answer that does not belong to a sign-in started
here, 401/403 for a refused person, 503 when the provider cannot be reached
(with the password form still there when local passwords are on). The
directory being down or slow never stops a sign-in: it costs at most its
timeout, and the groups kept from before are used, marked stale.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Protocol

import anyio
import anyio.to_thread
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from packyard.auth.directory.profile import DirectoryProfile, DirectoryUnavailable
from packyard.auth.sso.attempt import ATTEMPT_SECONDS, SignInAttempt
from packyard.auth.sso.person import Person, person_from_claims
from packyard.auth.sso.provider import SsoProvider
from packyard.errors import AuthenticationFailed, NotFound, UpstreamError
from packyard.publish import directory_accounts
from packyard.routes.ui.admin.auth import SignIn, safe_next
from packyard.routes.ui.admin.pages import AdminSite, Flash, origin_of, root
from packyard.routes.ui.admin.sessions import sign, unsign
from packyard.settings import DirectoryGroupSettings

ATTEMPT_COOKIE = "packyard_sso"
LOGGER = logging.getLogger("packyard.sso")


class Directory(Protocol):
    """`auth.directory.ldap.LdapDirectory`: a person's groups, manager and e-mail."""

    def lookup(self, username: str) -> DirectoryProfile | None:
        """None: the directory has no such person.

        Raises:
            DirectoryUnavailable: it cannot be asked now."""
        ...


class SsoPages:
    """The two endpoints of every provider."""

    def __init__(
        self,
        site: AdminSite,
        sign_in: SignIn,
        providers: Sequence[SsoProvider],
        groups: DirectoryGroupSettings,
        directory: Directory | None = None,
        directory_timeout: float = 5.0,
    ) -> None:
        """`directory_timeout`: `[auth.ldap] timeout_seconds`, which bounds a sign-in's wait."""
        self._site = site
        self._sign_in = sign_in
        self._providers: Mapping[str, SsoProvider] = {p.name: p for p in providers}
        self._groups = groups
        self._directory = directory
        self._deadline = 2 * directory_timeout + 1

    async def start(self, request: Request) -> Response:
        """GET: off to the provider, with a new attempt in a cookie."""
        provider = self._providers.get(request.path_params["provider"])
        if provider is None:
            return self._unknown(request)
        attempt = SignInAttempt.start(provider.name, safe_next(request.query_params.get("next")))
        try:
            url = await provider.authorization_url(attempt, self._callback_url(request, provider))
        except UpstreamError as exc:
            return self._unreachable(request, provider, exc, attempt.next)
        response = RedirectResponse(url, status_code=303)
        response.set_cookie(
            ATTEMPT_COOKIE,
            sign(self._site.resolver.keys("sso attempt"), attempt.to_payload()),
            max_age=ATTEMPT_SECONDS,
            path=self._cookie_path(request),
            secure=self._site.resolver.is_secure(request),
            httponly=True,
            samesite="lax",  # the provider sends the browser back with a top-level GET
        )
        return response

    async def callback(self, request: Request) -> Response:
        """GET: the provider's answer; a session and 303 to where the person was going."""
        provider = self._providers.get(request.path_params["provider"])
        if provider is None:
            return self._unknown(request)
        attempt = self._attempt(request, provider)
        if attempt is None:
            return self._refused(
                request,
                "This sign-in was not started in this browser, or took longer than "
                f"{ATTEMPT_SECONDS // 60} minutes. Start again.",
                400,
            )
        params = request.query_params
        if params.get("error"):
            # RFC 6749 §4.1.2.1: the person cancelled, or the provider refused them.
            detail = params.get("error_description") or params["error"]
            return self._refused(
                request, f"{provider.name} did not sign you in: {detail[:300]}.", 401, attempt
            )
        code = params.get("code")
        if not code:
            return self._refused(request, f"{provider.name} sent no sign-in code.", 400, attempt)
        try:
            claims = await provider.claims(code, attempt, self._callback_url(request, provider))
            person = person_from_claims(provider.settings, claims)
        except AuthenticationFailed as exc:
            return self._refused(request, exc.message, 401, attempt)
        except UpstreamError as exc:
            return self._unreachable(request, provider, exc, attempt.next, attempt)
        known, note = await self._with_directory(person)
        if known is None:
            return self._refused(request, note or "", 403, attempt)
        try:
            identity = await self._site.run(
                lambda session: directory_accounts.sign_in(
                    session,
                    known,
                    self._groups,
                    adopt_local_users=provider.settings.adopt_local_users,
                    origin=origin_of(request),
                )
            )
        except AuthenticationFailed as exc:
            return self._refused(request, exc.message, 403, attempt)
        resolver = self._site.resolver
        assert identity.user_id is not None
        password_hash = await anyio.to_thread.run_sync(resolver.password_hash, identity.user_id)
        session = resolver.signed_in(identity, password_hash)
        await anyio.to_thread.run_sync(resolver.begin, session)
        response = self._site.redirect(
            request, attempt.next, Flash("error", note) if note else None
        )
        resolver.store(request, response, session)
        self._forget(request, response)
        return response

    async def _with_directory(self, person: Person) -> tuple[Person | None, str | None]:
        """The person with LDAP's groups and manager added; (None, why) when LDAP
        does not know them; their groups unknown (kept, stale) when it is down."""
        directory = self._directory
        if directory is None:
            return person, None
        try:
            # Bounded twice: by the client's own timeouts, and here, abandoning a
            # thread stuck on a directory that accepted the connection and went quiet.
            with anyio.fail_after(self._deadline):
                profile = await anyio.to_thread.run_sync(
                    directory.lookup, person.username, abandon_on_cancel=True
                )
        except (DirectoryUnavailable, TimeoutError) as exc:
            reason = exc.message if isinstance(exc, DirectoryUnavailable) else "it timed out"
            LOGGER.warning("directory unavailable at sign-in of %s: %s", person.username, reason)
            return replace(person, groups=None, directory_down=True), (
                f"The directory could not be asked ({reason}): your groups are the ones "
                "known from before."
            )
        if profile is None:
            return None, (
                f"'{person.username}' is not in the organisation's directory, so they cannot "
                "sign in here. Ask an admin if this is wrong."
            )
        known = person.with_groups(profile.groups, profile.manager)
        return replace(
            known,
            email=person.email or profile.email,
            full_name=person.full_name or profile.full_name,
        ), None

    def _unknown(self, request: Request) -> Response:
        name = request.path_params["provider"]
        error = NotFound(f"There is no sign-in provider named {name!r} here.")
        return self._site.error_page(request, None, error)

    def _attempt(self, request: Request, provider: SsoProvider) -> SignInAttempt | None:
        raw = request.cookies.get(ATTEMPT_COOKIE)
        payload = unsign(self._site.resolver.keys("sso attempt"), raw) if raw else None
        attempt = SignInAttempt.from_payload(payload) if payload is not None else None
        state = request.query_params.get("state", "")
        if attempt is None or attempt.provider != provider.name or not _same(attempt.state, state):
            return None
        return attempt

    def _callback_url(self, request: Request, provider: SsoProvider) -> str:
        """The redirect URI registered at the provider: on `public_url` when set."""
        public = self._site.templates.public_url
        base = public.rstrip("/") if public else str(request.base_url).rstrip("/")
        return f"{base}/admin/sso/{provider.name}/callback"

    def _cookie_path(self, request: Request) -> str:
        return root(request) + "/admin/sso/"

    def _forget(self, request: Request, response: Response) -> None:
        """The attempt is used up: its cookie goes (a replayed answer finds none)."""
        response.delete_cookie(
            ATTEMPT_COOKIE,
            path=self._cookie_path(request),
            secure=self._site.resolver.is_secure(request),
            httponly=True,
            samesite="lax",
        )

    def _refused(
        self, request: Request, message: str, status: int, attempt: SignInAttempt | None = None
    ) -> Response:
        target = attempt.next if attempt is not None else "/admin/"
        response = self._sign_in.page(request, target, message, status)
        self._forget(request, response)
        return response

    def _unreachable(
        self,
        request: Request,
        provider: SsoProvider,
        error: UpstreamError,
        target: str,
        attempt: SignInAttempt | None = None,
    ) -> Response:
        LOGGER.warning("sign-in provider unavailable: %s", error.message)
        message = (
            f"Signing in with {provider.name} is not possible right now: it cannot be "
            "reached or answered wrongly. Try again in a few minutes."
        )
        response = self._sign_in.page(request, target, message, 503)
        response.headers["Retry-After"] = "30"
        if attempt is not None:
            self._forget(request, response)
        return response


def _same(expected: str, given: str) -> bool:
    return hmac.compare_digest(expected.encode(), given.encode())
