"""Helpers for tests against the real broker and database: read topics, wait for conditions, make events."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord
from aiokafka.admin import NewTopic

from rf_contracts import StepCreated, topics
from rfkit.topics import ensure_topics


async def read_topic(
    bootstrap: str, topic: str, *, expect: int, timeout_s: float = 20.0, settle_s: float = 0.0
) -> list[ConsumerRecord[Any, Any]]:
    """Read a topic from the beginning until `expect` records arrived (then `settle_s` more for extras)."""
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
        if settle_s:
            end = time.monotonic() + settle_s
            while time.monotonic() < end:
                batch = await consumer.getmany(timeout_ms=100)
                for recs in batch.values():
                    records.extend(recs)
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


async def produce(bootstrap: str, topic: str, messages: list[tuple[bytes | None, bytes]]) -> None:
    """Send raw (key, value) messages, as any producer (or a broken one) could."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for key, value in messages:
            await producer.send_and_wait(topic, value=value, key=key)
    finally:
        await producer.stop()


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
