"""The readers of upstream pages: PEP 691 JSON and PEP 503 HTML, good and hostile."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from packyard.model import ACTIVE, ProjectStatus
from packyard.repository.upstream_hosts import UpstreamHosts
from packyard.repository.upstream_pages import (
    InvalidPage,
    parse_html_list,
    parse_html_page,
    parse_json_list,
    parse_json_page,
)
from packyard.settings import UpstreamSettings

PAGE_URL = "https://upstream.test/simple/demo/"
SHA = "a" * 64
META_SHA = "b" * 64


def json_page(*files: object, **extra: object) -> bytes:
    page: dict[str, object] = {"meta": {"api-version": "1.4"}, "name": "demo", "files": list(files)}
    page.update(extra)
    return json.dumps(page).encode()


def a_file(filename: str = "demo-1.0-py3-none-any.whl", /, **fields: object) -> dict[str, object]:
    return {"filename": filename, "url": f"../../files/{filename}", "hashes": {}, **fields}


def test_json_page_keeps_every_field() -> None:
    body = json_page(
        a_file(
            hashes={"sha256": SHA.upper(), "md5": "c" * 32},
            **{
                "requires-python": ">=3.9,<4",
                "core-metadata": {"sha256": META_SHA},
                "yanked": "broken build",
                "size": 1234,
                "upload-time": "2024-05-01T12:30:45.123456Z",
                "provenance": "https://upstream.test/provenance/1",
                "gpg-sig": False,
            },
        ),
        versions=["1.0", "0.9"],
        **{"project-status": {"status": "deprecated", "reason": "use demo2"}},
    )
    page = parse_json_page(body, PAGE_URL, "demo", "pypi")
    (file,) = page.files
    assert file.url == "https://upstream.test/files/demo-1.0-py3-none-any.whl"
    assert file.hashes == {"sha256": SHA, "md5": "c" * 32}
    assert file.requires_python == ">=3.9,<4"
    assert file.core_metadata == {"sha256": META_SHA}
    assert file.yanked == "broken build"
    assert file.size == 1234
    assert file.upload_time == datetime(2024, 5, 1, 12, 30, 45, 123456, tzinfo=UTC)
    assert file.provenance == "https://upstream.test/provenance/1"
    assert file.gpg_sig is False
    assert page.versions == ("0.9", "1.0")
    assert page.status == ProjectStatus("deprecated", "use demo2")
    assert (page.name, page.source) == ("demo", "pypi")


def test_json_versions_include_every_file_version() -> None:
    body = json_page(a_file("demo-2.0.tar.gz"), a_file("demo-1.0-py3-none-any.whl"))
    page = parse_json_page(body, PAGE_URL, "demo", "pypi")
    assert page.versions == ("1.0", "2.0")


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"core-metadata": True}, True),
        ({"core-metadata": False, "dist-info-metadata": True}, False),
        ({"dist-info-metadata": {"sha256": META_SHA}}, {"sha256": META_SHA}),
        ({"core-metadata": {}}, True),
        ({"core-metadata": "yes", "dist-info-metadata": True}, True),
        ({"core-metadata": 7}, False),
        ({}, False),
    ],
)
def test_json_core_metadata_variants(fields: dict[str, object], expected: object) -> None:
    page = parse_json_page(json_page(a_file(**fields)), PAGE_URL, "demo", "pypi")
    assert page.files[0].core_metadata == expected


@pytest.mark.parametrize(
    ("fields", "attribute", "expected"),
    [
        ({"size": "42"}, "size", 42),
        ({"size": "big"}, "size", None),
        ({"size": -1}, "size", None),
        ({"size": True}, "size", None),
        ({"yanked": 1}, "yanked", True),
        ({"yanked": ""}, "yanked", True),
        ({"yanked": ["x"]}, "yanked", False),
        ({"upload-time": "yesterday"}, "upload_time", None),
        ({"upload-time": 17}, "upload_time", None),
        ({"requires-python": 3}, "requires_python", None),
        ({"hashes": "sha256=abc"}, "hashes", {}),
        ({"hashes": {"sha256": "not hex"}}, "hashes", {}),
        ({"gpg-sig": "maybe"}, "gpg_sig", None),
    ],
)
def test_json_absurd_field_types_are_coerced_or_dropped(
    fields: dict[str, object], attribute: str, expected: object
) -> None:
    page = parse_json_page(json_page(a_file(**fields)), PAGE_URL, "demo", "pypi")
    assert getattr(page.files[0], attribute) == expected


def test_json_hash_from_url_fragment_when_hashes_are_empty() -> None:
    entry = a_file(url=f"https://cdn.test/demo-1.0-py3-none-any.whl#sha256={SHA}")
    (file,) = parse_json_page(json_page(entry), PAGE_URL, "demo", "pypi").files
    assert file.url == "https://cdn.test/demo-1.0-py3-none-any.whl"
    assert file.hashes == {"sha256": SHA}


@pytest.mark.parametrize(
    "entry",
    [
        "demo-1.0.tar.gz",
        {"url": "demo-1.0.tar.gz"},
        {"filename": "demo-1.0.tar.gz"},
        a_file("../evil-1.0.tar.gz"),
        a_file("sub/demo-1.0.tar.gz"),
        a_file("sub\\demo-1.0.tar.gz"),
        a_file("demo-1.0\n.tar.gz"),
        a_file("demo-1.0.tar.gz\x00"),
        a_file("demo..1.0.tar.gz"),
        a_file("index.html"),
        a_file(".hidden.whl"),
        a_file("demo-1.0.tar.gz", url="file:///etc/passwd"),
        a_file("demo-1.0.tar.gz", url="javascript:alert(1)"),
        a_file("demo-1.0.tar.gz", url=7),
    ],
)
def test_json_bad_file_entries_are_dropped(entry: object) -> None:
    good = a_file("demo-2.0.tar.gz")
    page = parse_json_page(json_page(entry, good), PAGE_URL, "demo", "pypi")
    assert [file.filename for file in page.files] == ["demo-2.0.tar.gz"]


def test_json_repeated_filename_keeps_the_first() -> None:
    first = a_file(size=1)
    page = parse_json_page(json_page(first, a_file(size=2)), PAGE_URL, "demo", "pypi")
    assert [file.size for file in page.files] == [1]


@pytest.mark.parametrize(
    "body",
    [b"{not json", b"[]", b'"text"', b'{"files": {}}', b"\xff\xfe\x00", b"[" * 100_000],
)
def test_unreadable_json_pages_raise(body: bytes) -> None:
    with pytest.raises(InvalidPage):
        parse_json_page(body, PAGE_URL, "demo", "pypi")


@pytest.mark.parametrize("version", ["2.0", "10.1", "one", 1.0])
def test_json_other_api_major_is_refused(version: object) -> None:
    body = json_page(meta={"api-version": version})
    with pytest.raises(InvalidPage):
        parse_json_page(body, PAGE_URL, "demo", "pypi")


def test_json_newer_minor_and_missing_meta_are_read() -> None:
    assert parse_json_page(json_page(meta={"api-version": "1.9"}), PAGE_URL, "d", "p").files == ()
    assert parse_json_page(b'{"files": []}', PAGE_URL, "demo", "pypi").status is ACTIVE


def test_json_page_is_for_the_name_asked() -> None:
    page = parse_json_page(json_page(name="Other_Name"), PAGE_URL, "demo", "pypi")
    assert page.name == "demo"


HTML_PAGE = f"""<!DOCTYPE html>
<html><head>
<meta name="pypi:repository-version" content="1.4">
<meta name="pypi:project-status" content="archived">
<meta name="pypi:project-status-reason" content="no longer maintained">
<base href="https://mirror.test/base/">
<base href="https://ignored.test/">
</head><body>
<a href="pkgs/demo-1.0.tar.gz#sha256={SHA}" data-requires-python="&gt;=3.8"
   data-yanked="" data-core-metadata="sha256={META_SHA}">demo-1.0.tar.gz</a><br>
