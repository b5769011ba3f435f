"""One person as the directory describes them, and the error of a directory that
could not be asked.

A lookup has three outcomes, which callers must keep apart: a profile; None (the
directory answered, and nobody has that name: the person left, or never was);
`DirectoryUnavailable` (no answer: down, slow, our bind refused). Only the second
may ever count as a departure.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class DirectoryProfile:
    """What the directory says of one person."""

    username: str  # lower-case packyard user name
    email: str | None
    full_name: str | None
    groups: frozenset[str]  # directory group names, as the directory spells them
    manager: str | None  # the manager's user name (lower-case), if known


class DirectoryUnavailable(Exception):
    """The directory could not be asked (down, slow, refused our bind); the message
    says which, for people."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
