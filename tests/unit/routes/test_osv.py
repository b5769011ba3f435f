"""The OSV API (`/osv/v1/…`) over real records of the PyPA snapshot, imported into SQLite:
answers shaped as osv.dev's, and osv.dev's errors for what it would refuse."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from datetime import datetime
from itertools import chain
from pathlib import Path

import httpx
import pytest
from sqlalchemy.orm import Session, sessionmaker

from packyard.advisories.importing import import_entries
from packyard.advisories.index import AdvisoryIndexReader
from packyard.advisories.sources import read_source
from packyard.db.engine import create_database_engine, migrate, session_factory_for
from packyard.routes.osv import MAX_BODY_BYTES, OsvRoute
from tests.advisory_data import SNAPSHOT

# shared/ lies beside the checkout (here and in CI); the data is used as it is.
PROJECTS = ("jinja2", "django", "requests", "flask-caching")
JINJA2_2_10 = ["PYSEC-2019-217", "PYSEC-2021-66"]
WITHDRAWN = "PYSEC-2021-13"  # flask-caching's only record, withdrawn in 2023


@pytest.fixture(scope="module")
def sessions(tmp_path_factory: pytest.TempPathFactory) -> Iterator[sessionmaker[Session]]:
    """A SQLite database holding the snapshot's records of `PROJECTS`."""
    path = tmp_path_factory.mktemp("osv") / "packyard.db"
    engine = create_database_engine(f"sqlite:///{path}")
    migrate(engine)
    factory = session_factory_for(engine)
    entries = chain.from_iterable(read_source(SNAPSHOT / name) for name in PROJECTS)
    report = import_entries(factory, entries, actor="cli:test", source="snapshot")
    assert not report.skipped
    assert WITHDRAWN in report.withdrawn
    yield factory
    engine.dispose()


@pytest.fixture
async def client(sessions: sessionmaker[Session]) -> AsyncIterator[httpx.AsyncClient]:
    index = AdvisoryIndexReader(sessions)
    transport = httpx.ASGITransport(app=OsvRoute(index, sessions))
    async with httpx.AsyncClient(transport=transport, base_url="http://packyard") as client:
        yield client
    index.close()


def ids(answer: dict[str, list[dict[str, object]]]) -> list[object]:
    return [vuln["id"] for vuln in answer.get("vulns", [])]


def snapshot_ids(project: str) -> set[str]:
    return {path.stem for path in (SNAPSHOT / project).glob("*.yaml")}


async def query(client: httpx.AsyncClient, body: object) -> httpx.Response:
    return await client.post("/osv/v1/query", content=json.dumps(body))


@pytest.mark.anyio
async def test_a_query_answers_the_full_records_that_affect_the_version(
    client: httpx.AsyncClient,
) -> None:
    answered = await query(
        client, {"package": {"name": "Jinja2", "ecosystem": "PyPI"}, "version": "2.10"}
    )
    assert answered.status_code == 200
    assert answered.headers["content-type"] == "application/json"
    assert ids(answered.json()) == JINJA2_2_10
    # Each is the record as imported, as `/vulns/{id}` serves it.
    for vuln in answered.json()["vulns"]:
        stored = await client.get(f"/osv/v1/vulns/{vuln['id']}")
        assert vuln == stored.json()
    assert answered.json()["vulns"][0]["affected"][0]["package"]["name"] == "jinja2"


@pytest.mark.anyio
async def test_a_purl_query_answers_as_the_named_one(client: httpx.AsyncClient) -> None:
    by_purl = await query(client, {"package": {"purl": "pkg:pypi/jinja2@2.10"}})
    by_name = await query(client, {"package": {"name": "jinja2"}, "version": "2.10"})
    assert ids(by_purl.json()) == ids(by_name.json()) == JINJA2_2_10


@pytest.mark.anyio
async def test_a_query_without_a_version_answers_every_record_in_force(
    client: httpx.AsyncClient,
) -> None:
    answered = await query(client, {"package": {"name": "django", "ecosystem": "PyPI"}})
    assert set(ids(answered.json())) == snapshot_ids("django")
    answered = await query(client, {"package": {"purl": "pkg:pypi/requests"}})
    assert set(ids(answered.json())) == snapshot_ids("requests")


