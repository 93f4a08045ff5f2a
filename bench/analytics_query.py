"""Analytics query: latency of GET /analytics/flowpilot/escalations by claimed handoffs in the account's window.

`uv run python -m bench.analytics_query`. The read model is loaded directly with SQL (accounts with 1,000,
10,000, 100,000 and 1,000,000 claimed handoffs in their 7-day window, plus claims outside it, released ones
and other accounts), then the service runs as its own uvicorn process and is asked over HTTP, one request at
a time, with the caller's token. The figures are taken with the gateway's own client to the services (keep-alive
HTTP/1.1 parsed by httptools), so they are what the gateway waits for; the same requests sent with httpx are
reported beside them (httpx spends about a millisecond of the client's CPU per request on this machine).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable

import httpx
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from bench._support import loaded_analytics, percentile
from gateway.upstream import UpstreamPool
from rf_testsupport import Caller, free_port

COMMAND = "uv run python -m bench.analytics_query"
HTTP_PORT = free_port()
SCALES = (1_000, 10_000, 100_000, 1_000_000)
REQUESTS = {1_000: 500, 10_000: 500, 100_000: 100, 1_000_000: 20}

# Claimed in the last 7 days (minus an hour of margin), requested up to 10 minutes before, 80% with a first
# action up to an hour later: by a person or the assistant (half each), the other acting later or not at all.
_LOAD = sa.text(
    """
    INSERT INTO handoffs (handoff_id, account_id, session_id, claim_version, claimed_at, release_version,
                          requested_at, first_action_at, first_human_at, first_ai_at)
    SELECT gen_random_uuid(), CAST(:account AS uuid), gen_random_uuid(), 2, c, CAST(:release AS int),
           c - random() * interval '10 minutes', f,
           CASE WHEN r < 0.5 THEN f WHEN random() < 0.5 THEN f + random() * interval '1 hour' END,
           CASE WHEN r >= 0.5 THEN f WHEN random() < 0.5 THEN f + random() * interval '1 hour' END
    FROM (SELECT c, random() AS r, CASE WHEN random() < 0.8 THEN c + random() * interval '1 hour' END AS f
          FROM (SELECT now() - interval '1 hour'
                       - (CAST(:min_days AS float8)
                          + random() * (CAST(:max_days AS float8) - CAST(:min_days AS float8))) * interval '1 day' AS c
                FROM generate_series(1, CAST(:n AS int))) AS t) AS s
    """
)


async def load(url: str, accounts: dict[int, uuid.UUID]) -> None:
    engine = create_async_engine(url)
    try:
        async with engine.begin() as conn:
            for n, account in accounts.items():
                # In the window, outside it (older), and released (not claimed): only the first counts.
                await conn.execute(_LOAD, {"account": account, "n": n, "min_days": 0, "max_days": 6.9, "release": None})
                await conn.execute(_LOAD, {"account": account, "n": n // 5, "min_days": 8, "max_days": 100,
                                           "release": None})
                await conn.execute(_LOAD, {"account": account, "n": n // 10, "min_days": 0, "max_days": 6.9,
                                           "release": 3})
            await conn.execute(_LOAD, {"account": uuid.uuid4(), "n": 200_000, "min_days": 0, "max_days": 90,
                                       "release": None})
        async with engine.connect() as conn:
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.execute(sa.text("VACUUM ANALYZE handoffs"))
            # The bulk load's dirty pages are written now, not by the checkpointer during the measurements.
            await conn.execute(sa.text("CHECKPOINT"))
            rows = await conn.scalar(sa.text("SELECT count(*) FROM handoffs"))
            print(f"read model: {rows:,} handoffs")
            plan = await conn.execute(
                sa.text(
                    "EXPLAIN (ANALYZE, BUFFERS) SELECT count(*), count(delta_s), avg(delta_s),"
                    " percentile_cont(0.5) WITHIN GROUP (ORDER BY delta_s),"
                    " percentile_cont(0.95) WITHIN GROUP (ORDER BY delta_s) FROM handoffs"
                    " WHERE account_id = :a AND effective_claimed_at IS NOT NULL"
                    " AND effective_claimed_at >= now() - interval '7 days' AND effective_claimed_at <= now()"
                ),
                {"a": accounts[10_000]},
            )
            print("plan at 10,000:\n  " + "\n  ".join(r[0] for r in plan))
    finally:
        await engine.dispose()


PATH = b"/api/v1/analytics/flowpilot/escalations?period=7d"
Send = Callable[[dict[str, str]], Awaitable[tuple[int, bytes]]]


def upstream_sender(port: int) -> tuple[Send, UpstreamPool]:
    """Keep-alive HTTP/1.1 parsed with httptools: the gateway's own client to the services."""
    pool = UpstreamPool("127.0.0.1", port, max_connections=1, connect_timeout_s=5)

    async def send(headers: dict[str, str]) -> tuple[int, bytes]:
        answer = await pool.request(b"GET", PATH, [(k.lower().encode(), v.encode()) for k, v in headers.items()], None)
        return answer.status, answer.body

    return send, pool


