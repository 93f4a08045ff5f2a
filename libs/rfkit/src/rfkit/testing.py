"""Helpers for tests against the real broker and database: read topics, wait for conditions, make events."""

from __future__ import annotations

import asyncio
import socket
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, Literal

import uvicorn
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from rf_contracts import StepCreated, topics
from rfkit.topics import ensure_topics


async def read_topic(
    bootstrap: str, topic: str, *, expect: int, timeout_s: float = 20.0
) -> list[ConsumerRecord[Any, Any]]:
    """Read a topic from the beginning until `expect` records arrived (see read_to_end to get all there is)."""
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False, group_id=None
    )
    await consumer.start()
    records: list[ConsumerRecord[Any, Any]] = []
    try:
        deadline = time.monotonic() + timeout_s
        while len(records) < expect and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=200)
            for recs in batch.values():
                records.extend(recs)
    finally:
        await consumer.stop()
    return records


async def read_to_end(bootstrap: str, topic: str, *, timeout_s: float = 20.0) -> list[ConsumerRecord[Any, Any]]:
    """Every record of a topic up to its end offsets as of the call: once the producer has nothing left to
    send, this is all there will be (no waiting for "nothing more arrived")."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None)
    await consumer.start()
    records: list[ConsumerRecord[Any, Any]] = []
    try:
        partitions = [TopicPartition(topic, p) for p in range(topics.PARTITIONS)]
        ends = await consumer.end_offsets(partitions)
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        deadline = time.monotonic() + timeout_s
        while [tp for tp, end in ends.items() if await consumer.position(tp) < end]:
            if time.monotonic() > deadline:
                raise AssertionError(f"{topic} not read to its end within {timeout_s}s")
            batch = await consumer.getmany(*partitions, timeout_ms=200)
            for tp, recs in batch.items():
                records.extend(r for r in recs if r.offset < ends[tp])
    finally:
        await consumer.stop()
    return records


async def wait_until(
    condition: Callable[[], Awaitable[bool]], *, timeout_s: float = 20.0, interval_s: float = 0.05
) -> None:
    """Poll `condition` until true; fail the test with a clear message when the time runs out."""
    deadline = time.monotonic() + timeout_s
    while True:
        if await condition():
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout_s}s")
        await asyncio.sleep(interval_s)


async def produce(
    bootstrap: str, topic: str, messages: list[tuple[bytes | None, bytes | None]], *, max_request_size: int = 1048576
) -> list[tuple[int, int]]:
    """Send raw (key, value) messages, as any producer (or a broken one) could; returns (partition, offset) each."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", max_request_size=max_request_size)
    await producer.start()
    placed: list[tuple[int, int]] = []
    try:
        for key, value in messages:
            meta = await producer.send_and_wait(topic, value=value, key=key)
            placed.append((meta.partition, meta.offset))
    finally:
        await producer.stop()
    return placed


async def group_lag(bootstrap: str, group: str, topic_names: list[str]) -> int:
    """Records of `topic_names` that consumer group `group` has not committed yet (partitions never committed
    count from 0, so a group that never consumed a non-empty topic has lag)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None)
    await admin.start()
    await consumer.start()
    try:
        committed = await admin.list_consumer_group_offsets(group)
        # Every contract topic has the same partition count (docs/contract.md#topics-and-keys).
        partitions = [TopicPartition(name, p) for name in topic_names for p in range(topics.PARTITIONS)]
        ends = await consumer.end_offsets(partitions)
        lag = 0
        for tp, end in ends.items():
            meta = committed.get(tp)
            lag += end - (meta.offset if meta is not None and meta.offset >= 0 else 0)
        return lag
    finally:
        await consumer.stop()
        await admin.close()


async def make_topics(bootstrap: str, prefix: str, names: list[str]) -> None:
    specs = []
    for name in names:
        specs.append(NewTopic(f"{prefix}{name}", topics.PARTITIONS, 1))
        specs.append(NewTopic(f"{prefix}{topics.dlq(name)}", topics.PARTITIONS, 1))
    await ensure_topics(bootstrap, prefix, specs)


def unique_prefix() -> str:
    return f"t{uuid.uuid4().hex[:10]}."


def step_event(**over: Any) -> StepCreated:
    now = datetime.now(UTC)
    fields: dict[str, Any] = {
        "event_id": uuid.uuid4(),
        "occurred_at": now,
        "account_id": uuid.uuid4(),
        "session_id": uuid.uuid4(),
        "step_id": uuid.uuid4(),
        "created_at": now,
        "kind": "note",
        "actor_type": "human",
        "actor_id": uuid.uuid4(),
    }
    fields.update(over)
    return StepCreated(**fields)


async def new_database(make_database: Any) -> str:
    """Call the `make_database` fixture whether it is sync or async; returns the new database's URL."""
    result = make_database()
    if hasattr(result, "__await__"):
        result = await result
    return str(result)


