"""The read model rebuilt from the topics, and replicas consuming side by side, give the same numbers."""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from datetime import UTC, datetime, timedelta
from random import Random

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from analytics.consumers import TOPICS
from analytics.handlers import recompute_business_seconds
from analytics.main import create_app
from analytics.rebuild import rebuild
from analytics.repository import BusinessSecondsQueries
from rf_contracts import Event, topics
from rf_testsupport import RunningApp, assert_same_answers, wait_until

PERIODS = ("7d", "30d", "90d")


def random_history(history, rng: Random, *, accounts: int, sessions: int) -> tuple[list[Event], list[uuid.UUID]]:
    """Claims, releases, re-claims and human or ai steps around them, over several accounts, in publication order."""
    now = datetime.now(UTC)
    events: list[Event] = []
    ids = []
    for _ in range(accounts):
        acc = history()
        ids.append(acc.account_id)
        for _ in range(sessions):
            session, handoff = uuid.uuid4(), uuid.uuid4()
            t = now - timedelta(days=rng.uniform(0, 100))
            events.append(acc.requested(handoff, session, t))
            version = 1
            for _ in range(rng.randint(1, 3)):
                version += 1
                t += timedelta(minutes=rng.uniform(1, 60))
                if rng.random() < 0.7:
                    events.append(acc.claimed(handoff, session, t, version=version))
                else:
                    events.append(acc.released(handoff, session, t, version=version))
                for _ in range(rng.randint(0, 2)):
                    at = t + timedelta(seconds=rng.uniform(-600, 3600))
                    events.append(acc.step(session, at, actor_type=rng.choice(["human", "ai"])))
            if rng.random() < 0.3:
                events.append(acc.resolved(handoff, session, t + timedelta(hours=1), version=version + 1))
    return events, ids


def shuffled_with_duplicates(events: list[Event], rng: Random, rate: float = 0.2) -> list[Event]:
    delivered = events + [e for e in events if rng.random() < rate]
    rng.shuffle(delivered)
    return delivered


def assignments(running: RunningApp) -> list[set]:
    """The partitions each Kafka consumer of this app's read-model subscription currently holds."""
    held = []
    for subscriber in running.app.state.runtime.consumers[0].subscribers:
        consumer = subscriber.consumer
        held.append(set(consumer.assignment()) if consumer is not None else set())
    return held


def assignment(running: RunningApp) -> set:
    """The partitions this app's consumers currently hold."""
    return set().union(*assignments(running))


async def answers(env, accounts: list[uuid.UUID]) -> dict[tuple[uuid.UUID, str], dict]:
    return {(a, p): await env.metric(a, p) for a in accounts for p in PERIODS}


def check_against_reference(spec, events: list[Event], got: dict[tuple[uuid.UUID, str], dict]) -> None:
    for (account_id, _period), answer in got.items():
        start, end = spec.window_of(answer)
        spec.assert_matches(answer, spec.reference(events, account_id, start, end))


async def read_model_rows(url: str) -> dict[str, int]:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            return {
                t: int(await conn.scalar(sa.text(f"SELECT count(*) FROM {t}")))
                for t in ("steps", "handoffs", "account_watermarks")
            }
    finally:
        await engine.dispose()


async def test_rebuild_from_the_topics_reproduces_the_same_answers(env, history, spec) -> None:
    rng = Random(61)
    events, accounts = random_history(history, rng, accounts=3, sessions=25)
    delivered = shuffled_with_duplicates(events, rng)
    await env.publish(delivered)
    await env.publish([(topics.STEP_CREATED, b"not-a-session", b"{}")])  # dead-lettered, skipped on rebuild
    await env.settle()
    before = await answers(env, accounts)
    check_against_reference(spec, events, before)
    # The history exercises section 7's fields too (first actions of both kinds, both exclusions).
    ninety = [answer for (_, period), answer in before.items() if period == "90d"]
    for actor in ("human", "ai"):
        assert any(a["by_first_actor"][actor]["n_handoffs_with_action"] > 0 for a in ninety), actor
    assert any(a["excluded"]["released"] > 0 for a in ninety)
    assert any(a["excluded"]["unclaimed"] > a["excluded"]["released"] for a in ninety)
    rows_before = await read_model_rows(env.database_url)
    # Business hours per account, every handoff priced for them: the clock=business answers to reproduce. The
    # service's own recompute loop is held meanwhile, so that what prices the replayed handoffs is the rebuild.
    loop = env.running.app.state.business_recompute
    await loop.stop()
    try:
        for account_id in accounts:
            r = await env.running.client.put(
                "/api/v1/analytics/business-hours", json=SCHEDULE, headers=env.caller(account_id, "admin").headers
            )
            assert r.status_code == 200, r.text
        await recompute_business_seconds(db=env.running.app.state.runtime.db, now=datetime.now(UTC), batch_size=50)
        business_before = await business_answers(env, accounts)

        # In-process, while the service keeps running (both apply to the idempotent read model).
        report = await rebuild(env.settings(), batch_size=97)

        assert report.invalid == 1
        assert report.messages == len(delivered) + 1
        assert report.applied == len(delivered)
        after = await answers(env, accounts)
        check_against_reference(spec, events, after)
        for key, answer in before.items():
            assert_same_answers(without_window(after[key]), without_window(answer))
        assert await read_model_rows(env.database_url) == rows_before
        queries = BusinessSecondsQueries(env.running.app.state.runtime.db)
        for account_id in accounts:
            state = await queries.state(account_id=account_id, start=datetime(2000, 1, 1, tzinfo=UTC), end=FAR)
            assert (state.schedule_version, state.n_pending) == (1, 0)  # the rebuild priced the replayed handoffs
        business_after = await business_answers(env, accounts)
        assert business_after.keys() == business_before.keys()
        for key, answer in business_before.items():
            assert_same_answers(without_window(business_after[key]), without_window(answer))
    finally:
        loop.start()


