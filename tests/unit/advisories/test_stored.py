"""Records by id and by alias, as stored (`/osv/v1/vulns/{id}`), on SQLite and PostgreSQL."""

from __future__ import annotations

import json

import pytest
from sqlalchemy.orm import Session, sessionmaker

from packyard.advisories.importing import import_entries
from packyard.advisories.sources import read_source
from packyard.advisories.stored import aliased_by, stored_record
from tests.unit.advisories.conftest import SNAPSHOT


@pytest.fixture
def jinja2(sessions: sessionmaker[Session]) -> sessionmaker[Session]:
    """The snapshot's jinja2 records, imported."""
    import_entries(sessions, read_source(SNAPSHOT / "jinja2"), actor="cli:test", source="jinja2")
    return sessions


def test_a_record_is_read_by_its_exact_id(jinja2: sessionmaker[Session]) -> None:
    with jinja2() as session:
        text = stored_record(session, "PYSEC-2019-217")
        assert text is not None
        assert json.loads(text)["aliases"] == ["CVE-2019-10906", "GHSA-462w-v97r-4m45"]
        assert stored_record(session, "pysec-2019-217") is None  # ids are case-sensitive
        assert stored_record(session, "PYSEC-2019-21") is None


# Alias -> the ids that carry it; LIKE's wildcards and escape are matched as themselves.
ALIASES = {
    "CVE-2019-10906": ["PYSEC-2019-217"],
    "GHSA-462w-v97r-4m45": ["PYSEC-2019-217"],
    "CVE-2019-1090_": [],
    "CVE-2019-%": [],
    "CVE-2019-10906\\": [],
    "CVE-2019-1090": [],  # a prefix of an alias is not the alias
    "PYSEC-2019-217": [],  # an id is not its own alias
}


def test_the_records_that_carry_an_alias_are_found(jinja2: sessionmaker[Session]) -> None:
    with jinja2() as session:
        assert {alias: aliased_by(session, alias) for alias in ALIASES} == ALIASES
