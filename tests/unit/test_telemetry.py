"""Telemetry: JSON-line events, Prometheus metrics and the per-request wrapper."""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from hashlib import sha256
from pathlib import Path

import httpx
import pytest
from aiohttp import web
from typing_extensions import override

from packyard.app import create_app
from packyard.errors import UpstreamUnavailable
from packyard.model import (
    ANONYMOUS,
    ByteRange,
    RemoteBody,
    RemoteFile,
    RequestContext,
    Resource,
)
from packyard.publish.audit import AUDIT_LOGGER
from packyard.repository.base import DelegatingRepository
from packyard.repository.cache import build_file_cache, cached_upstream
from packyard.repository.page_store import FilesystemPageStore
from packyard.repository.upstream import UpstreamRepository
from packyard.routes.files import FilesRoute
from packyard.settings import Settings, UpstreamSettings
from packyard.telemetry import EventLog, Metrics, Telemetry, prepare_multiprocess
from packyard.telemetry.asgi import Instrumented, route_family
from packyard.telemetry.metrics import RequestStats
from packyard.telemetry.upstream import ObservedUpstream, instrument_client
from packyard.telemetry.usage import UsageCounts
from tests.builders import make_local_store
from tests.unit.fakes import MemoryRepository, part_of
from tests.unit.upstream_server import Servers, response

WHEEL = "acme_core-1.0-py3-none-any.whl"
CONTENT = b"wheel bytes"


