"""The messaging backbone against a real broker and database: outbox, idempotent consumer, dead letters."""

from __future__ import annotations

import base64
import json
import logging
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa
from faststream.kafka import KafkaBroker
from prometheus_client import REGISTRY

from rf_contracts import Event, StepCreated, deadletter, topics
from rf_testsupport import (
    free_port,
    group_lag,
    make_topics,
    produce,
    read_to_end,
    read_topic,
    step_event,
    unique_prefix,
    wait_until,
)
from rfkit.consumer import DLQ_REASON_HEADER, DLQ_STUB_HEAD_BYTES, DLQ_STUB_HEADER, EventConsumer, RepeatedFailure
from rfkit.db import Database, UnitOfWork
from rfkit.outbox import OutboxRelay
from rfkit.tables import kit_metadata, processed_events

widgets_md = sa.MetaData()
widgets = sa.Table("widgets", widgets_md, sa.Column("id", sa.Uuid, primary_key=True))
applied_md = sa.MetaData()
applied = sa.Table(
    "applied", applied_md, sa.Column("n", sa.Integer, sa.Identity(), primary_key=True), sa.Column("event_id", sa.Uuid)
)


async def _database(url: str, prefix: str) -> Database:
    db = Database(url, pool_size=4, topic_prefix=prefix)
    async with db.engine.begin() as conn:
        for md in (kit_metadata, widgets_md, applied_md):
            await conn.run_sync(md.create_all)
    return db


@pytest.fixture
async def env(kafka_bootstrap, make_database):
    prefix = unique_prefix()
    await make_topics(kafka_bootstrap, prefix, [topics.STEP_CREATED])
    db = await _database(await _url(make_database), prefix)
    yield kafka_bootstrap, prefix, db
    await db.dispose()


async def _url(make_database) -> str:
    result = make_database()
    return await result if hasattr(result, "__await__") else result


async def _count(db: Database, table: sa.Table) -> int:
    async with db.read() as s:
        return int(await s.scalar(sa.select(sa.func.count()).select_from(table)) or 0)


async def test_committed_change_publishes_its_event_keyed_by_session(env) -> None:
    bootstrap, prefix, db = env
    relay = OutboxRelay(db, bootstrap, service="test")
    await relay.start()
    try:
        event = step_event()
        async with db.unit_of_work() as uow:
            await uow.session.execute(sa.insert(widgets).values(id=uuid.uuid4()))
            await uow.publish(event)
        records = await read_topic(bootstrap, prefix + topics.STEP_CREATED, expect=1)
        await wait_until(lambda: _pending_is_zero(relay))  # marked right after Kafka acknowledged
    finally:
        await relay.stop()
    assert len(records) == 1
    assert records[0].key == str(event.session_id).encode()
    assert json.loads(records[0].value)["event_id"] == str(event.event_id)
    assert dict(records[0].headers)["event_type"] == b"session.step_created"


async def _pending_is_zero(relay: OutboxRelay) -> bool:
    return await relay.pending_count() == 0


async def test_rolled_back_change_publishes_nothing(env) -> None:
    bootstrap, prefix, db = env
    relay = OutboxRelay(db, bootstrap, service="test")
    await relay.start()
    lost, kept = step_event(), step_event()
    try:
        with pytest.raises(RuntimeError):
            async with db.unit_of_work() as uow:
                await uow.session.execute(sa.insert(widgets).values(id=uuid.uuid4()))
                await uow.publish(lost)
                raise RuntimeError("the handler failed after staging its event")
        async with db.unit_of_work() as uow:
            await uow.publish(kept)
        # Once the outbox is drained the relay has sent all it ever will: `lost` would be on the topic by now.
        async def drained() -> bool:
            return await relay.pending_count() == 0

        await wait_until(drained)
        records = await read_to_end(bootstrap, prefix + topics.STEP_CREATED)
    finally:
        await relay.stop()
    assert [json.loads(r.value)["event_id"] for r in records] == [str(kept.event_id)]
    assert await _count(db, widgets) == 0


