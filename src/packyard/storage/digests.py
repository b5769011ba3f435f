"""The digests every blob is stored with, computed while its bytes stream in.

sha256 names the blob (its key) and is what PEP 503/691 pages carry;
blake2b-256 is how uploads are told apart (as on PyPI); md5 is what PyPI
still shows beside them.
"""

from __future__ import annotations

import hashlib
from typing import Protocol


class _Hash(Protocol):
    def update(self, data: bytes, /) -> None: ...
    def hexdigest(self) -> str: ...


class Digests:
    """The running sha256, blake2_256 and md5 of the bytes given so far, and their size."""

    def __init__(self) -> None:
        self.size = 0
        self._hashes: dict[str, _Hash] = {
            "sha256": hashlib.sha256(),
            "blake2_256": hashlib.blake2b(digest_size=32),
            "md5": hashlib.md5(usedforsecurity=False),
        }

    def update(self, data: bytes) -> None:
        for digest in self._hashes.values():
            digest.update(data)
        self.size += len(data)

    def hexdigests(self) -> dict[str, str]:
        """`sha256`, `blake2_256` and `md5` (lowercase hex)."""
        return {name: digest.hexdigest() for name, digest in self._hashes.items()}

    @classmethod
    def of(cls, content: bytes) -> dict[str, str]:
        """The hexdigests of `content`."""
        digests = cls()
        digests.update(content)
        return digests.hexdigests()
