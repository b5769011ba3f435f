"""Telemetry of files affected by known vulnerabilities: a download's event carries
the advisory ids, a refused download emits `download-refused`, and both are
counted by source and policy (a `.metadata` file is not counted).

The chain is a fake that notes or refuses files as `AdvisoryRepository` does
(tests/unit/repository/test_advisories.py tests that component itself)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import httpx
import pytest
from typing_extensions import override

from packyard.app import create_app
from packyard.errors import FileDenied
from packyard.model import AdvisoryNote, RequestContext, Resource
from packyard.reason_phrase import REASON_HEADER
from packyard.repository.base import DelegatingRepository
from packyard.routes.files import FilesRoute
from packyard.telemetry import EventLog, Metrics
from packyard.telemetry.asgi import Instrumented
from tests.unit.fakes import MemoryRepository

WARNED = "mkdocs-1.2.2-py3-none-any.whl"
DENIED = "mkdocs-1.2.2.tar.gz"
CLEAN = "mkdocs-1.2.3-py3-none-any.whl"
IDS = ("PYSEC-2021-878",)


class _Advised(DelegatingRepository):
    """Notes `WARNED` (policy warn, source pypi) and refuses `DENIED`."""

    @override
    async def get_file(self, name: str, filename: str, ctx: RequestContext) -> Resource:
        if filename == DENIED:
            reason = "known vulnerability PYSEC-2021-878 (advisory policy 'deny' of source pypi)"
            raise FileDenied(name, filename, reason, advisories=IDS, source="pypi")
        resource = await self.source.get_file(name, filename, ctx)
        if filename.removesuffix(".metadata") != WARNED:
            return resource
        return dataclasses.replace(resource, advisories=AdvisoryNote(IDS, "pypi", "warn"))


def client(events: EventLog, metrics: Metrics) -> httpx.AsyncClient:
    files = {WARNED: b"w", WARNED + ".metadata": b"m", DENIED: b"d", CLEAN: b"c"}
    chain = _Advised(MemoryRepository("pypi", {"mkdocs": files}))
    app = Instrumented(create_app(chain, files_app=FilesRoute(chain)), metrics, events)
    transport = httpx.ASGITransport(app=app, client=("192.0.2.7", 4711))
    return httpx.AsyncClient(transport=transport, base_url="http://test")


@pytest.mark.anyio
async def test_affected_downloads_carry_their_ids_and_are_counted_by_source_and_policy(
    tmp_path: Path,
) -> None:
    events = EventLog(tmp_path / "events.jsonl")
    async with client(events, Metrics(environ={})) as http:
        for filename in (WARNED, WARNED + ".metadata", CLEAN, DENIED):
            await http.get(f"/files/mkdocs/{filename}")
        refused = await http.get(f"/files/mkdocs/{DENIED}")
        metrics = (await http.get("/metrics")).text
    events.close()

    assert refused.status_code == 403
    assert "PYSEC-2021-878" in refused.text
    # Handed to packyard's HTTP protocol for the status line (pip and uv print it).
    assert b"PYSEC-2021-878" in refused.headers[REASON_HEADER.decode()].encode()
    lines = [json.loads(line) for line in (tmp_path / "events.jsonl").read_text().splitlines()]
    by_file = {(line["event"], line["filename"]): line for line in lines}
    assert by_file[("download", WARNED)]["advisories"] == list(IDS)
    assert by_file[("download", WARNED)]["advisory_action"] == "warn"
    assert by_file[("download", WARNED + ".metadata")]["advisories"] == list(IDS)
    assert "advisories" not in by_file[("download", CLEAN)]
    denied = by_file[("download-refused", DENIED)]
    assert (denied["project"], denied["version"], denied["source"]) == ("mkdocs", "1.2.2", "pypi")
    assert (denied["advisories"], denied["client_ip"]) == (list(IDS), "192.0.2.7")
    assert 'packyard_advisory_downloads_total{policy="warn",source="pypi"} 1.0' in metrics
    assert 'packyard_advisory_downloads_total{policy="deny",source="pypi"} 2.0' in metrics
