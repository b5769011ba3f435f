"""`LdapDirectory` against a real slapd (tests/slapd.py): profiles, injection attempts,
changes seen on the next lookup, and a directory that is down, hung or refuses us."""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from packyard.auth.directory.ldap import LdapDirectory
from packyard.auth.directory.profile import DirectoryProfile, DirectoryUnavailable
from packyard.errors import ConfigurationError
from packyard.settings import LdapSettings
from tests.slapd import Slapd, SlapdUnavailable, start_slapd

ALICE = DirectoryProfile(
    username="alice",
    email="alice@example.org",
    full_name="Alice Liddell",
    groups=frozenset({"Accelerator Controls"}),
    manager="bob",
)


@pytest.fixture(scope="module")
def slapd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Slapd]:
    try:
        server = start_slapd(tmp_path_factory.mktemp("slapd"))
    except SlapdUnavailable as error:
        pytest.fail(str(error), pytrace=False)
    yield server
    server.stop()


@pytest.fixture
def running(slapd: Slapd) -> Iterator[Slapd]:
    """The server, brought back after a test that stops or freezes it."""
    yield slapd
    slapd.resume()
    if slapd._process is None:
        slapd.start()


def directory(slapd: Slapd, **overrides: Any) -> LdapDirectory:
    values: dict[str, Any] = {
        "url": slapd.url,
        "bind_dn": slapd.bind_dn,
        "bind_secret": slapd.bind_password,
        "base_dn": slapd.base_dn,
        "timeout_seconds": 2,
    }
    values.update(overrides)
    return LdapDirectory(LdapSettings(**values))


def test_a_person_with_e_mail_name_groups_and_manager(slapd: Slapd) -> None:
    assert directory(slapd).lookup("alice") == ALICE


def test_a_person_without_manager(slapd: Slapd) -> None:
    bob = directory(slapd).lookup("bob")
    assert bob is not None
    assert bob.manager is None
    assert bob.groups == {"packyard-admins"}


def test_an_anonymous_bind(slapd: Slapd) -> None:
    assert directory(slapd, bind_dn=None, bind_secret=None).lookup("alice") == ALICE


def test_groups_under_their_own_base(slapd: Slapd) -> None:
    settings = {"group_base_dn": f"ou=groups,{slapd.base_dn}"}
    assert directory(slapd, **settings).lookup("alice") == ALICE


def test_nobody_of_that_name(slapd: Slapd) -> None:
    assert directory(slapd).lookup("mallory") is None


@pytest.mark.parametrize(
    "username",
    [
        "*",
        "a*",
        "*)(uid=*",
        "alice)(uid=*",
        "admin)(|(uid=*",
        "*)(|(objectClass=*",
        "alice\\",
        "alice\x00",
        "Alice",  # not a packyard user name: callers lower-case it first
        "alice ",
        "",
    ],
)
def test_an_injection_attempt_finds_nobody(slapd: Slapd, username: str) -> None:
    assert directory(slapd).lookup(username) is None


def test_a_value_is_escaped_even_where_the_user_name_rules_would_allow_it(slapd: Slapd) -> None:
    # Names may not hold `*` or parentheses, but a DN may: an Active Directory
    # person is `cn=Smith\, John (IT) *,...`, and {user_dn} goes into group_filter.
    slapd.add_user("jsmith", "Smith, John (IT) *", "john@example.org", "bob", named_by_cn=True)
    slapd.set_groups("jsmith", ["Beam Physics"])
    try:
        profile = directory(slapd).lookup("jsmith")
    finally:
        slapd.remove_user("jsmith")
    assert profile is not None
    assert profile.full_name == "Smith, John (IT) *"
    assert profile.groups == {"Beam Physics"}
    assert profile.manager == "bob"


def test_an_ambiguous_filter_finds_nobody_and_says_so(
    slapd: Slapd, caplog: pytest.LogCaptureFixture
) -> None:
    ambiguous = directory(slapd, user_filter="(|(uid={username})(uid=bob))")
    with caplog.at_level(logging.WARNING, "packyard.auth.directory.ldap"):
        assert ambiguous.lookup("alice") is None
    assert "more than one entry for 'alice'" in caplog.text


def test_changes_are_seen_on_the_next_lookup(slapd: Slapd) -> None:
    ldap = directory(slapd)
    slapd.add_user("dana", "Dana Scully", "dana@example.org", manager_uid="alice")
    try:
        slapd.set_groups("dana", ["X-Files"])
        dana = ldap.lookup("dana")
        assert dana == DirectoryProfile(
            "dana", "dana@example.org", "Dana Scully", frozenset({"X-Files"}), "alice"
        )
        slapd.set_groups("dana", ["Accelerator Controls", "Beam Physics"])
        dana = ldap.lookup("dana")
        assert dana is not None
        assert dana.groups == {"Accelerator Controls", "Beam Physics"}
    finally:
        slapd.remove_user("dana")
    assert ldap.lookup("dana") is None
    assert ldap.lookup("alice") == ALICE


def test_a_manager_who_left_is_no_manager(slapd: Slapd) -> None:
    slapd.add_user("eve", "Eve Moneypenny", "eve@example.org")
    slapd.add_user("frank", "Frank Drebin", "frank@example.org", manager_uid="eve")
    try:
        slapd.remove_user("eve")
        frank = directory(slapd).lookup("frank")
    finally:
        slapd.remove_user("frank")
    assert frank is not None
    assert frank.manager is None


