"""The whole system in one test process: the four real apps served over HTTP, each on its own database.

The servers run on an event loop of their own, in a background thread: the tests' loop stays free, and
synchronous clients (schemathesis) can call them too. Everything talks over real loopback sockets and the real
Kafka broker, with one topic prefix unique to this test run.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import pytest_asyncio

from analytics.main import create_app as analytics_app
from analytics.settings import Settings as AnalyticsSettings
from gateway.main import create_app as gateway_app
from handoffs.main import create_app as handoffs_app
from handoffs.settings import Settings as HandoffsSettings
from rf_contracts.api.errors import ErrorCode
from rf_devstack.samples import printer_tree as tree_body
from rf_testsupport import Served, loopback_socket, running, unique_prefix
from rf_testsupport.gateway import PASSWORD, User, gateway_settings, login
from rfkit.auth import generate_keypair
from sessions.main import create_app as sessions_app
from sessions.settings import Settings as SessionsSettings

API = "/api/v1"


class ErrorAnswers:
    """Every answer with a status of 400 or more that the stack's apps gave, whoever asked (the tests' clients,
    schemathesis, direct calls to a service), to check each against the registry of error codes."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str, str, int, bytes]] = []

    def wrap(self, name: str, app: Any) -> Any:
        async def recording(scope: Any, receive: Any, send: Any) -> None:
            if scope["type"] != "http":
                await app(scope, receive, send)
                return
            status = 0
            chunks: list[bytes] = []

            async def capture(message: Any) -> None:
                nonlocal status
                if message["type"] == "http.response.start":
                    status = message["status"]
                elif message["type"] == "http.response.body" and status >= 400:
                    chunks.append(message.get("body", b""))
                await send(message)

            await app(scope, receive, capture)
            if status >= 400:
                self.seen.append((name, scope["method"], scope["path"], status, b"".join(chunks)))

        return recording

    def unregistered(self) -> list[str]:
        """The answers that are not `{"detail": sentence, "code": <an ErrorCode>}` (HEAD answers have no body)."""
        codes = {code.value for code in ErrorCode}
        wrong = []
        for name, method, path, status, body in self.seen:
            if method == "HEAD":
                continue
            try:
                answer = json.loads(body)
            except ValueError:
                answer = None
            if not (isinstance(answer, dict) and answer.get("code") in codes and isinstance(answer.get("detail"), str)):
                wrong.append(f"{name} {method} {path} -> {status} {body[:300]!r}")
        return wrong


class Stack:
    """Starts sessions, handoffs, analytics and the gateway (in that order) on a loop in a background thread."""

    def __init__(self, kafka_bootstrap: str, make_database: Any, *, name_suffix: str = "", **settings: Any) -> None:
        """`settings`: more settings of the three services; `name_suffix` tells their metrics from another stack's."""
        self.kafka_bootstrap = kafka_bootstrap
        self.make_database = make_database
        self.name_suffix = name_suffix
        self.settings = settings
        self.prefix = unique_prefix()
        self.private_pem, self.public_pem = generate_keypair()
        self.urls: dict[str, str] = {}
        self.error_answers = ErrorAnswers()
        # The settings each service was started with (a test starts another replica of one with them).
        self.service_settings: dict[str, dict[str, Any]] = {}
        self.gateway_url = ""
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="e2e-stack", daemon=True)
        self._exit = contextlib.AsyncExitStack()

    def start(self) -> None:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(timeout=300)

    def stop(self) -> None:
        try:
            asyncio.run_coroutine_threadsafe(self._exit.aclose(), self._loop).result(timeout=120)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=30)
            self._loop.close()

    async def _serve(self, name: str, app: Any, sock: socket.socket | None = None) -> str:
        served = await self._exit.enter_async_context(Served(self.error_answers.wrap(name, app), sock=sock))
        self.urls[name] = served.url
        return served.url

    def _common(self, name: str) -> dict[str, Any]:
        self.service_settings[name] = settings = {
            "env": "test", "database_url": self.make_database(name), "kafka_bootstrap": self.kafka_bootstrap,
            "topic_prefix": self.prefix, "jwt_public_key": self.public_pem, "outbox_poll_interval_s": 0.05,
            # The gateway starts last but its address is known first: the services follow its token denials.
            "gateway_url": self.gateway_url, "denials_poll_interval_s": 0.2,
            **({"service_name": f"{name}{self.name_suffix}"} if self.name_suffix else {}), **self.settings,
        }
        return settings

    async def _start(self) -> None:
        gateway_sock = loopback_socket()
        self.gateway_url = f"http://127.0.0.1:{gateway_sock.getsockname()[1]}"
        sessions = await self._serve("sessions", sessions_app(SessionsSettings(**self._common("sessions"))))
        handoffs = await self._serve(
            "handoffs", handoffs_app(HandoffsSettings(**self._common("handoffs"), sessions_url=sessions))
        )
        analytics = await self._serve("analytics", analytics_app(AnalyticsSettings(**self._common("analytics"))))
        settings = gateway_settings(
            self.make_database("gateway"), self.kafka_bootstrap, self.private_pem,
            topic_prefix=self.prefix, sessions_url=sessions, handoffs_url=handoffs, analytics_url=analytics,
            # Every e2e request comes from 127.0.0.1: the per-address login limit is tested elsewhere.
            login_max_failures_per_address=100_000,
        )
        await self._serve("gateway", gateway_app(settings), gateway_sock)


