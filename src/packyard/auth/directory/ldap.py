"""`LdapDirectory`: people, their groups and their manager, read from an LDAP
directory (RFC 4511) with ldap3.

A lookup binds (as `bind_dn`, or anonymously), finds the one entry `user_filter`
matches under `base_dn`, the groups `group_filter` matches under `group_base_dn`,
and the manager's entry that `manager_attribute` names. Every value put into a
filter is escaped (RFC 4515 §3: `*`, `(`, `)`, `\\` and NUL as `\\XX`), and a name
that is not a valid packyard user name is not looked up at all, so a name such
as `*)(uid=*` finds nobody, never someone else.

Time is bounded: connecting waits at most `timeout_seconds`, and one lookup's
operations share a budget of twice that (the socket's timeout is set to what is
left before each), so a directory that accepts connections but never answers
costs a sign-in about 2 × `timeout_seconds`, then `DirectoryUnavailable`.

A failure is never an answer: a lookup returns None only when the directory
answered that nobody (or, logged, more than one entry) has the name. Every
failure to ask (a refused connection, a timeout, a refused bind, an error result
such as a missing base DN or a size limit cutting a person's groups short)
raises `DirectoryUnavailable`, so a refresh never takes an outage or a mistake
in the settings for everyone leaving.

Referrals are not followed: they would take our bind password to whichever
server they name.

The calls block (ldap3 is synchronous): callers run them in a worker thread.
Each call uses a connection of its own, so one `LdapDirectory` may be shared
between threads.
"""

from __future__ import annotations

import logging
import math
import re
import ssl
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Literal

import ldap3
from ldap3.core.exceptions import LDAPCertificateError, LDAPException
from ldap3.utils.conv import escape_filter_chars

from packyard.auth.directory.profile import DirectoryProfile, DirectoryUnavailable
from packyard.errors import ConfigurationError
from packyard.publish.accounts import ACCOUNT_NAME
from packyard.settings import LdapSettings

logger = logging.getLogger(__name__)

# LDAP result codes (RFC 4511 §4.1.9).
SUCCESS = 0
SIZE_LIMIT_EXCEEDED = 4
NO_SUCH_OBJECT = 32
INVALID_DN_SYNTAX = 34


class LdapDirectory:
    """The directory of `[auth.ldap]`: `lookup` for a sign-in, `lookup_many` for the
    periodic refresh, `ping` for a readiness check."""

    def __init__(self, settings: LdapSettings) -> None:
        """Raises:
        ConfigurationError: `url` is not one ldap3 can use (such as a port that
            is not a number); `bind_dn` is set without a password (an empty one
            would be an unauthenticated bind, RFC 4513 §5.1.2, that servers answer
            as anonymous); or `bind_secret_file` cannot be read.
        """
        try:
            _server(settings)
        except LDAPException as error:
            raise ConfigurationError(f"[auth.ldap] url {settings.url}: {_cause(error)}") from error
        if settings.bind_dn is not None and settings.secret() is None:
            raise ConfigurationError(
                "[auth.ldap] bind_dn is set, but neither bind_secret nor bind_secret_file"
            )
        self._settings = settings

    def lookup(self, username: str) -> DirectoryProfile | None:
        """What the directory says of `username` (a lower-case packyard user name).

        Returns:
            The profile; None when no entry matches `user_filter`, when more than
            one does (logged: the filter is ambiguous), or when `username` is not
            a valid packyard user name (the directory is then not asked).

        Raises:
            DirectoryUnavailable: the directory could not be reached, did not answer
                in time, refused our bind, or answered with an error.
        """
        if not ACCOUNT_NAME.fullmatch(username):
            return None
        with self._session() as session:
            return session.profile(username)

    def lookup_many(self, usernames: Iterable[str]) -> dict[str, DirectoryProfile | None]:
        """`lookup` for each of `usernames`, over one connection (the refresh).

        Each name has the time budget of one `lookup`.

        Raises:
            DirectoryUnavailable: as `lookup`, for the first name that fails: then
                no answer is given for any, rather than some.
        """
        profiles: dict[str, DirectoryProfile | None] = {}
        with self._session() as session:
            for username in usernames:
                session.restart_clock()
                valid = ACCOUNT_NAME.fullmatch(username) is not None
                profiles[username] = session.profile(username) if valid else None
        return profiles

    def ping(self) -> None:
        """Connect, bind and read the entry of `base_dn`.

        Raises:
            DirectoryUnavailable: that failed; the message says why.
        """
        with self._session() as session:
            session.read_base()

    @contextmanager
    def _session(self) -> Iterator[_Session]:
        settings = self._settings
        url = settings.url
        connection = ldap3.Connection(
            _server(settings),
            user=settings.bind_dn,
            password=_password(settings),
            # ldap3 also sets it as SO_RCVTIMEO, packed as an integer (a float fails);
            # the exact timeout is the socket's, set by `_Session.arm`.
            receive_timeout=math.ceil(settings.timeout_seconds),
            read_only=True,
            auto_referrals=False,
            raise_exceptions=False,
            auto_escape=False,  # `_fill` escapes, once
        )
        session = _Session(settings, connection)
        try:
            connection.open()
            if settings.start_tls and not connection.server.ssl:
                session.arm()
                if not connection.start_tls():
                    raise DirectoryUnavailable(f"The directory {url} refused StartTLS")
            session.arm()
            if not connection.bind():
                raise DirectoryUnavailable(_refused_bind(settings, connection.result))
            yield session
        except (LDAPException, OSError) as error:
            raise DirectoryUnavailable(_describe(settings, error)) from error
        except (LookupError, ValueError) as error:  # ldap3's decoder, fed what is not LDAP
            raise DirectoryUnavailable(
                f"The directory {url} answered what is not LDAP ({error!r}): is it an LDAP server?"
            ) from error
        finally:
            with suppress(LDAPException, OSError):  # already closed, or a broken socket
                connection.unbind()


