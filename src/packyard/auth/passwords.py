"""Password hashing: argon2id, as OWASP and RFC 9106 recommend.

Hashes are PHC strings (`$argon2id$v=19$m=65536,t=3,p=4$salt$hash`): they carry
their own parameters, so a hash made with older parameters still verifies and
`needs_rehash` tells when to replace it at the next successful sign-in.
"""

from __future__ import annotations

from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

# RFC 9106's second recommended profile (argon2id, 64 MiB, t=3, p=4): about
# 50 ms per hash on a server core. A constant, not a client: it holds only
# the parameters.
_HASHER = PasswordHasher()


@cache
def _dummy_hash() -> str:
    """A valid hash, verified when a name is unknown so that a failed sign-in takes
    as long for an unknown user as for a wrong password. Made on first use, not at
    import: every command-line start would pay for it."""
    return _HASHER.hash("packyard: no such user")


def hash_password(password: str) -> str:
    """The argon2id PHC string of `password`, with a fresh random salt."""
    return _HASHER.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """True if `password` matches `password_hash`.

    `password_hash` None (an unknown user, or one without a password) still
    costs one verification and returns False, so timing does not tell which.
    A hash that is not an argon2 PHC string also returns False (never raises).
    """
    try:
        return (
            _HASHER.verify(password_hash or _dummy_hash(), password) and password_hash is not None
        )
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    """True if `password_hash` was made with other parameters than today's."""
    try:
        return _HASHER.check_needs_rehash(password_hash)
    except (InvalidHashError, ValueError):
        return True
