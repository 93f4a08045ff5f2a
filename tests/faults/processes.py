"""The whole system as `make start` runs it (four uvicorn processes, a Kafka broker) for tests that kill -9 parts of it.

Every service is a separate OS process on a free port with a fresh database of its own on the shared PostgreSQL;
the broker is this stack's own (a LocalKafka on free ports in a temporary directory), because the tests kill it.
Topic and consumer-group names carry a prefix unique to the stack. Nothing here touches another process. The
services' and the broker's logs stay in the test's temporary directory (`services/logs`, `kafka/`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import time
import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from aiokafka import AIOKafkaConsumer, TopicPartition

from rf_contracts.topics import PARTITIONS
from rf_devstack._util import pid_alive, run_sync
from rf_devstack.kafka import LocalKafka
from rf_devstack.keys import ensure_jwt_keypair
from rf_devstack.postgres import asyncpg_dsn, drop_database, ensure_databases, url_with_database
from rf_devstack.samples import printer_tree
from rf_devstack.stack import SERVICES, ServiceRunner, ServiceSpec, service_env
from rf_testsupport import unique_prefix
from rf_testsupport.gateway import API, PASSWORD, User, login
from rfkit.topics import ensure_topics


class ProcessStack:
    """Kafka and the four services as child processes; kill() and restart() act on one of them by its pid."""

    def __init__(self, base: Path, admin_url: str) -> None:
        self.base = base
        self.admin_url = admin_url
        self.prefix = unique_prefix()
        ports = free_ports(2 + len(SERVICES))
        self.kafka = LocalKafka(base / "kafka", ports[0], ports[1], fresh=True)
        self.specs = [ServiceSpec(name, port) for name, port in zip(SERVICES, ports[2:], strict=True)]
        self.runner = ServiceRunner(base / "services", self.specs)
        tag = uuid.uuid4().hex[:10]
        self.databases = {spec.database: f"faults_{spec.name}_{tag}" for spec in self.specs}
        self._envs: dict[str, dict[str, str]] = {}

    def spec(self, name: str) -> ServiceSpec:
        return next(spec for spec in self.specs if spec.name == name)

    @property
    def gateway_url(self) -> str:
        return self.spec("gateway").url

    def database_url(self, service: str) -> str:
        return url_with_database(self.admin_url, self.databases[self.spec(service).database])

    def _env(self, spec: ServiceSpec, keys: tuple[Path, Path]) -> dict[str, str]:
        env = service_env(
            spec,
            self.specs,
            kafka_bootstrap=self.kafka.bootstrap,
            database_url_for=lambda name: url_with_database(self.admin_url, self.databases[name]),
            private_key=keys[0],
            public_key=keys[1],
        )
        # The test process's own RF_ settings (the shared broker, its database) must not leak into the services.
        env = {key: value for key, value in env.items() if not key.startswith("RF_") or key in _SET_BY_DEVSTACK}
        env.update(RF_TOPIC_PREFIX=self.prefix, RF_LOG_LEVEL="WARNING")
        if spec.name == "handoffs":
            # Escalating asks sessions synchronously; `make start` relies on the default port, this stack cannot.
            env["RF_SESSIONS_URL"] = self.spec("sessions").url
        if spec.name == "gateway":
            # Cheap password hashing (the same code path, a lower cost) and no registration limit: every test
            # registers from 127.0.0.1.
            env.update(
                RF_ARGON2_TIME_COST="1",
                RF_ARGON2_MEMORY_KIB="1024",
                RF_ARGON2_PARALLELISM="1",
                RF_REGISTER_MAX_PER_ADDRESS="100000",
                RF_LOGIN_MAX_FAILURES_PER_ADDRESS="100000",
            )
        return env

    def start(self) -> None:
        self.kafka.start(timeout=180)
        run_sync(lambda: ensure_databases(self.admin_url, list(self.databases.values())))
        run_sync(lambda: ensure_topics(self.kafka.bootstrap, self.prefix))
        keys = ensure_jwt_keypair(self.base / "keys")
        self._envs = {spec.name: self._env(spec, keys) for spec in self.specs}
        for spec in self.specs:
            self.runner.launch(spec, self._envs[spec.name])
        self.runner.wait_ready(self.specs, timeout=180)

    def stop(self) -> None:
        try:
            self.runner.stop(timeout=10)
        finally:
            try:
                # Patient: a clean stop lets the JVM publish its class-data archive, which makes later starts faster.
                self.kafka.stop(timeout=60)
            finally:
                for name in self.databases.values():
                    with contextlib.suppress(Exception):
                        run_sync(partial(drop_database, self.admin_url, name))

    # --- faults ---------------------------------------------------------------------------------------------

    def kill(self, name: str) -> int:
        """SIGKILLs one service (its whole process group: uvicorn and anything it forked); returns the pid."""
        spec = self.spec(name)
        pid = self.runner.pid(spec)
        assert pid is not None, f"{name} is not running"
        _kill_group(pid)
        # The runner forgets the dead child (reaped by now): stopping the stack later waits only for the live one.
        proc = self.runner._procs.pop(name, None)
        if proc is not None:
            proc.wait()
        return pid

    def restart(self, name: str, timeout: float = 180.0) -> int:
        """Starts a killed service again with the same environment (as a supervisor would) and waits until ready."""
        spec = self.spec(name)
        pid = self.runner.launch(spec, self._envs[name])
        self.runner.wait_ready([spec], timeout=timeout)
        return pid

    def kill_broker(self) -> int:
        pid = self.kafka.pid()
        assert pid is not None, "the broker is not running"
        _kill_group(pid)
        if self.kafka._proc is not None:
            self.kafka._proc.wait()
            self.kafka._proc = None
        return pid

    def restart_broker(self) -> None:
        """The same data directory and ports: what a restarted broker pod or systemd unit would see."""
        self.kafka.start(timeout=180)

    # --- what the services hold -----------------------------------------------------------------------------

    async def fetch(self, service: str, query: str, *args: Any) -> list[asyncpg.Record]:
        conn = await asyncpg.connect(asyncpg_dsn(self.database_url(service)))
        try:
            return list(await conn.fetch(query, *args))
        finally:
            await conn.close()

    async def read_events(self, topic: str) -> list[dict[str, Any]]:
        """Every event on a (prefixed) contract topic, from the beginning up to its current end."""
        consumer = AIOKafkaConsumer(bootstrap_servers=self.kafka.bootstrap, enable_auto_commit=False, group_id=None)
        await consumer.start()
        try:
            name = self.prefix + topic
            partitions = [TopicPartition(name, p) for p in range(PARTITIONS)]
            consumer.assign(partitions)
            await consumer.seek_to_beginning(*partitions)
            ends = await consumer.end_offsets(partitions)
            events: list[dict[str, Any]] = []
            deadline = time.monotonic() + 60
            while [tp for tp in partitions if await consumer.position(tp) < ends[tp]]:
                assert time.monotonic() < deadline, f"could not read {name} to its end"
                for records in (await consumer.getmany(timeout_ms=500)).values():
                    events.extend(json.loads(r.value) for r in records)
            return events
        finally:
            await consumer.stop()


_SET_BY_DEVSTACK = {
    "RF_ENV",
    "RF_SERVICE_NAME",
    "RF_HOST",
    "RF_PORT",
    "RF_KAFKA_BOOTSTRAP",
    "RF_DATABASE_URL",
    "RF_JWT_PUBLIC_KEY_FILE",
    "RF_JWT_PRIVATE_KEY_FILE",
    "RF_SESSIONS_URL",
    "RF_HANDOFFS_URL",
    "RF_ANALYTICS_URL",
}


def free_ports(n: int) -> list[int]:
    """n distinct free loopback ports (held open together while chosen, so none is handed out twice)."""
    with contextlib.ExitStack() as stack:
        socks = [stack.enter_context(socket.socket()) for _ in range(n)]
        for sock in socks:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in socks]


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + 30
    while pid_alive(pid):
        assert time.monotonic() < deadline, f"pid {pid} survived SIGKILL"
        time.sleep(0.02)


# --- the public API, as a client sees it ----------------------------------------------------------------------


@dataclass
class Team:
    admin: User
    engineers: list[User]


def gateway_client(stack: ProcessStack) -> httpx.AsyncClient:
    # Room for every concurrent request a scenario sends (httpx allows 100 connections by default). Idle
    # connections are dropped well before uvicorn's 5 s keep-alive timeout: reusing one that the server is closing
    # at that very moment fails a POST whose fate the client cannot know.
    limits = httpx.Limits(max_connections=400, max_keepalive_connections=400, keepalive_expiry=2.0)
    return httpx.AsyncClient(base_url=stack.gateway_url + API, timeout=60, limits=limits)


async def _login(client: httpx.AsyncClient, email: str) -> User:
    return await login(client, email, prefix="")


async def new_team(client: httpx.AsyncClient, engineers: int = 0) -> Team:
    """A new account (registered through the gateway): its admin and `engineers` engineers."""
    email = f"admin-{uuid.uuid4().hex[:10]}@example.com"
    r = await client.post(
        "/auth/register",
        json={"email": email, "password": PASSWORD, "full_name": "Ada Admin", "account_name": f"Faults {email}"},
    )
    assert r.status_code == 201, r.text
    admin = await _login(client, email)
    members = []
    for i in range(engineers):
        member = f"eng{i}-{uuid.uuid4().hex[:10]}@example.com"
        body = {"email": member, "password": PASSWORD, "full_name": f"Engineer {i}", "role": "engineer"}
        r = await client.post("/users", json=body, headers=admin.headers)
        assert r.status_code == 201, r.text
        members.append(await _login(client, member))
    return Team(admin, members)


TREE = printer_tree()


def ts(value: str) -> datetime:
    return datetime.fromisoformat(value)


@dataclass
class Ledger:
    """What the gateway acknowledged: the expected state of every read model is computed from this alone."""

    account_id: str
    claims: dict[str, dict[str, Any]] = field(default_factory=dict)  # handoff id -> the 200 answer of its claim
    sessions_of: dict[str, str] = field(default_factory=dict)  # handoff id -> session id
    steps: dict[str, datetime] = field(default_factory=dict)  # step id -> created_at
    steps_by_session: dict[str, list[datetime]] = field(default_factory=lambda: defaultdict(list))
    failures: list[str] = field(default_factory=list)  # writes not acknowledged (a kill got in their way)

    def step(self, answer: dict[str, Any]) -> None:
        created = ts(answer["created_at"])
        self.steps[answer["id"]] = created
        self.steps_by_session[answer["session_id"]].append(created)

    def expected_metric(self) -> dict[str, Any]:
        """Section 5 of the contract over the acknowledged claims and steps."""
        deltas = []
        for handoff_id, claim in self.claims.items():
            claimed_at = ts(claim["claimed_at"])
            after = [t for t in self.steps_by_session[self.sessions_of[handoff_id]] if t >= claimed_at]
            if after:
                deltas.append(max(0.0, (min(after) - claimed_at).total_seconds()))
        return {
            "n_handoffs_claimed": len(self.claims),
            "n_handoffs_with_action": len(deltas),
            "avg_seconds": sum(deltas) / len(deltas) if deltas else None,
            "median_seconds": percentile(deltas, 0.5),
            "p95_seconds": percentile(deltas, 0.95),
        }


def percentile(values: list[float], q: float) -> float | None:
    """Linear interpolation between closest ranks (PostgreSQL's percentile_cont, numpy's default)."""
    if not values:
        return None
    ordered = sorted(values)
    rank = q * (len(ordered) - 1)
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


async def wait_for(
    check: Callable[[], Awaitable[str | None]], *, timeout_s: float, what: str, interval_s: float = 0.5
) -> None:
    """Polls `check` (None = satisfied, else what still differs) until satisfied or the deadline passes."""
    deadline = time.monotonic() + timeout_s
    while True:
        problem = await check()
        if problem is None:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: still not so after {timeout_s:.0f}s: {problem}")
        await asyncio.sleep(interval_s)
