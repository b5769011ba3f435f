"""Does the blob storage hold what the database says it holds?

What an operator runs after restoring a backup (docs/operations.md): for every
in-house file and its METADATA, the blob must exist and its bytes must hash
to the sha256 the database recorded. Nothing is changed; every problem is
reported, and the caller decides (`packyard verify` exits non-zero).

Blobs are read whole and hashed as they stream, a few at a time: on S3 the
work is waiting for the network, and a few requests in flight hide it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import Enum

import anyio
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from packyard.db.models import File
from packyard.storage.base import BlobStore

CONCURRENCY = 8


class Problem(Enum):
    MISSING = "missing"
    DAMAGED = "damaged"
    UNREADABLE = "unreadable"


@dataclass(frozen=True, slots=True)
class Expected:
    """A blob the database refers to: what it is, where, and its sha256."""

    what: str  # e.g. "acme-1.0.tar.gz" or "acme-1.0-py3-none-any.whl.metadata"
    key: str
    sha256: str


@dataclass(frozen=True, slots=True)
class Finding:
    expected: Expected
    problem: Problem
    detail: str

    def describe(self) -> str:
        return (
            f"{self.problem.value}: {self.expected.what} (blob {self.expected.key}): {self.detail}"
        )


@dataclass(frozen=True, slots=True)
class VerifyReport:
    checked: int
    findings: tuple[Finding, ...]

    @property
    def ok(self) -> bool:
        return not self.findings


def expected_blobs(sessions: sessionmaker[Session]) -> list[Expected]:
    """Every blob the database of `sessions` refers to: each in-house file and
    its METADATA.

    Raises:
        sqlalchemy.exc.SQLAlchemyError: the database cannot be read.
    """
    columns = (File.filename, File.blob_key, File.sha256, File.metadata_blob_key)
    with sessions() as session:
        rows = session.execute(select(*columns, File.metadata_sha256).order_by(File.id)).all()
    expected = []
    for filename, key, sha256, metadata_key, metadata_sha256 in rows:
        expected.append(Expected(filename, key, sha256))
        if metadata_key is not None and metadata_sha256 is not None:
            expected.append(Expected(filename + ".metadata", metadata_key, metadata_sha256))
    return expected


async def verify_blobs(
    store: BlobStore,
    expected: Sequence[Expected],
    progress: Callable[[Expected], None] | None = None,
) -> VerifyReport:
    """Check each of `expected` in `store`; `progress` is called once per blob
    checked (for a progress bar). Never raises for a blob: each problem is a
    finding of the report."""
    findings: list[Finding] = []
    limit = anyio.Semaphore(CONCURRENCY)

    async def check(blob: Expected) -> None:
        async with limit:
            finding = await _check(store, blob)
        if finding is not None:
            findings.append(finding)
        if progress is not None:
            progress(blob)

    async with anyio.create_task_group() as group:
        for blob in expected:
            group.start_soon(check, blob)
    findings.sort(key=lambda finding: (finding.expected.what, finding.problem.value))
    return VerifyReport(len(expected), tuple(findings))


async def _check(store: BlobStore, blob: Expected) -> Finding | None:
    digest = hashlib.sha256()
    try:
        async for chunk in store.read(blob.key, None):
            digest.update(chunk)
    except FileNotFoundError:
        return Finding(blob, Problem.MISSING, "the store has no such blob")
    except OSError as exc:  # StoreUnavailable is one too
        return Finding(blob, Problem.UNREADABLE, str(exc))
    actual = digest.hexdigest()
    if actual != blob.sha256:
        return Finding(blob, Problem.DAMAGED, f"sha256 {actual}, expected {blob.sha256}")
    return None
