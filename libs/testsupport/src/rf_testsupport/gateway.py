"""Gateway test support: a gateway on a real database, the users to act as, and how they log in."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from gateway.main import create_app
from gateway.security import public_pem_of
from gateway.settings import Settings
from rf_testsupport.apps import RunningApp, free_port
from rf_testsupport.kafka import unique_prefix
from rfkit.auth import generate_keypair

PASSWORD = "correct horse battery"
API = "/api/v1"


def gateway_settings(database_url: str, kafka_bootstrap: str, private_pem: str, **over: Any) -> Settings:
    """Test settings: cheap argon2 parameters (the hashing code path is the same, only the cost differs)."""
    fields: dict[str, Any] = {
        "env": "test",
        "database_url": database_url,
        "kafka_bootstrap": kafka_bootstrap,
        "topic_prefix": unique_prefix(),
        "jwt_private_key": private_pem,
        "argon2_time_cost": 1,
        "argon2_memory_kib": 1024,
        "argon2_parallelism": 1,
        # Tests register many accounts from one address; the registration limit has a test of its own.
        "register_max_per_address": 100_000,
    }
    # Nothing listens behind the gateway unless a test says so (never whatever runs on the default ports).
    for name in ("sessions_url", "handoffs_url", "analytics_url"):
        fields[name] = closed_port_url()
    fields.update(over)
    return Settings(**fields)


@dataclass
class User:
    id: str
    account_id: str
    email: str
    role: str
    access: str
    refresh: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access}"}


async def login(client: httpx.AsyncClient, email: str, password: str = PASSWORD, *, prefix: str = API) -> User:
    """Log in through the public API (any client bound to a gateway) and ask who that is; `prefix=""` for a client
    whose base URL already ends with the API's path."""
    r = await client.post(f"{prefix}/auth/login/json", json={"email": email, "password": password})
    assert r.status_code == 200, r.text
    tokens = r.json()
    me = (await client.get(f"{prefix}/auth/me", headers={"Authorization": f"Bearer {tokens['access_token']}"})).json()
    return User(me["id"], me["account_id"], me["email"], me["role"], tokens["access_token"], tokens["refresh_token"])


@dataclass
class Gateway:
    """A running gateway and the ways tests act on it."""

    running: RunningApp
    private_pem: str
    public_pem: str
    settings: Settings
    engine: AsyncEngine

    @property
    def client(self) -> httpx.AsyncClient:
        return self.running.client

    def client_from(self, address: str) -> httpx.AsyncClient:
        """A client whose requests come from `address` (login throttling counts per client address)."""
        transport = httpx.ASGITransport(app=self.running.app, client=(address, 40000))
        return httpx.AsyncClient(transport=transport, base_url="http://testserver")

    async def register(self, email: str | None = None, password: str = PASSWORD) -> tuple[User, dict[str, Any]]:
        """A new account with its admin, logged in."""
        email = email or f"admin-{uuid.uuid4().hex[:10]}@example.com"
        r = await self.client.post(f"{API}/auth/register", json={
            "email": email, "password": password, "full_name": "Ada Admin", "account_name": f"acct {email}",
        })
        assert r.status_code == 201, r.text
        body = r.json()
        return await self.login(email, password), body

    async def login(self, email: str, password: str = PASSWORD) -> User:
        return await login(self.client, email, password)

    async def add_user(self, admin: User, role: str, *, email: str | None = None) -> User:
        email = email or f"{role}-{uuid.uuid4().hex[:10]}@example.com"
        r = await self.client.post(f"{API}/users", headers=admin.headers, json={
            "email": email, "password": PASSWORD, "full_name": f"A {role}", "role": role,
        })
        assert r.status_code == 201, r.text
        return await self.login(email)

    async def scalar(self, sql: str, **params: Any) -> Any:
        async with self.engine.begin() as conn:
            return await conn.scalar(sa.text(sql), params)


async def start_gateway(kafka_bootstrap: str, database_url: str, **over: Any) -> AsyncIterator[Gateway]:
    private_pem = over.pop("jwt_private_key", None) or generate_keypair()[0]
    public_pem = public_pem_of(private_pem)
    settings = gateway_settings(database_url, kafka_bootstrap, private_pem, **over)
    engine = create_async_engine(database_url)
    try:
        async with RunningApp(create_app(settings)) as running:
            yield Gateway(running, private_pem, public_pem, settings, engine)
    finally:
        await engine.dispose()


def closed_port_url() -> str:
    """An address where nothing listens: connections are refused at once (a service that is down)."""
    return f"http://127.0.0.1:{free_port()}"
