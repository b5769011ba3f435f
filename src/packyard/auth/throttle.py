"""Failed password sign-ins, counted per account and per client address.

    throttle = SignInThrottle(sessions, settings.auth)
    keys = throttle.keys("alice", "192.0.2.7")
    throttle.check_memory(keys)                 # on the loop: a known block, no database
    had = throttle.check(keys)                  # in a thread: the shared counters
    ... throttle.failed(keys) / throttle.succeeded(keys) ...

A key is `user:<name>` (any name asked for, known or not, so that being
throttled tells nothing about which names exist) or `addr:<address>` (an
IPv6 client by its /64, which one machine usually holds whole). Each key has a
fixed window of `failed_sign_in_window_seconds` that starts at its first
failure: once its failures reach the limit, every sign-in for the key is
refused (`TooManyFailures`, 429) until the window ends, the right password
included, so guessing gets no further. A success for an account clears the
account's count; an address's count only runs out with its window (else a
guesser with one account of their own could clear it between guesses).

The counters live in the database (`sign_in_failures`), updated with one
`INSERT ... ON CONFLICT DO UPDATE` per key, so that every worker and replica
counts together. Each process also remembers the blocks it has seen, until
they end: a blocked client's further attempts cost neither a database query
nor a thread.

The trade-off of locking accounts: anyone can keep an account locked by
failing to sign in as it. The lock is short (one window) and shows in the
audit trail and events; an operator can lower or turn off the per-account
limit (0) and rely on the per-address one.
"""

from __future__ import annotations

import ipaddress
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence

from sqlalchemy import case, delete, select
from sqlalchemy.orm import Session, sessionmaker

from packyard.db.models import upsert
from packyard.db.sign_ins import SignInFailure
from packyard.errors import TooManyFailures
from packyard.settings import AuthSettings

MAX_REMEMBERED_BLOCKS = 10_000
_ACCOUNT, _ADDRESS = "user:", "addr:"
_MAX_KEY = 200


class SignInThrottle:
    """The per-account and per-address limits of failed password sign-ins."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        settings: AuthSettings,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """`clock`: Unix time, shared by every process (the windows are in the database)."""
        self._sessions = sessions
        self._limits = {
            _ACCOUNT: settings.max_failed_sign_ins_per_account,
            _ADDRESS: settings.max_failed_sign_ins_per_address,
        }
        self._window = settings.failed_sign_in_window_seconds
        self._clock = clock
        self._blocked: OrderedDict[str, float] = OrderedDict()

    def keys(self, username: str, address: str | None) -> tuple[str, ...]:
        """The counters a sign-in as `username` from `address` counts in (limits of 0
        have none)."""
        keys = []
        if self._limits[_ACCOUNT]:
            keys.append((_ACCOUNT + username.lower())[:_MAX_KEY])
        if self._limits[_ADDRESS] and address:
            keys.append((_ADDRESS + _network(address))[:_MAX_KEY])
        return tuple(keys)

    def check_memory(self, keys: Sequence[str]) -> None:
        """Raises TooManyFailures for a block this process has seen and that still runs."""
        now = self._clock()
        for key in keys:
            until = self._blocked.get(key)
            if until is not None:
                if until > now:
                    raise _refusal(key, until - now)
                del self._blocked[key]

    def check(self, keys: Sequence[str]) -> bool:
        """Whether the account of `keys` has failures to clear at its next success.

        Raises:
            TooManyFailures: a key has reached its limit within its window.
        """
        if not keys:
            return False
        now = self._clock()
        with self._sessions() as session:
            rows = session.execute(
                select(SignInFailure.key, SignInFailure.window_start, SignInFailure.failures)
                .where(SignInFailure.key.in_(keys))
                .where(SignInFailure.window_start > now - self._window)
            ).all()
        for key, window_start, failures in rows:
            self._note(key, window_start, failures, now)
        return any(key.startswith(_ACCOUNT) for key, _, _ in rows)

    def failed(self, keys: Sequence[str]) -> None:
        """Count one failed sign-in in each of `keys` (and forget windows long over)."""
        if not keys:
            return
        now = self._clock()
        expired = SignInFailure.window_start <= now - self._window
        with self._sessions.begin() as session:
            session.execute(delete(SignInFailure).where(expired))
            for key in keys:
                insert = upsert(session, SignInFailure).values(
                    key=key, window_start=now, failures=1
                )
                counted = insert.on_conflict_do_update(
                    index_elements=[SignInFailure.key],
                    set_={
                        "failures": case((expired, 1), else_=SignInFailure.failures + 1),
                        "window_start": case((expired, now), else_=SignInFailure.window_start),
                    },
                ).returning(SignInFailure.window_start, SignInFailure.failures)
                window_start, failures = session.execute(counted).one()
                self._remember(key, window_start, failures)

    def succeeded(self, keys: Sequence[str]) -> None:
        """Clear the account's failures after a successful sign-in (not the address's)."""
        accounts = [key for key in keys if key.startswith(_ACCOUNT)]
        if accounts:
            with self._sessions.begin() as session:
                session.execute(delete(SignInFailure).where(SignInFailure.key.in_(accounts)))

    def _note(self, key: str, window_start: float, failures: int, now: float) -> None:
        """Remember and raise a block that the counters show."""
        until = self._remember(key, window_start, failures)
        if until is not None and until > now:
            raise _refusal(key, until - now)

    def _remember(self, key: str, window_start: float, failures: int) -> float | None:
        limit = self._limits[_ACCOUNT if key.startswith(_ACCOUNT) else _ADDRESS]
        if failures < limit:
            return None
        until = window_start + self._window
        self._blocked[key] = until
        self._blocked.move_to_end(key)
        while len(self._blocked) > MAX_REMEMBERED_BLOCKS:
            self._blocked.popitem(last=False)
        return until


def _network(address: str) -> str:
    """The address a client is counted by: itself, or its /64 for IPv6."""
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(parsed, ipaddress.IPv6Address):
        if parsed.ipv4_mapped is not None:
            return str(parsed.ipv4_mapped)
        return str(ipaddress.IPv6Network((parsed, 64), strict=False))
    return str(parsed)


def _refusal(key: str, seconds: float) -> TooManyFailures:
    wait = max(1, int(seconds + 0.999))
    if key.startswith(_ACCOUNT):
        who = f"for the user '{key[len(_ACCOUNT) :]}'"
    else:
        who = "from your address"
    return TooManyFailures(
        f"Too many failed sign-ins {who}: try again in {wait} seconds.", retry_after=wait
    )
