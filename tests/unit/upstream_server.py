"""Fake upstreams for unit tests: real HTTP servers on 127.0.0.1 (aiohttp's low-level server).

A test module makes a `Servers` fixture; `await servers.start(handler)` then
serves `handler` on a free port of 127.0.0.1 and records every request it
receives. The clients under test are made with `servers.client(settings)`, so
that their sessions are closed with the servers when the test ends.
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from types import TracebackType

from aiohttp import web
from aiohttp.abc import AbstractResolver

from packyard.repository.upstream_http import UpstreamClient
from packyard.settings import UpstreamSettings

Handler = Callable[[web.BaseRequest], Awaitable[web.StreamResponse]]


class FakeUpstream:
    """One server: answers with `handler`, after recording the request in `requests`."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.requests: list[web.BaseRequest] = []
        self.url = ""  # http://127.0.0.1:PORT, once started
        self._runner = web.ServerRunner(web.Server(self._handle), shutdown_timeout=0.5)

    async def start(self) -> None:
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self.url = f"http://{host}:{port}"

    async def close(self) -> None:
        await self._runner.cleanup()

    async def _handle(self, request: web.BaseRequest) -> web.StreamResponse:
        self.requests.append(request)
        return await self.handler(request)


class Servers:
    """Fake upstreams and the upstream clients of one test, all closed at its end."""

    def __init__(self) -> None:
        self._servers: list[FakeUpstream] = []
        self._clients: list[UpstreamClient] = []

    async def start(self, handler: Handler) -> FakeUpstream:
        server = FakeUpstream(handler)
        self._servers.append(server)
        await server.start()
        return server

    def client(
        self, settings: UpstreamSettings, resolver: AbstractResolver | None = None
    ) -> UpstreamClient:
        client = UpstreamClient(settings, resolver=resolver)
        self._clients.append(client)
        return client

    async def __aenter__(self) -> Servers:
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        for client in self._clients:
            await client.aclose()
        for server in self._servers:
            await server.close()


def refused_url() -> str:
    """An http URL on 127.0.0.1 where nothing listens (a connection is refused)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/simple/"


def response(
    body: bytes = b"", status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    """A complete response (with a Content-Length)."""
    return web.Response(body=body, status=status, headers=headers)


async def streamed(
    request: web.BaseRequest,
    content: bytes,
    *,
    status: int = 200,
    headers: dict[str, str] | None = None,
    chunk: int = 1000,
) -> web.StreamResponse:
    """`content` sent in `chunk`-byte writes, as a real server streams a file.

    Chunked unless `headers` give a Content-Length. A client that hangs up
    early ends the sending quietly.
    """
    reply = web.StreamResponse(status=status, headers=headers)
    await reply.prepare(request)
    try:
        for start in range(0, len(content), chunk):
            await reply.write(content[start : start + chunk])
        await reply.write_eof()
    except ConnectionError:
        pass
    return reply


async def chunks_of(body: AsyncIterator[bytes]) -> bytes:
    return b"".join([chunk async for chunk in body])
