"""PEP 691 content negotiation: real clients' Accept strings, q-values, ?format=, 406."""

import pytest

from packyard.errors import NotAcceptable
from packyard.routes.negotiation import MediaType, negotiate

JSON = MediaType.JSON
HTML = MediaType.HTML
TEXT = MediaType.TEXT_HTML

V1_JSON = "application/vnd.pypi.simple.v1+json"
V1_HTML = "application/vnd.pypi.simple.v1+html"


@pytest.mark.parametrize(
    ("client", "accept", "expected"),
    [
        # STANDARDS §1.10, exactly as each client sends it.
        ("pip", f"{V1_JSON}, {V1_HTML}; q=0.1, text/html; q=0.01", JSON),
        ("uv", f"{V1_JSON}, {V1_HTML};q=0.2, text/html;q=0.01", JSON),
        ("poetry", f"{V1_JSON}, */*;q=0.1", JSON),
        ("hatch", None, TEXT),
        ("pypi-simple html only", f"{V1_HTML}, text/html;q=0.01", HTML),
        ("browser", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", TEXT),
        ("curl", "*/*", TEXT),
    ],
)
def test_real_clients(client: str, accept: str | None, expected: MediaType) -> None:
    assert negotiate(None if accept is None else accept.encode()) is expected


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        ("", TEXT),  # an empty header is taken as no header
        (V1_JSON, JSON),
        (V1_HTML, HTML),
        ("text/html", TEXT),
        ("application/vnd.pypi.simple.latest+json", JSON),
        ("application/vnd.pypi.simple.latest+html", HTML),
        ("APPLICATION/VND.PYPI.SIMPLE.V1+JSON", JSON),
        # order does not matter, q does
        (f"text/html;q=0.5, {V1_JSON};q=0.6", JSON),
        (f"{V1_JSON};q=0.5, text/html;q=0.6", TEXT),
        (f"{V1_JSON};q=0.501, text/html;q=0.5", JSON),
        # equal q: JSON, then v1+html, then text/html as the last resort
        (f"text/html, {V1_HTML}, {V1_JSON}", JSON),
        (f"text/html, {V1_HTML}", HTML),
        # a named type beats a wildcard at equal q; */* alone is HTML
        (f"{V1_JSON}, */*", JSON),
        (f"{V1_JSON};q=0.5, */*", TEXT),
        ("text/html, */*", TEXT),
        ("application/*", HTML),
        ("text/*", TEXT),
        ("*", TEXT),
        ("*; q=.2", TEXT),
        # the most specific range decides a type's q; q=0 excludes it
        ("text/html;q=0, */*", HTML),
        (f"text/html;q=0, {V1_HTML};q=0, */*;q=0.1", JSON),
        (f"*/*;q=0, {V1_JSON}", JSON),
        # parameters other than q are ignored; malformed elements are skipped
        (f"{V1_JSON}; charset=utf-8; q=0.9, text/html; level=1; q=0.8", JSON),
        (f"{V1_JSON};q=high, text/html;q=0.1", TEXT),
        (f"{V1_JSON};q=1.5, text/html;q=0.1", TEXT),
        (f"garbage, {V1_HTML}", HTML),
        (" , ,", TEXT),
    ],
)
def test_q_values(accept: str, expected: MediaType) -> None:
    assert negotiate(accept.encode()) is expected


@pytest.mark.parametrize(
    "accept",
    [
        "application/json",
        "image/png, text/plain;q=0.5",
        "text/html;q=0, application/*;q=0",
        "*/*;q=0",
    ],
)
def test_nothing_acceptable_is_406_listing_the_types(accept: str) -> None:
    with pytest.raises(NotAcceptable) as caught:
        negotiate(accept.encode())
    for media_type in MediaType:
        assert media_type.value in caught.value.message


@pytest.mark.parametrize(
    ("query", "accept", "expected"),
    [
        (b"format=application/vnd.pypi.simple.v1%2Bjson", None, JSON),
        (b"format=application/vnd.pypi.simple.v1+json", None, JSON),  # `+` unencoded
        (b"format=text/html", V1_JSON, TEXT),
        (b"format=application/vnd.pypi.simple.latest%2Bhtml", V1_JSON, HTML),
        (b"x=1&format=application/vnd.pypi.simple.v1%2Bjson", "text/html", JSON),
        (b"other=1", V1_JSON, JSON),
    ],
)
def test_format_parameter_overrides_accept(
    query: bytes, accept: str | None, expected: MediaType
) -> None:
    assert negotiate(None if accept is None else accept.encode(), query) is expected


def test_unknown_format_parameter_is_406() -> None:
    with pytest.raises(NotAcceptable):
        negotiate(V1_JSON.encode(), b"format=application/json")


@pytest.mark.parametrize(
    ("media_type", "content_type"),
    [
        (JSON, b"application/vnd.pypi.simple.v1+json"),
        (HTML, b"application/vnd.pypi.simple.v1+html"),
        (TEXT, b"text/html; charset=utf-8"),
    ],
)
def test_content_type_is_the_concrete_type(media_type: MediaType, content_type: bytes) -> None:
    assert media_type.content_type == content_type
    assert media_type.is_json == (media_type is JSON)
