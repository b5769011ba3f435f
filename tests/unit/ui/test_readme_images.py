"""Images of a README on other hosts (badges) are shown as their alt text."""

from __future__ import annotations

import pytest

from packyard.browser.readmes import Readmes, outside_images_as_text

BADGE = (
    '<a href="https://ci.example/x">'
    '<img src="https://img.shields.io/badge/ci-passing-green" alt="CI status"></a>'
)


def test_an_outside_image_becomes_its_alt_text() -> None:
    html = outside_images_as_text(BADGE)
    assert "<img" not in html
    assert (
        html == '<a href="https://ci.example/x"><span class="readme-image-alt">CI status</span></a>'
    )


def test_alt_text_is_escaped_and_an_image_without_one_disappears() -> None:
    html = outside_images_as_text(
        '<p><img src="https://x.example/a.png" alt="&lt;b&gt;bold&lt;/b&gt;"></p>'
    )
    assert html == '<p><span class="readme-image-alt">&lt;b&gt;bold&lt;/b&gt;</span></p>'
    assert outside_images_as_text('<p><img src="//x.example/a.png"></p>') == "<p></p>"


@pytest.mark.parametrize(
    "src",
    ["/static/logo.png", "logo.png", "data:image/png;base64,AAAA", "#x"],
)
def test_own_and_data_images_stay(src: str) -> None:
    html = f'<img src="{src}" alt="logo">'
    assert outside_images_as_text(html) == html


@pytest.mark.parametrize(
    ("hosts", "src", "stays"),
    [
        (("img.shields.io",), "https://img.shields.io/badge/x", True),
        (("https://img.shields.io",), "https://img.shields.io/badge/x", True),
        (("https://img.shields.io",), "http://img.shields.io/badge/x", False),
        (("*.example.org",), "https://img.cdn.example.org/a.png", True),
        (("*.example.org",), "https://example.org/a.png", False),
        (("*.example.org",), "https://evil-example.org/a.png", False),
        (("img.example.org:8443",), "https://img.example.org:8443/a.png", True),
        (("img.example.org",), "https://img.example.org:8443/a.png", False),
        (("img.example.org",), "ftp://img.example.org/a.png", False),
        ((), "https://img.shields.io/badge/x", False),
    ],
)
def test_images_on_allowed_hosts_stay(hosts: tuple[str, ...], src: str, stays: bool) -> None:
    html = f'<img src="{src}" alt="badge">'
    assert (outside_images_as_text(html, hosts) == html) is stays


@pytest.mark.anyio
async def test_readmes_answer_without_outside_images_and_keep_allowed_ones() -> None:
    readme = "![CI status](https://img.shields.io/badge/ci-passing-green)\n\nText."
    html = await Readmes().html(None, readme, "text/markdown")
    assert "<img" not in html
    assert "CI status" in html
    allowed = await Readmes(image_hosts=("img.shields.io",)).html(None, readme, "text/markdown")
    assert '<img src="https://img.shields.io/badge/ci-passing-green" alt="CI status">' in allowed


@pytest.mark.anyio
async def test_showing_images_from_keeps_the_database_and_changes_the_hosts() -> None:
    readmes = Readmes(image_hosts=("a.example",))
    other = readmes.showing_images_from(("img.shields.io",))
    assert other.image_hosts == ("img.shields.io",)
    html = await other.html(None, "![x](https://img.shields.io/b)", "text/markdown")
    assert "<img" in html
