"""The upload form: every client's spelling of a field, the control fields, digests."""

from __future__ import annotations

from pathlib import Path

import pytest

from packyard.errors import InvalidRequest
from packyard.publish.upload_form import (
    ActionGone,
    check_action,
    check_digests,
    parse_form,
)
from tests.builders import build_wheel
from tests.unit.publish.test_multipart import twine_form

SHA256 = "a" * 64
BLAKE2 = "b" * 64
MD5 = "c" * 32


def form(**fields: str | list[str]) -> dict[str, list[str]]:
    base: dict[str, list[str]] = {
        ":action": ["file_upload"],
        "protocol_version": ["1"],
        "metadata_version": ["2.1"],
        "name": ["acme-core"],
        "version": ["1.0"],
        "filetype": ["bdist_wheel"],
        "pyversion": ["py3"],
        "sha256_digest": [SHA256],
    }
    for key, value in fields.items():
        base[key] = [value] if isinstance(value, str) else value
    return base


def test_twines_form_is_read_into_raw_metadata(tmp_path: Path) -> None:
    wheel = build_wheel(
        tmp_path, "Acme.Core", "1.0", requires_dist=("attrs>=23",), requires_python=">=3.9"
    )
    fields: dict[str, list[str]] = {}
    for key, value in twine_form(wheel):
        fields.setdefault(key, []).append(value)

    parsed = parse_form(fields)

    assert parsed.raw["name"] == "Acme.Core"
    assert parsed.raw["requires_dist"] == ["attrs>=23"]
    assert parsed.raw["requires_python"] == ">=3.9"
    assert (parsed.filetype, parsed.pyversion) == ("bdist_wheel", "py3")
    assert set(parsed.digests) == {"sha256", "blake2_256"}


@pytest.mark.parametrize(
    ("key", "raw_key"),
    [
        ("provides_extra", "provides_extra"),  # Warehouse, twine
        ("provides_extras", "provides_extra"),  # pdm
        ("platform", "platforms"),  # Warehouse's singular
        ("platforms", "platforms"),
        ("supported_platform", "supported_platforms"),
        ("license_file", "license_files"),
        ("license_files", "license_files"),
        ("import_name", "import_names"),  # Warehouse
        ("import_names", "import_names"),  # uv
        ("import_namespaces", "import_namespaces"),
        ("classifiers", "classifiers"),
        ("classifier", "classifiers"),  # hatch's header names
        ("requires_dist", "requires_dist"),
    ],
)
def test_singular_and_plural_spellings_mean_the_same_field(key: str, raw_key: str) -> None:
    parsed = parse_form(form(**{key: ["one", "two"]}))

    assert parsed.raw[raw_key] == ["one", "two"]  # type: ignore[literal-required]


def test_two_spellings_of_one_field_add_up_without_repeats() -> None:
    parsed = parse_form(form(provides_extra=["a", "b"], provides_extras=["b", "c"]))

    assert parsed.raw["provides_extra"] == ["a", "b", "c"]


def test_unknown_keys_are_ignored_and_unknown_or_empty_values_dropped() -> None:
    parsed = parse_form(
        form(home_page="UNKNOWN", requires_python="", license="MIT", whatever="x", comment="hi")
    )

    assert "home_page" not in parsed.raw
    assert "requires_python" not in parsed.raw  # uv sends it empty when unset
    assert parsed.raw["license"] == "MIT"
    assert parsed.comment == "hi"


def test_keywords_and_project_urls_take_their_form_shape() -> None:
    parsed = parse_form(
        form(
            keywords="packaging, index ,pypi",
            project_urls=["Homepage, https://example.org", "Source, https://example.org/src"],
        )
    )

    assert parsed.raw["keywords"] == ["packaging", "index", "pypi"]
    assert parsed.raw["project_urls"] == {
        "Homepage": "https://example.org",
        "Source": "https://example.org/src",
    }


def test_a_single_use_field_given_twice_is_refused() -> None:
    with pytest.raises(InvalidRequest, match=r"^summary: this field may be given only once"):
        parse_form(form(summary=["a", "b"]))


@pytest.mark.parametrize("action", ["submit", "doc_upload"])
def test_retired_actions_are_gone(action: str) -> None:
    with pytest.raises(ActionGone, match=f"'{action}' is no longer supported"):
        check_action(form(**{":action": action}))


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({":action": "remove_pkg"}, "^Unknown :action 'remove_pkg'"),
        ({":action": []}, "^Unknown :action None"),
        ({"protocol_version": "2"}, r"^Unknown protocol version\.$"),
    ],
)
def test_other_actions_and_protocols_are_refused(
    fields: dict[str, str | list[str]], message: str
) -> None:
    with pytest.raises(InvalidRequest, match=message):
        check_action(form(**fields))


def test_a_missing_protocol_version_means_1() -> None:
    fields = form()
    del fields["protocol_version"]

    check_action(fields)


def test_digests_are_lowercased_and_checked_for_shape() -> None:
    parsed = parse_form(
        form(sha256_digest=SHA256.upper(), blake2_256_digest=BLAKE2, md5_digest=MD5.upper())
    )

    assert parsed.digests == {"sha256": SHA256, "blake2_256": BLAKE2, "md5": MD5}


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"sha256_digest": []}, r"^Include at least one message digest\.$"),
        ({"sha256_digest": "xyz" * 20 + "abcd"}, "^sha256_digest: Use a valid, hex-encoded"),
        ({"md5_digest": "0" * 31}, "^md5_digest: Use a valid, hex-encoded"),
    ],
)
def test_bad_or_missing_digests_are_refused(
    fields: dict[str, str | list[str]], message: str
) -> None:
    with pytest.raises(InvalidRequest, match=message):
        parse_form(form(**fields))


def test_every_digest_given_must_match() -> None:
    computed = {"sha256": SHA256, "blake2_256": BLAKE2, "md5": MD5}
    check_digests({"sha256": SHA256, "md5": MD5}, computed)

    with pytest.raises(InvalidRequest, match=r"^The digest supplied does not match"):
        check_digests({"sha256": SHA256, "blake2_256": "0" * 64}, computed)
