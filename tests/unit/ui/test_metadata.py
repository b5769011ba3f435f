"""What a project page shows from core metadata: dependencies, URLs, license, classifiers."""

from __future__ import annotations

import pytest

from packyard.browser.metadata import http_url, normalize_label, parse_dependency, parse_metadata

METADATA = b"""Metadata-Version: 2.4
Name: Acme.Tools
Version: 1.2
Summary: The in-house tools
Author: Jane Doe
License-Expression: MIT OR Apache-2.0
License: Old licence text
Classifier: Programming Language :: Python :: 3
Classifier: Programming Language :: Python :: 3.12
Classifier: Framework :: Django
Requires-Python: >=3.11
Home-page: https://home.example/
Project-URL: Repository, https://git.example/acme
Project-URL: Bug Tracker, https://git.example/acme/issues
Project-URL: What's New, https://git.example/acme/changes
Project-URL: Evil, javascript:alert(1)
Project-URL: Chat, https://chat.example/
Requires-Dist: Acme_Core[fast,cli]>=1.0
Requires-Dist: pytest; extra == "test"
Requires-Dist: tomli; python_version < "3.11"
Provides-Extra: test
Description-Content-Type: text/markdown

# Acme tools
"""


def test_fields() -> None:
    meta = parse_metadata(METADATA)
    assert (meta.name, meta.version, meta.summary) == ("Acme.Tools", "1.2", "The in-house tools")
    assert meta.requires_python == ">=3.11"
    assert meta.description == "# Acme tools\n"
    assert meta.description_content_type == "text/markdown"
    assert meta.provides_extra == ("test",)


def test_license_expression_comes_first() -> None:
    assert parse_metadata(METADATA).license_text == "MIT OR Apache-2.0"
    legacy = parse_metadata(b"Metadata-Version: 2.1\nName: a\nVersion: 1\nLicense: BSD\n  more\n")
    assert legacy.license_text == "BSD"
    assert parse_metadata(b"Metadata-Version: 2.1\nName: a\nVersion: 1\n").license_text is None


def test_dependencies_with_extras_and_markers() -> None:
    core, pytest_dep, tomli = parse_metadata(METADATA).dependencies
    assert core.project == "acme-core"
    assert core.extras == ("cli", "fast")
    assert core.specifier == ">=1.0"
    assert core.marker is None
    assert core.extra is None
    assert pytest_dep.extra == "test"
    assert tomli.marker == 'python_version < "3.11"'
    assert tomli.extra is None


def test_unparsable_dependency_keeps_its_text_without_a_link() -> None:
    dep = parse_dependency("!!not a requirement")
    assert dep.project is None
    assert dep.text == "!!not a requirement"


def test_direct_reference_is_shown() -> None:
    dep = parse_dependency("foo @ https://example.org/foo.whl")
    assert dep.project == "foo"
    assert dep.specifier == "@ https://example.org/foo.whl"


def test_project_urls_get_well_known_titles() -> None:
    links = parse_metadata(METADATA).links
    assert [(link.label, link.kind) for link in links] == [
        ("Homepage", "homepage"),
        ("Source", "source"),
        ("Issues", "issues"),
        ("Changelog", "changelog"),
        ("Evil", None),
        ("Chat", None),
    ]
    assert [link.linkable for link in links] == [True, True, True, True, False, True]


def test_repeated_labels_are_kept_from_the_raw_lines() -> None:
    meta = parse_metadata(
        b"Metadata-Version: 2.1\nName: a\nVersion: 1\n"
        b"Project-URL: Docs, https://a.example/\nProject-URL: Docs, https://b.example/\n"
    )
    assert [link.url for link in meta.links] == ["https://a.example/", "https://b.example/"]


@pytest.mark.parametrize(
    ("label", "normalised"),
    [("Bug Tracker", "bugtracker"), ("What's New", "whatsnew"), ("Source-Code", "sourcecode")],
)
def test_normalize_label(label: str, normalised: str) -> None:
    assert normalize_label(label) == normalised


@pytest.mark.parametrize(
    ("url", "ok"),
    [
        ("https://example.org/x", True),
        ("HTTP://example.org", True),
        ("javascript:alert(1)", False),
        ("data:text/html,<script>", False),
        ("//example.org", False),
        ("/relative", False),
        ("https://exa mple.org", False),
        ("java\nscript:alert(1)", False),
        ("", False),
        (None, False),
    ],
)
def test_http_url(url: str | None, ok: bool) -> None:
    assert http_url(url) is ok


def test_classifier_groups() -> None:
    groups = dict(parse_metadata(METADATA).classifier_groups)
    assert groups["Programming Language"] == ("Python :: 3", "Python :: 3.12")
    assert groups["Framework"] == ("Django",)


def test_garbage_does_not_raise() -> None:
    meta = parse_metadata(b"\xff\xfe not metadata at all")
    assert meta.dependencies == ()
    assert meta.summary is None


def test_unknown_is_dropped() -> None:
    meta = parse_metadata(b"Metadata-Version: 1.0\nName: a\nVersion: 1\nSummary: UNKNOWN\n")
    assert meta.summary is None
