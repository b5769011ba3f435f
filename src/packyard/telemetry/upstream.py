"""Telemetry of upstream indexes: HTTP latency and statuses, and failures.

Two seams, neither of which changes what flows through:

- `instrument_client` adds httpx event hooks (a public httpx API) to an
  upstream's client: every response's latency (until its headers) and status.
- `ObservedUpstream` wraps an upstream source in the chain and records every
  `UpstreamError` that reaches it (a transport failure has no response for a
  hook to see) as a metric and an `upstream-error` event, then re-raises it.
  A failure a cache below hides (stale-if-error) is seen only by the hooks.
"""

from __future__ import annotations

import time

import httpx
from typing_extensions import override

from packyard.errors import UpstreamError, UpstreamUnavailable
from packyard.model import ProjectDetail, ProjectList, RequestContext, Resource
from packyard.repository.base import DelegatingRepository, Repository
from packyard.telemetry.events import EventLog
from packyard.telemetry.metrics import Metrics

_STARTED = "packyard.started"


def instrument_client(client: httpx.AsyncClient, label: str, metrics: Metrics) -> None:
    """Add hooks that time each request to `label` and count its response status."""
    seconds = metrics.upstream_seconds.labels(label)

    async def on_request(request: httpx.Request) -> None:
        request.extensions[_STARTED] = time.perf_counter()

    async def on_response(response: httpx.Response) -> None:
        started = response.request.extensions.get(_STARTED)
        if isinstance(started, float):
            seconds.observe(time.perf_counter() - started)
        metrics.upstream_responses.labels(label, str(response.status_code)).inc()

    hooks = client.event_hooks
    client.event_hooks = {
        "request": [*hooks.get("request", []), on_request],
        "response": [*hooks.get("response", []), on_response],
    }


def find_client(repository: Repository) -> httpx.AsyncClient | None:
    """The httpx client of the `UpstreamRepository` at the bottom of `repository`, if any.

    Follows `source` through delegating wrappers (such as the upstream cache).
    """
    from packyard.repository.upstream import UpstreamRepository

    current: object = repository
    while isinstance(current, DelegatingRepository):
        current = current.source
    return current.client if isinstance(current, UpstreamRepository) else None


class ObservedUpstream(DelegatingRepository):
    """Passes everything through; an `UpstreamError` is counted and logged first."""

    def __init__(
        self, source: Repository, label: str, metrics: Metrics | None, events: EventLog | None
    ) -> None:
        super().__init__(source)
        self.label = label
        self._metrics = metrics
        self._events = events

    @override
    async def list_projects(self, ctx: RequestContext) -> ProjectList:
        try:
            return await self.source.list_projects(ctx)
        except UpstreamError as error:
            self._record(error, None)
            raise

    @override
    async def get_project(self, name: str, ctx: RequestContext) -> ProjectDetail:
        try:
            return await self.source.get_project(name, ctx)
        except UpstreamError as error:
            self._record(error, name)
            raise

    @override
    async def get_file(self, name: str, filename: str, ctx: RequestContext) -> Resource:
        try:
            return await self.source.get_file(name, filename, ctx)
        except UpstreamError as error:
            self._record(error, name, filename)
            raise

    def _record(
        self, error: UpstreamError, project: str | None, filename: str | None = None
    ) -> None:
        kind = "unavailable" if isinstance(error, UpstreamUnavailable) else "error"
        if self._metrics is not None:
            self._metrics.upstream_errors.labels(self.label, kind).inc()
        if self._events is not None:
            self._events.emit(
                "upstream-error",
                upstream=self.label,
                kind=kind,
                project=project,
                filename=filename,
                message=error.message,
            )
