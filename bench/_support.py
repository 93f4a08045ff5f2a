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
from rfkit.auth import generate_keypair
from rfkit.migrate import upgrade as migrate_upgrade

# Apart from `make up` (9092/5432) and the tests (19092/15432), so a benchmark can run beside either; and below
# Linux's ephemeral range (32768-60999), where a client socket can hold the port when the server starts.
KAFKA_PORT, CONTROLLER_PORT, PG_PORT = 29092, 29093, 25432
PASSWORD = "bench password 123"
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