def test_lookup_many_over_one_connection(slapd: Slapd) -> None:
    profiles = directory(slapd).lookup_many(["alice", "bob", "mallory", "*)(uid=*"])
    assert profiles.keys() == {"alice", "bob", "mallory", "*)(uid=*"}
    assert profiles["alice"] == ALICE
    assert profiles["bob"] is not None
    assert profiles["bob"].username == "bob"
    assert profiles["mallory"] is None
    assert profiles["*)(uid=*"] is None


def test_ping(slapd: Slapd) -> None:
    directory(slapd).ping()


def test_a_base_dn_that_does_not_exist_is_an_error_not_nobody(slapd: Slapd) -> None:
    # Else a typo in the settings would look like everyone leaving.
    ldap = directory(slapd, base_dn="dc=example,dc=com")
    with pytest.raises(DirectoryUnavailable, match="has no entry dc=example,dc=com"):
        ldap.lookup("alice")
    with pytest.raises(DirectoryUnavailable, match="has no entry dc=example,dc=com"):
        ldap.lookup_many(["alice"])
    with pytest.raises(DirectoryUnavailable, match="has no entry dc=example,dc=com"):
        ldap.ping()


def test_a_refused_bind(slapd: Slapd) -> None:
    ldap = directory(slapd, bind_secret="not-the-password")
    with pytest.raises(DirectoryUnavailable) as raised:
        ldap.lookup("alice")
    assert raised.value.message == (
        f"The directory {slapd.url} refused our bind as {slapd.bind_dn}: invalidCredentials"
    )


def test_a_bind_dn_without_a_password_is_a_configuration_error(slapd: Slapd) -> None:
    # An empty password is an unauthenticated bind (RFC 4513 §5.1.2): anonymous.
    with pytest.raises(ConfigurationError, match="bind_dn is set"):
        directory(slapd, bind_secret=None)


def test_a_url_ldap3_cannot_use_is_a_configuration_error(slapd: Slapd) -> None:
    with pytest.raises(ConfigurationError, match="port must be an integer"):
        directory(slapd, url="ldap://127.0.0.1:ldap")


def test_the_password_from_a_file(slapd: Slapd, tmp_path: Path) -> None:
    secret = tmp_path / "bind-secret"
    secret.write_text(slapd.bind_password + "\n")
    assert directory(slapd, bind_secret=None, bind_secret_file=secret).lookup("alice") == ALICE


def test_a_stopped_directory_is_unavailable_at_once(running: Slapd) -> None:
    ldap = directory(running)
    running.stop()
    started = time.monotonic()
    with pytest.raises(DirectoryUnavailable, match="refused the connection") as raised:
        ldap.lookup("alice")
    assert time.monotonic() - started < 3  # timeout_seconds + 1
    assert running.url in raised.value.message
    with pytest.raises(DirectoryUnavailable):
        ldap.lookup_many(["alice", "bob"])
    running.start()
    assert ldap.lookup("alice") == ALICE


def test_a_hung_directory_costs_about_twice_the_timeout(running: Slapd) -> None:
    ldap = directory(running, timeout_seconds=1)
    running.pause()  # connections are accepted, never answered
    started = time.monotonic()
    with pytest.raises(DirectoryUnavailable) as raised:
        ldap.lookup("alice")
    assert time.monotonic() - started < 2.5
    assert raised.value.message == f"The directory {running.url} did not answer within 1 s"
    running.resume()
    assert ldap.lookup("alice") == ALICE


def test_a_listener_that_never_answers() -> None:
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()  # the kernel completes the handshakes; nobody reads
        port = silent.getsockname()[1]
        settings = LdapSettings(
            url=f"ldap://127.0.0.1:{port}", base_dn="dc=example,dc=org", timeout_seconds=0.5
        )
        started = time.monotonic()
        with pytest.raises(DirectoryUnavailable, match=r"did not answer within 0\.5 s"):
            LdapDirectory(settings).ping()
        assert time.monotonic() - started < 1.5


def test_a_server_that_does_not_speak_ldap() -> None:
    # Such as a port that is not the directory's, or a proxy on the way.
    with socket.socket() as web:
        web.bind(("127.0.0.1", 0))
        web.listen()
        port = web.getsockname()[1]

        def answer() -> None:
            connection, _ = web.accept()
            with connection:
                connection.recv(1024)
                # A BER sequence, but no LDAP message: ldap3's decoder raises KeyError.
                connection.sendall(b"\x30\x03\x54\x01\x00")
                connection.recv(1024)  # until the client gives up

        thread = threading.Thread(target=answer)
        thread.start()
        settings = LdapSettings(url=f"ldap://127.0.0.1:{port}", base_dn="dc=example,dc=org")
        with pytest.raises(DirectoryUnavailable, match="is it an LDAP server"):
            LdapDirectory(settings).ping()
        thread.join()


def test_ldaps_with_the_directory_s_ca(slapd: Slapd) -> None:
    ldap = directory(slapd, url=slapd.ldaps_url, ca_file=slapd.ca_file)
    assert ldap.lookup("alice") == ALICE


def test_start_tls_with_the_directory_s_ca(slapd: Slapd) -> None:
    assert directory(slapd, start_tls=True, ca_file=slapd.ca_file).lookup("alice") == ALICE


def test_a_certificate_nobody_vouches_for(slapd: Slapd) -> None:
    for ldap in (
        directory(slapd, url=slapd.ldaps_url),  # the system's CAs
        directory(slapd, start_tls=True),
    ):
        with pytest.raises(DirectoryUnavailable, match=r"TLS handshake: .*verify failed"):
            ldap.lookup("alice")
    unverified = directory(slapd, url=slapd.ldaps_url, tls_verify=False)
    assert unverified.lookup("alice") == ALICE
