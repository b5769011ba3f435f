"""A full disk, told apart from other write failures: `StorageFull` (a 507) naming the place.

`OSError` ENOSPC (no space left) and EDQUOT (a quota reached) mean the same
to a client: nothing can be stored there until an operator acts. The stores
translate them where they write (`storing`), so every caller up to the HTTP
edge sees one domain error, and each is reported to the fault log
(`faults.py`: one line per place per interval, with a count).
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from packyard import faults
from packyard.errors import StorageFull

FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})


def is_full(error: BaseException) -> bool:
    """Whether `error` says there is no space left (or a quota is reached)."""
    return isinstance(error, StorageFull) or (
        isinstance(error, OSError) and error.errno in FULL_ERRNOS
    )


@contextmanager
def storing(place: str, filename: str) -> Iterator[None]:
    """Within this block, a full disk raises `StorageFull(place, filename)`.

    Raises:
        StorageFull: an `OSError` with ENOSPC or EDQUOT was raised (chained).
    """
    try:
        yield
    except StorageFull:
        raise
    except OSError as error:
        if error.errno not in FULL_ERRNOS:
            raise
        full = StorageFull(place, filename)
        faults.report("storage-full", place, full.message, store=place, filename=filename)
        raise full from error


def free_bytes(directory: Path) -> int:
    """Bytes an unprivileged process may still write on the file system of
    `directory` (or of its nearest existing parent: it may not exist yet)."""
    while not directory.exists() and directory != directory.parent:
        directory = directory.parent
    stat = os.statvfs(directory)
    return stat.f_bavail * stat.f_frsize


def check_room(store: object, filename: str, size: int) -> None:
    """Refuse, before a byte is written, a blob of `size` bytes that `store` has
    no room for. Only a store that can tell (`free_bytes()` and `place`, as the
    filesystem and S3 stores have) is asked; any other passes.

    Raises:
        StorageFull: `store` has fewer than `size` bytes free.
    """
    free = getattr(store, "free_bytes", None)
    if free is None or free() >= size:
        return
    place = str(getattr(store, "place", "the blob store"))
    full = StorageFull(place, filename)
    faults.report("storage-full", place, full.message, store=place, filename=filename)
    raise full
