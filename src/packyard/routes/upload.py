"""`POST /legacy/`: the legacy upload API, as twine, uv, poetry, hatch and pdm speak it.

HTTP only; the checks and the storing are `publish/upload.py`'s. Choices,
each from STANDARDS §2:

- `/legacy` without the slash gets 308 and a body that says so (§2.1). The
  upload URL itself never redirects: twine and pdm refuse redirects (§2.19,
  §2.23).
- Credentials are checked before the body is read, so no one without them
  gets a byte onto the disk. Every authentication failure is 403, as on PyPI
  (§2.4): clients send credentials up front (twine prompts before sending),
  so there is nothing to gain from a 401 challenge.
- Errors: PyPI puts the message in the reason phrase (§2.2), which twine,
  pdm and hatch print; ASGI cannot set one, so every answer but a 200 hands
  its message to packyard's HTTP protocol in the `REASON_HEADER`, which
  writes it into the status line (`reason_phrase.py`; one line of ASCII).
  The message is also the BODY, first thing, in plain text ("File already
  exists …" is what twine `--skip-existing`, poetry and pdm look for,
  §2.19; HTTP/2 has no reason phrase). With `Accept: application/json`
  preferred over text the body is `{"message", "code", "title"}` and `code`
  is "400 <message>" (uv shows `code`, §2.20).
- After a refusal the rest of the body is read and dropped (bounded), so the
  client, still sending, reads the answer instead of a reset connection.
"""

from __future__ import annotations

import json
import logging
from http import HTTPStatus
from typing import Protocol

from starlette.routing import BaseRoute, Route
from starlette.types import Receive, Scope, Send

from packyard.auth.identity import Identity
from packyard.errors import AuthenticationFailed, PackyardError
from packyard.publish.audit import Origin
from packyard.publish.multipart import ClientDisconnected, discard_body
from packyard.publish.upload import UploadService
from packyard.publish.upload_form import ActionGone
from packyard.reason_phrase import REASON_HEADER, reason_phrase
from packyard.routes.asgi import Headers, request_header, send_response
from packyard.routes.errors import retry_headers, status_for

LOGGER = logging.getLogger("packyard.upload")
UPLOAD_PATH = "/legacy/"


class Authenticate(Protocol):
    """`auth.authenticate.Authenticators`: an Authorization header -> an Identity."""

    async def authenticate(self, authorization: str | None, client: str | None = None) -> Identity:
        """Raises AuthenticationFailed for missing or wrong credentials, TooManyFailures
        and Overloaded when sign-ins are refused before checking them."""
        ...


def upload_routes(service: UploadService, authenticators: Authenticate) -> list[BaseRoute]:
    """The routes of the upload service, to mount in the Starlette app."""
    return [
        Route(UPLOAD_PATH, endpoint=UploadEndpoint(service, authenticators)),
        Route(UPLOAD_PATH.rstrip("/"), endpoint=AddSlash()),
    ]


class UploadEndpoint:
    """The raw ASGI handler of `/legacy/` (a streamed body needs `receive` itself)."""

    def __init__(self, service: UploadService, authenticators: Authenticate) -> None:
        self._service = service
        self._authenticators = authenticators

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        wants_json = prefers_json(request_header(scope, b"accept"))
        if scope["method"] != "POST":
            message = "Method not allowed: upload files with POST (multipart/form-data)."
            await _send_message(send, 405, message, wants_json, [(b"allow", b"POST")])
            return
        origin = _origin(scope)
        identity = await self._identify(scope, receive, send, origin, wants_json)
        if identity is None:
            return
        try:
            result = await self._service.receive_upload(
                identity, request_header(scope, b"content-type"), receive, origin
            )
        except ClientDisconnected:
            LOGGER.info("upload by %s: the client disconnected; nothing stored", identity.actor)
            return
        except PackyardError as exc:
            await _send_message(send, _status(exc), exc.message, wants_json, retry_headers(exc))
            return
        await _send_message(send, 200, result.message, wants_json)

    async def _identify(
        self, scope: Scope, receive: Receive, send: Send, origin: Origin, wants_json: bool
    ) -> Identity | None:
        """The caller, or None once a refusal was sent (and recorded): 403 for
        credentials, 429 for too many failed sign-ins, 503 when too busy to check
        them or a CI issuer is down (both with Retry-After)."""
        authorization = request_header(scope, b"authorization")
        try:
            return await self._authenticators.authenticate(
                authorization.decode("latin-1") if authorization is not None else None,
                client=origin.client_ip,
            )
        except PackyardError as exc:
            await discard_body(receive)
            await self._service.record_refusal("anonymous", origin, exc, None)
            await _send_message(send, _status(exc), exc.message, wants_json, retry_headers(exc))
            return None


def _status(error: PackyardError) -> int:
    if isinstance(error, AuthenticationFailed):
        return 403  # PyPI answers every credential problem of an upload with 403 (§2.4)
    if isinstance(error, ActionGone):
        return 410
    return status_for(error)


class AddSlash:
    """`/legacy`: 308 to `/legacy/`, a permanent redirect that keeps the method and
    body, with a body that says why (§2.1). Raw ASGI, so every method gets it."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await _add_slash(scope, receive, send)


async def _add_slash(scope: Scope, receive: Receive, send: Send) -> None:
    await discard_body(receive)
    root = scope.get("root_path", "")
    message = (
        f"The upload URL needs the trailing slash: use {root}{UPLOAD_PATH} "
        "(for example twine upload --repository-url https://<server>/legacy/)."
    )
    wants_json = prefers_json(request_header(scope, b"accept"))
    location = [(b"location", f"{root}{UPLOAD_PATH}".encode())]
    await _send_message(send, 308, message, wants_json, location)


async def _send_message(
    send: Send, status: int, message: str, wants_json: bool, extra: Headers | None = None
) -> None:
    headers: Headers = [(b"cache-control", b"no-store"), *(extra or [])]
    if status != 200:
        # Already one line of ASCII: a valid header under any server, not only ours.
        headers.append((REASON_HEADER, reason_phrase(message)))
    if wants_json:
        title = HTTPStatus(status).phrase
        payload = {"message": message, "code": f"{status} {message}", "title": title}
        body = json.dumps(payload).encode()
        headers.append((b"content-type", b"application/json"))
    else:
        body = (message + "\n").encode()
        headers.append((b"content-type", b"text/plain; charset=utf-8"))
    await send_response(send, status, headers, body)


def _origin(scope: Scope) -> Origin:
    client = scope.get("client")
    agent = request_header(scope, b"user-agent")
    return Origin(
        client_ip=client[0] if client else None,
        user_agent=agent.decode("latin-1") if agent is not None else None,
    )


def prefers_json(accept: bytes | None) -> bool:
    """Whether `application/json` is acceptable and ranks at least as high as plain
    text (uv: `application/json;q=0.9, text/plain;q=0.8, …`). A browser's or
    twine's Accept names no JSON, so they get text."""
    if not accept:
        return False
    ranks: dict[str, float] = {}
    for item in accept.decode("latin-1").split(","):
        kind, *params = (part.strip() for part in item.split(";"))
        quality = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        ranks[kind.lower()] = quality
    json_rank = ranks.get("application/json", 0.0)
    text_rank = max(ranks.get(kind, 0.0) for kind in ("text/plain", "text/*", "*/*"))
    return json_rank > 0 and json_rank >= text_rank
