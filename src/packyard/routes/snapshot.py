"""`/snapshot/<YYYY-MM-DD>/…`: the index as it was at the end of a day (UTC).

`/snapshot/<date>/simple/…` is the simple API (`routes/simple.py`'s
`SimpleRoute`) over the chain wrapped in a `SnapshotRepository` for that
date, so `pip install --index-url …/snapshot/2025-01-31/simple/` installs what
could have been installed then. Pages link files relatively
(`../../files/<project>/<file>`), which resolves to `/snapshot/<date>/files/…`:
that path is the normal `/files/` route, undated (a file hidden by the
snapshot is still the same valid file, with the same bytes and ETag).

Both are served by moving the date into `root_path`, as Starlette's `Mount`
does (it updates the scope in place), so the inner routes see `/simple/…` and
`/files/…` and their redirects keep the prefix.

A malformed or impossible date, or one after today (UTC, whose snapshot
could still change), is a 404 that says so. One `SimpleRoute` (with its page
cache) is kept per date, for the `max_dates` most recently used dates.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Callable
from datetime import UTC, date, datetime

from starlette.types import ASGIApp, Receive, Scope, Send

from packyard.errors import NotFound, PackyardError
from packyard.repository.base import Repository
from packyard.repository.snapshot import SnapshotRepository
from packyard.routes.asgi import send_response
from packyard.routes.errors import error_parts
from packyard.routes.simple import SITE_ROOT, SimpleRoute, local_path

PREFIX = "/snapshot/"
DEFAULT_MAX_DATES = 16
# A snapshot page carries up to a project's whole history in `_hidden-files`:
# fewer pages per date than the live index keeps.
PAGES_PER_DATE = 1024
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_USAGE = "Snapshot URLs have the form /snapshot/<YYYY-MM-DD>/simple/ (a past day, UTC)."


def today_utc() -> date:
    return datetime.now(UTC).date()


class SnapshotRoute:
    """ASGI handler of every path under `/snapshot/`."""

    def __init__(
        self,
        chain: Repository,
        files: ASGIApp,
        *,
        max_dates: int = DEFAULT_MAX_DATES,
        today: Callable[[], date] = today_utc,
        site_url: str | None = None,
    ) -> None:
        """`chain` is the live chain; `files` the `/files/` handler, shared with it;
        `site_url` the `Settings.public_url` (`SimpleRoute`)."""
        self._chain = chain
        self._site_url = site_url
        self._files = files
        self._max_dates = max_dates
        self._today = today
        self._routes: OrderedDict[date, SimpleRoute] = OrderedDict()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        rest = local_path(scope)[len(PREFIX) :]
        day_text, _, tail = rest.partition("/")
        try:
            day = self._parse_day(day_text)
            handler: ASGIApp
            if tail == "simple" or tail.startswith("simple/"):
                handler = self._simple(day)
            elif tail.startswith("files/"):
                handler = self._files
            else:
                raise NotFound(f"No page at {scope['path']!r}. {_USAGE}")
        except PackyardError as error:
            status, headers, body = error_parts(error)
            await send_response(send, status, headers, body, head=scope["method"] == "HEAD")
            return
        scope.setdefault(SITE_ROOT, scope.get("root_path", ""))
        scope["root_path"] = scope.get("root_path", "") + PREFIX + day_text
        await handler(scope, receive, send)

    def _parse_day(self, text: str) -> date:
        """The date of a URL segment.

        Raises:
            NotFound: not `YYYY-MM-DD`, not a calendar date, or after today (UTC).
        """
        try:
            day = date.fromisoformat(text) if _DATE.fullmatch(text) else None
        except ValueError:
            day = None
        if day is None:
            raise NotFound(f"{text!r} is not a date of the form YYYY-MM-DD. {_USAGE}")
        if day > self._today():
            raise NotFound(
                f"The snapshot date {day} is in the future: a snapshot shows what was "
                "published by the end of a day (UTC) that has begun."
            )
        return day

    def _simple(self, day: date) -> SimpleRoute:
        """The simple API of one date, kept for the most recently used dates."""
        route = self._routes.get(day)
        if route is None:
            route = SimpleRoute(
                SnapshotRepository(self._chain, day),
                max_pages=PAGES_PER_DATE,
                site_url=self._site_url,
            )
            if len(self._routes) >= self._max_dates:
                self._routes.popitem(last=False)
            self._routes[day] = route
        else:
            self._routes.move_to_end(day)
        return route
