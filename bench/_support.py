"""What the benchmarks share: their own Kafka and PostgreSQL, service processes, readiness, a tiny tree."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager

import httpx

from rf_devstack._paths import run_dir
from rf_devstack.infra import Infra, obtain_infra
from rf_devstack.postgres import ensure_databases, url_with_database
from rf_testsupport import free_port
from rfkit.auth import generate_keypair
from rfkit.migrate import upgrade as migrate_upgrade

# Apart from `make up` (9092/5432) and the tests (19092/15432), so a benchmark can run beside either; and below
# Linux's ephemeral range (32768-60999), where a client socket can hold the port when the server starts.
KAFKA_PORT, CONTROLLER_PORT, PG_PORT = 29092, 29093, 25432
PASSWORD = "bench password 123"
# Free ports picked now: fixed ones in the ephemeral range were sometimes held by a client socket of an earlier run.
PORTS = {name: free_port() for name in ("gateway", "sessions", "handoffs", "analytics")}
TREE = {
    "title": "Bench", "root_node_id": "q",
    "nodes": [{"id": "q", "kind": "question", "text": "?", "options": [{"label": "ok", "next_node_id": "s"}]},
              {"id": "s", "kind": "solution", "text": "done"}],
}


async def bench_infra() -> Infra:
    """Kafka and PostgreSQL for benchmarks (from the environment when set, else local in .run/bench, fsync on)."""
    return await asyncio.to_thread(obtain_infra, run_dir("bench"), KAFKA_PORT, CONTROLLER_PORT, PG_PORT, True)


def serve(module: str, port: int, env: dict[str, str]) -> subprocess.Popen[bytes]:
    """One service as its own uvicorn process, as in production (no access log)."""
    return subprocess.Popen(
        [sys.executable, "-m", "uvicorn", f"{module}.main:create_app", "--factory", "--host", "127.0.0.1",
         "--port", str(port), "--no-access-log", "--log-level", "warning"],
        env={**os.environ, **env},
    )


async def new_account(api: httpx.AsyncClient, name: str) -> dict[str, str]:
    """Register an account through the gateway (`api` based at /api/v1); its admin's authorization header."""
    email = f"bench-{uuid.uuid4().hex[:8]}@example.com"
    (await api.post("/auth/register", json={"email": email, "password": PASSWORD, "full_name": "Bench",
                                            "account_name": name})).raise_for_status()
    login = await api.post("/auth/login/json", json={"email": email, "password": PASSWORD})
    return {"Authorization": f"Bearer {login.raise_for_status().json()['access_token']}"}


async def wait_ready(url: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient(base_url=url) as client:
        while time.monotonic() < deadline:
            try:
                if (await client.get("/readyz")).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.2)
    raise RuntimeError(f"{url} did not become ready")


async def _start_four(infra: Infra, procs: list[subprocess.Popen[bytes]]) -> str:
    """The four services on the bench ports (the gateway last); returns the gateway's URL."""
    suffix = uuid.uuid4().hex[:8]
    names = {name: f"bench_fresh_{name}_{suffix}" for name in PORTS}
    await ensure_databases(infra.database_url, list(names.values()))
    private_pem, public_pem = generate_keypair()
    urls = {name: f"http://127.0.0.1:{port}" for name, port in PORTS.items()}
    common = {"RF_KAFKA_BOOTSTRAP": infra.kafka_bootstrap, "RF_LOG_LEVEL": "WARNING", "RF_ENV": "test",
              "RF_TOPIC_PREFIX": f"bench{suffix}.", "RF_JWT_PUBLIC_KEY": public_pem}
    for name in ("sessions", "handoffs", "analytics"):
        procs.append(serve(name, PORTS[name], {
            **common, "RF_DATABASE_URL": url_with_database(infra.database_url, names[name]),
            "RF_SESSIONS_URL": urls["sessions"]}))
    procs.append(serve("gateway", PORTS["gateway"], {
        **common, "RF_DATABASE_URL": url_with_database(infra.database_url, names["gateway"]),
        "RF_JWT_PRIVATE_KEY": private_pem, "RF_SESSIONS_URL": urls["sessions"],
        "RF_HANDOFFS_URL": urls["handoffs"], "RF_ANALYTICS_URL": urls["analytics"]}))
    await asyncio.gather(*(wait_ready(url) for url in urls.values()))
    return urls["gateway"]


@asynccontextmanager
async def four_services(gateway_url: str | None) -> AsyncIterator[tuple[str, int | None]]:
    """The gateway to measure through and its process id (None for a running stack given by `gateway_url`); without
    a URL, the four services on fresh databases of bench infrastructure, stopped again on the way out."""
    if gateway_url is not None:
        yield gateway_url, None
        return
    infra = await bench_infra()
    procs: list[subprocess.Popen[bytes]] = []
    try:
        url = await _start_four(infra, procs)
        yield url, procs[-1].pid
    finally:
        for proc in reversed(procs):
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=60)
        await asyncio.to_thread(infra.stop)


def percentile(ordered: list[float], q: float) -> float:
    """The nearest-rank `q` quantile (0..1) of samples sorted ascending, as every benchmark here reports it."""
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


@asynccontextmanager
async def loaded_analytics(
    db_prefix: str, port: int, load: Callable[[str], Awaitable[None]], env: Mapping[str, str] | None = None
) -> AsyncIterator[str]:
    """A fresh analytics database (migrated, then filled by `load(url)`) and the service on it as its own process,
    consuming nothing, with `env` added to its settings; yields the private key that signs callers' tokens. Stops
    what it started on exit."""
    infra = await bench_infra()
    proc = None
    try:
        db_name = f"{db_prefix}_{uuid.uuid4().hex[:8]}"
        await ensure_databases(infra.database_url, [db_name])
        url = url_with_database(infra.database_url, db_name)
        await asyncio.to_thread(migrate_upgrade, "analytics", url)
        began = time.perf_counter()
        await load(url)
        print(f"loaded in {time.perf_counter() - began:.1f}s")
        private_pem, public_pem = generate_keypair()
        settings = {
            "RF_DATABASE_URL": url,
            "RF_KAFKA_BOOTSTRAP": infra.kafka_bootstrap,
            "RF_JWT_PUBLIC_KEY": public_pem,
            "RF_CONSUME": "false",
            "RF_CREATE_TOPICS": "false",
            "RF_LOG_LEVEL": "WARNING",
            "RF_ENV": "test",
            **(env or {}),
        }
        proc = serve("analytics", port, settings)
        await wait_ready(f"http://127.0.0.1:{port}")
        yield private_pem
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=20)
        await asyncio.to_thread(infra.stop)
