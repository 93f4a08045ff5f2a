"""Stored business seconds through the gateway on real Kafka and PostgreSQL: every clock=business answer matches the
minute-by-minute count before the recompute loop ran, part-way through it, after it, after a schedule change and
after new events; the service's own loop follows a schedule change; two replicas' passes price each handoff once."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from random import Random
from typing import Any

import pytest_asyncio
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from analytics.recompute import BusinessRecompute
from analytics.repository import BusinessSecondsQueries, EscalationQueries
from rf_testsupport import wait_until
from rfkit.db import Database

# The business-hours API test's history, schedule and checks (imported from the repository root, pytest's
# `pythonpath`), and its fixture pinning the request's instant.
from services.analytics.tests import test_business_hours_api as bh
from services.analytics.tests.test_business_hours_api import pinned_now  # noqa: F401

NOW, SCHEDULE, WEEK = bh.NOW, bh.SCHEDULE, bh.WEEK
# Another week: longer Mondays, Saturday mornings, no lunch break; and no holiday.
CHANGED = {**SCHEDULE, "week": {**WEEK, "mon": [["07:00", "19:00"]], "sat": [["10:00", "12:30"]]}, "holidays": []}
EVER = (datetime(2000, 1, 1, tzinfo=NOW.tzinfo), datetime(2100, 1, 1, tzinfo=NOW.tzinfo))


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def passes(env: Any) -> AsyncIterator[BusinessRecompute]:
    """The module's service with its own recompute loop stopped: passes run when a test says so."""
    await env.running.app.state.business_recompute.stop()
    yield BusinessRecompute(env.running.app.state.runtime.db, service="analytics", interval_s=3600, batch_size=4)


async def pending(env: Any, account_id: uuid.UUID) -> int:
    """The account's acted-on handoffs whose stored business seconds are not of its current schedule. The section 5
    answer counts them in its own scan of the window: it must say the same, with the same schedule version."""
    db = env.running.app.state.runtime.db
    state = await BusinessSecondsQueries(db).state(account_id=account_id, start=EVER[0], end=EVER[1])
    stats = await EscalationQueries(db).escalation_stats(
        account_id=account_id, start=EVER[0], end=EVER[1], clock="business"
    )
    assert stats.clock_state == state
    return state.n_pending


async def put(gateway: Any, account_id: uuid.UUID, schedule: dict[str, Any]) -> int:
    r = await bh.put_schedule(gateway, account_id, schedule)
    assert r.status_code == 200, r.text
    version: int = r.json()["version"]
    return version


