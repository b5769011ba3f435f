"""`/healthz` is liveness; `/readyz` reports every part that cannot serve, and why."""

from __future__ import annotations

from pathlib import Path

import anyio
import httpx
import pytest
from sqlalchemy import create_engine

from packyard.db.engine import head_revision, migrate, schema_problem
from packyard.routes.health import Readiness, ReadinessCheck


def check(answer: str | None) -> ReadinessCheck:
    async def run() -> str | None:
        return answer

    return run


async def hangs() -> str | None:
    await anyio.sleep(60)
    return None


async def breaks() -> str | None:
    raise OSError("connection refused")


async def ask(readiness: Readiness, method: str = "GET") -> httpx.Response:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=readiness), base_url="http://packyard"
    ) as client:
        return await client.request(method, "/readyz")


@pytest.mark.anyio
async def test_ready_when_every_part_answers() -> None:
    response = await ask(Readiness({"database": check(None), "blob store": check(None)}))
    assert (response.status_code, response.json()) == (200, {"status": "ready"})
    assert response.headers["cache-control"] == "no-store"


@pytest.mark.anyio
async def test_not_ready_names_each_failing_part_with_its_reason() -> None:
    readiness = Readiness(
        {
            "database": check("the schema is at revision 0003"),
            "blob store": breaks,
            "cache": hangs,
            "fine": check(None),
        },
        timeout=0.2,
    )
    response = await ask(readiness)
    assert response.status_code == 503
    assert response.headers["retry-after"] == "5"
    assert response.json() == {
        "status": "not ready",
        "reasons": {
            "blob store": "OSError: connection refused",
            "cache": "no answer within 0.2 s",
            "database": "the schema is at revision 0003",
        },
    }
    assert (await ask(readiness, "POST")).status_code == 405


def test_schema_problem_says_what_to_run(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'packyard.db'}")
    head = head_revision()
    assert schema_problem(engine, head) == (
        f"the schema is at revision empty, this version needs {head}: run packyard migrate"
    )
    migrate(engine)
    assert schema_problem(engine, head) is None
    unreachable = create_engine(f"sqlite:///{tmp_path / 'missing' / 'packyard.db'}")
    problem = schema_problem(unreachable, head)
    assert problem is not None
    assert problem.startswith("the database cannot be reached: OperationalError")
