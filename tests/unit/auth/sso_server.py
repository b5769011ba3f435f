"""A provider whose answers a test chooses: discovery, JWKS, token and userinfo
endpoints on 127.0.0.1, for the relying party's refusals (forged, expired,
replayed tokens...) that a well-behaved provider never sends.

The sign-in as people meet it runs against a real provider
(`tests/oidc_provider`, `tests/e2e/test_sso.py`); this one is for what only a
hostile or broken provider does.

    with ScriptedProvider() as provider:
        provider.publish(key)
        provider.id_token = key.sign(provider.claims(nonce=attempt.nonce))
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self
from urllib.parse import parse_qs

from tests.unit.auth.jwks_server import SigningKey, send_json, serve

CLIENT_ID = "packyard"
CLIENT_SECRET = "s3cret-for-tests"
REALM = "/realm"  # the issuer has a path, as Keycloak's has


@dataclass
class ScriptedProvider:
    keys: list[dict[str, Any]] = field(default_factory=list)
    id_token: str | None = None
    userinfo: dict[str, Any] | None = None
    token_status: int = 200
    token_error: dict[str, Any] | None = None
    discovery_issuer: str | None = None  # None: the real one
    token_requests: list[dict[str, list[str]]] = field(default_factory=list)
    authorizations: list[str] = field(default_factory=list)
    _server: ThreadingHTTPServer | None = None

    @property
    def issuer(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}{REALM}"

    def publish(self, *keys: SigningKey) -> None:
        self.keys.extend(key.jwk() for key in keys)

    def claims(self, **overrides: Any) -> dict[str, Any]:
        """The claims of alice's ID token for `CLIENT_ID`, valid 5 minutes."""
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "aud": CLIENT_ID,
            "sub": "f3b1c2d4-alice",
            "iat": now,
            "exp": now + 300,
            "preferred_username": "alice",
            "email": "alice@lab.example",
            "name": "Alice Liddell",
            "groups": ["acc-controls", "everyone"],
        }
        claims.update(overrides)
        return {key: value for key, value in claims.items() if value is not None}

    def __enter__(self) -> Self:
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                base = provider.issuer
                path = base.removesuffix(REALM) + self.path
                if path == base + "/.well-known/openid-configuration":
                    self._json(
                        200,
                        {
                            "issuer": provider.discovery_issuer or base,
                            "authorization_endpoint": base + "/auth",
                            "token_endpoint": base + "/token",
                            "jwks_uri": base + "/certs",
                            "userinfo_endpoint": base + "/userinfo",
                            "code_challenge_methods_supported": ["S256"],
                        },
                    )
                elif path == base + "/certs":
                    self._json(200, {"keys": provider.keys})
                elif path == base + "/userinfo":
                    if provider.userinfo is None:
                        self._json(200, {"sub": "f3b1c2d4-alice"})
                    else:
                        self._json(200, provider.userinfo)
                else:
                    self._json(404, {"error": "not found"})

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                form = parse_qs(self.rfile.read(length).decode())
                provider.token_requests.append(
                    {**form, "authorization": [self.headers.get("Authorization", "")]}
                )
                if provider.token_error is not None:
                    self._json(provider.token_status, provider.token_error)
                else:
                    body = {"access_token": "at-1", "token_type": "Bearer", "expires_in": 300}
                    if provider.id_token is not None:
                        body["id_token"] = provider.id_token
                    self._json(provider.token_status, body)

            def _json(self, status: int, body: dict[str, Any]) -> None:
                send_json(self, status, body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = serve(Handler)
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        assert self._server is not None
        self._server.shutdown()
        self._server.server_close()
