"""Telemetry of upstream indexes: HTTP latency and statuses, and failures.

Two seams, neither of which changes what flows through:

- `instrument_client` sets the `observer` of an upstream's HTTP client:
  every request's latency (until the headers of its final response) and the
  status of each response, each hop of a redirect counted on its own.
- `ObservedUpstream` wraps an upstream source in the chain and records every
  `UpstreamError` that reaches it (a transport failure has no response for the
  observer to see) as a metric and an `upstream-error` event, then re-raises it.
  A failure a cache below hides (stale-if-error) is seen only by the observer.
"""

from __future__ import annotations

import aiohttp
from prometheus_client import Counter
from typing_extensions import override

from packyard.errors import UpstreamError, UpstreamUnavailable
from packyard.model import ProjectDetail, ProjectList, RequestContext, Resource
from packyard.repository.base import DelegatingRepository, Repository
from packyard.repository.upstream_http import UpstreamClient
from packyard.telemetry.events import EventLog
from packyard.telemetry.metrics import Metrics
from packyard.telemetry.usage import UsageCounts


def instrument_client(
    client: UpstreamClient, label: str, metrics: Metrics | None, usage: UsageCounts | None = None
) -> None:
    """Time each request to `label` and count the status of each of its responses
    (in `metrics`); add its latency to the day's `usage`."""
    seconds = metrics.upstream_seconds.labels(label) if metrics is not None else None
    counters: dict[int, Counter] = {}  # per status: `labels` takes a lock and a lookup

    def count(status: int) -> None:
        assert metrics is not None
        counter = counters.get(status)
        if counter is None:
            counter = counters[status] = metrics.upstream_responses.labels(label, str(status))
        counter.inc()

    def observe(response: aiohttp.ClientResponse, elapsed: float) -> None:
        if usage is not None:
            usage.upstream_latency(elapsed)
        if seconds is None:
            return
        seconds.observe(elapsed)
        for hop in response.history:  # the redirects followed on the way
            count(hop.status)
        count(response.status)

    client.observer = observe


def find_client(repository: Repository) -> UpstreamClient | None:
    """The HTTP client of the `UpstreamRepository` at the bottom of `repository`, if any.

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
        self,
        source: Repository,
        label: str,
        metrics: Metrics | None,
        events: EventLog | None,
        usage: UsageCounts | None = None,
    ) -> None:
        super().__init__(source)
        self.label = label
        self._metrics = metrics
        self._events = events
        self._usage = usage

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
        if self._usage is not None:
            self._usage.upstream_error()
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
