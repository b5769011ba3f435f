"""A domain error that escaped every route is answered with its status, never a 500."""

from __future__ import annotations

import httpx
import pytest
from starlette.types import Receive, Scope, Send

from packyard.errors import DatabaseUnavailable
from packyard.routes.domain_errors import DomainErrorResponses


async def database_down(scope: Scope, receive: Receive, send: Send) -> None:
    raise DatabaseUnavailable("connection refused")


async def fails_mid_response(scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    raise DatabaseUnavailable("connection lost")


@pytest.mark.anyio
async def test_the_database_down_is_503_with_retry_after_and_the_message() -> None:
    transport = httpx.ASGITransport(app=DomainErrorResponses(database_down))
    async with httpx.AsyncClient(transport=transport, base_url="http://packyard") as client:
        response = await client.get("/admin/")

    assert response.status_code == 503
    assert response.headers["retry-after"] == "5"
    assert response.text.startswith("The database does not answer")
    assert "connection refused" not in response.text  # the driver's words stay in the log


@pytest.mark.anyio
async def test_a_response_already_started_cannot_change_its_status() -> None:
    transport = httpx.ASGITransport(app=DomainErrorResponses(fails_mid_response))
    async with httpx.AsyncClient(transport=transport, base_url="http://packyard") as client:
        with pytest.raises(DatabaseUnavailable):
            await client.get("/")
