"""SearchRecorder: public projects become searchable, written in the background, in batches."""

from __future__ import annotations

from collections.abc import Iterable

import anyio
import pytest
from sqlalchemy import Engine

from packyard.model import ANONYMOUS
from packyard.search.index import SearchIndex, open_index
from packyard.search.query import parse_query
from packyard.search.recorder import SearchRecorder
from tests.unit.fakes import MemoryRepository

pytestmark = pytest.mark.anyio

PROJECTS = {name: {f"{name}-1.0.tar.gz": b"x"} for name in ("alpha", "beta", "gamma")}


class CountingIndex(SearchIndex):
    """The real index, noting each batch written."""

    def __init__(self, engine: Engine) -> None:
        super().__init__(engine)
        self.batches: list[list[str]] = []

    def record_public_many(self, projects: Iterable[tuple[str, str, str]]) -> None:
        rows = list(projects)
        self.batches.append([name for name, _, _ in rows])
        super().record_public_many(rows)


def counting_index() -> CountingIndex:
    return CountingIndex(open_index("sqlite://").engine)


def names(index: SearchIndex, text: str) -> set[str]:
    return {hit.name for hit in index.search(parse_query(text)).hits}


async def test_pages_met_together_are_written_in_one_transaction() -> None:
    index = counting_index()
    recorder = SearchRecorder(MemoryRepository("pypi", PROJECTS), index)
    async with anyio.create_task_group() as group:
        for name in PROJECTS:
            group.start_soon(recorder.get_project, name, ANONYMOUS)
    await recorder.settle()
    assert index.batches == [["alpha", "beta", "gamma"]]
    assert names(index, "source:public") == {"alpha", "beta", "gamma"}
    await recorder.aclose()


async def test_a_name_is_written_once_per_process() -> None:
    index = counting_index()
    recorder = SearchRecorder(MemoryRepository("pypi", PROJECTS), index)
    for _ in range(3):
        await recorder.get_project("alpha", ANONYMOUS)
        await recorder.settle()
    assert index.batches == [["alpha"]]
    await recorder.aclose()


async def test_closing_writes_what_is_pending() -> None:
    index = counting_index()
    recorder = SearchRecorder(MemoryRepository("pypi", PROJECTS), index)
    await recorder.get_project("beta", ANONYMOUS)
    await recorder.aclose()  # no settle first: closing must not lose the name
    assert index.batches == [["beta"]]


async def test_names_wait_for_the_write_delay_so_a_burst_shares_one_write() -> None:
    index = counting_index()
    recorder = SearchRecorder(MemoryRepository("pypi", PROJECTS), index, write_delay=0.2)
    await recorder.get_project("alpha", ANONYMOUS)
    await anyio.sleep(0.05)
    await recorder.get_project("beta", ANONYMOUS)  # met later, still within the delay
    assert index.batches == []
    await anyio.sleep(0.3)
    assert index.batches == [["alpha", "beta"]]
    await recorder.aclose()