@pytest.mark.anyio
@pytest.mark.parametrize(
    "body",
    [
        {"package": {"name": "jinja2", "ecosystem": "PyPI"}, "version": "3.1.4"},  # fixed
        {"package": {"name": "not-in-the-data", "ecosystem": "PyPI"}, "version": "1.0"},
        {"package": {"name": "left-pad", "ecosystem": "npm"}, "version": "1.0.0"},
        {"package": {"purl": "pkg:cargo/jinja2@2.10"}},
        {"commit": "6879efc2c1596d11a6a6ad296f80063b558d5e0f"},
        # A withdrawn record applies to no version any more.
        {"package": {"name": "flask-caching", "ecosystem": "PyPI"}, "version": "1.10.1"},
        {"package": {"name": "flask-caching", "ecosystem": "PyPI"}},
    ],
)
async def test_a_query_nothing_answers_is_an_empty_object(
    client: httpx.AsyncClient, body: object
) -> None:
    answered = await query(client, body)
    assert (answered.status_code, answered.content) == (200, b"{}")


@pytest.mark.anyio
async def test_a_batch_answers_ids_and_modified_times_in_the_order_asked(
    client: httpx.AsyncClient,
) -> None:
    queries = [
        {"package": {"name": "requests", "ecosystem": "PyPI"}, "version": "2.32.3"},
        {"package": {"purl": "pkg:pypi/jinja2@2.10"}},
        {"commit": "6879efc2c1596d11a6a6ad296f80063b558d5e0f"},
        {"package": {"name": "django", "ecosystem": "PyPI"}, "version": "3.2.0"},
    ]
    answered = await client.post("/osv/v1/querybatch", json={"queries": queries})
    assert answered.status_code == 200
    results = answered.json()["results"]
    assert len(results) == 4
    assert results[0] == results[2] == {}
    assert ids(results[1]) == JINJA2_2_10
    assert "PYSEC-2021-7" in ids(results[3])  # django < 3.2.1
    for vuln in results[1]["vulns"] + results[3]["vulns"]:
        assert set(vuln) == {"id", "modified"}
        record = (await client.get(f"/osv/v1/vulns/{vuln['id']}")).json()
        assert vuln["modified"] == record["modified"]
        assert datetime.fromisoformat(vuln["modified"]).tzinfo is not None  # RFC 3339
    single = await query(client, queries[3])
    assert ids(results[3]) == ids(single.json())


@pytest.mark.anyio
async def test_a_batch_without_queries_is_an_empty_object(client: httpx.AsyncClient) -> None:
    answered = await client.post("/osv/v1/querybatch", json={"queries": []})
    assert (answered.status_code, answered.content) == (200, b"{}")


@pytest.mark.anyio
async def test_a_record_is_served_by_id_withdrawn_or_not(client: httpx.AsyncClient) -> None:
    answered = await client.get(f"/osv/v1/vulns/{WITHDRAWN}")
    assert answered.status_code == 200
    record = answered.json()
    assert record["id"] == WITHDRAWN
    assert record["withdrawn"] == "2023-07-25T12:32:00Z"
    head = await client.head("/osv/v1/vulns/PYSEC-2019-217")
    assert (head.status_code, head.content) == (200, b"")
    assert int(head.headers["content-length"]) > 100


