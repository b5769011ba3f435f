"""The HTTP client of one upstream, and the boundary where its errors become packyard's.

Both sides of an upstream, `UpstreamRepository` reading pages and
`UpstreamOpener` streaming files, share one `UpstreamClient` (an aiohttp
session, chosen over httpx for its lower latency and CPU per request:
docs/decisions.md) and translate aiohttp's exceptions here, so that one table
decides what is worth retrying (`UpstreamUnavailable`) and what is not
(`UpstreamError`).

Where the client may connect is decided by `upstream_hosts`: its own host and
file hosts only (every redirect hop checked), and no private address unless
the upstream is on one.
"""

from __future__ import annotations

import os
import time
import urllib.request
from collections.abc import Callable, Mapping
from urllib.parse import urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver

from packyard import __version__
from packyard.errors import UpstreamError, UpstreamUnavailable
from packyard.repository import upstream_events
from packyard.repository.upstream_hosts import (
    AddressRefused,
    GuardedResolver,
    HostRefused,
    UpstreamHosts,
    host_guard,
)
from packyard.settings import UpstreamSettings

MAX_REDIRECTS = 10
REDIRECT_LIMIT = MAX_REDIRECTS + 1
"""aiohttp's `max_redirects`: it gives up at that redirect, so this follows `MAX_REDIRECTS`."""
MAX_CONNECTIONS = 100
CONNECT_TIMEOUT = 10.0
"""The most seconds a new connection may take, whatever the upstream's `timeout`."""

CLIENT_ERRORS = (aiohttp.ClientError, TimeoutError)
"""What an aiohttp request or body read raises (for `except`; see `translate_error`)."""

Observer = Callable[[aiohttp.ClientResponse, float], None]
"""Told of each response (its redirects in `history`) and the seconds until its headers."""


class UpstreamClient:
    """The HTTP client of one upstream: an aiohttp session, opened on first use.

    aiohttp binds a session to the running event loop, and the chain is built
    before the server's loop runs (`compose.py`), so the session is created by
    the first request and closed by `aclose`. Telemetry sets `observer` to time
    every request; it is called here rather than through an aiohttp trace
    config, whose per-request machinery cost 20-40 µs of CPU a request (about
    a tenth of the request itself).

    Proxy variables (`HTTP(S)_PROXY`, `ALL_PROXY`, `NO_PROXY`) are honoured,
    read once here rather than by aiohttp's `trust_env` (which reads them, and
    `.netrc`, in two worker-thread hops per request); `SSL_CERT_FILE` and
    `SSL_CERT_DIR` are honoured by the default SSL context. Redirects are
    followed (at most `MAX_REDIRECTS`); pages are decoded (gzip), files are not
    (the opener asks per request), each hop only to an allowed host.

    `resolver` replaces the DNS resolver under the address check (for tests).
    """

    def __init__(
        self, settings: UpstreamSettings, *, resolver: AbstractResolver | None = None
    ) -> None:
        self.hosts = UpstreamHosts(settings)
        self.headers = {"User-Agent": f"packyard/{__version__}"}
        self.timeout = aiohttp.ClientTimeout(
            total=None,  # a large file may take long: only each read is bounded
            connect=settings.timeout,  # a free connection, or a new one
            sock_connect=min(settings.timeout, CONNECT_TIMEOUT),
            sock_read=settings.timeout,
        )
        self.observer: Observer | None = None
        self._session: aiohttp.ClientSession | None = None
        self._closed = False
        self._proxies = _env_proxies()
        self._proxy_of: dict[tuple[str, str], str | None] = {}
        proxy_hosts = [urlsplit(url).hostname or "" for url in self._proxies.values()]
        self._resolver_inner = resolver
        self._proxy_hosts = proxy_hosts
        self._resolver: GuardedResolver | None = None

    async def get(
        self, url: str, headers: Mapping[str, str], *, decode: bool = True
    ) -> aiohttp.ClientResponse:
        """GET `url`, following redirects: the response once its headers are in.

        The caller reads the body (`decode=False`: as sent, no content coding
        undone) and releases the response.

        Raises:
            aiohttp.ClientError, TimeoutError: for `translate_error`.
        """
        session = self._session or self.session
        started = time.perf_counter()
        response = await session.get(
            url,
            headers=headers,
            max_redirects=REDIRECT_LIMIT,
            proxy=self.proxy(url),
            auto_decompress=decode,
        )
        if self.observer is not None:
            self.observer(response, time.perf_counter() - started)
        return response

    @property
    def session(self) -> aiohttp.ClientSession:
        """The session, opened now if this is the first request.

        Raises:
            RuntimeError: the client was closed.
        """
        session = self._session
        if session is None:
            session = self._session = self._open()
        return session

    def proxy(self, url: str) -> str | None:
        """The proxy for `url` from the environment (None: connect directly)."""
        if not self._proxies:
            return None
        parts = urlsplit(url)
        key = (parts.scheme, parts.hostname or "")
        try:
            return self._proxy_of[key]
        except KeyError:
            pass
        proxy = None
        if not urllib.request.proxy_bypass(key[1]):
            proxy = self._proxies.get(key[0]) or self._proxies.get("all")
        self._proxy_of[key] = proxy
        return proxy

    async def aclose(self) -> None:
        self._closed = True
        if self._session is not None:
            await self._session.close()
        if self._resolver is not None:
            await self._resolver.close()

    def _open(self) -> aiohttp.ClientSession:
        if self._closed:
            raise RuntimeError("the upstream client is closed")
        self._resolver = GuardedResolver(
            self.hosts.own_host, self._proxy_hosts, self._resolver_inner
        )
        return aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=MAX_CONNECTIONS, resolver=self._resolver),
            headers=self.headers,
            timeout=self.timeout,
            middlewares=(host_guard(self.hosts),),
        )


