"""The outbox relay rides out a Kafka outage: writes keep succeeding and every event arrives afterwards."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from rf_contracts import topics
from rf_devstack.kafka import LocalKafka
from rf_testsupport import (
    free_port,
    make_topics,
    new_database,
    read_topic,
    running,
    step_event,
    unique_prefix,
    wait_until,
)
from rfkit import metrics
from rfkit.db import Database
from rfkit.outbox import OutboxRelay
from rfkit.tables import kit_metadata


@pytest.fixture(scope="module")
def own_broker(tmp_path_factory: pytest.TempPathFactory):
    """A broker of this test's own: stopping it must not disturb the other tests' broker."""
    kafka = LocalKafka(Path(tmp_path_factory.mktemp("kafka-outage")), free_port(), free_port(), fresh=True)
    with running(kafka):
        yield kafka


async def test_writes_succeed_while_kafka_is_down_and_every_event_arrives_after(own_broker, make_database) -> None:
    prefix = unique_prefix()
    await make_topics(own_broker.bootstrap, prefix, [topics.STEP_CREATED])
    db = Database(await new_database(make_database), pool_size=4, topic_prefix=prefix)
    async with db.engine.begin() as conn:
        await conn.run_sync(kit_metadata.create_all)
    relay = OutboxRelay(db, own_broker.bootstrap, service="outage-test", poll_interval_s=0.05)
    await relay.start()
    before = step_event()
    try:
        async with db.unit_of_work() as uow:
            await uow.publish(before)
        await wait_until(lambda: _pending_is(relay, 0))

        await asyncio.to_thread(own_broker.stop)
        metrics.OUTBOX_PENDING.labels("outage-test").set(0)  # only a poll that finds rows sets it again
        session_id = uuid.uuid4()
        during = [step_event(session_id=session_id) for _ in range(25)]
        for event in during:  # every write commits although Kafka is gone
            async with db.unit_of_work() as uow:
                await uow.publish(event)

        # The relay has taken them up and is trying to send them (it keeps trying while the broker is down):
        # none is marked published.
        async def taken_up() -> bool:
            return (REGISTRY.get_sample_value("rf_outbox_pending", {"service": "outage-test"}) or 0) >= 1

        await wait_until(taken_up, timeout_s=60)
        assert await relay.pending_count() == 25

        await asyncio.to_thread(own_broker.start)
        await wait_until(lambda: _pending_is(relay, 0), timeout_s=60)
        records = await read_topic(own_broker.bootstrap, prefix + topics.STEP_CREATED, expect=26)
    finally:
        await relay.stop()
        await db.dispose()
    ids = [json.loads(r.value)["event_id"] for r in records]
    assert set(ids) == {str(before.event_id), *(str(e.event_id) for e in during)}
    mine = [i for i in ids if i != str(before.event_id)]
    assert mine == [str(e.event_id) for e in during], "one session's events keep their order"


async def _pending_is(relay: OutboxRelay, n: int) -> bool:
    return await relay.pending_count() == n
