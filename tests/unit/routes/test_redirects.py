"""Redirects on the request's own host are made relative (or put on `public_url`)."""

from __future__ import annotations

import pytest

from packyard.routes.redirects import HostSafeRedirects


async def _unused(scope: object, receive: object, send: object) -> None:
    raise AssertionError


@pytest.mark.parametrize(
    ("location", "public_url", "expected"),
    [
        (b"http://evil.example/admin/", None, b"/admin/"),
        (b"http://evil.example//other.example/x?q=1", None, b"/other.example/x?q=1"),
        (
            b"http://evil.example/admin/",
            "https://pypi.example.org/",
            b"https://pypi.example.org/admin/",
        ),
        (b"/admin/", None, b"/admin/"),
        (b"https://bucket.s3.example/key?sig=1", None, b"https://bucket.s3.example/key?sig=1"),
    ],
)
def test_a_location_on_the_request_host_is_rewritten(
    location: bytes, public_url: str | None, expected: bytes
) -> None:
    wrapper = HostSafeRedirects(_unused, public_url)
    assert wrapper._rewrite(location, "evil.example") == expected
