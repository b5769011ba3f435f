"""Structured events and Prometheus metrics (DESIGN §5).

`Telemetry.from_settings` builds both for one application; `compose.py` then
wraps each upstream (`observe_upstream`) and the whole app (`instrument`).

- `events.py`: JSON lines to stdout or a rotated file (downloads, page misses,
  upstream errors, the audit trail);
- `metrics.py`: the metrics and the `/metrics` text, multiprocess mode;
- `asgi.py`: the per-request wrapper (the hot path);
- `exposition.py`: who may read `/metrics` (open, or a bearer token);
- `listener.py`: `/metrics` on an address of its own;
- `upstream.py`: the upstream client's request observer and the upstream
  error observer;
- `usage.py`: counts for the daily roll-ups (`db/usage.py`), flushed every
  few seconds.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from starlette.types import ASGIApp

from packyard.repository.base import Repository
from packyard.settings import Settings
from packyard.telemetry.asgi import Instrumented
from packyard.telemetry.events import EventLog
from packyard.telemetry.exposition import MetricsExposition, read_token
from packyard.telemetry.listener import MetricsListener
from packyard.telemetry.metrics import Metrics, prepare_multiprocess
from packyard.telemetry.upstream import ObservedUpstream, find_client, instrument_client
from packyard.telemetry.usage import UsageCounts

__all__ = ["EventLog", "Metrics", "Telemetry", "prepare_multiprocess"]


@dataclass(frozen=True, slots=True)
class Telemetry:
    """The metrics and the event log of one application; either may be off (None).

    `metrics_token`: the bearer token `/metrics` requires (None: open);
    `metrics_listen`: the `host:port` that alone serves `/metrics` (None: the app's);
    `usage`: this worker's counts for the daily roll-ups (None: none kept).
    """

    metrics: Metrics | None = None
    events: EventLog | None = None
    metrics_token: bytes | None = None
    metrics_listen: str | None = None
    usage: UsageCounts | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> Telemetry:
        """As `settings.telemetry` says; starts the event writer thread.

        Raises:
            ConfigurationError: the metrics' token file cannot be read or is empty.
        """
        config = settings.telemetry
        token_file: Path | None = config.metrics_token_file
        token = read_token(token_file) if config.metrics and token_file is not None else None
        events = None
        if config.events:
            events = EventLog(
                config.events_file,
                max_bytes=config.events_max_bytes,
                backups=config.events_backups,
                per_process=settings.workers > 1,
            )
        metrics = Metrics() if config.metrics else None
        usage = UsageCounts() if config.usage else None
        return cls(metrics, events, token, config.metrics_listen, usage)

    def observe_upstream(self, upstream: Repository, label: str) -> Repository:
        """`upstream` with its HTTP client timed and its failures recorded."""
        client = find_client(upstream)
        if client is not None and (self.metrics is not None or self.usage is not None):
            instrument_client(client, label, self.metrics, self.usage)
        if self.metrics is None and self.events is None and self.usage is None:
            return upstream
        return ObservedUpstream(upstream, label, self.metrics, self.events, self.usage)

    def instrument(self, app: ASGIApp) -> ASGIApp:
        """`app` measured per request, with `/metrics` (here or on its own address);
        closes both on lifespan shutdown."""
        if self.metrics is None and self.events is None and self.usage is None:
            return app
        if self.metrics is None:
            return Instrumented(app, None, self.events, usage=self.usage)
        exposition = MetricsExposition(self.metrics, self.metrics_token)
        listener = None
        if self.metrics_listen is not None:
            listener = MetricsListener(exposition, self.metrics_listen)
        return Instrumented(
            app,
            self.metrics,
            self.events,
            exposition=exposition,
            listener=listener,
            usage=self.usage,
        )

    def close(self) -> None:
        if self.metrics is not None:
            self.metrics.close()
        if self.events is not None:
            self.events.close()