@dataclass(frozen=True, slots=True)
class _Entry:
    dn: str
    attributes: Mapping[str, list[bytes]]

    def first(self, attribute: str) -> str | None:
        """The first value of `attribute` (UTF-8, RFC 4517 §3.3.6), None if absent or blank."""
        for value in self.attributes.get(attribute, []):
            text = value.decode("utf-8", errors="replace").strip()
            if text:
                return text
        return None


class _Session:
    """One bound connection, and the time left for the lookup under way."""

    def __init__(self, settings: LdapSettings, connection: ldap3.Connection) -> None:
        self._settings = settings
        self._connection = connection
        self._deadline = 0.0
        self.restart_clock()

    def restart_clock(self) -> None:
        self._deadline = time.monotonic() + 2 * self._settings.timeout_seconds

    def arm(self) -> None:
        """Give the next operation what is left of the budget, at most `timeout_seconds`."""
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise DirectoryUnavailable(
                _too_slow(self._settings, 2 * self._settings.timeout_seconds)
            )
        self._connection.socket.settimeout(min(left, self._settings.timeout_seconds))

    def profile(self, username: str) -> DirectoryProfile | None:
        settings = self._settings
        search_filter = _fill(settings.user_filter, username=username)
        attributes = [settings.email_attribute, settings.full_name_attribute]
        if settings.manager_attribute is not None:
            attributes.append(settings.manager_attribute)
        # Two are enough to tell one from several.
        entries, complete = self._search(settings.base_dn, search_filter, attributes, size_limit=2)
        if not entries:
            return None
        if len(entries) > 1 or not complete:
            logger.warning(
                "The directory %s has more than one entry for %r (%s): treated as nobody",
                settings.url,
                username,
                search_filter,
            )
            return None
        entry = entries[0]
        return DirectoryProfile(
            username=username,
            email=entry.first(settings.email_attribute),
            full_name=entry.first(settings.full_name_attribute),
            groups=self._groups(entry.dn, username),
            manager=self._manager(entry),
        )

    def read_base(self) -> None:
        self._search(self._settings.base_dn, "(objectClass=*)", [], scope=ldap3.BASE)

    def _groups(self, user_dn: str, username: str) -> frozenset[str]:
        settings = self._settings
        base = settings.group_base_dn or settings.base_dn
        search_filter = _fill(settings.group_filter, user_dn=user_dn, username=username)
        name = settings.group_name_attribute
        entries, complete = self._search(base, search_filter, [name])
        if not complete:
            # Part of the groups would take the others away: keep what was known.
            raise DirectoryUnavailable(
                f"The directory {settings.url} listed only some of {username}'s groups "
                "(it has a size limit)"
            )
        return frozenset(group for entry in entries if (group := entry.first(name)) is not None)

    def _manager(self, entry: _Entry) -> str | None:
        settings = self._settings
        if settings.manager_attribute is None:
            return None
        manager_dn = entry.first(settings.manager_attribute)
        if manager_dn is None:
            return None
        # A manager who left (or a DN that is not one) is no manager, not an outage.
        entries, _ = self._search(
            manager_dn,
            "(objectClass=*)",
            [settings.username_attribute],
            scope=ldap3.BASE,
            missing_ok=True,
        )
        name = entries[0].first(settings.username_attribute) if entries else None
        if name is None or not ACCOUNT_NAME.fullmatch(name.lower()):
            return None
        return name.lower()

    def _search(
        self,
        base: str,
        search_filter: str,
        attributes: list[str],
        *,
        scope: Literal["BASE", "SUBTREE"] = ldap3.SUBTREE,
        size_limit: int = 0,
        missing_ok: bool = False,
    ) -> tuple[list[_Entry], bool]:
        """The entries found, and whether they are all (no size limit was hit).

        Raises:
            DirectoryUnavailable: an error result (`base` missing, unless `missing_ok`).
        """
        self.arm()
        connection = self._connection
        connection.search(
            base, search_filter, search_scope=scope, attributes=attributes, size_limit=size_limit
        )
        code = connection.result["result"]
        if missing_ok and code in (NO_SUCH_OBJECT, INVALID_DN_SYNTAX):
            return [], True
        if code not in (SUCCESS, SIZE_LIMIT_EXCEEDED):
            raise DirectoryUnavailable(_error_result(self._settings, base, connection.result))
        entries = [
            _Entry(item["dn"], item["raw_attributes"])
            for item in connection.response or []
            if item["type"] == "searchResEntry"  # not the references we do not follow
        ]
        return entries, code == SUCCESS


