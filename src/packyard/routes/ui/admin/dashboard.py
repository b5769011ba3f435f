"""`/admin/dashboard`: the site's usage at a glance (admins only).

The figures are the daily roll-ups' (`browser/dashboard.py`): what every
worker of every replica had flushed, a few seconds behind the requests.
"""

from __future__ import annotations

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response

from packyard.browser.dashboard import read_dashboard
from packyard.routes.ui.admin.pages import AdminSite
from packyard.routes.ui.admin.sessions import Viewer

DASHBOARD = "/admin/dashboard"


class DashboardPage:
    """The dashboard page."""

    def __init__(self, site: AdminSite) -> None:
        self._site = site

    async def show(self, request: Request, viewer: Viewer, form: FormData) -> Response:
        """GET /admin/dashboard: the last 30 days."""
        dashboard = await self._site.run(read_dashboard)
        return self._site.render(request, "admin/dashboard.html", viewer, {"dashboard": dashboard})
