"""The OpenAPI document lists each operation's refusals with the error schema,
and `/api/v1/` links to the document and its page."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.unit.routes.api.conftest import Site

ERROR_REF = {"$ref": "#/components/schemas/Error"}


def operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (path, method, operation)
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if method in ("get", "put", "post", "patch", "delete")
    ]


@pytest.mark.anyio
async def test_every_operation_lists_its_refusals_with_the_error_schema(site: Site) -> None:
    document = (await site.client.get("/openapi.json")).json()
    assert document["components"]["schemas"]["Error"]["required"] == ["detail"]
    found = operations(document)
    assert len(found) > 30
    for path, method, operation in found:
        responses = operation["responses"]
        expected = {"401", "403", "429", "503"}
        if "{" in path:
            expected.add("404")
        if method != "get":
            expected |= {"400", "409"}
        assert expected <= responses.keys(), (method, path, sorted(responses))
        for status in expected:
            schema = responses[status]["content"]["application/json"]["schema"]
            assert schema == ERROR_REF, (method, path, status)


@pytest.mark.anyio
async def test_every_operation_the_document_says_needs_credentials_refuses_without(
    site: Site,
) -> None:
    """The document's 401 is the truth: each operation, called with no credentials,
    answers 401 with `{"detail": …}`, before it looks at its parameters."""
    document = (await site.client.get("/openapi.json")).json()
    for path, method, operation in operations(document):
        assert operation.get("security"), (method, path)
        concrete = re.sub(r"\{[^}]+\}", "x", path)
        answer = await site.client.request(method.upper(), concrete, json={})
        assert answer.status_code == 401, (method, path, answer.status_code, answer.text)
        assert isinstance(answer.json()["detail"], str)


@pytest.mark.anyio
async def test_the_api_root_links_to_its_document_and_page(site: Site) -> None:
    answer = await site.client.get("/")
    assert answer.status_code == 200
    assert answer.json() == {"openapi": "/api/v1/openapi.json", "docs": "/api/v1/docs"}
    assert (await site.client.get(answer.json()["openapi"].removeprefix("/api/v1"))).is_success
    assert (await site.client.get(answer.json()["docs"].removeprefix("/api/v1"))).is_success
