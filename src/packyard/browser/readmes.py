"""READMEs as pages show them: rendered once per distribution file, for every replica.

`Readmes.html` answers from the database (`db.readmes`) when the file's
README was rendered before, by this replica or another, at upload or at a
first view; else it renders it in a worker thread and keeps the result.
`Readmes.prepare` is the upload's hook: a new in-house release is rendered
while its publisher waits, so no reader ever pays for it.

A README larger than `MAX_RENDERED_README` is never rendered (uploads refuse
those; an upstream's may be one): a one-line notice stands in for it.

Images on other hosts (badges, mostly) are shown as their alt text
(`outside_images_as_text`), unless `[browser] image_hosts` allows their host:
the page's Content-Security-Policy would block them, and a closed network
could not load them anyway, so a broken-image icon is all a reader would see.
This is done on each answer, not in the kept HTML, so that changing
`image_hosts` needs no re-rendering.
"""

from __future__ import annotations

import contextlib
import html
import logging
import re
from collections.abc import Sequence
from html.parser import HTMLParser
from urllib.parse import urlsplit

import anyio.to_thread
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from packyard.browser.metadata import parse_metadata
from packyard.db.readmes import find_readme, keep_readme
from packyard.dists.readme import MAX_README_BYTES, render_readme

logger = logging.getLogger(__name__)

MAX_RENDERED_README = MAX_README_BYTES
_IMG = re.compile(r"<img\b[^>]*>", re.IGNORECASE)
_DEFAULT_PORTS = {"http": 80, "https": 443}


class Readmes:
    """Rendered READMEs, kept in the database of `sessions` (None: not kept)."""

    def __init__(
        self, sessions: sessionmaker[Session] | None = None, image_hosts: Sequence[str] = ()
    ) -> None:
        """`image_hosts`: `[browser] image_hosts`, the CSP sources whose images stay."""
        self._sessions = sessions
        self.image_hosts = tuple(image_hosts)

    def showing_images_from(self, image_hosts: Sequence[str]) -> Readmes:
        """These READMEs (the same database) for pages that may load images from
        `image_hosts` (`[browser] image_hosts`)."""
        return Readmes(self._sessions, image_hosts)

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
        if kept is None:
            kept = await anyio.to_thread.run_sync(render_readme, description, content_type)
            await self._keep(file_sha256, kept)
        return outside_images_as_text(kept, self.image_hosts)

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


def outside_images_as_text(readme: str, image_hosts: Sequence[str] = ()) -> str:
    """`readme` (sanitised HTML) with each `<img>` on another host replaced by its
    alt text (escaped, in `<span class="readme-image-alt">`; nothing when it has
    none). Images with a relative or `data:` URL, and those on a host that one of
    `image_hosts` (CSP host-sources) matches, stay."""
    if "<img" not in readme.lower():
        return readme

    def replace(match: re.Match[str]) -> str:
        attributes = _attributes(match.group(0))
        if not _outside(attributes.get("src") or "", image_hosts):
            return match.group(0)
        alt = (attributes.get("alt") or "").strip()
        if not alt:
            return ""
        return f'<span class="readme-image-alt">{html.escape(alt)}</span>'

    return _IMG.sub(replace, readme)


class _TagReader(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.attributes: dict[str, str | None] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.attributes = dict(attrs)

    handle_startendtag = handle_starttag


def _attributes(tag: str) -> dict[str, str | None]:
    reader = _TagReader()
    reader.feed(tag)
    reader.close()
    return reader.attributes


def _outside(src: str, image_hosts: Sequence[str]) -> bool:
    """Whether an image at `src` is on a host the page may not load images from."""
    src = src.strip()
    try:
        parts = urlsplit(src)
        port = parts.port
    except ValueError:
        return True
    if not parts.netloc:  # relative, or data: (allowed by the policy)
        return parts.scheme.lower() not in ("", "data")
    host = (parts.hostname or "").lower()
    scheme = parts.scheme.lower()
    port = port or _DEFAULT_PORTS.get(scheme)
    return not any(_matches(source, scheme, host, port) for source in image_hosts)


def _matches(source: str, scheme: str, host: str, port: int | None) -> bool:
    """A CSP host-source (`[scheme://][*.]host[:port]`) against an image's URL.

    Without a scheme, http and https both match (the page's own may be either).
    """
    wanted_scheme, _, rest = source.rpartition("://")
    if wanted_scheme and wanted_scheme.lower() != scheme:
        return False
    if scheme not in _DEFAULT_PORTS:
        return False
    pattern, _, wanted_port = rest.partition(":")
    pattern = pattern.lower()
    if wanted_port and wanted_port != "*" and int(wanted_port) != port:
        return False
    if not wanted_port and port != _DEFAULT_PORTS[scheme]:
        return False
    if pattern.startswith("*."):
        return host.endswith(pattern[1:])
    return host == pattern


def _too_large(size: int) -> str:
    return (
        f"<p>The README is {size / 1024**2:.1f} MiB, larger than this server renders "
        f"({MAX_RENDERED_README / 1024**2:g} MiB).</p>"
    )
