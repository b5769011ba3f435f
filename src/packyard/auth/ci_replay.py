"""Replay protection for CI ID tokens that upload: each token's `jti` is used for one release.

A CI job's ID token travels in clear through the job (logs, environment,
tools); whoever copies it could upload with it until it expires. So the
first upload made with a token records its `jti` (RFC 7519 §4.1.7: a unique
id per issuer) with the release it went to, until the token's `exp`; the
same token may then upload only further files of that release, which is what
`twine upload dist/*` and `uv publish` do (one request per file, the same
token each time). A copied token cannot publish another version or another
project, and the rows go when their token could not sign in anyway.

The row is written in a transaction of its own once the upload's project and
version are known, before its file is checked and stored: a second upload of
the same release with the same token passes; a replay for another release is
refused (403) and stores nothing. A race of two first uploads is decided by
the primary key: one row wins, the other upload compares itself with it.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from packyard.auth.identity import Identity
from packyard.db.models import upsert
from packyard.db.sign_ins import UsedCiToken
from packyard.errors import PermissionDenied


def claim_upload(session: Session, identity: Identity, project: str, version: str) -> None:
    """Record that `identity`'s CI token uploads to `project` `version`, or check that
    it already did (no-op for other identities). The caller commits.

    Raises:
        PermissionDenied: the token has no `jti` or `exp`, or already uploaded to
            another release.
    """
    if identity.kind != "ci":
        return
    jti, exp, issuer = (identity.claims.get(k) for k in ("jti", "exp", "iss"))
    if not isinstance(jti, str) or not jti or not isinstance(exp, int | float):
        raise PermissionDenied(
            "The CI token has no 'jti' claim, so its reuse cannot be detected: "
            "it may not upload. Use an issuer whose ID tokens carry one (GitLab and GitHub do)."
        )
    now = datetime.now(UTC)
    key = hashlib.sha256(f"{issuer} {jti}".encode()).hexdigest()
    session.execute(delete(UsedCiToken).where(UsedCiToken.expires_at <= now))
    row = {
        "id": key,
        "project": project,
        "version": version,
        "expires_at": datetime.fromtimestamp(exp, UTC),
    }
    session.execute(upsert(session, UsedCiToken).values(**row).on_conflict_do_nothing())
    used = session.execute(
        select(UsedCiToken.project, UsedCiToken.version).where(UsedCiToken.id == key)
    ).one()
    if (used.project, used.version) != (project, version):
        raise PermissionDenied(
            f"This CI token (jti {jti!r}) already uploaded to {used.project} {used.version}: "
            "a CI token publishes one release. Request a new ID token for another upload."
        )
