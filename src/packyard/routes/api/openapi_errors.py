"""The refusals of every operation, in the API's OpenAPI document.

FastAPI lists only an operation's 200 and 422. Every refusal of the API is a
`PackyardError` answered as `{"detail": message}` (`deps.add_error_handlers`)
with the status of `routes/errors.py`; this adds those statuses, with that
`Error` schema, to each operation they apply to:

- an operation that takes credentials (its `security`): 401 (none, or
  refused), 403 (not allowed: not an admin, not an owner, a token scoped
  elsewhere), 429 (too many failed sign-ins) and 503 (the database is down,
  or too many password checks wait);
- a path with a parameter (`/users/{name}`): 404;
- a request that changes something (POST, PUT, PATCH, DELETE): 400 (a value
  the service refuses) and 409 (it conflicts with what exists).

An operation's own `responses=` wins over these.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI

ERROR_SCHEMA: dict[str, Any] = {
    "title": "Error",
    "type": "object",
    "properties": {"detail": {"type": "string", "title": "Detail"}},
    "required": ["detail"],
    "description": "Why the request was refused, for a person to read.",
}
_ERROR_REF = {"$ref": "#/components/schemas/Error"}
_CHANGES = ("post", "put", "patch", "delete")
_METHODS = ("get", "head", *_CHANGES)

AUTHENTICATED = {
    "401": "No credentials, or credentials that are refused (`WWW-Authenticate: Basic`).",
    "403": "The caller may not do this (not an admin, not an owner, a token scoped elsewhere).",
    "429": "Too many failed sign-ins for this user or address (`Retry-After`).",
    "503": "The database is unavailable or password checks are overloaded (`Retry-After`).",
}
WITH_PARAMETERS = {"404": "No such object."}
CHANGES = {
    "400": "A value the server refuses, with the reason.",
    "409": "It conflicts with what exists.",
}


def statuses_for(path: str, method: str, operation: dict[str, Any]) -> dict[str, str]:
    """The refusals (status -> description) an operation can answer (module doc)."""
    statuses: dict[str, str] = {}
    if operation.get("security"):
        statuses |= AUTHENTICATED
    if "{" in path:
        statuses |= WITH_PARAMETERS
    if method in _CHANGES:
        statuses |= CHANGES
    return statuses


def with_errors(document: dict[str, Any]) -> dict[str, Any]:
    """`document` with each operation's refusals and the `Error` schema added."""
    document.setdefault("components", {}).setdefault("schemas", {})["Error"] = ERROR_SCHEMA
    for path, item in document.get("paths", {}).items():
        for method, operation in item.items():
            if method not in _METHODS:
                continue
            responses = operation.setdefault("responses", {})
            for status, description in statuses_for(path, method, operation).items():
                responses.setdefault(
                    status,
                    {
                        "description": description,
                        "content": {"application/json": {"schema": _ERROR_REF}},
                    },
                )
    return document


def document_errors(app: FastAPI) -> None:
    """Make `app.openapi()` (and so `/openapi.json`) list every operation's refusals."""
    generate: Callable[[], dict[str, Any]] = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = with_errors(generate())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
