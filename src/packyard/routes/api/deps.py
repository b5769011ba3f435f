"""What every endpoint of the admin API depends on: the services, the caller, a transaction.

    @router.post("/things", status_code=201)
    def add_thing(body: ThingIn, identity: Caller, origin: RequestOrigin,
                  session: Annotated[Session, audited("thing-add")]) -> ThingOut: ...

- `Caller`: the identity behind the `Authorization` header, checked by the same
  `Authenticators` as uploads (password, API token, CI ID token). Missing or
  wrong credentials are a 401 with `WWW-Authenticate: Basic realm="packyard"`,
  so that curl, browsers and scripts know to send them.
- `audited(action)`: one database transaction per request, committed after the
  endpoint returns and BEFORE the response is sent (`scope="function"`), so a
  client never sees a success whose change was rolled back. A
  `PermissionDenied` raised inside rolls it back and is recorded as a
  `refused` audit event named `action`, in a transaction of its own.
- Errors: every domain error (`packyard.errors`) becomes `{"detail": message}`
  with the status of the one table in `routes/errors.py`.

Services are passed in once (`ApiServices`, kept on `app.state`), never globals.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Annotated, Any, Protocol

from fastapi import Depends, FastAPI, Request, Security
from fastapi.responses import JSONResponse
from fastapi.security import HTTPBasic, HTTPBearer
from sqlalchemy.orm import Session, sessionmaker

from packyard.auth.identity import Identity
from packyard.auth.permissions import active_user, is_admin
from packyard.errors import AuthenticationFailed, PackyardError, PermissionDenied
from packyard.publish.audit import Origin
from packyard.publish.yanks import refusals_recorded
from packyard.routes.errors import retry_headers, status_for
from packyard.settings import (
    AdvisorySettings,
    AttestationSettings,
    SuccessionSettings,
    UpstreamSettings,
)
from packyard.storage.base import BlobStore

CHALLENGE = {"WWW-Authenticate": 'Basic realm="packyard"'}
# The path parameters that name what a refused request was about, for its audit event.
_AUDITED_PARAMETERS = ("project", "version", "filename")


class Authenticate(Protocol):
    """`auth.authenticate.Authenticators`: an Authorization header value -> an Identity."""

    async def authenticate(self, authorization: str | None, client: str | None = None) -> Identity:
        """Raises AuthenticationFailed for missing or wrong credentials, TooManyFailures
        and Overloaded when sign-ins are refused before checking them."""
        ...


@dataclass(frozen=True, slots=True)
class ApiServices:
    """What the API works with, built once in `compose.py`.

    `sessions`: the store's database; `authenticators`: every way of signing
    in; `store`: the blob store whose files deletions remove; `upstreams`: the
    configured upstreams, which curation rules name; `advisories`: the
    configured advisory policies, shown beside the runtime ones;
    `attestations`: the configured attestation requirement; `succession`: who
    takes over the projects of a user who is disabled or retired.
    """

    sessions: sessionmaker[Session]
    authenticators: Authenticate
    store: BlobStore
    upstreams: tuple[UpstreamSettings, ...] = ()
    advisories: AdvisorySettings = field(default_factory=AdvisorySettings)
    attestations: AttestationSettings = field(default_factory=AttestationSettings)
    succession: SuccessionSettings = field(default_factory=SuccessionSettings)


def get_services(request: Request) -> ApiServices:
    """The services of the API app that serves this request (`api_app`)."""
    services = request.app.state.services
    assert isinstance(services, ApiServices)
    return services


Services = Annotated[ApiServices, Depends(get_services)]

# Declared for the OpenAPI document (the docs' "Authorize" button); the header
# itself is read and checked by `current_identity`, which accepts more forms.
_basic = HTTPBasic(
    auto_error=False, realm="packyard", description="user:password or __token__:token"
)
_bearer = HTTPBearer(auto_error=False, description="an API token or a CI ID token")


async def current_identity(
    request: Request,
    services: Services,
    _basic_scheme: Annotated[Any, Security(_basic)] = None,
    _bearer_scheme: Annotated[Any, Security(_bearer)] = None,
) -> Identity:
    """The authenticated caller.

    Raises:
        AuthenticationFailed: no, malformed or wrong credentials (401).
        TooManyFailures: too many failed sign-ins for the user or from the address (429).
        Overloaded: too busy to check a password now (503).
        UpstreamUnavailable, UpstreamError: a CI issuer's keys could not be fetched.
    """
    client = request.client.host if request.client is not None else None
    return await services.authenticators.authenticate(
        request.headers.get("authorization"), client=client
    )


Caller = Annotated[Identity, Depends(current_identity)]


def request_origin(request: Request) -> Origin:
    """The client address and user agent, for the audit trail."""
    client = request.client
    return Origin(
        client_ip=client.host if client is not None else None,
        user_agent=request.headers.get("user-agent"),
    )


RequestOrigin = Annotated[Origin, Depends(request_origin)]


def audited(action: str) -> Any:
    """A dependency giving one transaction, whose refusals are audited as `action`."""

    def transaction(
        request: Request, services: Services, identity: Caller, origin: RequestOrigin
    ) -> Iterator[Session]:
        where = {key: request.path_params.get(key) for key in _AUDITED_PARAMETERS}
        refusals = refusals_recorded(services.sessions, identity, action, origin=origin, **where)
        with refusals, services.sessions.begin() as session:
            yield session

    # "function": the commit happens before the response is sent, not after.
    return Depends(transaction, scope="function")


def require_admin(session: Session, identity: Identity) -> None:
    """Pass for an administrator (as stored now) whose credential is not limited to
    some projects: such a credential (a scoped token, a CI token) administers nothing.

    Raises:
        PermissionDenied: anyone else, or a disabled user.
    """
    user = active_user(session, identity)
    if identity.projects is None and is_admin(identity, user):
        return
    raise PermissionDenied(
        f"'{identity.name}' isn't allowed to do this: only an administrator is "
        "(with a password or a token not limited to projects)."
    )


def add_error_handlers(app: FastAPI) -> None:
    """Domain errors -> `{"detail": message}` with the status of `routes/errors.py`."""
    app.add_exception_handler(PackyardError, _domain_error)


async def _domain_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, PackyardError)
    headers = {"Cache-Control": "no-store"}
    if isinstance(error, AuthenticationFailed):
        headers |= CHALLENGE
    headers |= {name.decode(): value.decode() for name, value in retry_headers(error)}
    return JSONResponse({"detail": error.message}, status_for(error), headers=headers)