async def test_answers_match_the_count_before_partway_and_after_the_recompute(env, gateway, insights, passes) -> None:
    await passes.run_once()  # any leftovers of other tests: from here on, only this account has work
    rng = Random("stored-business-seconds")
    acc = await gateway.account()
    events = bh.business_history(acc, rng)
    await bh.deliver(env, events, rng)
    version = await put(gateway, acc.account_id, SCHEDULE)
    acted = await pending(env, acc.account_id)
    assert acted >= 20

    # Nothing priced yet: the answers price the window at query time.
    await bh.check_business_answers(gateway, insights, acc.account_id, events, version)

    assert await passes.run_once() >= acted
    assert await pending(env, acc.account_id) == 0
    # Caught up: the wall clock's statements over the stored seconds.
    await bh.check_business_answers(gateway, insights, acc.account_id, events, version)

    # A schedule change: every stored row is of the old version, and the next answers follow the new one.
    version = await put(gateway, acc.account_id, CHANGED)
    assert await pending(env, acc.account_id) == acted
    await bh.check_business_answers(gateway, insights, acc.account_id, events, version, CHANGED)

    # Part-way: rows another transaction holds are skipped by the pass (as another replica's batch would be).
    engine = create_async_engine(env.database_url)
    try:
        async with engine.connect() as conn, conn.begin():
            held = await conn.execute(
                sa.text(
                    "SELECT handoff_id FROM handoffs WHERE account_id = :a AND first_action_at IS NOT NULL"
                    " AND effective_claimed_at IS NOT NULL ORDER BY handoff_id LIMIT 3 FOR UPDATE"
                ),
                {"a": acc.account_id},
            )
            assert len(held.all()) == 3
            assert await passes.run_once() == acted - 3
            assert await pending(env, acc.account_id) == 3
            await bh.check_business_answers(gateway, insights, acc.account_id, events, version, CHANGED)
    finally:
        await engine.dispose()
    assert await passes.run_once() == 3
    assert await pending(env, acc.account_id) == 0
    await bh.check_business_answers(gateway, insights, acc.account_id, events, version, CHANGED)

    # New events: a first action for a claim that had none, and an earlier one for a claim that had one. The ingest
    # puts both back on the work list; the answers are right before and after the pass prices them.
    counted = insights.counted(events, acc.account_id, NOW - timedelta(days=30), NOW)
    waiting = next(c for c in counted if c.first_action_at is None)
    acted_one = max((c for c in counted if c.delta), key=lambda c: c.delta)
    more = [
        acc.step(waiting.session_id, waiting.claimed_at + timedelta(minutes=95)),
        acc.step(acted_one.session_id, acted_one.claimed_at + timedelta(minutes=1), actor_type="ai"),
    ]
    await env.publish(more)
    await env.settle()
    events += more
    assert await pending(env, acc.account_id) == 2
    await bh.check_business_answers(gateway, insights, acc.account_id, events, version, CHANGED)
    assert await passes.run_once() == 2
    await bh.check_business_answers(gateway, insights, acc.account_id, events, version, CHANGED)


async def test_the_service_loop_follows_a_schedule_change(env, gateway, insights, passes) -> None:
    rng = Random("loop")
    acc = await gateway.account()
    events = bh.business_history(acc, rng)
    await bh.deliver(env, events, rng)
    loop = env.running.app.state.business_recompute
    loop.start()  # the service's own loop (its interval is long: the PUT wakes it)
    try:
        for schedule in (SCHEDULE, CHANGED):
            version = await put(gateway, acc.account_id, schedule)

            async def caught_up() -> bool:
                return await pending(env, acc.account_id) == 0

            await wait_until(caught_up, timeout_s=60, interval_s=0.1)
            await bh.check_business_answers(gateway, insights, acc.account_id, events, version, schedule)
    finally:
        await loop.stop()


async def test_two_replicas_passes_price_each_handoff_once(env, gateway, insights, passes) -> None:
    await passes.run_once()  # earlier tests' leftovers: from here on, only this account has work
    rng = Random("replicas")
    acc = await gateway.account()
    events = []
    for _ in range(120):
        session, handoff = uuid.uuid4(), uuid.uuid4()
        claimed = NOW - timedelta(minutes=rng.randrange(60, 20 * 24 * 60))
        events.append(acc.claimed(handoff, session, claimed, version=2))
        events.append(acc.step(session, claimed + timedelta(minutes=rng.randrange(0, 3000))))
    await env.publish(events)
    await env.settle()
    dbs = [Database(env.database_url, pool_size=2) for _ in range(2)]
    replicas = [BusinessRecompute(db, service="analytics", interval_s=3600, batch_size=7) for db in dbs]
    try:
        for schedule in (SCHEDULE, CHANGED):
            version = await put(gateway, acc.account_id, schedule)
            priced = await asyncio.gather(*(r.run_once() for r in replicas))
            # Each handoff once: none priced twice (the sum would exceed 120), none left (pending would not be 0).
            assert sum(priced) == 120, priced
            assert await pending(env, acc.account_id) == 0
            body = await gateway.ok("", acc.account_id, period="30d", clock="business")
            assert body["schedule_version"] == version
            counted = bh.reference(events, acc.account_id, insights, NOW - timedelta(days=30), NOW, schedule)
            assert body["n_handoffs_claimed"] == 120
            insights.assert_stats_match(body, bh._stats([c.delta for c in counted]))
    finally:
        for db in dbs:
            await db.dispose()
