"""READMEs as pages show them: rendered once per distribution file, for every replica.

`Readmes.html` answers from the database (`db.readmes`) when the file's
README was rendered before, by this replica or another, at upload or at a
first view; else it renders it in a worker thread and keeps the result.
`Readmes.prepare` is the upload's hook: a new in-house release is rendered
while its publisher waits, so no reader ever pays for it.

A README larger than `MAX_RENDERED_README` is never rendered (uploads refuse
those; an upstream's may be one): a one-line notice stands in for it.
"""

from __future__ import annotations

import contextlib
import logging

import anyio.to_thread
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from packyard.browser.metadata import parse_metadata
from packyard.db.readmes import find_readme, keep_readme
from packyard.dists.readme import MAX_README_BYTES, render_readme

logger = logging.getLogger(__name__)

MAX_RENDERED_README = MAX_README_BYTES


class Readmes:
    """Rendered READMEs, kept in the database of `sessions` (None: not kept)."""

    def __init__(self, sessions: sessionmaker[Session] | None = None) -> None:
        self._sessions = sessions

    async def html(
        self, file_sha256: str | None, description: str | None, content_type: str | None
    ) -> str:
        """The sanitised HTML of the README of the file whose sha256 is `file_sha256`
        (None: a file without one, rendered and not kept).

        A database that cannot be read or written costs a rendering, never the page.
        """
        size = len(description.encode("utf-8", "surrogateescape")) if description else 0
        if size > MAX_RENDERED_README:
            return _too_large(size)
        kept = await self._find(file_sha256)
        if kept is not None:
            return kept
        html = await anyio.to_thread.run_sync(render_readme, description, content_type)
        await self._keep(file_sha256, html)
        return html

    async def prepare(self, file_sha256: str, metadata: bytes) -> None:
        """Render and keep the README in `metadata` (the file's METADATA or PKG-INFO).

        For the upload: a failure is logged, never raised — the upload has
        committed, and a first view renders it after all.
        """
        try:
            parsed = parse_metadata(metadata)
            await self.html(file_sha256, parsed.description, parsed.description_content_type)
        except Exception:  # a README that breaks the renderer must not fail the upload
            logger.exception("could not render the README of the file %s", file_sha256)

    async def _find(self, file_sha256: str | None) -> str | None:
        if self._sessions is None or file_sha256 is None:
            return None
        with contextlib.suppress(SQLAlchemyError):
            return await anyio.to_thread.run_sync(find_readme, self._sessions, file_sha256)
        return None

    async def _keep(self, file_sha256: str | None, html: str) -> None:
        if self._sessions is None or file_sha256 is None:
            return
        with contextlib.suppress(SQLAlchemyError):
            await anyio.to_thread.run_sync(keep_readme, self._sessions, file_sha256, html)


def _too_large(size: int) -> str:
    return (
        f"<p>The README is {size / 1024**2:.1f} MiB, larger than this server renders "
        f"({MAX_RENDERED_README / 1024**2:g} MiB).</p>"
    )