<a href="/abs/demo-1.1-py3-none-any.whl" data-yanked="bad wheel" data-core-metadata="true"
   data-gpg-sig="true" data-size="99" data-upload-time="2024-01-02T03:04:05Z"
   data-provenance="https://mirror.test/prov">demo-1.1-py3-none-any.whl</a>
<a href="https://other.test/demo-1.2.zip" data-dist-info-metadata="true" data-yanked>
demo-1.2.zip</a>
</body></html>
"""


def test_html_page_keeps_every_field() -> None:
    page = parse_html_page(HTML_PAGE, PAGE_URL, "demo", "mirror")
    sdist, wheel, zipped = page.files
    assert sdist.url == "https://mirror.test/base/pkgs/demo-1.0.tar.gz"
    assert sdist.hashes == {"sha256": SHA}
    assert sdist.requires_python == ">=3.8"
    assert sdist.yanked is True
    assert sdist.core_metadata == {"sha256": META_SHA}
    assert wheel.url == "https://mirror.test/abs/demo-1.1-py3-none-any.whl"
    assert wheel.yanked == "bad wheel"
    assert (wheel.core_metadata, wheel.gpg_sig, wheel.size) == (True, True, 99)
    assert wheel.upload_time == datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert wheel.provenance == "https://mirror.test/prov"
    assert (wheel.hashes, wheel.yanked, sdist.provenance) == ({}, "bad wheel", None)
    assert (zipped.filename, zipped.core_metadata, zipped.yanked) == ("demo-1.2.zip", True, True)
    assert page.status == ProjectStatus("archived", "no longer maintained")
    assert page.versions == ("1.0", "1.1", "1.2")


def test_html_relative_urls_resolve_against_the_page_without_base() -> None:
    html = '<a href="../../files/demo-1.0.tar.gz#md5=abc">demo-1.0.tar.gz</a>'
    (file,) = parse_html_page(html, PAGE_URL, "demo", "pypi").files
    assert file.url == "https://upstream.test/files/demo-1.0.tar.gz"
    assert file.hashes == {"md5": "abc"}
    assert file.yanked is False
    assert file.core_metadata is False


def test_html_relative_base_resolves_against_the_page() -> None:
    html = '<base href="../mirror/"><a href="demo-1.0.tar.gz">demo-1.0.tar.gz</a>'
    (file,) = parse_html_page(html, PAGE_URL, "demo", "pypi").files
    assert file.url == "https://upstream.test/simple/mirror/demo-1.0.tar.gz"


def test_html_filename_falls_back_to_the_url() -> None:
    html = '<a href="files/demo-1.0%2Blocal.tar.gz"></a>'
    (file,) = parse_html_page(html, PAGE_URL, "demo", "pypi").files
    assert file.filename == "demo-1.0+local.tar.gz"


@pytest.mark.parametrize(
    ("attribute", "expected"),
    [
        ('data-core-metadata="true" data-dist-info-metadata="sha256=00"', True),
        ('data-core-metadata="junk" data-dist-info-metadata="sha256=0A"', {"sha256": "0a"}),
        ('data-dist-info-metadata="true"', True),
        ('data-core-metadata="false"', False),
        ('data-core-metadata="sha256=xyz"', False),
        ("", False),
    ],
)
def test_html_core_metadata_variants(attribute: str, expected: object) -> None:
    html = f'<a href="demo-1.0.tar.gz" {attribute}>demo-1.0.tar.gz</a>'
    (file,) = parse_html_page(html, PAGE_URL, "demo", "pypi").files
    assert file.core_metadata == expected


def test_html_hostile_filenames_are_dropped() -> None:
    html = """
    <a href="x/demo-1.0.tar.gz">../../etc/demo-1.0.tar.gz</a>
    <a href="x/a">a\\b-1.0.tar.gz</a>
    <a href="x/b">demo&#10;-1.0.tar.gz</a>
    <a href="x/c">demo-1.0.tar.gz&#0;</a>
    <a href="x/d">setup.py</a>
    <a href="file:///etc/demo-1.0.whl">demo-1.0-py3-none-any.whl</a>
    <a>demo-0.1.tar.gz</a>
    <a href="ok/demo-2.0.tar.gz">demo-2.0.tar.gz</a>
    """
    page = parse_html_page(html, PAGE_URL, "demo", "pypi")
    assert [file.filename for file in page.files] == ["demo-2.0.tar.gz"]


def test_html_api_major_2_is_refused() -> None:
    html = '<meta name="pypi:repository-version" content="2.0"><a href="a.whl">a.whl</a>'
    with pytest.raises(InvalidPage, match=r"2\.0"):
        parse_html_page(html, PAGE_URL, "demo", "pypi")


def test_html_garbage_is_an_empty_page_not_a_crash() -> None:
    page = parse_html_page("<<<a href='<'>>>&#xffffffff;</", PAGE_URL, "demo", "pypi")
    assert page.files == ()


# A page in the exact markup pypi.org serves as text/html (Warehouse's
# templates/api/simple/detail.html), modelled on https://pypi.org/simple/six/.
PYPI_HTML = """<!DOCTYPE html>
<html>
  <head>
    <meta name="pypi:repository-version" content="1.4">
    <title>Links for six</title>
  </head>
  <body>
    <h1>Links for six</h1>
