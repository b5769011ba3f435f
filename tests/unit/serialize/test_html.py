"""The PEP 503 HTML writer: markup, attributes, escaping, and what real parsers read."""

import re
from datetime import datetime
from html.parser import HTMLParser

import pytest
from pypi_simple import IndexPage, ProjectPage

from packyard.model import DistFile, ProjectDetail, ProjectEntry, ProjectList, ProjectStatus
from packyard.serialize import html
from tests.unit.serialize.conftest import HOSTILE, SHA_METADATA, SHA_SDIST, SHA_WHEEL

PAGE_URL = "https://index.test/simple/demo-pkg/"

SITE = "https://index.test/"
SERVED_PROVENANCE = (
    "https://index.test/integrity/demo-pkg/1.1/demo_pkg-1.1-py3-none-any.whl/provenance"
)


class _Links(HTMLParser):
    """Collects every <a>'s attributes and text, and checks tags are balanced."""

    def __init__(self) -> None:
        super().__init__()
        self.links: list[tuple[dict[str, str | None], str]] = []
        self.tags: list[str] = []
        self._open: dict[str, str | None] | None = None
        self._text = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        if tag == "a":
            self._open, self._text = dict(attrs), ""

    def handle_endtag(self, tag: str) -> None:
        if tag == "a" and self._open is not None:
            self.links.append((self._open, self._text))
            self._open = None

    def handle_data(self, data: str) -> None:
        if self._open is not None:
            self._text += data


def _links(page: bytes) -> list[tuple[dict[str, str | None], str]]:
    parser = _Links()
    parser.feed(page.decode())
    parser.close()
    assert "script" not in parser.tags
    return parser.links


def test_page_declares_the_repository_version(project: ProjectDetail) -> None:
    page = html.render_project_detail(project, SITE)
    assert page.startswith(b"<!DOCTYPE html>")
    assert b'<meta name="pypi:repository-version" content="1.4">' in page


def test_anchor_text_is_exactly_the_filename(project: ProjectDetail) -> None:
    links = _links(html.render_project_detail(project, SITE))
    assert [text for _, text in links] == [f.filename for f in project.files]


def test_hatch_regex_finds_every_filename(project: ProjectDetail) -> None:
    # hatch's pre-upload check (STANDARDS §1.10); it does not unescape.
    found = re.findall(r"<a [^>]+>([^<]+)</a>", html.render_project_detail(project, SITE).decode())
    assert found[:2] == ["demo_pkg-1.0.tar.gz", "demo_pkg-1.1-py3-none-any.whl"]
    assert len(found) == len(project.files)


def test_hostile_text_never_becomes_markup(project: ProjectDetail) -> None:
    page = html.render_project_detail(project, SITE).decode()
    assert HOSTILE not in page
    assert "<script" not in page
    assert "<b>" not in page
    attrs, text = _links(page.encode())[2]
    assert text.endswith(f"{HOSTILE}.tar.gz")
    assert attrs["data-requires-python"] == f">=3{HOSTILE}"


def test_href_is_relative_to_files_with_sha256_fragment(project: ProjectDetail) -> None:
    attrs = [a for a, _ in _links(html.render_project_detail(project, SITE))]
    assert attrs[0]["href"] == f"../../files/demo-pkg/demo_pkg-1.0.tar.gz#sha256={SHA_SDIST}"
    assert (
        attrs[1]["href"] == f"../../files/demo-pkg/demo_pkg-1.1-py3-none-any.whl#sha256={SHA_WHEEL}"
    )
    assert attrs[3]["href"] == "../../files/demo-pkg/demo_pkg-3.0.0+local-py3-none-any.whl"


@pytest.mark.parametrize(
    ("hashes", "fragment"),
    [
        ({"sha256": "ab", "md5": "cd"}, "#sha256=ab"),
        ({"md5": "cd"}, "#md5=cd"),
        ({"sha512": "EF", "md5": "cd"}, "#sha512=ef"),
        ({"blake2b_256": "ab"}, ""),  # uv rejects other names (STANDARDS §1.12)
        ({"sha256": "not hex"}, ""),
        ({}, ""),
    ],
)
def test_fragment_uses_only_names_installers_accept(hashes: dict[str, str], fragment: str) -> None:
    page = html.render_project_detail(ProjectDetail("p", (DistFile("p-1.tar.gz", hashes=hashes),)))
    assert _links(page)[0][0]["href"] == "../../files/p/p-1.tar.gz" + fragment


def test_core_metadata_and_its_old_name_are_equal(project: ProjectDetail) -> None:
    attrs = [a for a, _ in _links(html.render_project_detail(project, SITE))]
    assert attrs[1]["data-core-metadata"] == f"sha256={SHA_METADATA}"
    assert attrs[2]["data-core-metadata"] == "true"
    for link in attrs:
        assert link.get("data-dist-info-metadata") == link.get("data-core-metadata")
    assert "data-core-metadata" not in attrs[0]