def read_events(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_events_and_audit_lines_go_to_one_file_as_json_lines(tmp_path: Path) -> None:
    events = EventLog(tmp_path / "logs" / "events.jsonl")
    events.emit("page-miss", project="nope", client_ip="10.0.0.1")
    AUDIT_LOGGER.info(json.dumps({"event": "audit", "action": "upload"}))
    events.close()
    AUDIT_LOGGER.info(json.dumps({"event": "audit", "action": "after-close"}))
    lines = read_events(tmp_path / "logs" / "events.jsonl")
    assert [line["event"] for line in lines] == ["page-miss", "audit"]
    assert lines[0]["project"] == "nope"
    assert str(lines[0]["at"]).endswith("Z")


def test_the_events_file_rotates_by_size(tmp_path: Path) -> None:
    events = EventLog(tmp_path / "events.jsonl", max_bytes=200, backups=2)
    for number in range(20):
        events.emit("download", number=number, padding="x" * 40)
    events.close()
    assert sorted(path.name for path in tmp_path.iterdir()) == [
        "events.jsonl",
        "events.jsonl.1",
        "events.jsonl.2",
    ]
    assert read_events(tmp_path / "events.jsonl")[-1]["number"] == 19


def test_several_workers_each_write_their_own_events_file(tmp_path: Path) -> None:
    events = EventLog(tmp_path / "events.jsonl", per_process=True)
    events.close()
    assert events.path == tmp_path / f"events-{os.getpid()}.jsonl"


class _Opener:
    """A RemoteOpener over fixed bytes (an upstream in memory)."""

    def __init__(self, content: bytes) -> None:
        self.content = content

    @asynccontextmanager
    async def open(self, url: str, byte_range: ByteRange | None) -> AsyncIterator[RemoteBody]:
        part = part_of(self.content, byte_range)

        async def chunks() -> AsyncIterator[bytes]:
            yield part

        yield RemoteBody(len(self.content), chunks())


class _Streamed(DelegatingRepository):
    """Serves `remote-lib` files as if streamed from an upstream."""

    @override
    async def get_file(self, name: str, filename: str, ctx: RequestContext) -> Resource:
        if name != "remote-lib":
            return await self.source.get_file(name, filename, ctx)
        digest = sha256(CONTENT).hexdigest()
        return RemoteFile(filename, "https://up/x", _Opener(CONTENT), "pypi", digest, len(CONTENT))


def instrumented(events: EventLog | None, metrics: Metrics | None) -> httpx.AsyncClient:
    chain = _Streamed(MemoryRepository("local", {"acme-core": {WHEEL: CONTENT}, "remote-lib": {}}))
    app = Instrumented(create_app(chain, files_app=FilesRoute(chain)), metrics, events)
    transport = httpx.ASGITransport(app=app, client=("192.0.2.7", 4711))
    return httpx.AsyncClient(transport=transport, base_url="http://test")


@pytest.mark.anyio
async def test_downloads_and_page_misses_are_events_with_their_fields(tmp_path: Path) -> None:
    events = EventLog(tmp_path / "events.jsonl")
    async with instrumented(events, Metrics(environ={})) as http:
        headers = {"User-Agent": "pip/26.3"}
        assert (await http.get(f"/files/acme-core/{WHEEL}", headers=headers)).status_code == 200
        assert (await http.head(f"/files/acme-core/{WHEEL}")).status_code == 200
        ranged = await http.get(
            "/files/remote-lib/remote_lib-2.0.tar.gz", headers={"Range": "bytes=0-3"}
        )
        assert ranged.status_code == 206
        assert (await http.get("/simple/no-such-project/")).status_code == 404
    events.close()
    download, remote, miss = read_events(tmp_path / "events.jsonl")
    assert {key: download[key] for key in download if key != "at"} == {
        "event": "download",
        "project": "acme-core",
        "filename": WHEEL,
        "version": "1.0",
        "bytes": len(CONTENT),
        "status": 200,
        "cache": "hit",
        "upstream": None,
        "client_ip": "192.0.2.7",
        "user_agent": "pip/26.3",
        "identity": None,
    }
    assert (remote["cache"], remote["bytes"], remote["status"]) == ("miss", 4, 206)
    assert (remote["upstream"], remote["version"]) == ("pypi", "2.0")
    assert (miss["event"], miss["project"], miss["client_ip"]) == (
        "page-miss",
        "no-such-project",
        "192.0.2.7",
    )


@pytest.mark.anyio
async def test_metrics_show_requests_latency_downloads_and_bytes() -> None:
    async with instrumented(None, Metrics(environ={})) as http:
        await http.get("/simple/acme-core/")
        await http.get("/simple/acme-core/")
        await http.get("/simple/missing/")
        await http.get(f"/files/acme-core/{WHEEL}")
        await http.get("/files/remote-lib/remote_lib-2.0.tar.gz")
        response = await http.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    text = response.text
    assert 'packyard_http_requests_total{family="simple",status="200"} 2.0' in text
    assert 'packyard_http_requests_total{family="simple",status="404"} 1.0' in text
    assert 'packyard_http_request_duration_seconds_bucket{family="simple",le="+Inf"} 3.0' in text
    assert 'packyard_http_request_duration_seconds_count{family="files"} 2.0' in text
    assert 'packyard_downloads_total{cache="hit"} 1.0' in text
    assert 'packyard_downloads_total{cache="miss"} 1.0' in text
    assert f'packyard_download_bytes_total{{cache="hit"}} {float(len(CONTENT))}' in text


@pytest.mark.anyio
async def test_without_metrics_there_is_no_metrics_page() -> None:
    async with instrumented(None, None) as http:
        assert (await http.get("/metrics")).status_code == 404


@pytest.mark.parametrize(
    ("path", "family"),
    [
        ("/simple/", "simple"),
        ("/simple/numpy/", "simple"),
        ("/files/numpy/numpy-2.0.tar.gz", "files"),
        ("/snapshot/2024-01-01/simple/numpy/", "snapshot"),
        ("/snapshot/2024-01-01/files/numpy/numpy-2.0.tar.gz", "files"),
        ("/osv/v1/querybatch", "osv"),
        ("/metrics", "metrics"),
        ("/healthz", "health"),
        ("/legacy/", "upload"),
        ("/api/v1/projects", "api"),
        ("/project/numpy/", "ui"),
    ],
)
def test_route_families(path: str, family: str) -> None:
    assert route_family(path) == family


class _Down(MemoryRepository):
    def __init__(self) -> None:
        super().__init__("pypi", {})
        self.down = True


@pytest.mark.anyio
async def test_upstream_errors_are_counted_and_logged(tmp_path: Path) -> None:
    events, metrics = EventLog(tmp_path / "events.jsonl"), Metrics(environ={})
    observed = ObservedUpstream(_Down(), "pypi", metrics, events)
    with pytest.raises(UpstreamUnavailable):
        await observed.get_project("numpy", ANONYMOUS)
    events.close()
    (event,) = read_events(tmp_path / "events.jsonl")
    assert (event["event"], event["upstream"], event["kind"], event["project"]) == (
        "upstream-error",
        "pypi",
        "unavailable",
        "numpy",
    )
    assert 'packyard_upstream_errors_total{kind="unavailable",upstream="pypi"} 1.0' in (
        metrics.render().decode()
    )


class _Misreported(DelegatingRepository):
    """Hands out `remote-lib` files whose upstream then sends another size than listed."""

    @override
    async def get_file(self, name: str, filename: str, ctx: RequestContext) -> Resource:
        if name != "remote-lib":
            return await self.source.get_file(name, filename, ctx)
        digest = sha256(CONTENT).hexdigest()
        return RemoteFile(
            filename, "https://up/x", _Opener(CONTENT), "pypi", digest, 1 + len(CONTENT)
        )


@pytest.mark.anyio
async def test_an_upstream_failing_before_a_file_is_sent_is_counted_once(tmp_path: Path) -> None:
    """Opening the file fails after the chain handed it over: no chain observer saw
    it, the edge counts it. A failure in the chain itself is the chain's, counted once."""
    events, metrics, usage = EventLog(tmp_path / "events.jsonl"), Metrics(environ={}), UsageCounts()
    chain = _Misreported(ObservedUpstream(_Down(), "pypi", metrics, events, usage))
    app = Instrumented(create_app(chain, files_app=FilesRoute(chain)), metrics, events, usage=usage)
    transport = httpx.ASGITransport(app=app, client=("192.0.2.7", 4711))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        failed = await http.get("/files/remote-lib/remote_lib-2.0.tar.gz")
        assert failed.status_code == 502
        assert (await http.get(f"/files/numpy/{WHEEL}")).status_code == 503  # `down`
    events.close()
    (day,) = usage.site.values()
    assert day == {"upstream_errors": 2}
    text = metrics.render().decode()
    assert 'packyard_upstream_errors_total{kind="error",upstream="pypi"} 1.0' in text
    assert 'packyard_upstream_errors_total{kind="unavailable",upstream="pypi"} 1.0' in text
    opened, chained = read_events(tmp_path / "events.jsonl")
    assert (opened["event"], opened["project"], opened["filename"], opened["kind"]) == (
        "upstream-error",
        "remote-lib",
        "remote_lib-2.0.tar.gz",
        "error",
    )
    assert (chained["event"], chained["project"]) == ("upstream-error", "numpy")


@pytest.mark.anyio
async def test_upstream_requests_are_timed_by_the_client_observer() -> None:
    async def failing(request: web.BaseRequest) -> web.StreamResponse:
        return response(status=503)

    metrics = Metrics(environ={})
    async with Servers() as servers:
        upstream = await servers.start(failing)
        settings = UpstreamSettings(url=upstream.url + "/simple/", name="pypi")
        client = servers.client(settings)
        instrument_client(client, "pypi", metrics)
        with pytest.raises(UpstreamUnavailable):
            await UpstreamRepository(settings, client).get_project("numpy", ANONYMOUS)
    text = metrics.render().decode()
    assert 'packyard_upstream_request_duration_seconds_count{upstream="pypi"} 1.0' in text
    assert 'packyard_upstream_responses_total{status="503",upstream="pypi"} 1.0' in text


@pytest.mark.anyio
async def test_each_hop_of_a_redirect_is_counted() -> None:
    async def handler(request: web.BaseRequest) -> web.StreamResponse:
        if request.path == "/simple/":
            return response(status=301, headers={"Location": "/mirror/"})
        return response(b"", headers={"Content-Type": "text/html"})

    metrics = Metrics(environ={})
    async with Servers() as servers:
        upstream = await servers.start(handler)
        settings = UpstreamSettings(url=upstream.url + "/simple/", name="pypi")
        client = servers.client(settings)
        instrument_client(client, "pypi", metrics)
        await UpstreamRepository(settings, client).list_projects(ANONYMOUS)
    text = metrics.render().decode()
    assert 'packyard_upstream_request_duration_seconds_count{upstream="pypi"} 1.0' in text
    assert 'packyard_upstream_responses_total{status="301",upstream="pypi"} 1.0' in text
    assert 'packyard_upstream_responses_total{status="200",upstream="pypi"} 1.0' in text


@pytest.mark.anyio
async def test_observe_upstream_instruments_the_client_under_the_cache(tmp_path: Path) -> None:
    """The wiring of `compose.py`: the upstream's client is found under its cache."""

    async def handler(request: web.BaseRequest) -> web.StreamResponse:
        return response(status=502)

    telemetry = Telemetry(Metrics(environ={}), EventLog(tmp_path / "events.jsonl"))
    local = make_local_store(tmp_path)
    files = build_file_cache(local.sessions, local.store, Settings(data_dir=tmp_path).cache)
    async with Servers() as servers:
        upstream = await servers.start(handler)
        settings = UpstreamSettings(url=upstream.url + "/simple/", name="pypi")
        pages = FilesystemPageStore(tmp_path / "pages")
        source = telemetry.observe_upstream(cached_upstream(settings, pages, files), "pypi")
        try:
            with pytest.raises(UpstreamUnavailable, match="HTTP 502"):
                await source.get_project("numpy", ANONYMOUS)
        finally:
            await source.aclose()
    telemetry.close()
    assert telemetry.metrics is not None
    text = telemetry.metrics.render().decode()
    assert 'packyard_upstream_responses_total{status="502",upstream="pypi"} 1.0' in text
    assert 'packyard_upstream_errors_total{kind="unavailable",upstream="pypi"} 1.0' in text


def test_request_stats_of_several_workers_are_summed(tmp_path: Path) -> None:
    other = RequestStats()
    other.observe("simple", 200, 0.00007)
    other.observe("files", 206, 0.3)
    (tmp_path / "requests-1.json").write_text(json.dumps(other.to_json()))
    metrics = Metrics(environ={"PROMETHEUS_MULTIPROC_DIR": str(tmp_path)})
    metrics.requests.observe("simple", 200, 0.00002)
    text = metrics.render().decode()
    metrics.close()
    assert 'packyard_http_requests_total{family="simple",status="200"} 2.0' in text
    assert 'packyard_http_requests_total{family="files",status="206"} 1.0' in text
    assert 'packyard_http_request_duration_seconds_bucket{family="simple",le="0.0001"} 2.0' in text
    assert 'packyard_http_request_duration_seconds_bucket{family="files",le="0.25"} 0.0' in text
    assert (tmp_path / f"requests-{os.getpid()}.json").exists()


def test_prepare_multiprocess_makes_a_fresh_directory_per_server_run(tmp_path: Path) -> None:
    stale = tmp_path / "metrics" / "999999999"
    stale.mkdir(parents=True)
    environ: dict[str, str] = {}
    prepare_multiprocess(Settings(data_dir=tmp_path, workers=1), environ)
    assert environ == {}
    prepare_multiprocess(Settings(data_dir=tmp_path, workers=2), environ)
    assert environ["PROMETHEUS_MULTIPROC_DIR"] == str(tmp_path / "metrics" / str(os.getpid()))
    assert not stale.exists()


@pytest.mark.anyio
async def test_lifespan_shutdown_closes_the_event_log(tmp_path: Path) -> None:
    settings = Settings.model_validate(
        {"data_dir": tmp_path, "telemetry": {"events_file": str(tmp_path / "ev.jsonl")}}
    )
    telemetry = Telemetry.from_settings(settings)
    chain = MemoryRepository("local", {})
    app = telemetry.instrument(create_app(chain))
    messages = iter([{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}])
    sent: list[str] = []

    async def receive() -> dict[str, str]:
        return next(messages)

    async def send(message: dict[str, str]) -> None:
        sent.append(message["type"])

    await app({"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}, receive, send)  # type: ignore[arg-type]
    assert sent == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    assert telemetry.events is not None
    telemetry.events.emit("late")  # after close: not written
    AUDIT_LOGGER.info("{}")
    assert (tmp_path / "ev.jsonl").read_text() == ""
