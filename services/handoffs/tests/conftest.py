"""Fixtures of the handoffs tests: the service on real PostgreSQL and Kafka, and a stand-in sessions service."""

from __future__ import annotations

import asyncio
import json
import socket
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest_asyncio
import sqlalchemy as sa
from aiokafka import AIOKafkaConsumer, TopicPartition
from fastapi import FastAPI, Header, HTTPException
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from handoffs.main import create_app
from handoffs.settings import Settings
from handoffs.stale import StaleDetector
from rf_contracts import topics
from rf_testsupport import Caller, RunningApp, Served, unique_prefix, wait_until
from rfkit.auth import InvalidToken, TokenVerifier, generate_keypair


class ShiftedClock:
    """What the stale-claim detectors take as now: the real time plus an offset a test moves past a deadline."""

    def __init__(self) -> None:
        self.offset = timedelta(0)

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset


@dataclass
class StoredSession:
    account_id: uuid.UUID
    status: str = "active"
    # Test knobs: answer for any account (a buggy sessions service), or never answer in time.
    ignore_tenancy: bool = False
    hang: bool = False


@dataclass
class SessionsStandIn:
    """A real HTTP server playing the sessions service's `GET /api/v1/sessions/{id}` (tokens checked, tenancy)."""

    public_pem: str
    sessions: dict[uuid.UUID, StoredSession] = field(default_factory=dict)
    calls: list[dict[str, str | None]] = field(default_factory=list)
    url: str = ""
    _served: Served | None = None
    _unhang: asyncio.Event = field(default_factory=asyncio.Event)

    def add(self, account_id: uuid.UUID, **knobs: Any) -> uuid.UUID:
        session_id = uuid.uuid4()
        self.sessions[session_id] = StoredSession(account_id=account_id, **knobs)
        return session_id

    def app(self) -> FastAPI:
        verifier = TokenVerifier([self.public_pem], issuer="resolutionflow-gateway", audience="resolutionflow")
        app = FastAPI()

        @app.get("/api/v1/sessions/{session_id}")
        async def get_session(
            session_id: uuid.UUID,
            authorization: str | None = Header(default=None),
            x_request_id: str | None = Header(default=None),
        ) -> dict[str, Any]:
            self.calls.append(
                {"session_id": str(session_id), "authorization": authorization, "request_id": x_request_id}
            )
            if not authorization or not authorization.startswith("Bearer "):
                raise HTTPException(401, "missing bearer token")
            try:
                principal = verifier.verify(authorization.removeprefix("Bearer "))
            except InvalidToken as exc:
                raise HTTPException(401, f"invalid token: {exc}") from exc
            stored = self.sessions.get(session_id)
            if stored is None or (stored.account_id != principal.account_id and not stored.ignore_tenancy):
                raise HTTPException(404, "session not found")
            if stored.hang:
                await self._unhang.wait()  # until the test ends: longer than any client timeout
            return {
                "id": str(session_id),
                "account_id": str(stored.account_id),
                "tree_id": str(uuid.uuid4()),
                "tree_version": 1,
                "status": stored.status,
                "started_by": str(principal.user_id),
            }

        return app

    async def start(self) -> None:
        self._served = Served(self.app(), lifespan="off")
        await self._served.__aenter__()
        self.url = self._served.url

    async def stop(self) -> None:
        if self._served is not None:
            self._unhang.set()
            await self._served.__aexit__(None, None, None)


