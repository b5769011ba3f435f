"""The provenance of upstream files (PEP 740), fetched from a real upstream on 127.0.0.1,
checked, kept in a blob store and the database, and served at `/integrity/…`."""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from aiohttp import web
from sqlalchemy.orm import Session, sessionmaker

from packyard.model import ANONYMOUS, DistFile
from packyard.repository.upstream import UpstreamRepository
from packyard.repository.upstream_provenance import MAX_PROVENANCE_BYTES, UpstreamProvenance
from packyard.routes.integrity import IntegrityRoute
from packyard.settings import UpstreamSettings
from packyard.storage.filesystem import FilesystemBlobStore
from tests.attestations_data import VECTORS
from tests.unit.upstream_server import FakeUpstream, Servers, response

pytestmark = pytest.mark.anyio

JSON = "application/vnd.pypi.simple.v1+json"
SDIST = VECTORS / "pypi_attestations-0.0.19.tar.gz"
PROJECT = "pypi-attestations"
PATH = f"/integrity/{PROJECT}/0.0.19/{SDIST.name}/provenance"
DOCUMENT = (VECTORS / f"{SDIST.name}.provenance").read_bytes()


class Upstream:
    """An index on 127.0.0.1 with one project page; `documents` are served at /prov/<name>."""

    def __init__(self, servers: Servers) -> None:
        self.servers = servers
        self.documents: dict[str, bytes] = {"good": DOCUMENT}
        self.provenance: object = "/prov/good"  # made absolute unless it already is
        self.server: FakeUpstream | None = None

    async def start(self) -> None:
        self.server = await self.servers.start(self._handle)

    @property
    def url(self) -> str:
        assert self.server is not None
        return self.server.url

    def asked(self, path: str) -> int:
        assert self.server is not None
        return sum(1 for request in self.server.requests if request.path == path)

    async def _handle(self, request: web.BaseRequest) -> web.StreamResponse:
        if request.path == f"/simple/{PROJECT}/":
            return response(self._page(), headers={"Content-Type": JSON})
        document = self.documents.get(request.path.removeprefix("/prov/"))
        if request.path.startswith("/prov/") and document is not None:
            return response(document, headers={"Content-Type": "application/json"})
        return response(b"gone", 404)

    def _page(self) -> bytes:
        provenance = self.provenance
        if isinstance(provenance, str) and provenance.startswith("/"):
            provenance = self.url + provenance
        entry: dict[str, object] = {
            "filename": SDIST.name,
            "url": f"/files/{SDIST.name}",
            "hashes": {"sha256": hashlib.sha256(SDIST.read_bytes()).hexdigest()},
        }
        if provenance is not None:
            entry["provenance"] = provenance
        bare = {"filename": "pypi_attestations-0.0.18.tar.gz", "url": "/files/x", "hashes": {}}
        page = {"meta": {"api-version": "1.3"}, "name": PROJECT, "files": [entry, bare]}
        return json.dumps(page).encode()


class Packyard:
    """The integrity route over one upstream, as `compose.py` wires it."""

    def __init__(
        self, upstream: Upstream, store: FilesystemBlobStore, sessions: sessionmaker[Session]
    ) -> None:
        settings = UpstreamSettings(url=upstream.url + "/simple/", name="pypi", page_ttl=3600)
        self.repository = UpstreamRepository(settings, upstream.servers.client(settings))
        self.store = store
        self.sessions = sessions
        self.restart()

    def restart(self) -> None:
        """A new process: nothing kept in memory but the page (ttl)."""
        provenance = UpstreamProvenance.of([self.repository], self.store, self.sessions)
        route = IntegrityRoute(self.repository, _no_local, provenance)
        self.client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=route), base_url="http://packyard.test"
        )

    async def get(self, path: str = PATH) -> httpx.Response:
        return await self.client.get(path)


async def _no_local(filename: str) -> str | None:
    raise AssertionError("an upstream file's provenance is never read from the files table")


@pytest.fixture
async def servers() -> AsyncIterator[Servers]:
    async with Servers() as servers:
        yield servers


@pytest.fixture
async def upstream(servers: Servers) -> Upstream:
    upstream = Upstream(servers)
    await upstream.start()
    return upstream


@pytest.fixture
def packyard(upstream: Upstream, tmp_path: Path, sessions: sessionmaker[Session]) -> Packyard:
    return Packyard(upstream, FilesystemBlobStore(tmp_path / "blobs"), sessions)


