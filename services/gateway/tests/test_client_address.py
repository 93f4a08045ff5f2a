"""Client addresses behind proxies: X-Forwarded-For is believed from RF_TRUSTED_PROXIES only, and throttles use it.

The gateways are served by uvicorn over real loopback sockets, as they run: peers 127.0.0.1 (the trusted proxy
here) and 127.0.0.2 (a client that reaches the gateway directly; Linux routes all of 127/8 to loopback).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio
from pydantic import ValidationError

from gateway.main import create_app
from gateway.settings import Settings
from rf_testsupport import Served
from rf_testsupport.gateway import API, PASSWORD, gateway_settings
from rfkit.auth import generate_keypair

PROXY, DIRECT = "127.0.0.1", "127.0.0.2"
LIMITS = {"login_max_failures_per_address": 3, "register_max_per_address": 2}


async def _served(kafka_bootstrap: str, database_url: str, **over: Any) -> AsyncIterator[str]:
    settings = gateway_settings(database_url, kafka_bootstrap, generate_keypair()[0], **LIMITS, **over)
    async with Served(create_app(settings)) as served:
        yield served.url


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def behind_proxy(kafka_bootstrap: str, make_session_database: Any) -> AsyncIterator[str]:
    """A gateway that trusts the proxy at 127.0.0.1 and a proxy tier in 10.0.0.0/8 in front of it."""
    async for url in _served(kafka_bootstrap, make_session_database("gateway"),
                             trusted_proxies="127.0.0.1/32, 10.0.0.0/8"):
        yield url


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def no_proxy(kafka_bootstrap: str, make_session_database: Any) -> AsyncIterator[str]:
    """A gateway with the default setting: no proxy is trusted, not even one on 127.0.0.1."""
    async for url in _served(kafka_bootstrap, make_session_database("gateway")):
        yield url


def _client(url: str, peer: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=url, transport=httpx.AsyncHTTPTransport(local_address=peer), timeout=30)


def _client_ip() -> str:
    """A public-looking address of this test alone (per-address counters must not leak between tests)."""
    n = uuid.uuid4().int
    return f"203.0.{n % 250}.{n // 250 % 250 + 1}"


async def _failed_login(client: httpx.AsyncClient, forwarded_for: str | None = None) -> int:
    # A different unknown email each time: only the per-address limit can refuse it.
    headers = {"X-Forwarded-For": forwarded_for} if forwarded_for is not None else {}
    body = {"email": f"nobody-{uuid.uuid4().hex[:10]}@example.com", "password": "wrong password"}
    return (await client.post(f"{API}/auth/login/json", json=body, headers=headers)).status_code


async def _register(client: httpx.AsyncClient, forwarded_for: str | None = None) -> int:
    headers = {"X-Forwarded-For": forwarded_for} if forwarded_for is not None else {}
    email = f"admin-{uuid.uuid4().hex[:10]}@example.com"
    body = {"email": email, "password": PASSWORD, "full_name": "Ada", "account_name": f"acct {email}"}
    return (await client.post(f"{API}/auth/register", json=body, headers=headers)).status_code


async def test_two_clients_behind_a_trusted_proxy_are_throttled_separately(behind_proxy: str) -> None:
    alice, bob = _client_ip(), _client_ip()
    async with _client(behind_proxy, PROXY) as proxy:
        # Alice's requests, as one proxy or as the proxy tier (10.x appended by an inner proxy) forwards them.
        answers = [await _failed_login(proxy, alice), await _failed_login(proxy, f"{alice}, 10.1.2.3"),
                   await _failed_login(proxy, f"198.51.100.1, {alice}"), await _failed_login(proxy, alice)]
        assert answers == [401, 401, 401, 429]
        assert await _failed_login(proxy, bob) == 401  # Bob is still admitted

        assert [await _register(proxy, alice) for _ in range(3)] == [201, 201, 429]
        assert await _register(proxy, bob) == 201


async def test_a_forged_forwarded_for_from_an_untrusted_peer_changes_nothing(behind_proxy: str) -> None:
    async with _client(behind_proxy, DIRECT) as attacker:
        # Rotating the header does not escape the throttle: the attempts count against the peer's own address.
        answers = [await _failed_login(attacker, _client_ip()) for _ in range(4)]
        assert answers == [401, 401, 401, 429]
        assert await _failed_login(attacker) == 429
        assert [await _register(attacker, _client_ip()) for _ in range(3)] == [201, 201, 429]
    async with _client(behind_proxy, PROXY) as proxy:
        # ...nor does naming the peer's address lock anybody else out through the proxy.
        assert await _failed_login(proxy, _client_ip()) == 401


async def test_with_no_trusted_proxy_even_a_loopback_peer_is_not_believed(no_proxy: str) -> None:
    async with _client(no_proxy, PROXY) as client:
        answers = [await _failed_login(client, _client_ip()) for _ in range(4)]
    assert answers == [401, 401, 401, 429]


@pytest.mark.parametrize("value", ["10.0.0.0/33", "not-a-network", "10.0.0.1/8"])
def test_a_trusted_proxies_value_that_is_not_a_network_is_refused_at_startup(value: str) -> None:
    with pytest.raises(ValidationError, match="trusted_proxies"):
        Settings(env="test", trusted_proxies=value)


def test_trusted_proxies_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RF_TRUSTED_PROXIES", "10.0.0.0/8, 192.0.2.7 fd00::/8")
    assert [str(n) for n in Settings(env="test").trusted_proxies] == ["10.0.0.0/8", "192.0.2.7/32", "fd00::/8"]