async def test_events_of_one_session_keep_their_order(env) -> None:
    bootstrap, prefix, db = env
    relay = OutboxRelay(db, bootstrap, service="test", batch_size=7)
    session_id = uuid.uuid4()
    events = [step_event(session_id=session_id) for _ in range(40)]
    for e in events:
        async with db.unit_of_work() as uow:
            await uow.publish(e)
    await relay.start()
    try:
        records = await read_topic(bootstrap, prefix + topics.STEP_CREATED, expect=40)
    finally:
        await relay.stop()
    assert [json.loads(r.value)["event_id"] for r in records] == [str(e.event_id) for e in events]


@asynccontextmanager
async def _consuming(bootstrap: str, db: Database, prefix: str, **options: Any) -> AsyncIterator[EventConsumer]:
    """The test consumer on a started broker of its own, stopped on the way out."""
    broker = KafkaBroker(bootstrap)
    consumer = _consumer(broker, db, prefix, **options)
    await broker.start()
    try:
        yield consumer
    finally:
        await broker.stop()


def _consumer(broker: KafkaBroker, db: Database, prefix: str, *, batch: bool = False, **options: Any) -> EventConsumer:
    async def handler(uow: UnitOfWork, events: list[Event]) -> None:
        await uow.session.execute(sa.insert(applied), [{"event_id": e.event_id} for e in events])

    return EventConsumer(
        broker=broker,
        db=db,
        service="test",
        name="test-consumer",
        topics=[topics.STEP_CREATED],
        group=f"{prefix}group",
        handler=handler,
        topic_prefix=prefix,
        batch=batch,
        **options,
    )


async def test_relay_killed_between_publish_and_mark_is_applied_once(env) -> None:
    bootstrap, prefix, db = env
    event = step_event()
    async with db.unit_of_work() as uow:
        await uow.publish(event)
    crashed = OutboxRelay(db, bootstrap, service="test")
    assert await crashed.publish_pending(mark=False) == 1  # published, then "killed" before marking
    await crashed.stop()
    restarted = OutboxRelay(db, bootstrap, service="test")
    assert await restarted.publish_pending() == 1  # the same row again: at-least-once
    await restarted.stop()
    assert len(await read_topic(bootstrap, prefix + topics.STEP_CREATED, expect=2)) == 2

    async with _consuming(bootstrap, db, prefix):
        await wait_until(lambda: _has(db, 1))
        sentinel = step_event()
        await produce(bootstrap, prefix + topics.STEP_CREATED, [(sentinel.key(), sentinel.to_json())])
        await wait_until(lambda: _has(db, 2))
    async with db.read() as s:
        ids = (await s.scalars(sa.select(applied.c.event_id).order_by(applied.c.n))).all()
    assert ids == [event.event_id, sentinel.event_id]


async def _has(db: Database, n: int) -> bool:
    return await _count(db, applied) >= n


@pytest.mark.parametrize("batch", [False, True])
async def test_bad_messages_go_to_the_dlq_and_consumption_goes_on(env, batch: bool) -> None:
    bootstrap, prefix, db = env
    topic = prefix + topics.STEP_CREATED
    good = step_event()
    violating = json.loads(step_event().to_json())
    del violating["step_id"]
    same_key = good.key()
    await produce(
        bootstrap,
        topic,
        [
            (same_key, b"{not json"),
            (same_key, json.dumps(violating).encode()),
            (same_key, good.to_json()),
        ],
    )
    async with _consuming(bootstrap, db, prefix, batch=batch):
        await wait_until(lambda: _has(db, 1))
        dead = await read_topic(bootstrap, topics.dlq(topic), expect=3)
    assert await _count(db, applied) == 1
    assert sorted(r.value for r in dead) == sorted([b"{not json", json.dumps(violating).encode()])
    reasons = [dict(r.headers)[DLQ_REASON_HEADER].decode() for r in dead]
    assert any("step_id" in r for r in reasons), reasons
    assert all(dict(r.headers)["x-original-topic"].decode() == topic for r in dead)
    # Exactly the headers docs/asyncapi.yaml documents as on every dead letter (rf_contracts.deadletter).
    always = {name for name, (_, on_every) in deadletter.HEADERS.items() if on_every}
    assert all({name for name, _ in r.headers} == always for r in dead)