<a href="https://files.pythonhosted.org/packages/c1/5a/six-1.0.0.tar.gz#sha256=473bd4a1b7a4b8c9f6f5f8c9a3c4ef0a7e6d4b29bd3a5ea5e8f0b5bb6a9d2b1c" >six-1.0.0.tar.gz</a><br />
<a href="https://files.pythonhosted.org/packages/67/b5/six-1.10.0-py2.py3-none-any.whl#sha256=0ff78c403d9bccf5a425a6d31a12aa6b47f1c21ca4dc2573a7e2f32a97335eb1" >six-1.10.0-py2.py3-none-any.whl</a><br />
<a href="https://files.pythonhosted.org/packages/d9/5a/six-1.16.0-py2.py3-none-any.whl#sha256=8abb2f1d86890a2dfb989f9a77cfcfd3e47c2a354b01111771326f8aa26e0254" data-requires-python="&gt;=2.7, !=3.0.*, !=3.1.*, !=3.2.*" data-dist-info-metadata="sha256=a6b1a3b2d57c2cfd9e1a1ae2a4a6f7eb0c3c1ba7d0ae6f7dab8b4c5bb0f3e1f2" data-core-metadata="sha256=a6b1a3b2d57c2cfd9e1a1ae2a4a6f7eb0c3c1ba7d0ae6f7dab8b4c5bb0f3e1f2">six-1.16.0-py2.py3-none-any.whl</a><br />
<a href="https://files.pythonhosted.org/packages/71/39/six-1.16.0.tar.gz#sha256=1e61c37477a1626458e36f7b1d82aa5c9b094fa4802892072e49de9c60c4c926" data-requires-python="&gt;=2.7, !=3.0.*, !=3.1.*, !=3.2.*" >six-1.16.0.tar.gz</a><br />
    </body>
