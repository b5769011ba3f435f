"""`SpooledWriter`: the half every blob writer shares.

A blob's key is named by its sha256, known only after its last byte, so
every store first writes the bytes into a local file (its spool), hashing
them on the way; the stores differ only in what `commit` does with the
spool (rename it into place; upload it) and how `abort` throws it away.
A spool that fills its disk raises `StorageFull`, naming the place.
"""

from __future__ import annotations

from typing import BinaryIO

import anyio.to_thread

from packyard.storage.digests import Digests
from packyard.storage.full import storing


class SpooledWriter:
    """Writes into `spool` while hashing; the base of the stores' `BlobWriter`s.

    `place` names where the spool lives in messages ("the blob store
    file:///srv/files"), `filename` the blob being written.
    """

    def __init__(self, spool: BinaryIO, place: str, filename: str) -> None:
        self._spool = spool
        self._place = place
        self._filename = filename
        self._digests = Digests()
        self._done = False

    @property
    def size(self) -> int:
        """Bytes written so far."""
        return self._digests.size

    def hexdigests(self) -> dict[str, str]:
        """`sha256`, `blake2_256` and `md5` of the bytes written so far (lowercase hex)."""
        return self._digests.hexdigests()

    async def write(self, data: bytes) -> None:
        """Append `data` (in a worker thread).

        Raises:
            StorageFull: the spool's disk is full.
            OSError: the bytes could not be written.
            RuntimeError: the writer was already committed or aborted.
        """
        self._check_open()
        with storing(self._place, self._filename):
            await anyio.to_thread.run_sync(self._write, data)

    def _write(self, data: bytes) -> None:
        self._spool.write(data)
        self._digests.update(data)

    def _check_open(self) -> None:
        if self._done:
            raise RuntimeError("this blob writer was already committed or aborted")
