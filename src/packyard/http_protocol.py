"""HTTP/1.1 limits uvicorn's httptools protocol lacks: head size, head deadline, connections.

uvicorn (with httptools, `server.py`) bounds neither the size of a request's
head nor the time a client may take to send it: a client could send a
gigabyte of header bytes (buffered in memory), or one byte every few seconds
and hold a connection forever (slowloris); a connection that never sends a
byte is never closed either. `LimitedHttpProtocol` is uvicorn's
`HttpToolsProtocol` plus:

- **the request line** (its target) at most `max_request_line_bytes`: else
  414 URI Too Long (RFC 9112 §3: a server MUST answer 414 to a request-target
  longer than any it wishes to parse);
- **the header fields** at most `max_header_bytes` in all: else 431 Request
  Header Fields Too Large (RFC 6585 §5). Bytes are counted as they arrive, so
  a head that never ends is refused once it passes the limit, before
  httptools has buffered more than one read beyond it;
- **a deadline for the head**: `header_timeout` seconds from the connection,
  or from the end of the previous request on a kept-alive one, to its last
  header; else 408 Request Timeout (nothing is sent to a connection that sent
  nothing). One timer per connection checks it, so a request arms none;
- **at most `max_connections` connections per worker**: a connection
  accepted beyond them is answered 503 with `Retry-After` as soon as its head
  has arrived, then closed; connections already open are not affected
  (uvicorn's own `limit_concurrency` would refuse requests on every open
  connection once the limit is reached).

It also writes the upload API's messages, and the reasons of refused
downloads, into the status line's reason phrase, as PyPI does
(`reason_phrase.py`): only on the paths of `reason_phrase.PATHS` and under
`reason_phrase.PREFIXES`, so every other request pays a set lookup and a
prefix check.

The idle time between two requests on a kept-alive connection is uvicorn's
`timeout_keep_alive`. Every refusal closes the connection. uvicorn builds one
protocol object per connection: `server.py` passes `protocol_factory(limits)`
as its `http` protocol class.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from functools import partial
from typing import Any, cast

from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol
from uvicorn.server import ServerState

from packyard import reason_phrase


@dataclass(frozen=True, slots=True)
class HttpLimits:
    """The limits of one worker's connections (the `[http]` settings)."""

    max_request_line_bytes: int = 8 * 1024
    max_header_bytes: int = 32 * 1024
    header_timeout: float = 20.0
    max_connections: int = 1000


class _Refused(Exception):
    """Raised from a parser callback to stop parsing; `send_400_response` answers it."""


class LimitedHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with the limits of the module docstring."""

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
        *,
        limits: HttpLimits,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.limits = limits
        # A head of at most this many bytes breaks no limit: sizes are measured
        # exactly only past it (the common request costs one comparison).
        self._exact_above = min(limits.max_request_line_bytes, limits.max_header_bytes)
        self.limit_concurrency = None  # connections are limited here, per connection
        self._head_bytes = 0  # bytes received since the current head began
        self._reading_head = True  # between two heads' ends: False while in a body
        # When the head being read began (None: none is); one timer per
        # connection checks it, so a request arms and cancels no timer.
        self._head_began: float | None = None
        self._deadline: asyncio.TimerHandle | None = None
        self._over_limit = False
        self._refusal: tuple[int, bytes, list[tuple[bytes, bytes]]] | None = None

    # --- connection ----------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._over_limit = len(self.connections) > self.limits.max_connections
        self._head_began = self.loop.time()
        self._arm_deadline(self.limits.header_timeout)

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_deadline()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._reading_head:
            self._head_bytes += len(data)
        super().data_received(data)
        if (
            self._reading_head
            and self._head_bytes > self._exact_above
            and not self.transport.is_closing()
        ):
            self._check_partial_head()

    # --- parser callbacks ----------------------------------------------------

    def on_headers_complete(self) -> None:
        self._head_began = None
        self._reading_head = False
        limits = self.limits
        if self._head_bytes > self._exact_above:
            if len(self.url) > limits.max_request_line_bytes:
                self._refuse(414, _TOO_LONG_LINE.format(limits.max_request_line_bytes))
            fields = sum(len(name) + len(value) + 4 for name, value in self.headers)
            if fields > limits.max_header_bytes:
                self._refuse(431, _TOO_LARGE_HEADERS.format(limits.max_header_bytes))
        self._head_bytes = 0
        if self._over_limit:
            message = "Too many connections to this server: retry in a moment.\n"
            self._refuse(503, message, [(b"retry-after", b"1")])
        super().on_headers_complete()
        cycle = self.cycle
        # The cycle uvicorn made for this request (none for an upgrade), which
        # has not run yet: its `send` is looked up when it does.
        if cycle is not None and cycle.scope is self.scope and self._sets_reasons():
            cycle.send = reason_phrase.ReasonPhraseSend(cycle, STATUS_LINE.__getitem__)  # type: ignore[method-assign]

    def _sets_reasons(self) -> bool:
        path: str = self.scope["path"]
        root = self.root_path
        if root and path.startswith(root):
            path = path[len(root) :]
        return path in reason_phrase.PATHS or path.startswith(reason_phrase.PREFIXES)

    def on_message_complete(self) -> None:
        super().on_message_complete()
        # The next head's time runs from now: idle time counts, which uvicorn's
        # shorter keep-alive timeout bounds anyway; a request pipelined behind
        # this one cannot trickle its head forever.
        self._reading_head = True
        self._head_began = self.loop.time()

    # --- refusals ------------------------------------------------------------

    def send_400_response(self, msg: str) -> None:
        """uvicorn's answer to a parser error; a refusal raised by a callback is sent instead."""
        refusal, self._refusal = self._refusal, None
        if refusal is None:
            super().send_400_response(msg)
        else:
            self._send_and_close(*refusal)

    def _check_partial_head(self) -> None:
        """A head still incomplete after this read: refuse it once it is too long."""
        url: bytes = getattr(self, "url", b"")
        limits = self.limits
        if len(url) > limits.max_request_line_bytes:
            self._send_and_close(414, _TOO_LONG_LINE.format(limits.max_request_line_bytes).encode())
        elif self._head_bytes > limits.max_request_line_bytes + limits.max_header_bytes:
            self._send_and_close(431, _TOO_LARGE_HEADERS.format(limits.max_header_bytes).encode())

    def _refuse(
        self, status: int, message: str, headers: list[tuple[bytes, bytes]] | None = None
    ) -> None:
        self._refusal = (status, message.encode("ascii"), headers or [])
        raise _Refused(message)

    def _send_and_close(
        self, status: int, body: bytes, headers: list[tuple[bytes, bytes]] | None = None
    ) -> None:
        self._cancel_deadline()
        if self.transport.is_closing():
            return
        self.logger.info("Refused a request from %s: %s", self.client, body.decode().strip())
        lines = [STATUS_LINE[status]]
        for name, value in [
            *self.server_state.default_headers,
            (b"content-type", b"text/plain; charset=utf-8"),
            (b"content-length", str(len(body)).encode("ascii")),
            (b"connection", b"close"),
            *(headers or []),
        ]:
            lines += [name, b": ", value, b"\r\n"]
        lines += [b"\r\n", body]
        self.transport.write(b"".join(lines))
        self.transport.close()

    # --- the head's deadline -------------------------------------------------

    def _arm_deadline(self, delay: float) -> None:
        self._cancel_deadline()
        self._deadline = self.loop.call_later(delay, self._check_deadline)

    def _cancel_deadline(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _check_deadline(self) -> None:
        """The connection's one timer: refuse a head that is past its time."""
        self._deadline = None
        if self.transport.is_closing():
            return
        timeout = self.limits.header_timeout
        began = self._head_began
        if began is None or not self._reading_head:
            # No head being read (a body, or idle between requests, which
            # uvicorn's keep-alive timeout bounds): look again later.
            self._arm_deadline(timeout)
            return
        if self.cycle is not None and not self.cycle.response_complete:
            # A request pipelined behind a response still being sent: uvicorn
            # stopped reading it; its time starts once the response is done.
            self._head_began = self.loop.time()
            self._arm_deadline(timeout)
            return
        left = began + timeout - self.loop.time()
        if left > 0:
            self._arm_deadline(left)
            return
        if self._head_bytes == 0:
            self.transport.close()  # a connection that never sent a byte gets no answer
            return
        seconds = f"{self.limits.header_timeout:g}"
        self._send_and_close(408, f"The request's headers took over {seconds} s.\n".encode())


_TOO_LONG_LINE = "The request line is too long: at most {} bytes.\n"
_TOO_LARGE_HEADERS = "The request's header fields are too large: at most {} bytes in all.\n"


def protocol_factory(limits: HttpLimits) -> type[asyncio.Protocol]:
    """What `uvicorn.run(http=...)` takes: a callable that builds a connection's protocol.

    A `partial` of the class (not a class made here), so that uvicorn can send
    it to worker processes by pickling.
    """
    return cast(type[asyncio.Protocol], partial(LimitedHttpProtocol, limits=limits))