def httpx_sender(client: httpx.AsyncClient) -> Send:
    async def send(headers: dict[str, str]) -> tuple[int, bytes]:
        r = await client.get(PATH.decode(), headers=headers)
        return r.status_code, r.content

    return send


async def measure(send: Send, headers: dict[str, str], requests: int) -> tuple[float, float, dict]:
    for _ in range(min(20, requests)):  # warm: connections, prepared statements, caches
        status, body = await send(headers)
        assert status == 200, body
    samples = []
    for _ in range(requests):
        began = time.perf_counter()
        status, body = await send(headers)
        samples.append((time.perf_counter() - began) * 1000)
        assert status == 200, body
    samples.sort()
    p50 = statistics.median(samples)
    p99 = percentile(samples, 0.99)
    return p50, p99, json.loads(body)


async def run() -> dict[str, object]:
    accounts = {n: uuid.uuid4() for n in SCALES}
    async with loaded_analytics("bench_query", HTTP_PORT, lambda url: load(url, accounts)) as private_pem:
        scaling = []
        send, pool = upstream_sender(HTTP_PORT)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{HTTP_PORT}", timeout=60) as client:
            try:
                for n in SCALES:
                    headers = Caller(private_pem, role="engineer", account_id=accounts[n]).headers
                    p50, p99, body = await measure(send, headers, REQUESTS[n])
                    assert body["n_handoffs_claimed"] == n, body
                    assert body["excluded"] == {"unclaimed": n // 10, "released": n // 10}, body
                    hx50, hx99, _ = await measure(httpx_sender(client), headers, REQUESTS[n])
                    print(f"{n:>9,} handoffs in window: p50 {p50:7.2f} ms  p99 {p99:7.2f} ms  ({REQUESTS[n]} requests;"
                          f" with httpx as the client: p50 {hx50:.2f}, p99 {hx99:.2f})")
                    scaling.append({"handoffs_in_window": n, "p50_ms": round(p50, 2), "p99_ms": round(p99, 2),
                                    "httpx_p50_ms": round(hx50, 2), "httpx_p99_ms": round(hx99, 2)})
            finally:
                pool.close()
    at_10k = next(s for s in scaling if s["handoffs_in_window"] == 10_000)
    return {
        "bench": "analytics_query",
        "handoffs_in_window": 10_000,
        "p50_ms": at_10k["p50_ms"],
        "p99_ms": at_10k["p99_ms"],
        "scaling": scaling,
        "command": COMMAND,
    }


def main() -> None:
    argparse.ArgumentParser(prog="python -m bench.analytics_query", description=__doc__.splitlines()[0]).parse_args()
    print(json.dumps(asyncio.run(run())))


if __name__ == "__main__":
    main()
