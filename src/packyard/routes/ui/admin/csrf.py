"""Cross-site request forgery: every POST of the admin pages is checked here.

Two checks, both must pass (OWASP's CSRF cheat sheet):

1. a synchronizer token: each form carries `csrf_token`, an HMAC of the
   session's random `sid` (so it differs per session and is never in the
   cookie itself), compared with `hmac.compare_digest`;
2. the `Origin` header, when the browser sends one, names this site: the
   request's `Host`, or the host of `public_url` when one is set (a proxy
   may pass its own upstream address as `Host`, nginx's default). Host and
   port only: behind a TLS-terminating proxy the scheme seen here may differ
   from the browser's. `Origin: null` (a sandboxed or privacy-masked
   request) is refused.

`SameSite=Lax` on the session cookie is a third line: a cross-site POST
carries no cookie at all.
"""

from __future__ import annotations

import hashlib
import hmac
from urllib.parse import urlsplit

from starlette.datastructures import FormData
from starlette.requests import Request

from packyard.errors import PermissionDenied
from packyard.routes.ui.admin.sessions import SessionData, SigningKeys

FIELD = "csrf_token"


class CsrfProtection:
    """Makes and checks the CSRF tokens of sessions signed with one secret."""

    def __init__(self, keys: SigningKeys, public_url: str | None = None) -> None:
        """`public_url`: the `Settings.public_url`, whose host forms may come from."""
        self._keys = keys
        self._public_host = urlsplit(public_url).netloc.lower() if public_url else None

    def token(self, session: SessionData) -> str:
        """The token that forms of `session` carry in their hidden `csrf_token` field."""
        return hmac.new(self._keys("csrf"), session.sid.encode(), hashlib.sha256).hexdigest()

    def check(self, request: Request, form: FormData, session: SessionData | None) -> None:
        """Pass if the POST `request` with `form` comes from a page of this site.

        Raises:
            PermissionDenied: no session (cookies off, or it expired), a missing
                or wrong token, or a foreign `Origin`.
        """
        check_origin(request, self._public_host)
        if session is None:
            raise PermissionDenied(
                "Your session has expired or your browser sent no cookie: "
                "reload the page and try again (cookies must be enabled)."
            )
        given = form.get(FIELD)
        if not isinstance(given, str) or not hmac.compare_digest(given, self.token(session)):
            raise PermissionDenied(
                "The form's security token is missing or out of date: "
                "reload the page and try again."
            )


def check_origin(request: Request, public_host: str | None = None) -> None:
    """Pass when the request has no `Origin`, or one of this site's host and port:
    the request's `Host`, or `public_host` (the `public_url`'s) when given.

    Raises:
        PermissionDenied: the `Origin` names another site, or is `null`.
    """
    origin = request.headers.get("origin")
    if origin is None:
        return
    own = {request.headers.get("host", request.url.netloc).lower(), public_host}
    parts = urlsplit(origin.strip())
    if (
        origin.strip() == "null"
        or parts.scheme not in ("http", "https")
        or parts.netloc.lower() not in own
    ):
        raise PermissionDenied(f"The form was sent from another site ({origin}): refused.")
