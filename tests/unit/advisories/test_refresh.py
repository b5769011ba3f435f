"""The scheduled refresh: due once per period, one importer among processes
sharing a database (SQLite and PostgreSQL), downloads over HTTP cleaned up,
and failures logged, never raised."""

from __future__ import annotations

import json
import logging
import shutil
import sqlite3
import threading
import zipfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
import yaml
from aiohttp import web
from sqlalchemy import event, func, select
from sqlalchemy.orm import Session, sessionmaker

from packyard.advisories import refresh as refresh_module
from packyard.advisories.importing import import_entries
from packyard.advisories.refresh import (
    REFRESH_ACTOR,
    AdvisoryRefresh,
    RefreshFailed,
    shown_source,
)
from packyard.advisories.sources import SourceUnreadable, read_source
from packyard.db.advisories import Advisory, AdvisoryImport
from packyard.db.engine import create_database_engine, migrate, session_factory_for
from packyard.settings import AdvisorySettings
from tests.unit.advisories.conftest import SNAPSHOT
from tests.unit.upstream_server import Servers

pytestmark = pytest.mark.anyio


@pytest.fixture
async def servers() -> AsyncIterator[Servers]:
    async with Servers() as running:
        yield running


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=10) as http:
        yield http


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "vulns"
    for project in ("requests", "django"):
        shutil.copytree(SNAPSHOT / project, root / project)
    return root


@pytest.fixture
def archive(tree: Path, tmp_path: Path) -> bytes:
    """The tree as osv.dev ships it: a zip of JSON records."""
    path = tmp_path / "all.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as out:
        for record in sorted(tree.rglob("*.yaml")):
            data = yaml.safe_load(record.read_text())
            out.writestr(f"{data['id']}.json", json.dumps(data, default=str))
    return path.read_bytes()