FAR = datetime(2100, 1, 1, tzinfo=UTC)
SCHEDULE = {
    "timezone": "Europe/Berlin",
    "week": {"mon": [["08:00", "12:00"], ["13:00", "18:00"]], "tue": [["08:00", "18:00"]], "wed": [["08:00", "18:00"]],
             "thu": [["08:00", "18:00"]], "fri": [["08:00", "15:30"]], "sat": [], "sun": []},
    "holidays": ["2026-12-25"],
}


def without_window(answer: dict) -> dict:
    return {k: v for k, v in answer.items() if not k.startswith("window")}


async def business_answers(env, accounts: list[uuid.UUID]) -> dict[tuple[uuid.UUID, str], dict]:
    """Every insight with clock=business (the drill-down without waiting times: they grow with the clock)."""
    out = {}
    for account_id in accounts:
        for path, params in (
            ("", {"period": "90d"}),
            ("/breakdown", {"period": "90d", "by": "tree"}),
            ("/breakdown", {"period": "30d", "by": "claimer"}),
            ("/series", {"period": "30d", "tz": "Europe/Berlin"}),
            ("/handoffs", {"period": "90d", "order": "newest", "limit": 500}),
        ):
            r = await env.running.client.get(
                f"/api/v1/analytics/flowpilot/escalations{path}",
                params={**params, "clock": "business"},
                headers=env.caller(account_id).headers,
            )
            assert r.status_code == 200, r.text
            body = r.json()
            for item in body.get("items", []):
                item.pop("waiting_seconds")
            out[account_id, path + str(sorted(params.items()))] = body
    return out


async def test_rebuild_command_runs_from_the_environment(env, history, spec) -> None:
    rng = Random(62)
    events, accounts = random_history(history, rng, accounts=1, sessions=10)
    await env.publish(events)
    await env.settle()
    before = await answers(env, accounts)
    settings = env.settings()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "analytics.rebuild",
        "--batch-size",
        "50",
        env={
            **os.environ,
            "RF_DATABASE_URL": settings.database_url,
            "RF_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
            "RF_TOPIC_PREFIX": settings.topic_prefix,
            "RF_ENV": "test",
        },
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode == 0, out.decode()
    assert b"analytics rebuild:" in out
    after = await answers(env, accounts)
    check_against_reference(spec, events, after)
    assert [a["n_handoffs_claimed"] for a in after.values()] == [b["n_handoffs_claimed"] for b in before.values()]


@pytest.mark.parametrize("same_group", [True, False], ids=["same-group", "separate-groups"])
async def test_two_replicas_consuming_side_by_side_give_the_same_numbers(env, history, spec, same_group) -> None:
    rng = Random(63 + same_group)
    group = "analytics" if same_group else f"analytics-{uuid.uuid4().hex[:6]}"
    async with RunningApp(create_app(env.settings(consumer_group=group))) as second:
        if same_group:
            # Both members hold some of the partitions before the events arrive.
            async def split() -> bool:
                mine, theirs = assignment(env.running), assignment(second)
                return bool(mine) and bool(theirs) and not mine & theirs

            await wait_until(split, timeout_s=60)
        events, accounts = random_history(history, rng, accounts=4, sessions=60)
        await env.publish(shuffled_with_duplicates(events, rng))
        await env.settle()
        await env.settle(env.settings(consumer_group=group).group(group))
        check_against_reference(spec, events, await answers(env, accounts))
        check_against_reference(
            spec, events, {(a, "90d"): await env.metric(a, "90d", client=second.client) for a in accounts}
        )


async def test_the_consumers_of_one_process_split_the_partitions_of_the_group(env, history, spec) -> None:
    """RF_CONSUMER_WORKERS (2 by default): two Kafka consumers of one group in one process, disjoint partitions."""
    assert env.settings().consumer_workers == 2

    async def split() -> bool:
        first, second = assignments(env.running)
        every = topics.PARTITIONS * len(TOPICS)
        return bool(first) and bool(second) and not first & second and len(first | second) == every

    await wait_until(split, timeout_s=60)
    events, accounts = random_history(history, Random(65), accounts=2, sessions=40)
    await env.publish(shuffled_with_duplicates(events, Random(66)))
    await env.settle()
    check_against_reference(spec, events, await answers(env, accounts))
