"""A CI issuer for tests: an OpenID discovery document and a JWKS served on 127.0.0.1,
and the private keys to sign ID tokens with.

    with JwksServer() as issuer:
        issuer.publish(key)                      # key: SigningKey
        token = key.sign(issuer.claims(aud="packyard"))

The server is the standard library's `http.server` in a thread: real HTTP, so
the verifier's discovery, fetching and caching are exercised for real.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


@dataclass(frozen=True)
class SigningKey:
    """A private key with its `kid` and algorithm (RS256 or ES256)."""

    kid: str
    algorithm: str
    private: PrivateKey

    @classmethod
    def rsa(cls, kid: str) -> SigningKey:
        return cls(kid, "RS256", rsa.generate_private_key(public_exponent=65537, key_size=2048))

    @classmethod
    def ec(cls, kid: str) -> SigningKey:
        return cls(kid, "ES256", ec.generate_private_key(ec.SECP256R1()))

    def jwk(self) -> dict[str, Any]:
        """The public key as a JWK, as GitLab publishes it (`use`, `kid`; `alg` for RSA)."""
        if isinstance(self.private, rsa.RSAPrivateKey):
            jwk = RSAAlgorithm.to_jwk(self.private.public_key(), as_dict=True)
            jwk["alg"] = self.algorithm
        else:
            # No `alg`: the verifier must infer ES256 from the key type and curve.
            jwk = ECAlgorithm.to_jwk(self.private.public_key(), as_dict=True)
        return {**jwk, "kid": self.kid, "use": "sig"}

    def sign(self, claims: dict[str, Any], **headers: Any) -> str:
        return jwt.encode(
            claims, self.private, algorithm=self.algorithm, headers={"kid": self.kid, **headers}
        )


@dataclass
class JwksServer:
    """Serves `/.well-known/openid-configuration` and `/jwks` with the published keys."""

    keys: list[dict[str, Any]] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    _server: ThreadingHTTPServer | None = None

    @property
    def issuer(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def jwks_url(self) -> str:
        return self.issuer + "/jwks"

    def publish(self, *keys: SigningKey) -> None:
        self.keys.extend(key.jwk() for key in keys)

    def claims(self, **overrides: Any) -> dict[str, Any]:
        """GitLab-like ID token claims for project `acme/tools` on `main`, valid 5 minutes."""
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "aud": "packyard",
            "sub": "project_path:acme/tools:ref_type:branch:ref:main",
            "iat": now,
            "nbf": now,
            "exp": now + 300,
            "project_path": "acme/tools",
            "ref": "main",
            "ref_type": "branch",
        }
        claims.update(overrides)
        return {key: value for key, value in claims.items() if value is not None}

    def __enter__(self) -> Self:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.requests.append(self.path)
                if self.path == "/.well-known/openid-configuration":
                    body: dict[str, Any] = {"issuer": server.issuer, "jwks_uri": server.jwks_url}
                elif self.path == "/jwks":
                    body = {"keys": list(server.keys)}
                else:
                    self.send_error(404)
                    return
                send_json(self, 200, body)

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


def serve(handler: type[BaseHTTPRequestHandler]) -> ThreadingHTTPServer:
    """`handler` served on 127.0.0.1 (a free port) by a daemon thread."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    return server


def send_json(handler: BaseHTTPRequestHandler, status: int, body: Any) -> None:
    data = json.dumps(body).encode()
    handler.send_response(status)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(data)))
    handler.end_headers()
    handler.wfile.write(data)
