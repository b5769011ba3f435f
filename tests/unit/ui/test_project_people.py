"""What a project page says of people: authors as mailto links, packyard's
owners and maintainers, and who uploaded each in-house file with what."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from packyard.auth.identity import Identity
from packyard.browser.metadata import Person, parse_metadata, parse_people
from packyard.browser.people import NO_PEOPLE, PeopleRecords, Role, short_agent, uploader_name
from packyard.browser.releases import build_releases
from packyard.model import DistFile, ProjectDetail
from packyard.publish.accounts import add_user, create_group
from packyard.publish.audit import Origin, record
from packyard.publish.importer import import_directory
from packyard.publish.ownership import add_role
from tests.builders import build_wheel, make_local_store

ROOT = Identity(kind="cli", name="root", is_admin=True)


@pytest.mark.parametrize(
    ("name", "emails", "expected"),
    [
        (
            None,
            '"Jane Doe" <jane@example.org>, Bob <bob@x.org>',
            (Person("Jane Doe", "jane@example.org"), Person("Bob", "bob@x.org")),
        ),
        (None, "jane@example.org", (Person(None, "jane@example.org"),)),
        ("Jane Doe", "jane@example.org", (Person("Jane Doe", "jane@example.org"),)),
        ("Jane Doe", None, (Person("Jane Doe", None),)),
        (
            "Team",
            "a@x.org, b@x.org",
            (Person("Team", None), Person(None, "a@x.org"), Person(None, "b@x.org")),
        ),
        (
            '"Doe, Jane"',
            '"Doe, Jane" <jane@example.org>',
            (Person("Doe, Jane", "jane@example.org"),),
        ),
        (None, None, ()),
        (None, "", ()),
    ],
)
def test_people_from_the_address_fields(
    name: str | None, emails: str | None, expected: tuple[Person, ...]
) -> None:
    assert parse_people(name, emails) == expected


@pytest.mark.parametrize(
    "garbage",
    [
        "garbage <<>>",
        "<>",
        ",,,",
        "not an address",
        '"unclosed <x@y',
        "a@b@c",
        "\x00\x01@\n",
        "<javascript:alert(1)>",
    ],
)
def test_garbage_never_crashes_and_is_never_a_link(garbage: str) -> None:
    for person in parse_people(None, garbage):
        assert person.label
        if person.email is not None:
            assert person.mailto is not None
            assert person.mailto.startswith("mailto:")
            assert all(ch not in person.email for ch in ' <>"\n\x00:')


def test_mailto_of_a_person() -> None:
    assert Person("Jane", "jane+py@example.org").mailto == "mailto:jane+py@example.org"
    assert Person(None, "jane@example.org").label == "jane@example.org"
    assert Person("Jane", None).mailto is None


def test_metadata_authors_and_maintainers() -> None:
    meta = parse_metadata(
        b"Metadata-Version: 2.4\nName: x\nVersion: 1\n"
        b'Author-email: "Jane Doe" <jane@example.org>, Bob <bob@x.org>\n'
        b"Maintainer: Team\nMaintainer-email: team@example.org\n"
    )
    assert [p.label for p in meta.authors] == ["Jane Doe", "Bob"]
    assert meta.maintainers == (Person("Team", "team@example.org"),)


@pytest.mark.parametrize(
    ("actor", "shown"),
    [
        ("user:alice", "alice"),
        ("token:alice/pky_ab12", "alice"),
        ("ci:gitlab.example/group/app", "CI gitlab.example/group/app"),
        ("cli:root", "root (command line)"),
        ("odd", "odd"),
    ],
)
def test_uploader_names(actor: str, shown: str) -> None:
    assert uploader_name(actor) == shown


def test_user_agents_are_short_and_on_one_line() -> None:
    assert short_agent("twine/6.1.0  CPython/3.12\n") == "twine/6.1.0 CPython/3.12"
    assert short_agent("  ") is None
    assert short_agent(None) is None
    long = short_agent("x" * 500)
    assert long is not None
    assert len(long) == 120
    assert long.endswith("…")


def test_roles_and_uploads_of_an_in_house_project(tmp_path: Path) -> None:
    local = make_local_store(tmp_path / "store")
    dists = tmp_path / "dists"
    dists.mkdir()
    wheel = build_wheel(dists, "acme-tools", "1.0")
    build_wheel(dists, "acme-tools", "1.1")
    report = anyio.run(import_directory, dists, local.sessions, local.store)
    assert report.ok, report
    with local.sessions.begin() as session:
        add_user(session, "alice", None, actor=ROOT)
        add_user(session, "bob", None, actor=ROOT)
        create_group(session, "platform", actor=ROOT)
        session.flush()
        add_role(session, ROOT, "acme-tools", "owner", user="alice")
        add_role(session, ROOT, "acme-tools", "maintainer", user="bob")
        add_role(session, ROOT, "acme-tools", "maintainer", group="platform")
        # A later event for the same file (e.g. deleted and uploaded again) wins.
        record(
            session,
            actor="token:alice/pky_ab12",
            action="upload",
            origin=Origin("127.0.0.1", "twine/6.1.0 CPython/3.12.3"),
            project="acme-tools",
            version="1.0",
            filename=wheel.name,
        )
        record(
            session,
            actor="token:bob/pky_cd34",
            action="upload",
            outcome="refused",
            origin=Origin("127.0.0.1", "curl/8"),
            project="acme-tools",
            version="1.0",
            filename=wheel.name,
        )

    people = PeopleRecords(local.sessions).project("acme-tools")
    assert people.roles == (
        Role("owner", "user", "alice"),
        Role("maintainer", "group", "platform"),
        Role("maintainer", "user", "bob"),
    )
    first = people.uploads[wheel.name]
    assert (first.uploaded_by, first.uploaded_via) == ("alice", "twine/6.1.0 CPython/3.12.3")
    assert first.md5 is not None
    assert len(first.md5) == 32
    assert first.blake2_256 is not None
    assert len(first.blake2_256) == 64
    imported = people.uploads["acme_tools-1.1-py3-none-any.whl"]
    assert imported.uploaded_by == "import (command line)"
    assert PeopleRecords(local.sessions).project("no-such-project") is NO_PEOPLE

    detail = ProjectDetail("acme-tools", (DistFile(wheel.name, hashes={"sha256": "ab" * 32}),))
    (release,) = build_releases(detail, uploads=people.uploads)
    (row,) = release.files
    assert (row.uploaded_by, row.md5, row.blake2_256) == ("alice", first.md5, first.blake2_256)
