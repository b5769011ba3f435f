"""Who may read the metrics: `GET /metrics`, open or behind a bearer token.

The metrics name no secret (upstreams appear by their label, which never
carries the credentials of their URL: `UpstreamSettings.label`), but they do
show traffic, route families and the upstreams in use. A site may therefore
ask for a token (`[telemetry] metrics_token_file`, sent by Prometheus with
`authorization: {credentials_file: …}`), serve them on a separate address
(`metrics_listen`, `listener.py`), or both.
"""

from __future__ import annotations

import hmac
from pathlib import Path

from packyard.errors import ConfigurationError
from packyard.routes.asgi import Headers
from packyard.telemetry.metrics import CONTENT_TYPE, Metrics

PATH = "/metrics"
_TEXT: Headers = [(b"content-type", b"text/plain; charset=utf-8"), (b"cache-control", b"no-store")]
CHALLENGE = (b"www-authenticate", b'Bearer realm="packyard metrics"')


def read_token(path: Path) -> bytes:
    """The bearer token kept in `path` (surrounding whitespace dropped).

    Raises:
        ConfigurationError: the file cannot be read, or is empty.
    """
    try:
        token = path.read_bytes().strip()
    except OSError as exc:
        raise ConfigurationError(
            f"telemetry.metrics_token_file {str(path)!r} cannot be read: {exc.strerror}"
        ) from exc
    if not token:
        raise ConfigurationError(f"telemetry.metrics_token_file {str(path)!r} is empty")
    return token


class MetricsExposition:
    """The answer to a request for the metrics, whatever server carries it."""

    def __init__(self, metrics: Metrics, token: bytes | None = None) -> None:
        self._metrics = metrics
        self._token = token

    def answer(self, method: str, authorization: bytes | None) -> tuple[int, Headers, bytes]:
        """Status, headers and body: the Prometheus text, or why not."""
        if method not in ("GET", "HEAD"):
            headers = [(b"allow", b"GET, HEAD"), *_TEXT]
            return 405, headers, b"Method not allowed: use GET.\n"
        if not self._allowed(authorization):
            message = b"The metrics need a token: send Authorization: Bearer <token>.\n"
            return 401, [*_TEXT, CHALLENGE], message
        headers = [(b"content-type", CONTENT_TYPE), (b"cache-control", b"no-store")]
        return 200, headers, self._metrics.render()

    def _allowed(self, authorization: bytes | None) -> bool:
        if self._token is None:
            return True
        if authorization is None:
            return False
        scheme, _, credentials = authorization.strip().partition(b" ")
        return scheme.lower() == b"bearer" and hmac.compare_digest(credentials.strip(), self._token)