@pytest.mark.parametrize("batch", [False, True])
async def test_same_event_delivered_twice_is_applied_once(env, batch: bool) -> None:
    bootstrap, prefix, db = env
    event, sentinel = step_event(), step_event()
    await produce(
        bootstrap,
        prefix + topics.STEP_CREATED,
        [(event.key(), event.to_json()), (event.key(), event.to_json()), (sentinel.key(), sentinel.to_json())],
    )
    async with _consuming(bootstrap, db, prefix, batch=batch):
        await wait_until(lambda: _has(db, 2))
        # A second delivery of both, after the first were committed.
        await produce(bootstrap, prefix + topics.STEP_CREATED, [(event.key(), event.to_json())])
        marker = step_event()
        await produce(bootstrap, prefix + topics.STEP_CREATED, [(marker.key(), marker.to_json())])
        await wait_until(lambda: _has(db, 3))
    async with db.read() as s:
        ids = (await s.scalars(sa.select(applied.c.event_id))).all()
    assert sorted(map(str, ids)) == sorted(map(str, [event.event_id, sentinel.event_id, marker.event_id]))


async def test_a_valid_event_the_screen_refuses_goes_to_the_dlq_with_its_reason(env) -> None:
    bootstrap, prefix, db = env
    topic = prefix + topics.STEP_CREATED
    refused, good = step_event(), step_event()
    await produce(bootstrap, topic, [(refused.key(), refused.to_json()), (good.key(), good.to_json())])

    def screen(event: Event) -> str | None:
        return "cannot be stored here" if event.event_id == refused.event_id else None

    async with _consuming(bootstrap, db, prefix, batch=True, screen=screen):
        await wait_until(lambda: _has(db, 1))
        dead = await read_topic(bootstrap, topics.dlq(topic), expect=1)
    async with db.read() as session:
        assert (await session.scalars(sa.select(applied.c.event_id))).all() == [good.event_id]
    letters = [(r.value, dict(r.headers)[DLQ_REASON_HEADER]) for r in dead]
    assert letters == [(refused.to_json(), b"cannot be stored here")]


async def test_without_the_ledger_a_redelivery_reaches_the_handler_again(env) -> None:
    """`deduplicate=False` is for handlers idempotent by themselves: no ledger row, the handler sees each delivery."""
    bootstrap, prefix, db = env
    event = step_event()
    await produce(bootstrap, prefix + topics.STEP_CREATED, [(event.key(), event.to_json())])
    async with _consuming(bootstrap, db, prefix, batch=True, deduplicate=False):
        await wait_until(lambda: _has(db, 1))
        await produce(bootstrap, prefix + topics.STEP_CREATED, [(event.key(), event.to_json())])
        await wait_until(lambda: _has(db, 2))
    assert await _count(db, applied) == 2
    async with db.read() as session:
        assert await session.scalar(sa.select(sa.func.count()).select_from(processed_events)) == 0


async def test_workers_are_consumers_of_one_group_that_split_the_partitions(env) -> None:
    bootstrap, prefix, db = env
    async with _consuming(bootstrap, db, prefix, batch=True, workers=2) as consumer:
        def held() -> list[set[Any]]:
            return [set(s.consumer.assignment()) if s.consumer is not None else set() for s in consumer.subscribers]

        async def split() -> bool:
            first, second = held()
            return bool(first) and bool(second) and not first & second and len(first | second) == topics.PARTITIONS

        await wait_until(split, timeout_s=60)
        events = [step_event() for _ in range(30)]
        await produce(bootstrap, prefix + topics.STEP_CREATED, [(e.key(), e.to_json()) for e in events])
        await wait_until(lambda: _has(db, 30))
    async with db.read() as session:
        ids = (await session.scalars(sa.select(applied.c.event_id))).all()
    assert sorted(map(str, ids)) == sorted(str(e.event_id) for e in events)