def _env_proxies() -> dict[str, str]:
    """`http`, `https` and `all` proxy URLs from the environment (as urllib reads them)."""
    return {
        scheme: url
        for scheme, url in urllib.request.getproxies().items()
        if scheme in ("http", "https", "all") and url
    }


def translate_error(exc: aiohttp.ClientError | TimeoutError, label: str) -> UpstreamError:
    """aiohttp's errors as domain errors, translated at this boundary (STYLE §5).

    A refused host or address is an `UpstreamError` (a 502: retrying will not
    help), and an `upstream-connection-refused` event.
    """
    refused = _refusal(exc)
    if refused is not None:
        upstream_events.emit("upstream-connection-refused", label, reason=refused)
        return UpstreamError(label, f"tried to make packyard connect {refused}; refused")
    if isinstance(exc, aiohttp.TooManyRedirects):
        url = exc.request_info.url
        return UpstreamError(label, f"redirects too many times (over {MAX_REDIRECTS}) from {url}")
    if isinstance(exc, aiohttp.ClientConnectorError):
        return UpstreamUnavailable(label, f"could not be reached: {_connect_failure(exc)}")
    if isinstance(exc, TimeoutError):  # aiohttp's ServerTimeoutError too: connect or read
        detail = str(exc)
        return UpstreamUnavailable(
            label, "could not be reached: timed out" + (f" ({detail})" if detail else "")
        )
    if isinstance(exc, aiohttp.ClientPayloadError):  # the cause says what was missing
        detail = getattr(exc.__cause__, "message", None) or _reason(exc)
        return UpstreamUnavailable(label, f"broke off the response: {detail}")
    if isinstance(exc, aiohttp.ClientHttpProxyError):
        return UpstreamUnavailable(
            label, f"could not be reached through the proxy (HTTP {exc.status} {exc.message})"
        )
    if isinstance(exc, aiohttp.ClientConnectionError):  # reset, closed before the headers
        return UpstreamUnavailable(label, f"could not be reached: {_reason(exc)}")
    if isinstance(exc, aiohttp.InvalidURL | aiohttp.NonHttpUrlClientError):
        return UpstreamError(label, f"failed: not a usable http(s) URL: {exc}")
    if isinstance(exc, aiohttp.ClientResponseError):  # a response aiohttp could not parse
        return UpstreamUnavailable(label, f"sent a malformed response: {exc.message}")
    return UpstreamError(label, f"failed: {_reason(exc)}")


def _refusal(exc: BaseException) -> str | None:
    """What was refused, if `exc` is a refusal of `upstream_hosts`."""
    if isinstance(exc, HostRefused):
        return f"to {exc.url}, not on its own host or file hosts ({exc.allowed})"
    if isinstance(exc, aiohttp.ClientConnectorError) and isinstance(exc.os_error, AddressRefused):
        error = exc.os_error
        return (
            f"to {error.host}, which resolves to {error.address}: a loopback, link-local "
            "or private address, and the upstream itself is not on one"
        )
    return None


def _connect_failure(exc: aiohttp.ClientConnectorError) -> str:
    """ "cannot connect to pypi.org:443 (Connection refused)", without aiohttp's jargon."""
    error = exc.os_error
    if isinstance(exc, aiohttp.ClientSSLError):
        reason = f"TLS failed: {error}"
    elif error.errno is not None and error.errno > 0:
        reason = os.strerror(error.errno)  # "Connection refused", not "Connect call failed"
    else:  # a resolver error ("Name or service not known") and the like
        reason = error.strerror or str(error) or type(error).__name__
    return f"cannot connect to {exc.host}:{exc.port} ({reason})"


def _reason(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__
