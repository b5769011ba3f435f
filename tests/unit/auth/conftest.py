"""Fixtures of the auth tests: signing keys and a CI issuer on 127.0.0.1."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from tests.unit.auth.jwks_server import JwksServer, SigningKey


@pytest.fixture(scope="session")
def rsa_key() -> SigningKey:
    return SigningKey.rsa("rsa-1")


@pytest.fixture(scope="session")
def ec_key() -> SigningKey:
    return SigningKey.ec("ec-1")


@pytest.fixture
def issuer(rsa_key: SigningKey, ec_key: SigningKey) -> Iterator[JwksServer]:
    """An issuer that publishes `rsa_key` and `ec_key`."""
    with JwksServer() as server:
        server.publish(rsa_key, ec_key)
        yield server


@pytest.fixture
async def http_client() -> AsyncIterator[httpx.AsyncClient]:
    # trust_env=False: no proxy from the environment; the issuer is on 127.0.0.1.
    async with httpx.AsyncClient(trust_env=False, timeout=5) as client:
        yield client
