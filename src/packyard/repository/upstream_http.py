"""The boundary where httpx's errors become packyard's (STYLE §5).

Both sides of an upstream, `UpstreamRepository` reading pages and
`UpstreamOpener` streaming files, translate the HTTP client's exceptions here,
so that one table decides what is worth retrying (`UpstreamUnavailable`) and
what is not (`UpstreamError`).
"""

from __future__ import annotations

import httpx

from packyard.errors import UpstreamError, UpstreamUnavailable


def translate_error(exc: httpx.HTTPError | httpx.InvalidURL, label: str) -> UpstreamError:
    """httpx's errors as domain errors, translated at this boundary (STYLE §5)."""
    if isinstance(exc, httpx.TooManyRedirects):
        return UpstreamError(label, f"redirects too many times: {exc}")
    if isinstance(exc, httpx.TransportError):
        return UpstreamUnavailable(label, f"could not be reached: {str(exc) or type(exc).__name__}")
    return UpstreamError(label, f"failed: {str(exc) or type(exc).__name__}")