@pytest.mark.anyio
async def test_an_unknown_id_is_a_404_naming_the_records_that_alias_it(
    client: httpx.AsyncClient,
) -> None:
    unknown = await client.get("/osv/v1/vulns/PYSEC-1999-1")
    assert unknown.status_code == 404
    assert unknown.json() == {"code": 5, "message": "Vulnerability not found"}
    alias = await client.get("/osv/v1/vulns/CVE-2019-10906")
    assert alias.status_code == 404
    assert alias.json() == {
        "code": 5,
        "message": "Vulnerability not found, but the following aliases were: PYSEC-2019-217",
    }
    # Ids are case-sensitive, as on osv.dev.
    assert (await client.get("/osv/v1/vulns/pysec-2019-217")).status_code == 404


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", "invalid query: the body is empty"),
        (b"{not json", "invalid query: the body is not JSON"),
        (b"\xff\xfe", "invalid query: the body is not JSON"),
        (b"[" * 100_000, "invalid query: the body is not JSON"),
        (b'["django"]', "invalid query: a query must be a JSON object"),
        (
            b'{"package": {"name": "django", "ecosystem": "pypi"}, "version": "1"}',
            "invalid ecosystem",
        ),
        (
            b'{"package": {"name": "django", "ecosystem": "PyPI"}, "version": 1}',
            "'version' must be a string",
        ),
        (b'{"commit": "abcd", "version": "1"}', "set 'commit' or 'version', not both"),
        (
            b'{"package": {"name": "django", "ecosystem": "PyPI"}, "page_token": "x"}',
            "invalid cursor",
        ),
    ],
)
async def test_a_malformed_query_is_a_400_with_osv_devs_error_body(
    client: httpx.AsyncClient, body: bytes, message: str
) -> None:
    answered = await client.post("/osv/v1/query", content=body)
    assert answered.status_code == 400
    assert answered.json()["code"] == 3
    assert message in answered.json()["message"]


@pytest.mark.anyio
async def test_a_batch_over_osv_devs_limit_is_refused(client: httpx.AsyncClient) -> None:
    one = {"package": {"name": "django", "ecosystem": "PyPI"}, "version": "3.2.0"}
    answered = await client.post("/osv/v1/querybatch", json={"queries": [one] * 1001})
    assert answered.status_code == 400
    assert answered.json() == {
        "code": 3,
        "message": "too many queries: 1001 in one batch, at most 1000: split them into "
        "several requests",
    }
    bad = await client.post("/osv/v1/querybatch", json={"queries": [one, {"commit": "xyz"}]})
    assert bad.status_code == 400
    assert bad.json()["message"].startswith("error in query at index 1: invalid hash")


@pytest.mark.anyio
async def test_a_body_over_the_limit_is_a_413(client: httpx.AsyncClient) -> None:
    answered = await client.post("/osv/v1/querybatch", content=b" " * (MAX_BODY_BYTES + 1))
    assert answered.status_code == 413
    assert answered.json()["code"] == 8


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("GET", "/osv/v1/query", "POST"),
        ("PUT", "/osv/v1/querybatch", "POST"),
        ("POST", "/osv/v1/vulns/PYSEC-2019-217", "GET, HEAD"),
    ],
)
async def test_a_wrong_method_is_a_405_saying_which(
    client: httpx.AsyncClient, method: str, path: str, allow: str
) -> None:
    answered = await client.request(method, path, content=b"{}")
    assert answered.status_code == 405
    assert answered.headers["allow"] == allow
    assert "The OSV API is POST /osv/v1/query" in answered.json()["message"]


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("path", "status", "message"),
    [
        ("/osv/v1/vulns/", 400, "ID is required"),
        ("/osv/v1/vulns/" + "A" * 101, 400, "ID is too long"),
        ("/osv/v1/", 404, "No OSV API at /osv/v1/"),
        ("/osv/v2/query", 404, "No OSV API at /osv/v2/query"),
    ],
)
async def test_paths_outside_the_api_say_what_it_is(
    client: httpx.AsyncClient, path: str, status: int, message: str
) -> None:
    answered = await client.get(path)
    assert answered.status_code == status
    assert message in answered.json()["message"]


@pytest.mark.anyio
async def test_an_unreadable_database_is_a_503_to_retry(tmp_path: Path) -> None:
    engine = create_database_engine(f"sqlite:///{tmp_path / 'never-migrated.db'}")
    sessions = session_factory_for(engine)
    index = AdvisoryIndexReader(sessions)
    transport = httpx.ASGITransport(app=OsvRoute(index, sessions))
    async with httpx.AsyncClient(transport=transport, base_url="http://packyard") as client:
        answered = await query(client, {"package": {"purl": "pkg:pypi/django"}})
        record = await client.get("/osv/v1/vulns/PYSEC-2019-217")
    index.close()
    engine.dispose()
    for refused in (answered, record):
        assert refused.status_code == 503
        assert refused.headers["retry-after"] == "30"
        assert refused.json()["code"] == 14
        assert "cannot be read now" in refused.json()["message"]
