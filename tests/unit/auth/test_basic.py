"""Reading Authorization headers: every form clients send, and malformed ones refused cleanly."""

from __future__ import annotations

import base64

import pytest

from packyard.auth.basic import (
    ApiTokenCredentials,
    Credentials,
    JwtCredentials,
    PasswordCredentials,
    parse_authorization,
)
from packyard.errors import AuthenticationFailed

JWT = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl"


def basic(user_and_secret: str) -> str:
    return "Basic " + base64.b64encode(user_and_secret.encode()).decode()


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (basic("alice:s3cret:with:colons"), PasswordCredentials("alice", "s3cret:with:colons")),
        (basic("__token__:pky_abc"), ApiTokenCredentials("pky_abc")),
        (basic(f"__token__:{JWT}"), JwtCredentials(JWT)),
        ("Bearer pky_abc", ApiTokenCredentials("pky_abc")),
        ("bearer   pky_abc  ", ApiTokenCredentials("pky_abc")),
        ("token pky_abc", ApiTokenCredentials("pky_abc")),
        (f"Bearer {JWT}", JwtCredentials(JWT)),
        (f"TOKEN {JWT}", JwtCredentials(JWT)),
        (
            "BASIC " + base64.b64encode("bob:pässword".encode()).decode(),
            PasswordCredentials("bob", "pässword"),
        ),
    ],
)
def test_credentials_of_each_form(header: str, expected: Credentials) -> None:
    assert parse_authorization(header) == expected


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ("Basic !!!not-base64!!!", "Malformed Basic"),
        ("Basic " + base64.b64encode(b"\xff\xfe:\xff").decode(), "Malformed Basic"),
        (basic("no-colon"), "user name and a password"),
        (basic(":secret"), "user name and a password"),
        (basic("alice:"), "user name and a password"),
        (basic("__token__:"), "user name and a password"),
        ("Basic", "Malformed Basic|user name and a password"),
        ("Bearer", "carries no token"),
        ("Bearer    ", "carries no token"),
        ("Digest username=alice", "Unsupported authorization scheme 'digest'"),
        ("pky_abc", "Unsupported authorization scheme"),
    ],
)
def test_malformed_headers_are_authentication_failures(header: str, message: str) -> None:
    with pytest.raises(AuthenticationFailed, match=message):
        parse_authorization(header)
