"""README rendering: Warehouse's renderer choice, readme_renderer's sanitiser, the fallback."""

from __future__ import annotations

import pytest

from packyard.dists.readme import media_type, render_readme


def test_markdown_is_rendered_as_gfm() -> None:
    html = render_readme("# Title\n\n| a | b |\n|---|---|\n| 1 | 2 |\n", "text/markdown")
    assert '<h1 id="user-content-title">' in html  # Warehouse's id prefix
    assert "<table>" in html  # a GFM extension


def test_markdown_variant_parameter_is_ignored_like_warehouse() -> None:
    html = render_readme("~~gone~~", "text/markdown; charset=UTF-8; variant=CommonMark")
    assert "<del>gone</del>" in html  # strikethrough is GFM only


def test_no_content_type_means_restructuredtext() -> None:
    html = render_readme("Title\n=====\n\n*emphasis*\n", None)
    assert "<em>emphasis</em>" in html


def test_plain_text_is_preformatted_and_escaped() -> None:
    html = render_readme("a <b>\n  indented", "text/plain")
    assert html.startswith("<pre>")
    assert "&lt;b&gt;" in html


def test_unknown_content_type_is_plain_text() -> None:
    html = render_readme("*not emphasis*", "text/x-unknown")
    assert "<em>" not in html
    assert "*not emphasis*" in html


def test_broken_rst_falls_back_to_escaped_plain_text() -> None:
    broken = "Title\n===\n\n.. unknown-directive:: <x>\n"
    html = render_readme(broken, "text/x-rst")
    assert html.startswith("<pre>")
    assert "unknown-directive" in html
    assert "&lt;x&gt;" in html


@pytest.mark.parametrize("content_type", ["text/markdown", "text/x-rst", None, "text/plain"])
def test_script_tags_never_survive(content_type: str | None) -> None:
    html = render_readme("hello\n\n<script>window.xss=1</script>\n", content_type)
    assert "<script" not in html


def test_event_handlers_are_removed_from_raw_html() -> None:
    html = render_readme(
        '<img src="x" onerror="window.xss=1"> <b onclick="x()">b</b>', "text/markdown"
    )
    assert "onerror" not in html
    assert "onclick" not in html
    assert "<img" in html


@pytest.mark.parametrize(
    ("text", "content_type"),
    [
        ("[click](javascript:alert(1))", "text/markdown"),
        ('<a href="javascript:alert(1)">click</a>', "text/markdown"),
        ("`click <javascript:alert(1)>`_", "text/x-rst"),
    ],
)
def test_javascript_links_are_dropped(text: str, content_type: str) -> None:
    assert "javascript:" not in render_readme(text, content_type)


def test_raw_directive_is_disabled_in_rst() -> None:
    html = render_readme(".. raw:: html\n\n   <iframe src='x'></iframe>\n", None)
    assert "<iframe" not in html


def test_links_get_nofollow() -> None:
    html = render_readme("[site](https://example.org/)", "text/markdown")
    assert 'href="https://example.org/"' in html
    assert 'rel="nofollow"' in html


@pytest.mark.parametrize("empty", [None, ""])
def test_no_description_renders_nothing(empty: str | None) -> None:
    assert render_readme(empty, "text/markdown") == ""


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, ""),
        ("text/markdown; charset=UTF-8", "text/markdown"),
        ("TEXT/X-RST", "text/x-rst"),
        ("nonsense", "nonsense"),
    ],
)
def test_media_type(header: str | None, expected: str) -> None:
    assert media_type(header) == expected


def test_permalinks_are_named_and_code_languages_are_not_human_languages() -> None:
    html = render_readme("# Title\n\n```python\nimport acme\n```\n", "text/markdown")
    # axe-core's link-name and valid-lang: no empty link, no lang="python".
    assert 'aria-label="Link to this section"' in html
    assert 'href="#user-content-title"' in html
    assert 'rel="nofollow"></a>' not in html  # no nameless link
    assert "<pre lang=" not in html
    assert '<pre data-lang="python">' in html
