"""Issue 11, item 10: an upstream's PEP 740 provenance URLs are never passed through.

The hostile upstream's page gives `acme-1.0` a provenance URL on another host
(its JSON `provenance` key and its HTML `data-provenance` attribute); packyard's
pages, JSON and HTML, and its web page of the project never link to it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.security.hostile_upstream import HostileUpstream, InternalService, write_wheels
from tests.security.upstream_sites import SiteOverHostile

pytestmark = pytest.mark.e2e
JSON = "application/vnd.pypi.simple.v1+json"
HTML = "application/vnd.pypi.simple.v1+html"


@pytest.fixture(scope="module")
def sites(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[SiteOverHostile, ...]]:
    root: Path = tmp_path_factory.mktemp("hostile-provenance")
    write_wheels(root)
    internal = InternalService(root)
    upstream = HostileUpstream(root, internal.port)
    over_json = SiteOverHostile(root / "json-site", upstream.index_url)
    over_html = SiteOverHostile(root / "html-site", upstream.url + "/html/")
    with internal, upstream, over_json, over_html:
        yield over_json, over_html


@pytest.mark.parametrize("accept", [JSON, HTML])
@pytest.mark.parametrize("which", ["json upstream", "html upstream"])
def test_no_provenance_link_to_another_host(
    sites: tuple[SiteOverHostile, ...], accept: str, which: str
) -> None:
    site = sites[0] if which == "json upstream" else sites[1]
    page = httpx.get(site.index_url + "acme/", headers={"Accept": accept})
    assert page.status_code == 200
    assert "acme-1.0-py3-none-any.whl" in page.text
    assert "provenance" not in page.text
    web = httpx.get(site.url + "/project/acme/")
    assert "/provenance/acme-1.0" not in web.text
