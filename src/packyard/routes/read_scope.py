"""Which project a read request is about, and whether its caller may read it.

The read guard (`routes/read_auth.py`) lets any valid credential through;
`read_refusal` then keeps a credential limited to some projects (a CI ID
token, `auth.permissions.may_read`) to the index pages and files of those
projects: `/simple/<project>/`, `/files/<project>/<filename>` and the
files' provenance (`/integrity/<project>/…`). Everything
else (the project list, snapshots, search, web pages, the API) is about more
than one project and is refused to it with 403.
"""

from __future__ import annotations

import re

from packaging.utils import canonicalize_name

from packyard.auth.identity import Identity
from packyard.auth.permissions import may_read
from packyard.errors import PermissionDenied

# STANDARDS §1.1 (name normalization spec), ASCII only.
_VALID_NAME = re.compile(r"[A-Z0-9](?:[A-Z0-9._-]*[A-Z0-9])?", re.IGNORECASE | re.ASCII)


def project_of(path: str) -> str | None:
    """The normalised project a path is about (`/simple/<p>/`, `/simple/<p>`,
    `/files/<p>/<filename>`, `/integrity/<p>/<version>/<filename>/provenance`),
    or None for any other path."""
    parts = path.split("/")
    if len(parts) < 3 or parts[0] or not _VALID_NAME.fullmatch(parts[2]):
        return None
    if parts[1] == "simple" and len(parts) <= 4 and (len(parts) == 3 or not parts[3]):
        return canonicalize_name(parts[2])
    if parts[1] == "files" and len(parts) == 4 and parts[3]:
        return canonicalize_name(parts[2])
    if parts[1] == "integrity" and len(parts) == 6 and parts[5] == "provenance":
        return canonicalize_name(parts[2])
    return None


def read_refusal(identity: Identity, path: str) -> PermissionDenied | None:
    """Why `identity` may not read `path` (below the mount point), or None if it may."""
    if may_read(identity, project_of(path)):
        return None
    granted = ", ".join(sorted(identity.projects or ()))
    return PermissionDenied(
        f"'{identity.name}' may read only the index pages and files of the projects it "
        f"publishes ({granted}), not {path}."
    )
