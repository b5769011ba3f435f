"""The browser's cache of parsed metadata and rendered READMEs is bounded in bytes,
and a README larger than any upload may have is not rendered at all."""

from __future__ import annotations

from typing import cast

import pytest

from packyard.browser import service
from packyard.browser.metadata import ProjectMetadata
from packyard.browser.service import Browser, DetailsView
from packyard.repository.base import Repository
from packyard.search.index import SearchIndex

MIB = 1024 * 1024


def browser() -> Browser:
    return Browser(cast(Repository, None), cast(SearchIndex, None))


def test_the_cache_forgets_the_oldest_readmes_past_its_byte_limit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(service, "DETAILS_CACHE_BYTES", 3 * MIB)
    cache = browser()
    for number in range(5):
        cache._keep(("p", f"f{number}"), DetailsView(None, "x" * MIB))

    assert list(cache._parsed) == [("p", "f2"), ("p", "f3"), ("p", "f4")]
    assert cache._parsed_bytes == 3 * MIB


@pytest.mark.anyio
async def test_a_readme_over_the_limit_is_not_rendered(monkeypatch: pytest.MonkeyPatch) -> None:
    def render(*args: object) -> str:
        raise AssertionError("rendered")

    monkeypatch.setattr(service, "render_readme", render)
    meta = ProjectMetadata(name="big", version="1.0", description="word " * MIB)

    view = await browser()._parse("big", "big-1.0-py3-none-any.whl", meta)

    assert view.readme.startswith("<p>The README is 5.0 MiB, larger than this server renders")
