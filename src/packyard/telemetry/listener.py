"""`/metrics` on an address of its own (`[telemetry] metrics_listen`).

A port that only the monitoring network reaches keeps the metrics off the
address users and the load balancer see. Each worker serves it from its own
event loop, started and stopped with the application's lifespan
(`asgi.Instrumented`); with several workers they share the port
(`SO_REUSEPORT`), and any one of them answers with every worker's metrics
(`metrics.py`, multiprocess mode).

The server is aiohttp's (already packyard's HTTP client library): a small,
documented embedding API (`AppRunner`, `TCPSite`), unlike uvicorn's.
"""

from __future__ import annotations

from aiohttp import web

from packyard.telemetry.exposition import PATH, MetricsExposition


def split_address(address: str) -> tuple[str, int]:
    """`host:port` (or `[v6]:port`) -> (host, port); validated by the settings."""
    host, _, port = address.rpartition(":")
    return host.strip("[]"), int(port)


class MetricsListener:
    """Serves `GET /metrics` (and nothing else) on `address` while started."""

    def __init__(self, exposition: MetricsExposition, address: str) -> None:
        self.address = address
        self._exposition = exposition
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        """Listen on the address.

        Raises:
            OSError: the address cannot be bound (in use, not local).
        """
        app = web.Application()
        app.router.add_route("*", PATH, self._handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        host, port = split_address(self.address)
        try:
            await web.TCPSite(runner, host, port, reuse_port=True).start()
        except OSError:
            await runner.cleanup()
            raise
        self._runner = runner

    async def stop(self) -> None:
        """Stop listening and close the connections (idempotent)."""
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    async def _handle(self, request: web.Request) -> web.Response:
        authorization = request.headers.get("Authorization")
        status, headers, body = self._exposition.answer(
            request.method, authorization.encode("latin-1") if authorization else None
        )
        response = web.Response(status=status, body=body)  # aiohttp sends none for HEAD
        for key, value in headers:
            response.headers[key.decode()] = value.decode()
        return response
