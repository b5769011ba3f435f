"""PEP 740 provenance of upstream files, through the real `packyard serve`.

The upstream (`provenance_upstream.py`, on 127.0.0.1) serves the real test
vectors with the provenance documents PyPI serves for them. Packyard's pages
point to its own `/integrity/` route, which fetches the upstream's document
once, keeps it, and goes on serving it while the upstream is down, even from
a restarted server. Run on the embedded defaults, then on PostgreSQL with
the blobs in a bucket of the session's SeaweedFS (`backends.py`).
"""

from __future__ import annotations

import shutil
from html.parser import HTMLParser
from pathlib import Path

import httpx
import pytest

from tests.attestations_data import GITHUB_SDIST, STAGING_WHEEL, VECTORS
from tests.e2e.backends import POSTGRESQL_S3, SQLITE, backend_environment
from tests.e2e.provenance_upstream import ProvenanceUpstreamProcess
from tests.e2e.servers import PackyardProcess

pytestmark = pytest.mark.e2e

JSON = "application/vnd.pypi.simple.v1+json"
GCB_SDIST = VECTORS / "gcb_attestation_test-0.0.0.tar.gz"
ATTESTED = {
    GITHUB_SDIST: ("pypi-attestations", "0.0.19"),
    GCB_SDIST: ("gcb-attestation-test", "0.0.0"),
}


def provenance_of(dist: Path) -> bytes:
    return (dist.parent / f"{dist.name}.provenance").read_bytes()


def integrity_url(site: PackyardProcess, project: str, version: str, dist: Path) -> str:
    return f"{site.url}/integrity/{project}/{version}/{dist.name}/provenance"


def json_files(site: PackyardProcess, project: str) -> dict[str, dict[str, object]]:
    reply = httpx.get(f"{site.index_url}{project}/", headers={"Accept": JSON})
    assert reply.status_code == 200, reply.text
    return {entry["filename"]: entry for entry in reply.json()["files"]}


class _Anchors(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.attrs: list[dict[str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self.attrs.append(dict(attrs))


def html_provenance(site: PackyardProcess, project: str) -> list[str | None]:
    reply = httpx.get(f"{site.index_url}{project}/", headers={"Accept": "text/html"})
    assert reply.status_code == 200, reply.text
    anchors = _Anchors()
    anchors.feed(reply.text)
    return [attrs.get("data-provenance") for attrs in anchors.attrs]


def asked(upstream: ProvenanceUpstreamProcess) -> int:
    return int(httpx.get(upstream.url + "/_asked").json()["provenance"])


@pytest.mark.parametrize("backend", [SQLITE, POSTGRESQL_S3])
def test_upstream_provenance_is_served_kept_and_survives_the_upstream(
    tmp_path: Path, request: pytest.FixtureRequest, backend: str
) -> None:
    root = tmp_path / "upstream"
    root.mkdir()
    for dist in (*ATTESTED, STAGING_WHEEL):
        shutil.copy(dist, root)
    for dist in ATTESTED:
        shutil.copy(dist.parent / f"{dist.name}.provenance", root)
    upstream = ProvenanceUpstreamProcess(root)
    site = PackyardProcess(tmp_path / "data", upstreams=[upstream.index_url])
    with backend_environment(request, backend) as environment, upstream:
        site.environment.update(environment)
        with site:
            # The pages point to this server, never to the upstream.
            url = integrity_url(site, "pypi-attestations", "0.0.19", GITHUB_SDIST)
            entry = json_files(site, "pypi-attestations")[GITHUB_SDIST.name]
            assert entry["provenance"] == url
            assert html_provenance(site, "pypi-attestations") == [url]
            # The upstream's document, asked for once.
            reply = httpx.get(url)
            assert reply.status_code == 200, reply.text
            assert reply.content == provenance_of(GITHUB_SDIST)
            assert reply.headers["content-type"] == "application/vnd.pypi.integrity.v1+json"
            assert httpx.get(url).content == provenance_of(GITHUB_SDIST)
            assert asked(upstream) == 1
            # A file the upstream gives no provenance has none here either.
            wheel = json_files(site, "rfc8785")[STAGING_WHEEL.name]
            assert "provenance" not in wheel
            missing = httpx.get(integrity_url(site, "rfc8785", "0.1.2", STAGING_WHEEL))
            assert missing.status_code == 404, missing.text
            # A page seen, its provenance never asked for.
            gcb_url = integrity_url(site, "gcb-attestation-test", "0.0.0", GCB_SDIST)
            assert json_files(site, "gcb-attestation-test")[GCB_SDIST.name]["provenance"]
            upstream.stop()

            kept = httpx.get(url)
            assert (kept.status_code, kept.content) == (200, provenance_of(GITHUB_SDIST))
            never = httpx.get(gcb_url)
            assert never.status_code == 503, never.text
            assert never.headers["retry-after"] == "30"
            assert "could not be reached" in never.text
        # A new server, the upstream still down: read back from the store.
        again = PackyardProcess(site.data_dir, upstreams=[upstream.index_url])
        again.environment.update(environment)
        with again:
            reply = httpx.get(integrity_url(again, "pypi-attestations", "0.0.19", GITHUB_SDIST))
            assert (reply.status_code, reply.content) == (200, provenance_of(GITHUB_SDIST))
