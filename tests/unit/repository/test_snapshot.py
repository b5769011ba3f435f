"""SnapshotRepository and the `/snapshot/<date>/` route: the index at the end of a day."""

from __future__ import annotations

from datetime import UTC, date, datetime
from hashlib import sha256

import httpx
import pytest

from packyard.app import create_app
from packyard.errors import ProjectNotFound
from packyard.model import ANONYMOUS, DistFile
from packyard.repository.policy import HIDDEN_FILES
from packyard.repository.snapshot import NotYetPublished, SnapshotRepository
from packyard.routes.files import FilesRoute
from packyard.routes.snapshot import SnapshotRoute
from tests.unit.fakes import PageSource
from tests.unit.repository.test_policy import page

DAY = date(2024, 3, 1)
JSON = {"Accept": "application/vnd.pypi.simple.v1+json"}


def wheel(version: str, uploaded: datetime | None) -> DistFile:
    return DistFile(
        f"dated_lib-{version}-py3-none-any.whl",
        hashes={"sha256": sha256(f"pypi:dated_lib-{version}".encode()).hexdigest()},
        size=10,
        upload_time=uploaded,
    )


BEFORE = wheel("1.0", datetime(2024, 1, 10, tzinfo=UTC))
LAST_SECOND = wheel("1.1", datetime(2024, 3, 1, 23, 59, 59, tzinfo=UTC))
NEXT_DAY = wheel("2.0", datetime(2024, 3, 2, 0, 0, tzinfo=UTC))
UNDATED = wheel("0.9", None)
SOURCE = PageSource(
    "pypi",
    {
        "dated-lib": page("dated-lib", BEFORE, LAST_SECOND, NEXT_DAY, UNDATED),
        "late-lib": page("late-lib", wheel("1.0", datetime(2025, 1, 1, tzinfo=UTC))),
        "empty-lib": page("empty-lib"),
    },
)


@pytest.mark.anyio
async def test_a_snapshot_keeps_files_uploaded_by_the_end_of_its_day() -> None:
    detail = await SnapshotRepository(SOURCE, DAY).get_project("dated-lib", ANONYMOUS)
    assert [dist.filename for dist in detail.files] == [BEFORE.filename, LAST_SECOND.filename]
    assert detail.versions == ("1.0", "1.1")
    reasons = {entry["filename"]: entry["reason"] for entry in detail.private[HIDDEN_FILES]}  # type: ignore[attr-defined]
    assert reasons == {
        NEXT_DAY.filename: "snapshot of 2024-03-01: uploaded 2024-03-02T00:00:00.000000Z",
        UNDATED.filename: "snapshot of 2024-03-01: the file has no upload time to date it by",
    }


@pytest.mark.anyio
async def test_a_snapshot_returns_the_same_page_for_the_same_source_page() -> None:
    snapshot = SnapshotRepository(SOURCE, DAY)
    first = await snapshot.get_project("dated-lib", ANONYMOUS)
    assert await snapshot.get_project("dated-lib", ANONYMOUS) is first


@pytest.mark.anyio
async def test_a_project_with_no_file_by_that_day_is_not_found() -> None:
    snapshot = SnapshotRepository(SOURCE, DAY)
    with pytest.raises(NotYetPublished, match="no file published by the end of 2024-03-01"):
        await snapshot.get_project("late-lib", ANONYMOUS)
    with pytest.raises(ProjectNotFound):
        await snapshot.get_project("unknown", ANONYMOUS)
    assert (await snapshot.get_project("empty-lib", ANONYMOUS)).files == ()


def client() -> httpx.AsyncClient:
    app = create_app(SOURCE, files_app=FilesRoute(SOURCE))
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")


@pytest.mark.anyio
async def test_the_snapshot_page_links_files_that_the_files_route_serves() -> None:
    async with client() as http:
        response = await http.get("/snapshot/2024-03-01/simple/dated-lib/", headers=JSON)
        assert response.status_code == 200
        body = response.json()
        assert [entry["filename"] for entry in body["files"]] == [
            BEFORE.filename,
            LAST_SECOND.filename,
        ]
        assert [entry["filename"] for entry in body["_hidden-files"]] == [
            NEXT_DAY.filename,
            UNDATED.filename,
        ]
        url = response.url.join(body["files"][0]["url"])
        assert url.path == f"/snapshot/2024-03-01/files/dated-lib/{BEFORE.filename}"
        assert (await http.get(url)).content == f"pypi:{BEFORE.filename}".encode()
        # A file the snapshot hides is still a valid file.
        hidden = f"/snapshot/2024-03-01/files/dated-lib/{NEXT_DAY.filename}"
        assert (await http.get(hidden)).status_code == 200


@pytest.mark.anyio
async def test_the_live_index_is_unaffected_and_redirects_keep_the_prefix() -> None:
    async with client() as http:
        live = (await http.get("/simple/dated-lib/", headers=JSON)).json()
        assert len(live["files"]) == 4
        moved = await http.get("/snapshot/2024-03-01/simple/Dated_Lib/")
        assert moved.status_code == 301
        assert moved.headers["location"] == "/snapshot/2024-03-01/simple/dated-lib/"
        missing = await http.get("/snapshot/2024-03-01/simple/late-lib/")
        assert missing.status_code == 404
        assert "2024-03-01" in missing.text


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("/snapshot/2024-3-1/simple/", "not a date of the form YYYY-MM-DD"),
        ("/snapshot/2024-02-30/simple/", "not a date of the form YYYY-MM-DD"),
        ("/snapshot/yesterday/simple/", "not a date"),
        ("/snapshot/9999-01-01/simple/", "is in the future"),
        ("/snapshot/2024-03-01/", "/snapshot/<YYYY-MM-DD>/simple/"),
        ("/snapshot/2024-03-01/other/", "/snapshot/<YYYY-MM-DD>/simple/"),
    ],
)
async def test_a_bad_snapshot_url_is_a_404_that_says_why(path: str, message: str) -> None:
    async with client() as http:
        response = await http.get(path)
    assert response.status_code == 404
    assert message in response.text


@pytest.mark.anyio
async def test_only_the_most_recent_dates_keep_a_route() -> None:
    route = SnapshotRoute(SOURCE, FilesRoute(SOURCE), max_dates=2, today=lambda: date(2026, 1, 1))
    first = route._simple(date(2024, 1, 1))
    route._simple(date(2024, 1, 2))
    assert route._simple(date(2024, 1, 1)) is first  # used again: now the most recent
    route._simple(date(2024, 1, 3))
    assert route._simple(date(2024, 1, 1)) is first
    assert list(route._routes) == [date(2024, 1, 3), date(2024, 1, 1)]
