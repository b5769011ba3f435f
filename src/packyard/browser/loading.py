"""Fetching and parsing a release's core metadata through the chain.

For a wheel, `<wheel>.metadata` (PEP 658) from the chain: the stored METADATA
for in-house wheels, the upstream's file for public ones (which may be slow:
the project page shows it asynchronously). For an in-house project with only
an sdist, PKG-INFO is read out of the stored sdist. An upstream sdist is never
downloaded just to show a page.
"""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import anyio.to_thread

from packyard.browser.metadata import ProjectMetadata, parse_metadata
from packyard.browser.releases import FileRow
from packyard.dists.filenames import parse_filename
from packyard.dists.metadata import MAX_METADATA_SIZE, read_core_metadata
from packyard.errors import InvalidDistribution, NotFound, PackyardError
from packyard.model import ANONYMOUS, InlineFile, RemoteFile, Resource, StoredFile
from packyard.repository.base import Repository

MAX_SDIST_SIZE = 256 * 1024 * 1024  # larger in-house sdists are not opened for a page


async def load_metadata(chain: Repository, name: str, row: FileRow) -> ProjectMetadata | None:
    """The parsed metadata of `row`, a file of project `name`; None when none can be had.

    Raises:
        UpstreamError, UpstreamUnavailable: the upstream failed (worth a retry).
        PackyardError: the store holds damaged data.
    """
    try:
        if row.kind == "Wheel":
            resource = await chain.get_file(name, row.filename + ".metadata", ANONYMOUS)
            content = await read_resource(resource, MAX_METADATA_SIZE)
            return parse_metadata(content)
        resource = await chain.get_file(name, row.filename, ANONYMOUS)
        if not isinstance(resource, StoredFile) or resource.size > MAX_SDIST_SIZE:
            return None
        return await _sdist_metadata(resource)
    except (NotFound, InvalidDistribution):
        return None


async def read_resource(resource: Resource, limit: int) -> bytes:
    """All bytes of a resource (at most `limit`), checked against its sha256 when known.

    Raises:
        PackyardError: larger than `limit`, or the bytes do not match the sha256.
        UpstreamError, UpstreamUnavailable, FileNotFound: reading an upstream file failed.
    """
    if isinstance(resource, InlineFile):
        content = resource.content
    else:
        chunks: list[bytes] = []
        size = 0
        async for chunk in _chunks(resource):
            size += len(chunk)
            if size > limit:
                raise PackyardError(f"{resource.filename!r} is larger than {limit} bytes.")
            chunks.append(chunk)
        content = b"".join(chunks)
    if len(content) > limit:
        raise PackyardError(f"{resource.filename!r} is larger than {limit} bytes.")
    if resource.sha256 and hashlib.sha256(content).hexdigest() != resource.sha256:
        raise PackyardError(f"{resource.filename!r} does not match its sha256.")
    return content


async def _chunks(resource: StoredFile | RemoteFile) -> AsyncIterator[bytes]:
    if isinstance(resource, StoredFile):
        async for chunk in resource.store.read(resource.key, None):
            yield chunk
        return
    async with resource.opener.open(resource.url, None) as body:
        async for chunk in body.chunks:
            yield chunk


async def _sdist_metadata(resource: StoredFile) -> ProjectMetadata:
    # The sdist readers take a path (tarfile and zipfile seek), so the blob is
    # copied to a temporary file first.
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / resource.filename
        async with await anyio.open_file(path, "wb") as out:
            async for chunk in _chunks(resource):
                await out.write(chunk)
        dist = parse_filename(resource.filename)
        core = await anyio.to_thread.run_sync(read_core_metadata, path, dist)
    return parse_metadata(core.content)
