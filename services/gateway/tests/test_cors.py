"""CORS: RF_CORS_ORIGINS lets the pages of listed origins call the API from a browser; nothing else gets headers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from pydantic import ValidationError

from gateway.settings import Settings
from rf_testsupport.gateway import API, Gateway, start_gateway

ALLOWED = "https://console.example.com"
OTHER = "https://evil.example.net"
PREFLIGHT = {"Access-Control-Request-Method": "PUT", "Access-Control-Request-Headers": "authorization, if-match"}


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def cors_gateway(kafka_bootstrap: str, make_session_database: Any) -> AsyncIterator[Gateway]:
    async for gw in start_gateway(kafka_bootstrap, make_session_database("gateway_cors"),
                                  cors_origins=f"{ALLOWED}, http://localhost:5173"):
        yield gw


async def test_an_allowed_origin_gets_the_headers_on_a_preflight(cors_gateway: Gateway) -> None:
    r = await cors_gateway.client.options(f"{API}/sessions/00000000-0000-4000-8000-000000000000",
                                          headers={"Origin": ALLOWED, **PREFLIGHT})
    assert r.status_code == 200
    assert r.headers["access-control-allow-origin"] == ALLOWED
    assert "PUT" in r.headers["access-control-allow-methods"]
    allowed_headers = r.headers["access-control-allow-headers"].lower()
    assert "authorization" in allowed_headers and "if-match" in allowed_headers
    assert "access-control-allow-credentials" not in r.headers


async def test_an_allowed_origin_gets_the_headers_on_a_real_request_errors_included(cors_gateway: Gateway) -> None:
    r = await cors_gateway.client.get(f"{API}/auth/me", headers={"Origin": ALLOWED})
    assert r.status_code == 401  # no token: the page can still read why
    assert r.headers["access-control-allow-origin"] == ALLOWED
    assert "x-request-id" in r.headers["access-control-expose-headers"].lower()
    user, _ = await cors_gateway.register()
    r = await cors_gateway.client.get(f"{API}/auth/me", headers={"Origin": ALLOWED, **user.headers})
    assert r.status_code == 200 and r.headers["access-control-allow-origin"] == ALLOWED


async def test_another_origin_is_not_allowed(cors_gateway: Gateway) -> None:
    r = await cors_gateway.client.options(f"{API}/auth/me", headers={"Origin": OTHER, **PREFLIGHT})
    assert r.status_code == 400
    assert "access-control-allow-origin" not in r.headers
    r = await cors_gateway.client.get(f"{API}/auth/me", headers={"Origin": OTHER})
    assert r.status_code == 401
    # Starlette lists the exposed headers on every answer; without Allow-Origin a browser shows the page nothing.
    assert "access-control-allow-origin" not in r.headers


async def test_without_the_setting_no_origin_gets_cors_headers(gateway: Gateway) -> None:
    assert gateway.settings.cors_origins == []
    r = await gateway.client.options(f"{API}/auth/me", headers={"Origin": ALLOWED, **PREFLIGHT})
    assert "access-control-allow-origin" not in r.headers
    assert r.status_code == 405  # no route answers OPTIONS: there is no CORS layer at all
    r = await gateway.client.get(f"{API}/auth/me", headers={"Origin": ALLOWED})
    assert not any(name.startswith("access-control-") for name in r.headers)


@pytest.mark.parametrize("origin", ["*", "https://console.example.com/", "console.example.com",
                                    "https://console.example.com/app", "ftp://console.example.com"])
def test_a_value_that_is_not_an_origin_is_refused_at_start(origin: str) -> None:
    with pytest.raises(ValidationError, match="not an origin"):
        Settings(env="test", cors_origins=origin)
