"""Authorization values that just failed, answered from memory without checking again.

A client that repeats a wrong password (a misconfigured pip, a script in a
loop, a guesser replaying one value) would otherwise cost an argon2 check
and a database query each time. A failed value is remembered for a short
`ttl` with its refusal message, and refused again at once.

Kept as `auth.expiring.ExpiringCache` keeps entries (a keyed hash, bounded).
The trade-off: a password set to the value a client keeps sending works for
that client `ttl` seconds later, not at once.
"""

from __future__ import annotations

from packyard.auth.expiring import ExpiringCache


class FailedCredentials(ExpiringCache[str]):
    """Refusal messages of recently failed Authorization values, for `ttl` seconds."""