def _fill(template: str, **values: str) -> str:
    """`template` with each `{name}` of `values` replaced by its value, escaped."""
    placeholders = re.compile("|".join(re.escape(f"{{{name}}}") for name in values))
    return placeholders.sub(lambda match: escape_filter_chars(values[match[0][1:-1]]), template)


def _server(settings: LdapSettings) -> ldap3.Server:
    return ldap3.Server(
        settings.url,
        connect_timeout=settings.timeout_seconds,
        get_info=ldap3.NONE,  # no schema or root DSE read: a round trip less
        tls=_tls(settings),
    )


def _tls(settings: LdapSettings) -> ldap3.Tls:
    return ldap3.Tls(
        validate=ssl.CERT_REQUIRED if settings.tls_verify else ssl.CERT_NONE,
        ca_certs_file=str(settings.ca_file) if settings.ca_file is not None else None,
    )


def _password(settings: LdapSettings) -> str | None:
    try:
        return settings.secret()
    except ConfigurationError as error:  # the file went away since start-up
        raise DirectoryUnavailable(str(error)) from error


def _describe(settings: LdapSettings, error: BaseException) -> str:
    """What went wrong talking to the directory, for people."""
    if isinstance(error, TimeoutError):  # ldap3's socket errors are also the OSError
        return _too_slow(settings, settings.timeout_seconds)
    if isinstance(error, ConnectionRefusedError):
        return f"The directory {settings.url} refused the connection (is it running?)"
    if isinstance(error, ssl.SSLError | LDAPCertificateError):
        return f"The directory {settings.url} failed the TLS handshake: {_cause(error)}"
    return f"The directory {settings.url} could not be asked: {_cause(error)}"


def _cause(error: BaseException) -> str:
    """ldap3's own words: its first argument, a string or a tuple holding one."""
    cause: object = error.args[0] if error.args else error
    while isinstance(cause, tuple) and cause:
        cause = cause[0]
    return str(cause)


def _too_slow(settings: LdapSettings, seconds: float) -> str:
    return f"The directory {settings.url} did not answer within {seconds:g} s"


def _refused_bind(settings: LdapSettings, result: Mapping[str, object]) -> str:
    who = f"as {settings.bind_dn}" if settings.bind_dn else "anonymously"
    return f"The directory {settings.url} refused our bind {who}: {_result_text(result)}"


def _error_result(settings: LdapSettings, base: str, result: Mapping[str, object]) -> str:
    if result.get("result") == NO_SUCH_OBJECT:
        return f"The directory {settings.url} has no entry {base}"
    return (
        f"The directory {settings.url} answered a search under {base} with {_result_text(result)}"
    )


def _result_text(result: Mapping[str, object]) -> str:
    description = str(result.get("description") or f"result {result.get('result')}")
    message = str(result.get("message") or "").strip()
    return f"{description} ({message})" if message else description
