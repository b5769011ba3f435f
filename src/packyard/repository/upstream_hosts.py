"""Where an upstream may make packyard connect: its own host and its file hosts.

An upstream page names the URLs packyard then fetches, so a hostile or
compromised upstream could make packyard reach any host its network can: an
internal service, a cloud metadata endpoint (server-side request forgery).
Three rules close that, for every request of an upstream's client (pages,
files, the metadata read-ahead and range reads alike):

- `UpstreamHosts`: a page's file URLs must point at the upstream's own host
  or one of its `file_hosts` (default: none, and files.pythonhosted.org for
  pypi.org); other entries are dropped when the page is read
  (`upstream_pages`).
- `host_guard`: every request, each redirect hop included, goes to an
  allowed host (an aiohttp client middleware, which aiohttp runs for every
  hop); anything else fails with `HostRefused`.
- `GuardedResolver`: a host name that resolves to a loopback, link-local,
  private or otherwise non-global address is refused (`AddressRefused`),
  unless the upstream's own host is on such an address (an in-house mirror, a
  test upstream on 127.0.0.1): then the whole upstream lives inside, and
  nothing is gained by refusing. Every address of the answer is checked, and
  aiohttp connects only to the addresses its resolver returned (it never
  resolves again), so the address checked is the address connected to: a DNS
  answer that changes between a check and a connect (DNS rebinding) cannot
  slip through. IP literals are not resolved: they can only be the upstream's
  own host or a file host an administrator listed.

A request sent through a proxy is resolved by the proxy; the proxy's own host,
configured by the administrator, may be private.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Collection
from urllib.parse import urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.client_middlewares import ClientHandlerType, ClientMiddlewareType
from yarl import URL

from packyard.settings import UpstreamSettings

DEFAULT_PORTS = {"http": 80, "https": 443}
DEFAULT_FILE_HOSTS: dict[str, tuple[str, ...]] = {"pypi.org": ("files.pythonhosted.org",)}
"""Where well-known indexes keep their files (used when `file_hosts` is not set)."""


class HostRefused(aiohttp.ClientError):
    """A request (or a redirect) to a host the upstream may not send packyard to."""

    def __init__(self, url: str, allowed: str) -> None:
        super().__init__(f"{url} is on a host other than {allowed}")
        self.url = url
        self.allowed = allowed


class AddressRefused(OSError):
    """A host name that resolves to a non-global address, for an upstream on a global one."""

    def __init__(self, host: str, address: str) -> None:
        super().__init__(f"{host} resolves to {address}, a loopback, link-local or private address")
        self.host = host
        self.address = address


class UpstreamHosts:
    """The hosts (name and port) an upstream's pages may send packyard to."""

    def __init__(self, settings: UpstreamSettings) -> None:
        own = urlsplit(settings.url)
        self.own_host = (own.hostname or "").lower()
        self._exact: set[tuple[str, int]] = {(self.own_host, _port(own.scheme, own.port))}
        self._any_default: set[str] = set()
        hosts = settings.file_hosts
        if hosts is None:
            hosts = DEFAULT_FILE_HOSTS.get(self.own_host, ())
        for entry in hosts:
            parts = urlsplit("//" + entry)
            name = (parts.hostname or "").lower()
            if parts.port is None:
                self._any_default.add(name)
            else:
                self._exact.add((name, parts.port))
        names = [f"{h}:{p}" for h, p in sorted(self._exact)] + sorted(self._any_default)
        self.described = ", ".join(names)

    def allows(self, url: str) -> bool:
        """Whether `url` (absolute http or https) is on an allowed host."""
        try:
            parts = urlsplit(url)
            return self.allows_host(parts.scheme, parts.hostname, parts.port)
        except ValueError:  # a malformed port or IPv6 host
            return False

    def allows_host(self, scheme: str, host: str | None, port: int | None) -> bool:
        if not host or scheme not in DEFAULT_PORTS:
            return False
        host = host.lower().rstrip(".")
        if host in self._any_default and port in (None, DEFAULT_PORTS[scheme]):
            return True
        return (host, _port(scheme, port)) in self._exact


def host_guard(hosts: UpstreamHosts) -> ClientMiddlewareType:
    """An aiohttp client middleware: every request and redirect hop to an allowed host.

    Raises (from the request):
        HostRefused: the request is for another host.
    """

    async def guard(
        request: aiohttp.ClientRequest, handler: ClientHandlerType
    ) -> aiohttp.ClientResponse:
        url: URL = request.url
        if not hosts.allows_host(url.scheme, url.host, url.explicit_port):
            raise HostRefused(str(url.with_query(None).with_user(None)), hosts.described)
        return await handler(request)

    return guard


def is_global(address: str) -> bool:
    """Whether `address` is a global unicast address (not loopback, private, link-local...)."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])  # drop an IPv6 zone
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


class GuardedResolver(AbstractResolver):
    """aiohttp's resolver, refusing non-global addresses unless the upstream is on one.

    Args:
        upstream_host: the upstream's own host (a name or an IP literal).
        trusted: host names configured by the administrator (proxies) that may
            resolve to any address.
        inner: the resolver that asks DNS (aiohttp's default one by default).
    """

    def __init__(
        self,
        upstream_host: str,
        trusted: Collection[str] = (),
        inner: AbstractResolver | None = None,
    ) -> None:
        self._upstream_host = upstream_host
        self._trusted = {host.lower() for host in trusted}
        self._inner = inner if inner is not None else aiohttp.DefaultResolver()
        self._inside: bool | None = None
        if _is_ip(upstream_host):
            self._inside = not is_global(upstream_host)

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        """The addresses of `host`, all checked.

        Raises:
            AddressRefused: one of them is not global and the upstream is.
            OSError: the name cannot be resolved.
        """
        results = await self._inner.resolve(host, port, family)
        if host.lower() in self._trusted or await self._upstream_inside(family):
            return results
        for result in results:
            if not is_global(result["host"]):
                raise AddressRefused(host, result["host"])
        return results

    async def _upstream_inside(self, family: socket.AddressFamily) -> bool:
        """Whether the upstream's own host is on non-global addresses only (decided once)."""
        if self._inside is None:
            own = await self._inner.resolve(self._upstream_host, 0, family)
            self._inside = all(not is_global(result["host"]) for result in own)
        return self._inside

    async def close(self) -> None:
        await self._inner.close()


def _port(scheme: str, port: int | None) -> int:
    return port if port is not None else DEFAULT_PORTS.get(scheme, 0)
