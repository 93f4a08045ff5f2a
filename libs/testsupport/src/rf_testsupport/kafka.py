"""Kafka in tests on the real broker: read a topic (to its end), produce raw records, lag, topics, events."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from rf_contracts import StepCreated, topics
from rfkit.topics import ensure_topics


async def read_topic(
    bootstrap: str, topic: str, *, expect: int, timeout_s: float = 20.0
) -> list[ConsumerRecord[Any, Any]]:
    """Read a topic from the beginning until `expect` records arrived (see read_to_end to get all there is)."""
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
    finally:
        await consumer.stop()
    return records


async def read_to_end(bootstrap: str, topic: str, *, timeout_s: float = 20.0) -> list[ConsumerRecord[Any, Any]]:
    """Every record of a topic up to its end offsets as of the call: once the producer has nothing left to
    send, this is all there will be (no waiting for "nothing more arrived")."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None)
    await consumer.start()
    records: list[ConsumerRecord[Any, Any]] = []
    try:
        partitions = [TopicPartition(topic, p) for p in range(topics.PARTITIONS)]
        ends = await consumer.end_offsets(partitions)
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        deadline = time.monotonic() + timeout_s
        while [tp for tp, end in ends.items() if await consumer.position(tp) < end]:
            if time.monotonic() > deadline:
                raise AssertionError(f"{topic} not read to its end within {timeout_s}s")
            batch = await consumer.getmany(*partitions, timeout_ms=200)
            for tp, recs in batch.items():
                records.extend(r for r in recs if r.offset < ends[tp])
    finally:
        await consumer.stop()
    return records


async def produce(
    bootstrap: str, topic: str, messages: list[tuple[bytes | None, bytes | None]], *, max_request_size: int = 1048576
) -> list[tuple[int, int]]:
    """Send raw (key, value) messages, as any producer (or a broken one) could; returns (partition, offset) each."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", max_request_size=max_request_size)
    await producer.start()
    placed: list[tuple[int, int]] = []
    try:
        for key, value in messages:
            meta = await producer.send_and_wait(topic, value=value, key=key)
            placed.append((meta.partition, meta.offset))
    finally:
        await producer.stop()
    return placed


async def group_lag(bootstrap: str, group: str, topic_names: list[str]) -> int:
    """Records of `topic_names` that consumer group `group` has not committed yet (partitions never committed
    count from 0, so a group that never consumed a non-empty topic has lag)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None)
    await admin.start()
    await consumer.start()
    try:
        committed = await admin.list_consumer_group_offsets(group)
        # Every contract topic has the same partition count (docs/contract.md#topics-and-keys).
        partitions = [TopicPartition(name, p) for name in topic_names for p in range(topics.PARTITIONS)]
        ends = await consumer.end_offsets(partitions)
        lag = 0
        for tp, end in ends.items():
            meta = committed.get(tp)
            lag += end - (meta.offset if meta is not None and meta.offset >= 0 else 0)
        return lag
    finally:
        await consumer.stop()
        await admin.close()


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
