"""`verify_blobs`: every blob the database refers to is present and intact,
on the filesystem and on a real S3 server."""

from __future__ import annotations

from pathlib import Path

import obstore
import pytest

from packyard.publish.importer import import_files
from packyard.storage.base import BlobStore
from packyard.storage.local_copies import LocalCopyStore
from packyard.storage.s3 import S3BlobStore
from packyard.storage.verify import Problem, expected_blobs, verify_blobs
from tests.builders import build_sdist, build_wheel, make_local_store


@pytest.mark.anyio
async def test_a_store_that_holds_everything_passes_and_each_fault_is_named(
    tmp_path: Path, blob_store: BlobStore
) -> None:
    if isinstance(blob_store, LocalCopyStore):
        pytest.skip("`packyard verify` reads the store itself, never a replica's copies")
    dists = tmp_path / "dists"
    dists.mkdir()
    wheel = build_wheel(dists, "acme-verify", "1.0")
    sdist = build_sdist(dists, "acme-verify", "1.0")
    other = build_wheel(dists, "acme-other", "2.0")
    local = make_local_store(tmp_path / "state")
    await import_files([wheel, sdist, other], local.sessions, blob_store)
    expected = expected_blobs(local.sessions)
    # Three files, and the METADATA of each of the two wheels.
    assert sorted(blob.what for blob in expected) == sorted(
        [wheel.name, wheel.name + ".metadata", sdist.name, other.name, other.name + ".metadata"]
    )
    seen: list[str] = []
    report = await verify_blobs(blob_store, expected, lambda blob: seen.append(blob.what))
    assert (report.ok, report.checked, len(seen)) == (True, 5, 5)

    by_name = {blob.what: blob for blob in expected}
    await blob_store.delete(by_name[sdist.name].key)
    # Damage: another file's bytes where the wheel's metadata should be.
    metadata = by_name[wheel.name + ".metadata"]
    await blob_store.delete(metadata.key)
    await replace(blob_store, metadata.key, b"Metadata-Version: 2.1\nName: evil\n")

    report = await verify_blobs(blob_store, expected)
    assert not report.ok
    assert [(f.expected.what, f.problem) for f in report.findings] == [
        (wheel.name + ".metadata", Problem.DAMAGED),
        (sdist.name, Problem.MISSING),
    ]
    assert "expected " + metadata.sha256 in report.findings[0].describe()


async def replace(store: BlobStore, key: str, content: bytes) -> None:
    """Put `content` under `key` itself, as a bad restore would (bypassing the
    content-addressed write)."""
    path = store.local_path(key)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        return
    assert isinstance(store, S3BlobStore)
    await obstore.put_async(store.client, f"{store.prefix}/{key}", content)
