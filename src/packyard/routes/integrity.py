"""`/integrity/<project>/<version>/<filename>/provenance`: PEP 740 provenance.

The provenance object of a file, as `application/vnd.pypi.integrity.v1+json`,
the URL a page's `provenance` key (JSON) and `data-provenance` attribute
(HTML) give. The file must be on the project's page as the chain serves it
now: a file a policy hides, a quarantined project's, or one deleted since has
no provenance here either. An in-house file's provenance is the one verified
at upload (`attestations/`), read from its `files` row; an upstream file's is
the upstream's document, fetched from the URL its page gives, checked and
kept (`repository/upstream_provenance.py`; 502 for a malformed one, 503 while
the upstream is down and the document was never kept).

404 with a message for a path of another shape, a version that is not the
file's, a file not on the page, or a file without provenance; 405 for a
method other than GET or HEAD; the chain's own errors (503 while an upstream
or the database is down) as everywhere (`routes/errors.py`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Final
from urllib.parse import unquote

from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version
from starlette.types import Receive, Scope, Send

from packyard.errors import NotFound, PackyardError
from packyard.model import SOURCE_LOCAL, DistFile, ProjectDetail
from packyard.repository.base import Repository
from packyard.routes.asgi import send_response
from packyard.routes.errors import error_parts
from packyard.routes.files import request_context
from packyard.routes.simple import local_path
from packyard.serialize import file_version

PREFIX: Final = "/integrity/"
MEDIA_TYPE: Final = b"application/vnd.pypi.integrity.v1+json"
_USAGE: Final = (
    "Provenance URLs have the form /integrity/<project>/<version>/<filename>/provenance."
)

LocalProvenance = Callable[[str], Awaitable[str | None]]
"""The stored provenance object of an in-house file, by filename (None: none)."""
UpstreamProvenance = Callable[[str, str, DistFile], Awaitable[bytes | None]]
"""The provenance document of a file on an upstream's page: (upstream label,
project, the page's entry) -> the document (None: none)."""


async def _no_upstream_provenance(upstream: str, project: str, dist: DistFile) -> None:
    return None


class IntegrityRoute:
    """ASGI handler of every path under `/integrity/`."""

    def __init__(
        self,
        chain: Repository,
        local: LocalProvenance,
        upstream: UpstreamProvenance = _no_upstream_provenance,
    ) -> None:
        self._chain = chain
        self._local = local
        self._upstream = upstream

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        head = scope["method"] == "HEAD"
        if scope["method"] not in ("GET", "HEAD"):
            headers = [(b"allow", b"GET, HEAD"), (b"content-type", b"text/plain; charset=utf-8")]
            await send_response(send, 405, headers, b"Method not allowed: GET or HEAD only.\n")
            return
        try:
            body = await self._provenance(scope)
        except PackyardError as error:
            status, headers, text = error_parts(error)
            await send_response(send, status, headers, text, head=head)
            return
        headers = [(b"content-type", MEDIA_TYPE), (b"cache-control", b"max-age=600")]
        await send_response(send, 200, headers, body, head=head)

    async def _provenance(self, scope: Scope) -> bytes:
        project, filename = parse_integrity_path(scope)
        page = await self._chain.get_project(project, request_context(scope))
        dist = _listed(page, filename)
        if dist is None:
            raise NotFound(f"{filename} is not a file of project {project!r}.")
        document: str | bytes | None
        if page.source == SOURCE_LOCAL:
            document = await self._local(filename)
        else:
            document = await self._upstream(page.source, project, dist)
        if document is None:
            raise NotFound(f"{filename} has no provenance (PEP 740) on this server.")
        return document.encode() if isinstance(document, str) else document


def parse_integrity_path(scope: Scope) -> tuple[str, str]:
    """(normalised project, filename) of an `/integrity/…/provenance` path.

    Raises:
        NotFound: another shape, or a version that is not the filename's.
    """
    parts = local_path(scope)[len(PREFIX) :].split("/")
    if len(parts) != 4 or parts[3] != "provenance" or not all(parts[:3]):
        raise NotFound(f"No page at {scope['path']!r}. {_USAGE}")
    project, version, filename = (unquote(part) for part in parts[:3])
    if not _same_version(version, file_version(filename)):
        raise NotFound(f"{filename} is not a file of version {version!r}. {_USAGE}")
    return canonicalize_name(project), filename


def _same_version(given: str, actual: str | None) -> bool:
    if actual is None:
        return False
    try:
        return Version(given) == Version(actual)
    except InvalidVersion:
        return False


def _listed(page: ProjectDetail, filename: str) -> DistFile | None:
    return next((dist for dist in page.files if dist.filename == filename), None)
