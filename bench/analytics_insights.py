"""Analytics insights: p50/p99 of each section 7 endpoint with 10,000 and 100,000 claimed handoffs in the window.

`uv run python -m bench.analytics_insights`. As bench.analytics_query: the read model is loaded directly with SQL
(an account with 10,000 and one with 100,000 claimed handoffs in their 7-day window, each handoff's session
started on one of 20 trees in 5 categories, 4 priorities, 8 claimers; plus claims outside the window, released
ones and another account), the service runs as its own uvicorn process and is asked over HTTP one request at a
time with the gateway's own client to the services. The section 5 answer is measured beside them. `--endpoint NAME`
(repeatable) and `--scale N` measure only those, e.g. to compare two versions of one answer back to back. With the
CSV at 10,000, three floors in the same run: what PostgreSQL alone takes to write it (`csv_floors`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from analytics.handlers import recompute_business_seconds
from analytics.repository.insights import ALL_ITEMS_SQL, CSV_SQL
from bench._support import loaded_analytics, percentile
from gateway.upstream import UpstreamPool
from rf_devstack.postgres import asyncpg_dsn
from rf_testsupport import Caller, free_port
from rfkit.db import Database

COMMAND = "uv run python -m bench.analytics_insights"
HTTP_PORT = free_port()
SCALES = (10_000, 100_000)
BASE = "/api/v1/analytics/flowpilot/escalations"
ENDPOINTS = {
    "escalations": f"{BASE}?period=7d",
    "breakdown_tree": f"{BASE}/breakdown?period=7d&by=tree",
    "breakdown_category": f"{BASE}/breakdown?period=7d&by=category",
    "breakdown_priority": f"{BASE}/breakdown?period=7d&by=priority",
    "breakdown_claimer": f"{BASE}/breakdown?period=7d&by=claimer",
    "handoffs_slowest": f"{BASE}/handoffs?period=7d&order=slowest&limit=50",
    "handoffs_newest": f"{BASE}/handoffs?period=7d&order=newest&limit=50",
    "handoffs_csv": f"{BASE}/handoffs?period=7d&order=slowest&format=csv",
    "series_utc": f"{BASE}/series?period=7d",
    "series_new_york": f"{BASE}/series?period=7d&tz=America/New_York",
    # clock=business, measured after a recompute pass priced every handoff: the wall statements over the stored
    # business seconds (the drill-down prices its open claims' waiting time at query time).
    "escalations_business": f"{BASE}?period=7d&clock=business",
    "breakdown_tree_business": f"{BASE}/breakdown?period=7d&by=tree&clock=business",
    "handoffs_slowest_business": f"{BASE}/handoffs?period=7d&order=slowest&limit=50&clock=business",
    "series_new_york_business": f"{BASE}/series?period=7d&tz=America/New_York&clock=business",
}
# The same before any recompute (each answer prices its window at query time), measured first, with fewer requests.
NOT_CAUGHT_UP = {f"{name}_not_caught_up": path for name, path in ENDPOINTS.items() if name.endswith("_business")}
NOT_CAUGHT_UP_REQUESTS = {10_000: 20, 100_000: 5}
# The CSV carries every row (100,000 at the larger scale): fewer requests of it.
REQUESTS = {10_000: 100, 100_000: 20}
CSV_REQUESTS = {10_000: 30, 100_000: 3}
# What PostgreSQL alone takes at 10,000 (COPY straight on asyncpg: no service, no HTTP), as (statement, format): the
# endpoint's own statement; the same rows in order with each value in PostgreSQL's own text form, formatted as it is
# read (not in the CSV's forms); and the same rows' ids alone, in order (the scan and the sort, next to nothing
# written).
CSV_FLOORS = {
    "csv_copy_statement": (CSV_SQL["slowest"], "text"),
    "csv_copy_unformatted": (ALL_ITEMS_SQL["slowest"], "csv"),
    "csv_copy_ids_only": (f"SELECT i.handoff_id FROM ({ALL_ITEMS_SQL['slowest']}) AS i", "text"),
}

_LOAD = sa.text(
    """
    INSERT INTO handoffs (handoff_id, account_id, session_id, claim_version, claimed_at, release_version,
                          requested_at, first_action_at, first_human_at, first_ai_at, priority, claimed_by)
    SELECT gen_random_uuid(), CAST(:account AS uuid), gen_random_uuid(), 2, c, CAST(:release AS int),
           c - random() * interval '10 minutes', f,
           CASE WHEN r < 0.5 THEN f WHEN random() < 0.5 THEN f + random() * interval '1 hour' END,
           CASE WHEN r >= 0.5 THEN f WHEN random() < 0.5 THEN f + random() * interval '1 hour' END,
           (ARRAY['low', 'normal', 'high', 'urgent'])[1 + floor(random() * 4)::int],
           (CAST(:claimers AS uuid[]))[1 + floor(random() * 8)::int]
    FROM (SELECT c, random() AS r, CASE WHEN random() < 0.8 THEN c + random() * interval '1 hour' END AS f
          FROM (SELECT now() - interval '1 hour'
                       - (CAST(:min_days AS float8)
                          + random() * (CAST(:max_days AS float8) - CAST(:min_days AS float8))) * interval '1 day' AS c
                FROM generate_series(1, CAST(:n AS int))) AS t) AS s
    """
)
# Every session of the account started on one of 20 trees (5 categories), a little before its request.
_TREES = sa.text(
    """
    INSERT INTO session_trees (session_id, account_id, tree_id, tree_title, tree_category, started_at)
    SELECT s.session_id, s.account_id, (CAST(:trees AS uuid[]))[1 + s.i], 'tree ' || s.i, 'category ' || (s.i % 5),
           s.requested_at - interval '1 minute'
    FROM (SELECT h.session_id, h.account_id, h.requested_at, floor(random() * 20)::int AS i
          FROM handoffs AS h WHERE h.account_id = CAST(:account AS uuid)) AS s
    """
)
# What the read model's writes do when a session-started event is applied (migration 0008's backfill): the tree's id
# and category copied onto the session's handoffs.
_TREES_ONTO_HANDOFFS = sa.text(
    """
    UPDATE handoffs AS h SET tree_id = t.tree_id, tree_category = t.tree_category
    FROM session_trees AS t
    WHERE t.account_id = h.account_id AND t.session_id = h.session_id AND h.account_id = CAST(:account AS uuid)
    """
)
# Every account works Monday to Friday 09:00-17:00 in New York, with a holiday in the window.
_SCHEDULE = sa.text(
    """
    INSERT INTO business_hours (account_id, timezone, week, holidays, version)
    VALUES (CAST(:account AS uuid), 'America/New_York', CAST(:week AS jsonb), CAST(:holidays AS jsonb), 1)
    """
)
WEEK = {day: [["09:00", "17:00"]] for day in ("mon", "tue", "wed", "thu", "fri")}


async def load(url: str, accounts: dict[int, uuid.UUID]) -> None:
    engine = create_async_engine(url)
    try:
        async with engine.begin() as conn:
            for n, account in [*accounts.items(), (200_000, uuid.uuid4())]:
                common = {"account": account, "claimers": [uuid.uuid4() for _ in range(8)]}
                await conn.execute(_LOAD, {**common, "n": n, "min_days": 0, "max_days": 6.9, "release": None})
                await conn.execute(_LOAD, {**common, "n": n // 5, "min_days": 8, "max_days": 100, "release": None})
                await conn.execute(_LOAD, {**common, "n": n // 10, "min_days": 0, "max_days": 6.9, "release": 3})
                await conn.execute(_TREES, {"account": account, "trees": [uuid.uuid4() for _ in range(20)]})
                await conn.execute(_TREES_ONTO_HANDOFFS, {"account": account})
                holiday = (datetime.now(UTC) - timedelta(days=3)).date().isoformat()
                await conn.execute(
                    _SCHEDULE, {"account": account, "week": json.dumps(WEEK), "holidays": json.dumps([holiday])}
                )
        async with engine.connect() as conn:
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.execute(sa.text("VACUUM ANALYZE handoffs"))
            await conn.execute(sa.text("VACUUM ANALYZE session_trees"))
            await conn.execute(sa.text("CHECKPOINT"))
            rows = await conn.scalar(sa.text("SELECT count(*) FROM handoffs"))
            print(f"read model: {rows:,} handoffs")
    finally:
        await engine.dispose()



async def vacuum(url: str) -> None:
    engine = create_async_engine(url, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as conn:
            await conn.execute(sa.text("VACUUM ANALYZE handoffs"))
            await conn.execute(sa.text("CHECKPOINT"))  # the recompute's writes not flushed during the measurements
    finally:
        await engine.dispose()

async def measure(pool: UpstreamPool, path: str, headers: list[tuple[bytes, bytes]], requests: int) -> tuple[
    float, float, bytes
]:
    for _ in range(min(5, requests)):  # warm: connections, prepared statements, caches
        answer = await pool.request(b"GET", path.encode(), headers, None)
        assert answer.status == 200, answer.body
    samples = []
    for _ in range(requests):
        began = time.perf_counter()
        answer = await pool.request(b"GET", path.encode(), headers, None)
        samples.append((time.perf_counter() - began) * 1000)
        assert answer.status == 200, answer.body
    samples.sort()
    p50 = statistics.median(samples)
    p99 = percentile(samples, 0.99)
    return p50, p99, answer.body


async def copy_floor(url: str, account: uuid.UUID, query: str, format: str, requests: int) -> tuple[float, float]:
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        now = datetime.now(UTC)
        args = (account, now - timedelta(days=7), now, now)
        samples = []
        for i in range(5 + requests):
            written = 0

            async def sink(data: bytes) -> None:
                nonlocal written
                written += len(data)

            began = time.perf_counter()
            await conn.copy_from_query(query, *args, output=sink, format=format)
            if i >= 5:  # the first five warm the caches
                samples.append((time.perf_counter() - began) * 1000)
            assert written > 0
    finally:
        await conn.close()
    samples.sort()
    return statistics.median(samples), percentile(samples, 0.99)


async def run(endpoints: dict[str, str] = ENDPOINTS, scales: tuple[int, ...] = SCALES) -> dict[str, object]:
    accounts = {n: uuid.uuid4() for n in SCALES}
    loaded: list[str] = []

    async def load_remembering(url: str) -> None:
        loaded.append(url)
        await load(url, accounts)

    figures: dict[str, dict[str, float]] = {}
    recompute: dict[str, float] = {}
    floors: dict[str, dict[str, float]] = {}
    # No recompute loop in the service: the bench prices the handoffs itself, between the two business phases.
    async with loaded_analytics(
        "bench_insights", HTTP_PORT, load_remembering, env={"RF_BUSINESS_RECOMPUTE": "false"}
    ) as private_pem:
        (url,) = loaded
        pool = UpstreamPool("127.0.0.1", HTTP_PORT, max_connections=1, connect_timeout_s=5)

        async def priced() -> None:
            db = Database(url, pool_size=2)
            began = time.perf_counter()
            try:
                rows = await recompute_business_seconds(db=db, now=datetime.now(UTC), batch_size=2000)
            finally:
                await db.dispose()
            recompute.update(rows=rows, seconds=round(time.perf_counter() - began, 2))
            print(f"recompute pass: {rows:,} handoffs priced in {recompute['seconds']:.1f}s")
            await vacuum(url)  # as autovacuum would: the rewritten rows' pages all-visible again (index-only scans)

        async def measure_all(chosen: dict[str, str], requests_of: dict[int, int]) -> None:
            for n in scales:
                caller = Caller(private_pem, role="engineer", account_id=accounts[n])
                headers = [(k.lower().encode(), v.encode()) for k, v in caller.headers.items()]
                for name, path in chosen.items():
                    requests = (CSV_REQUESTS if name == "handoffs_csv" else requests_of)[n]
                    p50, p99, body = await measure(pool, path, headers, requests)
                    if name.startswith("escalations"):
                        assert json.loads(body)["n_handoffs_claimed"] == n
                    elif name.startswith("handoffs_") and name != "handoffs_csv":
                        assert json.loads(body)["total"] == n
                    elif name == "handoffs_csv":
                        assert body.count(b"\r\n") == n + 1
                    label = "10k" if n == 10_000 else "100k"
                    figures.setdefault(name, {})[f"p50_ms_{label}"] = round(p50, 2)
                    figures[name][f"p99_ms_{label}"] = round(p99, 2)
                    print(f"{n:>7,} in window  {name:<20} p50 {p50:8.2f} ms  p99 {p99:8.2f} ms  ({requests} requests)")
                    if name == "handoffs_csv" and n == 10_000:  # right after it, on the same host state
                        for floor, (query, format) in CSV_FLOORS.items():
                            p50, p99 = await copy_floor(url, accounts[n], query, format, requests)
                            floors[floor] = {"p50_ms_10k": round(p50, 2), "p99_ms_10k": round(p99, 2)}
                            print(f"{n:>7,} in window  floor {floor:<14} p50 {p50:8.2f} ms  p99 {p99:8.2f} ms")

        try:
            business = {n: p for n, p in NOT_CAUGHT_UP.items() if n.removesuffix("_not_caught_up") in endpoints}
            await measure_all(business, NOT_CAUGHT_UP_REQUESTS)
            await priced()
            await measure_all(endpoints, REQUESTS)
        finally:
            pool.close()
    return {
        "bench": "analytics_insights",
        "worst_p99_ms_10k": max(
            (f["p99_ms_10k"] for name, f in figures.items() if name in ENDPOINTS and "p99_ms_10k" in f), default=None
        ),
        "endpoints": figures,
        "csv_floors": floors,
        "business_recompute": recompute,
        "command": COMMAND,
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.analytics_insights", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--endpoint", action="append", choices=list(ENDPOINTS), help="measure only this endpoint (repeatable)"
    )
    parser.add_argument("--scale", action="append", type=int, choices=SCALES, help="measure only at this scale")
    args = parser.parse_args()
    endpoints = {name: ENDPOINTS[name] for name in args.endpoint} if args.endpoint else ENDPOINTS
    print(json.dumps(asyncio.run(run(endpoints, tuple(args.scale or SCALES)))))


if __name__ == "__main__":
    main()