@dataclass
class Service:
    """The handoffs service running on its own database and topic prefix, plus what tests need around it."""

    running: RunningApp
    sessions: SessionsStandIn
    private_pem: str
    prefix: str
    bootstrap: str
    engine: AsyncEngine
    clock: ShiftedClock = field(default_factory=ShiftedClock)
    # Further instances of the service on the same database and topics (other replicas), if any.
    replicas: list[RunningApp] = field(default_factory=list)

    @property
    def detectors(self) -> list[StaleDetector]:
        return [r.app.state.stale_detector for r in [self.running, *self.replicas]]

    @property
    def client(self) -> httpx.AsyncClient:
        return self.running.client

    @property
    def app(self) -> FastAPI:
        return self.running.app

    @staticmethod
    def closed_port_url() -> str:
        """An address where nothing listens (connection refused): the sessions service down."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        sock.close()
        return f"http://127.0.0.1:{port}"

    def account(self, role: str = "engineer") -> Caller:
        """A user of a brand-new account (tests stay independent by using their own accounts)."""
        return Caller(self.private_pem, role=role)

    def colleague(self, of: Caller, role: str = "engineer") -> Caller:
        return of.colleague(self.private_pem, role=role)

    async def escalate(self, caller: Caller, *, priority: str = "normal", reason: str = "needs an expert") -> dict:
        session_id = self.sessions.add(caller.account_id)
        r = await self.client.post(
            "/api/v1/handoffs",
            json={"session_id": str(session_id), "reason": reason, "priority": priority},
            headers=caller.headers,
        )
        assert r.status_code == 201, r.text
        return r.json()

    async def act(self, caller: Caller, handoff_id: str, action: str, **body: Any) -> httpx.Response:
        return await self.client.post(
            f"/api/v1/handoffs/{handoff_id}/{action}", headers=caller.headers, json=body or None
        )

    async def outbox_drained(self) -> None:
        """Wait until every committed event reached Kafka (the relay marks a row only after the broker's ack)."""

        async def drained() -> bool:
            async with self.engine.connect() as conn:
                left = await conn.scalar(sa.text("SELECT count(*) FROM outbox WHERE published_at IS NULL"))
            return left == 0

        await wait_until(drained)

    async def events(self, topic: str, *, handoff_id: str | None = None, session_id: str | None = None) -> list[dict]:
        """Every event on the (prefixed) topic so far, optionally of one handoff or session; waits for the outbox."""
        await self.outbox_drained()
        records = await read_to_end(self.bootstrap, self.prefix + topic)
        out = []
        for record in records:
            value = json.loads(record.value)
            value["_key"] = record.key.decode() if record.key else None
            if handoff_id and value.get("handoff_id") != handoff_id:
                continue
            if session_id and value.get("session_id") != session_id:
                continue
            out.append(value)
        return out

    async def scalar(self, sql: str, **params: Any) -> Any:
        """Run SQL on the service's database directly (a query's first value, or None for a statement)."""
        async with self.engine.begin() as conn:
            result = await conn.execute(sa.text(sql), params)
            return result.scalar() if result.returns_rows else None


async def read_to_end(bootstrap: str, topic: str) -> list[Any]:
    """Everything on a topic up to its current end offsets (deterministic: no waiting for 'enough')."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None)
    await consumer.start()
    try:
        parts = [TopicPartition(topic, p) for p in range(topics.PARTITIONS)]
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        end = await consumer.end_offsets(parts)
        records: list[Any] = []
        while True:
            positions = {tp: await consumer.position(tp) for tp in parts}
            if all(positions[tp] >= end[tp] for tp in parts):
                return records
            batch = await consumer.getmany(timeout_ms=200)
            for recs in batch.values():
                records.extend(recs)
    finally:
        await consumer.stop()


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def service(kafka_bootstrap: str, make_session_database: Any) -> AsyncIterator[Service]:
    """One running handoffs service per test module (each module its own database and topics)."""
    async with _running(kafka_bootstrap, make_session_database, replicas=1) as running:
        yield running


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def two_replicas(kafka_bootstrap: str, make_session_database: Any) -> AsyncIterator[Service]:
    """Two instances of the service side by side on one database and topic prefix, sharing a movable clock."""
    async with _running(kafka_bootstrap, make_session_database, replicas=2) as running:
        yield running


@asynccontextmanager
async def _running(kafka_bootstrap: str, make_session_database: Any, *, replicas: int) -> AsyncIterator[Service]:
    private_pem, public_pem = generate_keypair()
    standin = SessionsStandIn(public_pem)
    await standin.start()
    url = make_session_database("handoffs")
    prefix = unique_prefix()
    settings = Settings(
        env="test",
        database_url=url,
        kafka_bootstrap=kafka_bootstrap,
        topic_prefix=prefix,
        jwt_public_key=public_pem,
        sessions_url=standin.url,
        outbox_poll_interval_s=0.05,
        stale_check_interval_s=0.2,
    )
    engine = create_async_engine(url)
    clock = ShiftedClock()
    try:
        async with AsyncExitStack() as stack:
            apps = [
                await stack.enter_async_context(RunningApp(create_app(settings, clock=clock))) for _ in range(replicas)
            ]
            yield Service(apps[0], standin, private_pem, prefix, kafka_bootstrap, engine, clock, apps[1:])
    finally:
        await engine.dispose()
        await standin.stop()