async def test_the_upstreams_document_is_served(upstream: Upstream, packyard: Packyard) -> None:
    reply = await packyard.get()
    assert reply.status_code == 200, reply.text
    assert reply.content == DOCUMENT
    assert reply.headers["content-type"] == "application/vnd.pypi.integrity.v1+json"
    # Asked once: then kept, in this process and for the next.
    assert (await packyard.get()).content == DOCUMENT
    packyard.restart()
    assert (await packyard.get()).content == DOCUMENT
    assert upstream.asked("/prov/good") == 1


async def test_a_kept_document_is_served_while_the_upstream_is_down(
    upstream: Upstream, packyard: Packyard
) -> None:
    assert (await packyard.get()).status_code == 200
    assert upstream.server is not None
    await upstream.server.close()
    packyard.restart()  # the page is still remembered; the document is read back
    reply = await packyard.get()
    assert (reply.status_code, reply.content) == (200, DOCUMENT)


async def test_a_document_never_kept_is_a_503_while_the_upstream_is_down(
    upstream: Upstream, packyard: Packyard
) -> None:
    assert upstream.server is not None
    await packyard.repository.get_project(PROJECT, ANONYMOUS)  # the page is remembered
    await upstream.server.close()
    reply = await packyard.get()
    assert reply.status_code == 503, reply.text
    assert reply.headers["retry-after"] == "30"
    assert "Upstream pypi" in reply.text


@pytest.mark.parametrize(
    ("document", "reason"),
    [
        (b"<html>not json</html>", "not JSON"),
        (b'{"version": 1, "attestation_bundles": "none"}', "attestation_bundles"),
        (b'{"version": 2, "attestation_bundles": []}', "version"),
        (b"[1, 2]", "not a provenance object"),
        (b'{"pad": "' + b"x" * MAX_PROVENANCE_BYTES + b'"}', f"larger than {MAX_PROVENANCE_BYTES}"),
    ],
)
async def test_a_malformed_document_is_a_502_naming_the_upstream(
    upstream: Upstream, packyard: Packyard, document: bytes, reason: str
) -> None:
    upstream.documents["good"] = document
    reply = await packyard.get()
    assert reply.status_code == 502, reply.text
    prefix = f"Upstream pypi: served a malformed provenance document for {SDIST.name}: "
    assert reply.text.startswith(prefix)
    assert reason in reply.text
    # Not kept: a fixed upstream is asked again.
    upstream.documents["good"] = DOCUMENT
    assert (await packyard.get()).content == DOCUMENT


async def test_a_provenance_url_on_a_foreign_host_is_dropped_from_the_page(
    upstream: Upstream, packyard: Packyard
) -> None:
    upstream.provenance = "http://127.0.0.2:9/prov/good"
    page = await packyard.repository.get_project(PROJECT, ANONYMOUS)
    assert page.files[0].provenance is None
    reply = await packyard.get()
    assert reply.status_code == 404
    assert "has no provenance" in reply.text


async def test_a_file_without_provenance_is_a_404(upstream: Upstream, packyard: Packyard) -> None:
    reply = await packyard.get(
        f"/integrity/{PROJECT}/0.0.18/pypi_attestations-0.0.18.tar.gz/provenance"
    )
    assert reply.status_code == 404
    assert "has no provenance (PEP 740) on this server" in reply.text


async def test_a_document_the_upstream_lost_is_a_404(
    upstream: Upstream, packyard: Packyard
) -> None:
    upstream.provenance = "/prov/missing"
    reply = await packyard.get()
    assert reply.status_code == 404
    assert "upstream pypi answered 404" in reply.text


async def test_a_redirect_to_a_foreign_host_is_refused(
    upstream: Upstream, packyard: Packyard, servers: Servers
) -> None:
    async def redirect(request: web.BaseRequest) -> web.StreamResponse:
        raise web.HTTPFound("http://127.0.0.2:9/prov/good")

    assert upstream.server is not None
    handler = upstream.server.handler

    async def routed(request: web.BaseRequest) -> web.StreamResponse:
        return await (redirect if request.path == "/prov/moved" else handler)(request)

    upstream.server.handler = routed
    upstream.provenance = "/prov/moved"
    reply = await packyard.get()
    assert reply.status_code == 502, reply.text
    assert "refused" in reply.text


async def test_a_source_that_is_no_upstream_has_no_provenance(tmp_path: Path) -> None:
    provenance = UpstreamProvenance.of([], FilesystemBlobStore(tmp_path), None)
    dist = DistFile("p-1.tar.gz", provenance="https://x.test/p")
    assert await provenance("pypi", "p", dist) is None