epochs_md = sa.MetaData()
epochs = sa.Table(
    "epochs", epochs_md, sa.Column("event_id", sa.Uuid, primary_key=True), sa.Column("epoch", sa.Integer)
)
# Data-dependent, as real poison is: a created_at past 2038 has an epoch beyond int4. Computed by PostgreSQL
# (an "action" step: the server refuses it) or by Python (the driver refuses the parameter, as asyncpg did with
# a version of 2**31: "value out of int32 range").
_STORE_EPOCH_SQL = sa.text(
    "INSERT INTO epochs (event_id, epoch) VALUES (:id, CAST(EXTRACT(EPOCH FROM CAST(:at AS timestamptz)) AS integer))"
    " ON CONFLICT DO NOTHING"
)
_STORE_EPOCH = sa.text("INSERT INTO epochs (event_id, epoch) VALUES (:id, :epoch) ON CONFLICT DO NOTHING")


def _epoch_consumer(broker: KafkaBroker, db: Database, prefix: str, **options: Any) -> EventConsumer:
    async def handler(uow: UnitOfWork, events: list[Event]) -> None:
        for e in events:
            assert isinstance(e, StepCreated)
            if e.kind == "action":
                await uow.session.execute(_STORE_EPOCH_SQL, {"id": e.event_id, "at": e.created_at})
            else:
                await uow.session.execute(_STORE_EPOCH, {"id": e.event_id, "epoch": int(e.created_at.timestamp())})

    return EventConsumer(
        broker=broker, db=db, service="test", name="epoch-consumer", topics=[topics.STEP_CREATED],
        group=f"{prefix}epochs", handler=handler, topic_prefix=prefix, attempt_wait_s=0.01, **options,
    )


async def _stored_epochs(db: Database) -> set[uuid.UUID]:
    async with db.engine.begin() as conn:
        await conn.run_sync(epochs_md.create_all)
        return set((await conn.execute(sa.select(epochs.c.event_id))).scalars().all())


@pytest.mark.parametrize("batch", [False, True])
async def test_a_record_the_database_refuses_is_dead_lettered_and_the_rest_applied(env, batch: bool) -> None:
    bootstrap, prefix, db = env
    await _stored_epochs(db)
    topic = prefix + topics.STEP_CREATED
    in_2100 = datetime(2100, 1, 1, tzinfo=UTC)
    poison = step_event(created_at=in_2100)
    server_refused = step_event(session_id=poison.session_id, kind="action", created_at=in_2100)
    before = [step_event() for _ in range(12)]  # spread over the partitions, the poison's among them
    after = [step_event(session_id=poison.session_id) for _ in range(3)] + [step_event() for _ in range(6)]
    null_key = step_event()
    placed = await produce(
        bootstrap, topic,
        [(e.key(), e.to_json()) for e in before]
        + [(poison.key(), poison.to_json()), (None, null_key.to_json()), (poison.key(), server_refused.to_json())]
        + [(e.key(), e.to_json()) for e in after],
    )
    broker = KafkaBroker(bootstrap)
    _epoch_consumer(broker, db, prefix, batch=batch)
    await broker.start()
    try:
        wanted = {e.event_id for e in before + after}

        async def all_good_applied() -> bool:
            return wanted <= await _stored_epochs(db)

        await wait_until(all_good_applied, timeout_s=60)
        dead = await read_topic(bootstrap, topics.dlq(topic), expect=2)

        async def caught_up() -> bool:
            return await group_lag(bootstrap, f"{prefix}epochs", [topic]) == 0

        await wait_until(caught_up, timeout_s=60)
    finally:
        await broker.stop()
    assert await _stored_epochs(db) == wanted
    letters = {(int(dict(r.headers)["x-original-partition"]), int(dict(r.headers)["x-original-offset"])):
               dict(r.headers)[DLQ_REASON_HEADER].decode() for r in dead}
    assert set(letters) == set(placed[len(before) : len(before) + 3])
    reason = letters[placed[len(before)]]
    assert reason.startswith("database error:") and "value out of int32 range" in reason, reason
    assert "null key" in letters[placed[len(before) + 1]]
    reason = letters[placed[len(before) + 2]]
    assert reason.startswith("database error:") and "integer out of range" in reason, reason


