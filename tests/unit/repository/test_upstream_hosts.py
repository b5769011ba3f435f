"""Where an upstream may make packyard connect: hosts, redirects and addresses."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult

from packyard.errors import UpstreamError, UpstreamUnavailable
from packyard.repository.upstream_hosts import (
    AddressRefused,
    GuardedResolver,
    UpstreamHosts,
    is_global,
)
from packyard.repository.upstream_http import translate_error
from packyard.repository.upstream_opener import UpstreamOpener
from packyard.settings import UpstreamSettings
from tests.unit.upstream_server import Servers, response

pytestmark = pytest.mark.anyio


class FakeDNS(AbstractResolver):
    """Answers from a table; `asked` records the names resolved."""

    def __init__(self, table: dict[str, list[str]]) -> None:
        self.table = table
        self.asked: list[str] = []

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        self.asked.append(host)
        return [
            {
                "hostname": host,
                "host": address,
                "port": port,
                "family": socket.AF_INET,
                "proto": 0,
                "flags": 0,
            }
            for address in self.table[host]
        ]

    async def close(self) -> None:
        pass


@pytest.mark.parametrize(
    ("url", "file_hosts", "allowed", "refused"),
    [
        (
            "https://pypi.org/simple/",
            None,
            ["https://files.pythonhosted.org/a.whl", "https://pypi.org/f/a.whl"],
            ["https://evil.test/a.whl", "https://pypi.org:8443/a"],
        ),
        (
            "http://127.0.0.1:8000/simple/",
            None,
            ["http://127.0.0.1:8000/f"],
            ["http://127.0.0.1:8001/f", "http://localhost:8000/f", "file:///etc/passwd"],
        ),
        (
            "https://mirror.test/",
            ("cdn.test", "files.test:8443"),
            ["https://cdn.test/a", "http://cdn.test/a", "https://files.test:8443/a"],
            ["https://cdn.test:444/a", "https://files.test/a"],
        ),
        (
            "https://pypi.org/simple/",
            (),
            ["https://pypi.org/f"],
            ["https://files.pythonhosted.org/a.whl"],
        ),
    ],
)
def test_allowed_hosts(
    url: str, file_hosts: tuple[str, ...] | None, allowed: list[str], refused: list[str]
) -> None:
    hosts = UpstreamHosts(UpstreamSettings(url=url, file_hosts=file_hosts))
    assert [hosts.allows(u) for u in allowed] == [True] * len(allowed)
    assert [hosts.allows(u) for u in refused] == [False] * len(refused)


@pytest.mark.parametrize("bad", ["cdn.test/x", "user@cdn.test", "cdn.test:0", ":80"])
def test_file_hosts_entries_are_validated(bad: str) -> None:
    with pytest.raises(ValueError, match="file_hosts"):
        UpstreamSettings(url="https://x.test/", file_hosts=(bad,))


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("127.0.0.1", False),
        ("10.1.2.3", False),
        ("169.254.169.254", False),
        ("::1", False),
        ("::ffff:127.0.0.1", False),
        ("fe80::1%eth0", False),
        ("100.64.0.1", False),
        ("93.184.216.34", True),
        ("2606:4700::1111", True),
    ],
)
def test_global_addresses(address: str, public: bool) -> None:
    assert is_global(address) is public


async def test_a_public_upstream_may_not_send_packyard_to_a_private_address() -> None:
    dns = FakeDNS({"files.test": ["93.184.216.34", "127.0.0.1"]})
    resolver = GuardedResolver("93.184.216.34", inner=dns)  # every address is checked
    with pytest.raises(AddressRefused, match=r"127\.0\.0\.1"):
        await resolver.resolve("files.test", 443)


async def test_an_upstream_on_a_private_address_may_use_private_addresses() -> None:
    dns = FakeDNS({"mirror.internal": ["10.0.0.5"], "files.internal": ["10.0.0.6"]})
    resolver = GuardedResolver("mirror.internal", inner=dns)
    assert [r["host"] for r in await resolver.resolve("files.internal", 443)] == ["10.0.0.6"]
    assert GuardedResolver("127.0.0.1", inner=dns)._inside is True


async def test_proxies_may_be_private() -> None:
    dns = FakeDNS({"proxy.corp": ["10.9.9.9"]})
    resolver = GuardedResolver("93.184.216.34", ["proxy.corp"], inner=dns)
    assert [r["host"] for r in await resolver.resolve("proxy.corp", 3128)] == ["10.9.9.9"]


async def test_the_address_connected_to_is_the_address_checked(servers: Servers) -> None:
    """A name of an allowed files host that resolves to 127.0.0.1 (DNS rebinding, or a
    hostile DNS answer): the service there is never contacted."""

    async def secret(request: web.BaseRequest) -> web.StreamResponse:
        return response(b"internal secret")

    internal = await servers.start(secret)
    port = int(internal.url.rpartition(":")[2])
    settings = UpstreamSettings(
        url="http://93.184.216.34:9/simple/", name="pypi", file_hosts=(f"files.test:{port}",)
    )
    dns = FakeDNS({"files.test": ["127.0.0.1"]})
    client = servers.client(settings, resolver=dns)
    opener = UpstreamOpener(client, "pypi")
    with pytest.raises(UpstreamError, match="private address") as caught:
        async with opener.open(f"http://files.test:{port}/a.whl", None):
            pass
    assert not isinstance(caught.value, UpstreamUnavailable)
    assert internal.requests == []
    assert "files.test" in dns.asked


def test_other_client_errors_are_unchanged() -> None:
    error = translate_error(TimeoutError(), "pypi")
    assert isinstance(error, UpstreamUnavailable)


@pytest.fixture
async def servers() -> AsyncIterator[Servers]:
    async with Servers() as running:
        yield running
