"""The ASGI wrapper that measures every request and emits the edge's events.

It sits outside the whole application (`compose.build_app`) and does as
little as it can per request: it classifies the path by prefix, wraps `send`
to see the status, and adds one observation to `RequestStats` (plain Python,
see `metrics.py`). Everything else happens only on the rare paths:

- `GET /metrics` is answered here, with the Prometheus text, unless the
  metrics are served on an address of their own (`listener.py`, started and
  stopped with the lifespan): then the path goes on into the app like any other;
- a 404 on a project page emits `page-miss`;
- a file sent (GET, 200 or 206) emits `download` and counts bytes, reading
  what the files route left in the scope (`routes/files.py:SERVED`); a file
  affected by known vulnerabilities (its resource's `AdvisoryNote`) is also
  counted by source and policy, and its event carries the advisory ids;
- a download refused by the advisory policy (a 403, `routes/files.py:REFUSED`)
  is counted likewise and emits `download-refused` with the ids;
- an upstream failing on a file the chain handed over, before the response
  (a 502 or 503, `routes/files.py:UPSTREAM_FAILED`) or in the middle of it,
  emits `upstream-error`;
- with `usage`, downloads (by project, cache hit or miss), accepted uploads
  and those upstream failures are counted for the daily roll-ups (`usage.py`).

On lifespan shutdown it closes the metrics flusher and the event log.
"""

from __future__ import annotations

from collections.abc import Awaitable
from time import perf_counter

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from packyard.errors import FileDenied, UpstreamError, UpstreamUnavailable
from packyard.model import RemoteFile, RequestContext, Resource
from packyard.routes.asgi import request_header, send_response
from packyard.routes.files import PATHSEND, REFUSED, SERVED, UPSTREAM_FAILED
from packyard.routes.simple import local_path
from packyard.serialize import file_version
from packyard.telemetry.events import EventLog
from packyard.telemetry.exposition import MetricsExposition
from packyard.telemetry.listener import MetricsListener
from packyard.telemetry.metrics import Metrics
from packyard.telemetry.usage import UsageCounts

METADATA_SUFFIX = ".metadata"


def route_family(path: str) -> str:
    """The label of a request path: simple, files, snapshot, osv, metrics, health, upload,
    api, ui."""
    if path.startswith("/simple"):
        return "simple"
    if path.startswith("/files/"):
        return "files"
    if path.startswith("/snapshot/"):
        return "files" if "/files/" in path else "snapshot"
    if path.startswith("/osv/"):
        return "osv"
    if path == "/metrics":
        return "metrics"
    if path == "/healthz":
        return "health"
    if path.startswith("/legacy"):
        return "upload"
    if path.startswith("/api/"):
        return "api"
    return "ui"


