"""The JSON admin API under `/api/v1` (DESIGN §1), with its OpenAPI document.

    app = api_app(ApiServices(sessions, authenticators, store))
    Mount("/api/v1", app=app)   # app.py

FastAPI, for typed endpoints whose pydantic models are also the OpenAPI
document (`/api/v1/openapi.json`, listed at `/api/v1/docs`: a page of this
server, `docs.py`, not Swagger UI from a CDN). The rules of
who may do what are the services' in `publish/`; each endpoint only reads the
request, calls one service in one audited transaction (`deps.audited`) and
shapes the answer. One module per resource, each with a `router`, listed in
`ROUTERS`.
"""

from __future__ import annotations

from fastapi import APIRouter, FastAPI
from starlette.types import ASGIApp

from packyard.routes.api import (
    accounts,
    advisories,
    advisory_rules,
    attestation_rules,
    audit,
    deletions,
    findings,
    groups,
    lifecycle,
    names,
    policies,
    roles,
    tokens,
    whoami,
    yanks,
)
from packyard.routes.api.deps import ApiServices, add_error_handlers
from packyard.routes.api.docs import api_index, docs_endpoint
from packyard.routes.api.openapi_errors import document_errors

__all__ = ["ROUTERS", "ApiServices", "api_app"]

# Every router of the API; a new resource is a module with a `router`, added here.
ROUTERS: list[APIRouter] = [
    policies.router,
    accounts.router,
    groups.router,
    tokens.router,
    roles.router,
    yanks.router,
    deletions.router,
    names.router,
    lifecycle.router,
    whoami.router,
    audit.router,
    findings.router,
    advisories.router,
    advisory_rules.router,
    attestation_rules.router,
]


def api_app(services: ApiServices) -> ASGIApp:
    """The API as an ASGI app, to mount at `/api/v1` (its paths are relative to it).

    The OpenAPI document and its page are found below the mount point
    (`root_path`): `/api/v1/openapi.json` and `/api/v1/docs` (`docs.py`).
    """
    app = FastAPI(
        title="packyard admin API",
        version="1",
        summary="Users, groups, tokens, project roles, yanks, deletions, names, curation, "
        "known vulnerabilities and the audit log.",
        openapi_url="/openapi.json",
        # FastAPI's docs pages load their code from a CDN: no third-party code here.
        docs_url=None,
        redoc_url=None,
    )
    document_errors(app)
    app.add_route("/docs", docs_endpoint(app.openapi), methods=["GET", "HEAD"])
    app.add_route("/", api_index, methods=["GET", "HEAD"], include_in_schema=False)
    app.state.services = services
    add_error_handlers(app)
    for router in ROUTERS:
        app.include_router(router)
    return app
