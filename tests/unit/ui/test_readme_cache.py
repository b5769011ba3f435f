"""The browser's cache of parsed metadata and rendered READMEs is bounded in bytes
(a README too large to render: tests/unit/ui/test_readmes.py)."""

from __future__ import annotations

from typing import cast

import pytest

from packyard.browser import service
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
