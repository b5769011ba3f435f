"""A domain error that no route answered still gets its status, never a bare 500.

Routes answer the errors they expect; a `PackyardError` can still escape one,
or come from a middleware before any route runs: above all
`DatabaseUnavailable`, which any database read raises while PostgreSQL is
down (the admin pages' session lookup, a page that reads the database).
Starlette would answer those with a 500 and log a traceback each, thousands a
second under load. `DomainErrorResponses` sits first in the Starlette app's
middleware (inside Starlette's own error handler) and answers them as the
one table says (`routes/errors.py`: 503 with `Retry-After` for the database),
with the message in plain text. The fault was logged where it was met
(`faults.py`); nothing more is logged here.

A response already started cannot change its status: the error then goes on
up, as before.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from packyard.errors import PackyardError
from packyard.routes.asgi import send_response
from packyard.routes.errors import error_parts


class DomainErrorResponses:
    """ASGI middleware: an escaped `PackyardError` becomes its status and message."""

    def __init__(self, app: ASGIApp) -> None:
        self._app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        started = False

        async def watch(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self._app(scope, receive, watch)
        except PackyardError as error:
            if started:
                raise
            status, headers, body = error_parts(error)
            await send_response(send, status, headers, body, head=scope["method"] == "HEAD")
