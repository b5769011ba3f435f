"""`SnapshotRepository`: the index as it was at the end of one day (UTC).

Wraps the whole chain, so curation (deny, allow, cool-down) still applies and
a snapshot is a view of what this server offered. A project page keeps the
files whose upload time is before the next midnight (UTC) after `day`:

- the rule covers **in-house files too**. They carry the upload time of their
  import or upload, and dating them makes a snapshot reproducible: the same
  URL resolves to the same files next year, whatever was uploaded since;
- files **without an upload time are hidden**, since they cannot be dated
  (as uv's `--exclude-newer` does, STANDARDS §4);
- a project none of whose files existed by then is `ProjectNotFound`, with a
  message naming the date (a project that has no file at all is passed
  through: there is nothing to date it by);
- the project list is passed through unchanged: it carries no dates, and a
  name that did not exist yet answers 404 on its page.

Hidden files are listed in `private["hidden-files"]` like a policy's. Files
themselves are not dated: `get_file` passes through, as a file hidden by the
snapshot is still the same valid file (the snapshot route serves files with
the normal files route).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

from typing_extensions import override

from packyard.errors import ProjectNotFound
from packyard.model import ProjectDetail, RequestContext
from packyard.repository.base import DelegatingRepository, Repository
from packyard.repository.policy import PageMemo, Verdict, hide_files, timestamp
from packyard.serialize import upload_time

MAX_REMEMBERED_PAGES = 4096


class NotYetPublished(ProjectNotFound):
    """A project that had no file by the date of a snapshot."""

    def __init__(self, name: str, day: date) -> None:
        super().__init__(name)
        self.message = f"Project {name!r} had no file published by the end of {day} (UTC)."
        self.args = (self.message,)


class SnapshotRepository(DelegatingRepository):
    """The chain's pages restricted to files uploaded by the end of `day` (UTC)."""

    def __init__(
        self, source: Repository, day: date, *, max_pages: int = MAX_REMEMBERED_PAGES
    ) -> None:
        super().__init__(source)
        self.day = day
        self.cutoff = datetime.combine(day + timedelta(days=1), time(0), UTC)
        self._cutoff = self.cutoff.timestamp()
        # The cut-off never moves, so a verdict holds for as long as its page is the same.
        self._pages = PageMemo(self._judge, max_pages)

    @override
    async def get_project(self, name: str, ctx: RequestContext) -> ProjectDetail:
        """The page as of the snapshot date (same object while the source's is the same).

        Raises:
            NotYetPublished: the project had files, none of them by that date.
            ProjectNotFound, UpstreamError, UpstreamUnavailable: from the source.
        """
        detail = await self.source.get_project(name, ctx)
        dated = self._pages(name, detail, 0.0).detail
        if detail.files and not dated.files:
            raise NotYetPublished(name, self.day)
        return dated

    def _judge(self, detail: ProjectDetail, now: float) -> Verdict:
        label = f"snapshot of {self.day}"
        reasons: dict[str, str] = {}
        for dist in detail.files:
            if dist.upload_time is None:
                reasons[dist.filename] = f"{label}: the file has no upload time to date it by"
            elif timestamp(dist.upload_time) >= self._cutoff:
                reasons[dist.filename] = f"{label}: uploaded {upload_time(dist.upload_time)}"
        return Verdict(hide_files(detail, reasons), reasons)