def test_optional_attributes(project: ProjectDetail) -> None:
    attrs = [a for a, _ in _links(html.render_project_detail(project, SITE))]
    assert attrs[0]["data-requires-python"] == ">=3.9,<4"
    assert attrs[0]["data-size"] == "1234"
    assert attrs[0]["data-upload-time"] == "2025-03-04T05:06:07.000891Z"
    assert "data-yanked" not in attrs[0]
    assert attrs[1]["data-yanked"] == "broken <b>build</b> & more"
    assert attrs[1]["data-gpg-sig"] == "false"
    assert attrs[1]["data-provenance"] == SERVED_PROVENANCE
    assert attrs[2]["data-yanked"] == ""


def test_provenance_links_to_this_server_never_to_the_source() -> None:
    dist = DistFile("p-1.tar.gz", provenance="https://upstream.test/integrity/p")
    page = html.render_project_detail(ProjectDetail("p", (dist,), source="pypi"), SITE)
    assert b'data-provenance="https://index.test/integrity/p/1/p-1.tar.gz/provenance"' in page
    assert b"upstream.test" not in page


def test_naive_upload_time_is_taken_as_utc() -> None:
    dist = DistFile("p-1.tar.gz", upload_time=datetime(2024, 1, 2, 3, 4, 5))
    page = html.render_project_detail(ProjectDetail("p", (dist,)), SITE)
    assert b'data-upload-time="2024-01-02T03:04:05.000000Z"' in page


@pytest.mark.parametrize(
    ("status", "tags"),
    [
        (ProjectStatus(), []),
        (ProjectStatus("archived"), ['content="archived"']),
        (
            ProjectStatus("quarantined", 'a "bad" <one>'),
            ['content="quarantined"', "&quot;bad&quot;"],
        ),
    ],
)
def test_project_status_meta_tags(status: ProjectStatus, tags: list[str]) -> None:
    page = html.render_project_detail(ProjectDetail("p", (), status=status), SITE).decode()
    assert ("pypi:project-status" in page) == bool(tags)
    assert ("pypi:project-status-reason" in page) == (status.reason is not None)
    for tag in tags:
        assert tag in page
    parsed = ProjectPage.from_html("p", page)
    expected = status.status if tags else None
    assert (parsed.status.value if parsed.status else None) == expected
    assert parsed.status_reason == status.reason


def test_pypi_simple_reads_the_page(project: ProjectDetail) -> None:
    parsed = ProjectPage.from_html("demo-pkg", html.render_project_detail(project, SITE), PAGE_URL)
    assert parsed.repository_version == "1.4"
    wheel = parsed.packages[1]
    assert wheel.url == "https://index.test/files/demo-pkg/demo_pkg-1.1-py3-none-any.whl"
    assert wheel.digests == {"sha256": SHA_WHEEL}
    assert wheel.has_metadata is True
    assert wheel.metadata_digests == {"sha256": SHA_METADATA}
    assert wheel.is_yanked
    assert wheel.yanked_reason == "broken <b>build</b> & more"
    assert wheel.provenance_url == SERVED_PROVENANCE


def test_project_list_links_normalized_names_with_display_text() -> None:
    projects = ProjectList((ProjectEntry("Foo_Bar"), ProjectEntry("baz"), ProjectEntry("A.B-c")))
    page = html.render_project_list(projects)
    links = _links(page)
    assert [(a["href"], text) for a, text in links] == [
        ("foo-bar/", "Foo_Bar"),
        ("baz/", "baz"),
        ("a-b-c/", "A.B-c"),
    ]
    parsed = IndexPage.from_html(page)
    assert parsed.projects == ["Foo_Bar", "baz", "A.B-c"]
    assert parsed.repository_version == "1.4"


def test_empty_pages_are_valid() -> None:
    assert _links(html.render_project_list(ProjectList(()))) == []
    assert _links(html.render_project_detail(ProjectDetail("p", ()), SITE)) == []


def test_files_a_policy_hides_are_named_in_the_text_with_their_reason_never_as_links() -> None:
    hidden = [
        {"filename": f"demo_pkg-{n}.0-py3-none-any.whl", "reason": "cool-down of 7 days: <new>"}
        for n in range(html.MAX_HIDDEN_LINES + 2)
    ]
    project = ProjectDetail("demo-pkg", (), private={"hidden-files": hidden})

    page = html.render_project_detail(project, SITE).decode()
    parser = _Links()
    parser.feed(page)

    assert parser.links == []  # nothing an installer or hatch could take for a file
    assert f"<p>{len(hidden)} file(s) hidden by this index:</p>" in page
    assert "<p>demo_pkg-0.0-py3-none-any.whl: cool-down of 7 days: &lt;new&gt;</p>" in page
    assert "<p>and 2 more.</p>" in page
    assert ProjectPage.from_html("demo-pkg", page, PAGE_URL).packages == []


def test_the_hidden_files_key_is_the_policys() -> None:
    from packyard.repository.policy import HIDDEN_FILES

    assert html.HIDDEN_FILES == HIDDEN_FILES