class Caller:
    """A test user: ids, role, and the Authorization header of a token signed with the test key."""

    def __init__(self, private_pem: str, *, role: str = "engineer", account_id: uuid.UUID | None = None,
                 user_id: uuid.UUID | None = None, issuer: str = "resolutionflow-gateway",
                 audience: str = "resolutionflow") -> None:
        from rfkit.auth import issue_access_token

        self.role = role
        self.account_id = account_id or uuid.uuid4()
        self.user_id = user_id or uuid.uuid4()
        self.token = issue_access_token(
            private_pem, user_id=self.user_id, account_id=self.account_id, role=role,  # type: ignore[arg-type]
            issuer=issuer, audience=audience,
        )
        self.headers = {"Authorization": f"Bearer {self.token}"}

    def colleague(self, private_pem: str, role: str = "engineer") -> Caller:
        """Another user of the same account."""
        return Caller(private_pem, role=role, account_id=self.account_id)


class RunningApp:
    """An ASGI app with its lifespan running (real database, real Kafka) and an httpx client bound to it."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self._manager: Any = None
        self.client: Any = None

    async def __aenter__(self) -> RunningApp:
        import httpx
        from asgi_lifespan import LifespanManager

        self._manager = LifespanManager(self.app, startup_timeout=60, shutdown_timeout=30)
        await self._manager.__aenter__()
        self.client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self._manager.app), base_url="http://testserver"
        )
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.client.aclose()
        await self._manager.__aexit__(*exc)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def loopback_socket() -> socket.socket:
    """A TCP socket bound to a free loopback port, for Served (bind first when peers must know the URL early)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


class Served:
    """An ASGI app served by uvicorn on a free loopback port, in a task of the current event loop.

    A real HTTP server (with the app's lifespan), so that what travels between processes in production
    (headers, bodies, refused connections, timeouts) travels over real sockets in tests too.
    """

    def __init__(
        self, app: Any, *, lifespan: Literal["auto", "on", "off"] = "on", sock: socket.socket | None = None
    ) -> None:
        self.app = app
        self.lifespan = lifespan
        self.url = ""
        self._sock = sock
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Served:
        sock = self._sock or loopback_socket()
        self.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        # proxy_headers=False as the servers run (--no-proxy-headers): uvicorn's default believes X-Forwarded-For
        # from 127.0.0.1, which in tests is every peer; the gateway's RF_TRUSTED_PROXIES alone decides.
        config = uvicorn.Config(
            self.app, log_level="warning", lifespan=self.lifespan, access_log=False, proxy_headers=False
        )
        self._server = server = uvicorn.Server(config)
        self._task = asyncio.create_task(server.serve(sockets=[sock]))
        deadline = time.monotonic() + 90
        while not server.started:
            if self._task.done():  # startup failed: surface its error
                await self._task
                raise RuntimeError(f"{self.app!r} did not start")
            if time.monotonic() > deadline:
                raise TimeoutError("server did not start within 90s")
            await asyncio.sleep(0.02)
        return self

    async def __aexit__(self, *exc: Any) -> None:
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            await self._task