class Instrumented:
    """`app` with metrics (if `metrics`) and events (if `events`).

    `exposition` says who may read `/metrics` (None: everyone). With a
    `listener` the metrics are served there, while the app runs, and `/metrics`
    on this app's port goes on into the app like any other path.
    """

    def __init__(
        self,
        app: ASGIApp,
        metrics: Metrics | None,
        events: EventLog | None,
        *,
        exposition: MetricsExposition | None = None,
        listener: MetricsListener | None = None,
        usage: UsageCounts | None = None,
    ) -> None:
        self._app = app
        self._usage = usage
        self._metrics = metrics
        self._events = events
        if exposition is None and metrics is not None:
            exposition = MetricsExposition(metrics)
        self._exposition = exposition if listener is None else None
        self._listener = listener
        # Bound once: the hot path then skips an attribute lookup or two.
        self._observe = metrics.requests.observe if metrics is not None else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._other(scope, receive, send)
            return
        path = local_path(scope)
        family = route_family(path)
        if family == "metrics" and self._exposition is not None:
            await self._serve_metrics(scope, send, self._exposition)
            return
        if family == "files":
            await self._file(scope, receive, send)
            return
        start = perf_counter()
        status = 500  # what the server answers if the app fails before responding

        # A plain function returning `send`'s awaitable: no coroutine of its own
        # per message, which is a third of this wrapper's cost.
        def watch(message: Message) -> Awaitable[None]:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            return send(message)

        try:
            await self._app(scope, receive, watch)
        finally:
            if self._observe is not None:
                self._observe(family, status, perf_counter() - start)
        if status == 404 and self._events is not None and family in ("simple", "snapshot"):
            self._page_miss(scope, path)
        elif self._usage is not None and family == "upload" and status == 200:
            self._usage.upload()  # a POST: the upload API has no other 200

    async def _other(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Websockets and lifespan; the lifespan starts and stops the metrics'
        listener, and its end closes the telemetry."""
        try:
            if scope["type"] == "lifespan" and self._listener is not None:
                receive, send = self._listening(self._listener, receive, send)
            await self._app(scope, receive, send)
        finally:
            if scope["type"] == "lifespan":
                self.close()

    @staticmethod
    def _listening(listener: MetricsListener, receive: Receive, send: Send) -> tuple[Receive, Send]:
        """The lifespan's channels, starting `listener` once the app has started
        (a failure to listen fails the start) and stopping it at shutdown."""

        async def receive_stopping() -> Message:
            message = await receive()
            if message["type"] == "lifespan.shutdown":
                await listener.stop()
            return message

        async def send_starting(message: Message) -> None:
            if message["type"] == "lifespan.startup.complete":
                try:
                    await listener.start()
                except OSError as exc:
                    reason = f"cannot serve /metrics on {listener.address}: {exc.strerror}"
                    message = {"type": "lifespan.startup.failed", "message": reason}
            await send(message)

        return receive_stopping, send_starting

    def close(self) -> None:
        """Flush and release the metrics files and the event log (idempotent)."""
        if self._metrics is not None:
            self._metrics.close()
        if self._events is not None:
            self._events.close()

    async def _file(self, scope: Scope, receive: Receive, send: Send) -> None:
        start = perf_counter()
        status, sent, length, pathsend = 500, 0, 0, False

        async def watch(message: Message) -> None:
            nonlocal status, sent, length, pathsend
            kind = message["type"]
            if kind == "http.response.body":
                sent += len(message.get("body", b""))
            elif kind == "http.response.start":
                status = message["status"]
                length = _content_length(message)
            elif kind == PATHSEND:  # the server sends the file: Content-Length bytes
                pathsend = True
            await send(message)

        try:
            await self._app(scope, receive, watch)
        except UpstreamError as error:  # mid-stream: the route re-raises to abort
            self._upstream_error(scope, error)
            raise
        finally:
            if self._observe is not None:
                self._observe("files", status, perf_counter() - start)
        if status in (200, 206) and scope["method"] == "GET":
            self._download(scope, status, length if pathsend else sent)
        elif status == 403 and REFUSED in scope:
            self._refused(scope, scope[REFUSED])
        elif UPSTREAM_FAILED in scope:  # answered before the response started
            self._upstream_error(scope, scope[UPSTREAM_FAILED])

    def _download(self, scope: Scope, status: int, sent: int) -> None:
        served: tuple[str, Resource, RequestContext] | None = scope.get(SERVED)
        if served is None:
            return
        project, resource, ctx = served
        cache = "miss" if isinstance(resource, RemoteFile) else "hit"
        note = resource.advisories
        filename = resource.filename
        # A `.metadata` file is read to resolve, not installed: not a download here.
        if self._usage is not None and not filename.endswith(METADATA_SUFFIX):
            self._usage.download(project, cache == "hit")
        if self._metrics is not None:
            self._metrics.downloads.labels(cache).inc()
            self._metrics.download_bytes.labels(cache).inc(sent)
            # A `.metadata` file is read to resolve, not installed: not counted.
            if note is not None and not filename.endswith(METADATA_SUFFIX):
                self._metrics.advisory_downloads.labels(note.source, note.action).inc()
        if self._events is not None:
            advisories: dict[str, object] = {}
            if note is not None:
                advisories = {"advisories": list(note.ids), "advisory_action": note.action}
            self._events.emit(
                "download",
                **advisories,
                project=project,
                filename=filename,
                version=file_version(filename.removesuffix(METADATA_SUFFIX)),
                bytes=sent,
                status=status,
                cache=cache,
                upstream=resource.upstream if isinstance(resource, RemoteFile) else None,
                client_ip=ctx.client,
                user_agent=ctx.user_agent,
                identity=ctx.identity,
            )

    def _refused(self, scope: Scope, refusal: FileDenied) -> None:
        """A download the advisory policy refused: counted, and an event with the ids."""
        if not refusal.advisories:
            return
        source = refusal.source or "unknown"
        if self._metrics is not None and not refusal.filename.endswith(METADATA_SUFFIX):
            self._metrics.advisory_downloads.labels(source, "deny").inc()
        if self._events is not None:
            self._events.emit(
                "download-refused",
                project=refusal.name,
                filename=refusal.filename,
                version=file_version(refusal.filename.removesuffix(METADATA_SUFFIX)),
                source=source,
                advisories=list(refusal.advisories),
                **_origin(scope),
            )

    def _page_miss(self, scope: Scope, path: str) -> None:
        assert self._events is not None
        parts = path.strip("/").split("/")
        snapshot = parts[1] if parts[0] == "snapshot" and len(parts) > 1 else None
        simple = parts[2:] if snapshot is not None else parts
        project = simple[1] if len(simple) > 1 and simple[0] == "simple" else None
        self._events.emit(
            "page-miss", path=path, project=project, snapshot=snapshot, **_origin(scope)
        )

    def _upstream_error(self, scope: Scope, error: UpstreamError) -> None:
        kind = "unavailable" if isinstance(error, UpstreamUnavailable) else "error"
        if self._usage is not None:
            self._usage.upstream_error()
        if self._metrics is not None:
            self._metrics.upstream_errors.labels(error.upstream, kind).inc()
        if self._events is not None:
            served = scope.get(SERVED)
            self._events.emit(
                "upstream-error",
                upstream=error.upstream,
                kind=kind,
                project=served[0] if served else None,
                filename=served[1].filename if served else None,
                message=error.message,
                **_origin(scope),
            )

    async def _serve_metrics(self, scope: Scope, send: Send, exposition: MetricsExposition) -> None:
        authorization = request_header(scope, b"authorization")
        status, headers, body = exposition.answer(scope["method"], authorization)
        await send_response(send, status, headers, body, head=scope["method"] == "HEAD")


def _content_length(start: Message) -> int:
    for key, value in start.get("headers", ()):
        if key == b"content-length":
            return int(value)
    return 0


def _origin(scope: Scope) -> dict[str, str | None]:
    client = scope.get("client")
    agent = request_header(scope, b"user-agent")
    return {
        "client_ip": client[0] if client else None,
        "user_agent": agent.decode("latin-1") if agent is not None else None,
    }