class _Catch(logging.Handler):
    """Keeps the first event line logged, and says when it came."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.line: dict[str, Any] = {}
        self.came = anyio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if not self.came.is_set():
            self.line = json.loads(record.getMessage())
            self.came.set()  # the loop logs on the event loop's thread


async def next_event(seconds: float) -> dict[str, Any]:
    """The next line of the `packyard.advisories` logger, within `seconds`."""
    logger = logging.getLogger("packyard.advisories")
    catch, level = _Catch(), logger.level
    logger.addHandler(catch)
    logger.setLevel(logging.INFO)
    try:
        with anyio.fail_after(seconds):
            await catch.came.wait()
    finally:
        logger.removeHandler(catch)
        logger.setLevel(level)
    return catch.line


def refresher(
    sessions: sessionmaker[Session],
    source: str,
    spool: Path,
    client: httpx.AsyncClient | None = None,
    hours: float = 24,
) -> AdvisoryRefresh:
    settings = AdvisorySettings(source=source, refresh_hours=hours)
    return AdvisoryRefresh(sessions, settings, spool=spool, client=client)


def imports(sessions: sessionmaker[Session]) -> list[tuple[str, str, int]]:
    with sessions() as session:
        rows = session.execute(
            select(AdvisoryImport.actor, AdvisoryImport.source, AdvisoryImport.added).order_by(
                AdvisoryImport.id
            )
        )
        return [(actor, source, added) for actor, source, added in rows]


def stored(sessions: sessionmaker[Session]) -> int:
    with sessions() as session:
        return session.scalar(select(func.count()).select_from(Advisory)) or 0


async def test_a_path_is_imported_when_due_then_not_until_a_period_later(
    sessions: sessionmaker[Session], tree: Path, tmp_path: Path
) -> None:
    refresh = refresher(sessions, str(tree), tmp_path / "spool")
    report = await refresh.refresh()
    assert report is not None
    assert len(report.added) == stored(sessions) > 100
    assert await refresh.refresh() is None  # imported a moment ago
    assert imports(sessions) == [(REFRESH_ACTOR, str(tree), len(report.added))]
    # A manual import of the same source does not move the schedule...
    import_entries(sessions, read_source(tree), actor="cli:root", source=str(tree))
    assert await refresh.refresh() is None
    # ...and with a period that has passed, the next refresh imports again.
    expired = refresher(sessions, str(tree), tmp_path / "spool", hours=1e-9)
    again = await expired.refresh()
    assert again is not None
    assert again.unchanged == len(report.added)


async def test_of_two_processes_due_at_once_one_imports(
    sessions: sessionmaker[Session], tree: Path, tmp_path: Path
) -> None:
    """Both found the import due (the check outside the transaction); both try to
    import at once. The claim (PostgreSQL's advisory lock, SQLite's write lock)
    and the second look inside it leave exactly one import."""
    first = refresher(sessions, str(tree), tmp_path / "a")
    second = refresher(sessions, str(tree), tmp_path / "b")
    start = threading.Barrier(2)
    reports: list[object] = []

    def import_at_once(refresh: AdvisoryRefresh) -> None:
        start.wait()
        reports.append(refresh._import(tree))  # the step past the due check

    async with anyio.create_task_group() as tasks:
        for refresh in (first, second):
            tasks.start_soon(anyio.to_thread.run_sync, import_at_once, refresh)
    assert sorted(report is None for report in reports) == [False, True]
    assert len(imports(sessions)) == 1


async def test_on_sqlite_a_worker_that_waits_too_long_for_the_write_lock_skips(
    tree: Path, tmp_path: Path
) -> None:
    """Another writer holds SQLite's write lock past the busy timeout (another
    worker importing a large source): not this worker's import, and not a failure."""
    database = tmp_path / "packyard.db"
    engine = create_database_engine(f"sqlite:///{database}")
    migrate(engine)

    @event.listens_for(engine, "connect")
    def impatient(connection: sqlite3.Connection, _record: object) -> None:
        connection.execute("PRAGMA busy_timeout = 100")  # after packyard's 10 s setting

    refresh = refresher(session_factory_for(engine), str(tree), tmp_path / "spool")
    holder = sqlite3.connect(database, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        assert await refresh.refresh() is None
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert await refresh.refresh() is not None
    engine.dispose()


async def test_a_zip_over_http_is_downloaded_imported_and_removed(
    sessions: sessionmaker[Session],
    servers: Servers,
    client: httpx.AsyncClient,
    archive: bytes,
    tmp_path: Path,
) -> None:
    async def serve(request: web.BaseRequest) -> web.Response:
        return web.Response(body=archive, content_type="application/zip")

    server = await servers.start(serve)
    url = f"{server.url}/osv/PyPI/all.zip"
    refresh = refresher(sessions, url, tmp_path / "spool", client)
    report = await refresh.refresh()
    assert report is not None
    assert len(report.added) == stored(sessions) > 100
    assert imports(sessions)[0][:2] == (REFRESH_ACTOR, url)
    assert list((tmp_path / "spool").iterdir()) == []


async def test_one_record_over_http(
    sessions: sessionmaker[Session], servers: Servers, client: httpx.AsyncClient, tmp_path: Path
) -> None:
    record = (SNAPSHOT / "requests" / "PYSEC-2018-28.yaml").read_bytes()

    async def serve(request: web.BaseRequest) -> web.Response:
        return web.Response(body=record)

    server = await servers.start(serve)
    refresh = refresher(sessions, f"{server.url}/PYSEC-2018-28.yaml", tmp_path / "spool", client)
    report = await refresh.refresh()
    assert report is not None
    assert report.added == ["PYSEC-2018-28"]


@pytest.mark.parametrize(
    ("status", "body", "error", "message"),
    [
        (404, b"not here", RefreshFailed, "answered HTTP 404"),
        (200, b"<html>a login page</html>", SourceUnreadable, "is not a readable zip"),
        (200, b"x" * 5000, RefreshFailed, "is larger than 4096 bytes"),
    ],
)
async def test_a_failed_download_imports_nothing_and_leaves_no_file(
    sessions: sessionmaker[Session],
    servers: Servers,
    client: httpx.AsyncClient,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    status: int,
    body: bytes,
    error: type[Exception],
    message: str,
) -> None:
    monkeypatch.setattr(refresh_module, "MAX_DOWNLOAD_BYTES", 4096)

    async def serve(request: web.BaseRequest) -> web.StreamResponse:
        response = web.StreamResponse(status=status)  # streamed: no Content-Length
        await response.prepare(request)
        await response.write(body)
        return response

    server = await servers.start(serve)
    refresh = refresher(sessions, f"{server.url}/all.zip", tmp_path / "spool", client)
    with pytest.raises(error, match=message):
        await refresh.refresh()
    assert imports(sessions) == []
    assert list((tmp_path / "spool").iterdir()) == []


async def test_the_loop_logs_a_failure_and_goes_on(
    sessions: sessionmaker[Session],
    servers: Servers,
    client: httpx.AsyncClient,
    tmp_path: Path,
) -> None:
    async def refuse(request: web.BaseRequest) -> web.Response:
        return web.Response(status=503)

    server = await servers.start(refuse)
    url = f"http://user:secret@{server.url.removeprefix('http://')}/all.zip"
    refresh = refresher(sessions, url, tmp_path / "spool", client)
    async with refresh.running():
        line = await next_event(10)
    assert line["event"] == "advisories-refresh-failed"
    assert line["reason"].startswith("RefreshFailed: http://user:***@127.0.0.1:")
    assert line["reason"].endswith("/all.zip answered HTTP 503")
    assert "secret" not in json.dumps(line)
    assert len(server.requests) == 1  # not again before a period has passed


async def test_the_loop_imports_at_start_and_logs_it(
    sessions: sessionmaker[Session], tree: Path, tmp_path: Path
) -> None:
    refresh = refresher(sessions, str(tree), tmp_path / "spool")
    async with refresh.running():
        line = await next_event(20)
    assert line["event"] == "advisories-refresh"
    assert line["added"] == stored(sessions) > 100


def test_a_url_s_password_is_never_shown() -> None:
    assert shown_source("https://bot:s3cret@mirror.example:8443/osv/all.zip?x=1") == (
        "https://bot:***@mirror.example:8443/osv/all.zip?x=1"
    )
    assert shown_source("https://mirror.example/all.zip") == "https://mirror.example/all.zip"
    assert shown_source("/srv/advisories/vulns") == "/srv/advisories/vulns"