@pytest.fixture(scope="package")
def stack(kafka_bootstrap: str, make_session_database: Any) -> Iterator[Stack]:
    with running(Stack(kafka_bootstrap, make_session_database)) as started:
        yield started
    # Every error answer of the whole package's tests carries a registered code (reported at this teardown).
    wrong = started.error_answers.unregistered()
    assert not wrong, f"{len(wrong)} error answers without a registered code:\n" + "\n".join(wrong[:50])


@dataclass
class Account:
    id: str
    admin: User
    users: dict[str, User] = field(default_factory=dict)

    def role(self, role: str) -> User:
        return self.admin if role == "admin" else self.users[role]


class Api:
    """The public API as a client sees it (through the gateway), with shortcuts to set up data."""

    tree_body = staticmethod(tree_body)

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client

    async def call(self, method: str, path: str, user: User | None = None, **kw: Any) -> httpx.Response:
        headers = {**(user.headers if user else {}), **kw.pop("headers", {})}
        return await self.client.request(method, API + path, headers=headers, **kw)

    async def account(self, *roles: str) -> Account:
        """A new account: its admin, plus one user of each role asked for ("engineer", "viewer", "engineer2")."""
        email = f"admin-{uuid.uuid4().hex[:10]}@example.com"
        r = await self.client.post(f"{API}/auth/register", json={
            "email": email, "password": PASSWORD, "full_name": "Ada Admin", "account_name": f"Team {email}"})
        assert r.status_code == 201, r.text
        account = Account(r.json()["account"]["id"], await login(self.client, email))
        for name in roles:
            role = name.rstrip("0123456789")
            member = f"{name}-{uuid.uuid4().hex[:10]}@example.com"
            r = await self.call("POST", "/users", account.admin, json={
                "email": member, "password": PASSWORD, "full_name": name, "role": role})
            assert r.status_code == 201, r.text
            account.users[name] = await login(self.client, member)
        return account

    async def ok(self, method: str, path: str, user: User, expect: int = 200, **kw: Any) -> Any:
        r = await self.call(method, path, user, **kw)
        assert r.status_code == expect, (method, path, r.status_code, r.text)
        return r.json() if r.content else None

    async def tree(self, user: User) -> dict[str, Any]:
        return await self.ok("POST", "/trees", user, 201, json=tree_body())  # type: ignore[no-any-return]

    async def session(self, user: User, tree_id: str | None = None) -> dict[str, Any]:
        tree_id = tree_id or (await self.tree(user))["id"]
        return await self.ok("POST", "/sessions", user, 201, json={"tree_id": tree_id})  # type: ignore[no-any-return]

    async def handoff(self, user: User, session_id: str | None = None) -> dict[str, Any]:
        session_id = session_id or (await self.session(user))["id"]
        body = {"session_id": session_id, "reason": "needs an expert", "priority": "high"}
        return await self.ok("POST", "/handoffs", user, 201, json=body)  # type: ignore[no-any-return]


@pytest_asyncio.fixture(scope="package", loop_scope="session")
async def api(stack: Stack) -> AsyncIterator[Api]:
    async with httpx.AsyncClient(base_url=stack.urls["gateway"], timeout=30) as client:
        yield Api(client)