async def test_a_dead_letter_too_large_to_copy_becomes_a_stub_and_consumption_goes_on(env) -> None:
    bootstrap, prefix, db = env
    topic = prefix + topics.STEP_CREATED
    junk = bytes(range(256)) * 4095  # 1,048,320 bytes: the broker takes it, its copy with headers is too large
    good = step_event()
    placed = await produce(
        bootstrap, topic, [(good.key(), junk), (good.key(), good.to_json())], max_request_size=2 * 1024 * 1024
    )
    async with _consuming(bootstrap, db, prefix, batch=True):
        await wait_until(lambda: _has(db, 1), timeout_s=60)
        dead = await read_topic(bootstrap, topics.dlq(topic), expect=1)
    assert len(dead) == 1
    headers = {k: v.decode() for k, v in dead[0].headers}
    assert headers[DLQ_STUB_HEADER] == "true" and headers[DLQ_REASON_HEADER]
    assert (int(headers["x-original-partition"]), int(headers["x-original-offset"])) == placed[0]
    assert set(headers) == set(deadletter.HEADERS)  # every documented header, the stub's two included
    stub = json.loads(dead[0].value)
    deadletter.DeadLetterStub.model_validate(stub)
    assert (stub["original_topic"], stub["original_size"]) == (topic, len(junk))
    assert base64.b64decode(stub["head_base64"]) == junk[:DLQ_STUB_HEAD_BYTES]
    assert dead[0].key == good.key()


def test_a_repeating_failure_is_logged_once_with_its_traceback_then_counted(caplog) -> None:
    failures = RepeatedFailure("test-consumer")
    with caplog.at_level(logging.WARNING, logger="rfkit.consumer"):
        for _ in range(50):
            try:
                raise ConnectionRefusedError("database down")
            except ConnectionRefusedError as exc:
                failures.failed(exc, 10)
        failures.succeeded()
    records = [r for r in caplog.records if r.name == "rfkit.consumer"]
    assert len(records) == 2
    assert records[0].exc_info is not None
    assert "recovered after 50 failed attempt(s)" in records[1].getMessage()


@pytest.mark.parametrize("fault", ["unreachable database", "table missing"])
async def test_a_failure_no_record_causes_dead_letters_nothing_and_is_logged_once(env, caplog, fault: str) -> None:
    """An outage, or a deploy whose tables are not there yet: every record fails, none is to blame."""
    bootstrap, prefix, db = env
    topic = prefix + topics.STEP_CREATED
    events = [step_event() for _ in range(5)]
    await produce(bootstrap, topic, [(e.key(), e.to_json()) for e in events])
    if fault == "unreachable database":
        down = Database(f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/postgres", pool_size=1)
    else:
        down = db
        async with db.engine.begin() as conn:
            await conn.run_sync(applied_md.drop_all)
    broker = KafkaBroker(bootstrap)
    consumer = _consumer(broker, down, prefix, batch=True, retry_delay_s=0.05)
    with caplog.at_level(logging.WARNING, logger="rfkit.consumer"):
        await broker.start()
        try:
            async def retried_a_few_times() -> bool:
                return consumer.failures.count >= 5

            await wait_until(retried_a_few_times, timeout_s=60)
        finally:
            await broker.stop()
            await down.dispose()
    # Nothing was blamed on a record: every dead letter is published before the failure is counted. The counter
    # of this test's own topic has no sample until its first dead letter.
    assert REGISTRY.get_sample_value("rf_events_dead_lettered_total", {"service": "test", "topic": topic}) is None
    assert await group_lag(bootstrap, f"{prefix}group", [topic]) == len(events)
    logged = [r for r in caplog.records if r.name == "rfkit.consumer"]
    assert len(logged) == 1 and logged[0].exc_info is not None, [r.getMessage() for r in logged]
