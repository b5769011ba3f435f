"""Reading an `Authorization` header value into the credentials it carries.

Accepted forms (scheme names are case-insensitive, RFC 9110 §11.1):

- `Basic base64(user:secret)`: the user `__token__` carries a token in the
  secret (what twine, uv, poetry and hatch send, STANDARDS §2.4); any other
  user name carries a password;
- `Bearer <x>` and `token <x>` (Warehouse's two token schemes).

A token is an API token, or a CI ID token (a JWT) when it has the JWT form of
three dot-separated parts. That holds for `__token__` too: twine speaks only
Basic, so a CI job publishing with twine passes its ID token as the password.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

from packyard.errors import AuthenticationFailed

TOKEN_USERNAME = "__token__"  # noqa: S105 (the user name clients send)
_TOKEN_SCHEMES = ("bearer", "token")


@dataclass(frozen=True, slots=True)
class PasswordCredentials:
    """A user name and a password."""

    username: str
    password: str


@dataclass(frozen=True, slots=True)
class ApiTokenCredentials:
    """A packyard API token (`pky_…`)."""

    token: str


@dataclass(frozen=True, slots=True)
class JwtCredentials:
    """A CI ID token: a signed JWT, to be checked against its issuer's keys."""

    token: str


Credentials = PasswordCredentials | ApiTokenCredentials | JwtCredentials


def parse_authorization(value: str) -> Credentials:
    """The credentials in an `Authorization` header value.

    Raises:
        AuthenticationFailed: an unknown scheme, an empty token, Basic
            credentials that are not base64 of UTF-8 `user:secret`, or an
            empty user name or secret.
    """
    scheme, _, rest = value.strip().partition(" ")
    rest = rest.strip()
    scheme = scheme.lower()
    if scheme == "basic":
        return _basic(rest)
    if scheme in _TOKEN_SCHEMES:
        if not rest:
            raise AuthenticationFailed(f"The {scheme.title()} authorization carries no token.")
        return _token(rest)
    raise AuthenticationFailed(
        f"Unsupported authorization scheme {scheme!r}: use Basic (user name and password, "
        f"or '{TOKEN_USERNAME}' and an API token) or Bearer with an API token."
    )


def _basic(encoded: str) -> Credentials:
    try:
        decoded = base64.b64decode(encoded, validate=True).decode("utf-8")
    except (binascii.Error, ValueError) as exc:
        # UnicodeDecodeError is a ValueError: bytes that are not UTF-8.
        raise AuthenticationFailed(
            "Malformed Basic authorization: expected base64 of UTF-8 'user:password'."
        ) from exc
    username, colon, secret = decoded.partition(":")
    if not colon or not username or not secret:
        raise AuthenticationFailed(
            "Malformed Basic authorization: a user name and a password are both required."
        )
    if username == TOKEN_USERNAME:
        return _token(secret)
    return PasswordCredentials(username=username, password=secret)


def _token(token: str) -> ApiTokenCredentials | JwtCredentials:
    if token.count(".") == 2:
        return JwtCredentials(token=token)
    return ApiTokenCredentials(token=token)