</html>
<!--SERIAL 25372427-->
"""  # noqa: E501


def test_real_pypi_html_page() -> None:
    page = parse_html_page(PYPI_HTML, "https://pypi.org/simple/six/", "six", "pypi")
    assert [file.filename for file in page.files] == [
        "six-1.0.0.tar.gz",
        "six-1.10.0-py2.py3-none-any.whl",
        "six-1.16.0-py2.py3-none-any.whl",
        "six-1.16.0.tar.gz",
    ]
    wheel = page.files[2]
    assert wheel.url.startswith("https://files.pythonhosted.org/packages/d9/5a/six-1.16.0-py2")
    assert "#" not in wheel.url
    assert wheel.requires_python == ">=2.7, !=3.0.*, !=3.1.*, !=3.2.*"
    assert wheel.sha256 == "8abb2f1d86890a2dfb989f9a77cfcfd3e47c2a354b01111771326f8aa26e0254"
    assert isinstance(wheel.core_metadata, dict)
    assert page.versions == ("1.0.0", "1.10.0", "1.16.0")
    assert page.status is ACTIVE


def test_project_lists_in_both_formats() -> None:
    body = json.dumps(
        {"meta": {"api-version": "1.0"}, "projects": [{"name": "Django"}, {"name": "-bad-"}, 3]}
    ).encode()
    assert [p.name for p in parse_json_list(body, "pypi").projects] == ["Django"]
    html = (
        '<a href="/simple/django/">Django</a><a href="/simple/zope-interface/">zope.interface</a>'
    )
    assert [p.name for p in parse_html_list(html, "pypi").projects] == ["Django", "zope.interface"]


@pytest.mark.parametrize("body", [b"{}", b'{"projects": "all"}', b"nope"])
def test_unreadable_project_lists_raise(body: bytes) -> None:
    with pytest.raises(InvalidPage):
        parse_json_list(body, "pypi")


# --- PEP 740 provenance URLs ------------------------------------------------------

HOSTS = UpstreamHosts(
    UpstreamSettings(url="https://upstream.test/simple/", file_hosts=("files.test",))
)


@pytest.mark.parametrize(
    ("url", "kept"),
    [
        ("https://upstream.test/integrity/demo/1.0/f/provenance", True),
        ("https://files.test/p#frag", True),
        ("https://elsewhere.test/p", False),  # packyard would connect there
        ("https://upstream.test:8443/p", False),  # another port is another host
        ("http://169.254.169.254/latest/meta-data", False),
        ("/integrity/demo/1.0/f/provenance", False),  # PEP 740: fully qualified
        ("javascript:alert(1)", False),
        ("file:///etc/passwd", False),
        ("", False),
        (7, False),
    ],
)
def test_provenance_is_kept_only_on_the_upstreams_hosts(url: object, kept: bool) -> None:
    body = json_page(a_file(provenance=url))
    (json_file,) = parse_json_page(body, PAGE_URL, "demo", "pypi", HOSTS).files
    text = f'<a href="/f/demo-1.0.tar.gz" data-provenance="{url}">demo-1.0.tar.gz</a>'
    (html_file,) = parse_html_page(text, PAGE_URL, "demo", "pypi", HOSTS).files
    expected = str(url).partition("#")[0] if kept else None
    assert (json_file.provenance, html_file.provenance) == (expected, expected)


def test_a_foreign_provenance_url_drops_the_url_not_the_file(
    caplog: pytest.LogCaptureFixture,
) -> None:
    body = json_page(
        a_file("demo-1.0.tar.gz", provenance="https://evil.test/p"),
        a_file("demo-1.1.tar.gz", provenance="https://evil.test/q"),
    )
    files = parse_json_page(body, PAGE_URL, "demo", "pypi", HOSTS).files
    assert [(f.filename, f.provenance) for f in files] == [
        ("demo-1.0.tar.gz", None),
        ("demo-1.1.tar.gz", None),
    ]
    (warning,) = [r for r in caplog.records if "provenance" in r.getMessage()]
    assert "dropped the provenance URL of 2 files" in warning.getMessage()
