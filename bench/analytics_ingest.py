"""Analytics ingest: claim and step events applied to the read model per second, against a bare aiokafka read.

`uv run python -m bench.analytics_ingest [--events 200000]`. Both read the same freshly produced topics from
a fresh consumer group in the same run; the service's figure counts from its start to the moment its group
has committed every offset (committed only after the database commit), the bare consumer's from its start to
its last record.

Two floors are measured in the same run, so the ratio can be read against what this machine allows at all:
bare consumers that only *keep* what they read — each batch's record bytes copied into an unindexed table and
committed before the offsets, as the service commits — and the same after parsing each record's JSON and
keeping two of its fields. Neither validates, indexes or joins anything.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import random
import time
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import CommitFailedError

from analytics.consumers import TOPICS
from analytics.main import create_app
from analytics.progress import OffsetProbe
from analytics.settings import Settings
from bench._support import bench_infra
from rf_contracts import Event, HandoffClaimed, HandoffReleased, StepCreated
from rf_contracts.events import parse_event
from rf_devstack.postgres import asyncpg_dsn, ensure_databases, url_with_database
from rf_testsupport import RunningApp
from rfkit import migrate
from rfkit.kafka import KafkaConnection
from rfkit.topics import ensure_topics

COMMAND = "uv run python -m bench.analytics_ingest"


def generate(n_events: int, accounts: int, rng: random.Random) -> list[Event]:
    """Sessions of one claimed handoff each (some released and re-claimed) with steps around the claim."""
    now = datetime.now(UTC)
    account_ids = [uuid.uuid4() for _ in range(accounts)]
    events: list[Event] = []
    while len(events) < n_events:
        account, session, handoff = rng.choice(account_ids), uuid.uuid4(), uuid.uuid4()
        claimed_at = now - timedelta(days=rng.uniform(0, 95))
        common = {"account_id": account, "session_id": session}
        version = 2
        if rng.random() < 0.1:  # claimed, released, claimed again later
            events.append(HandoffClaimed(event_id=uuid.uuid4(), occurred_at=claimed_at, handoff_id=handoff,
                                         version=version, claimed_by=uuid.uuid4(), claimed_at=claimed_at, **common))
            events.append(HandoffReleased(event_id=uuid.uuid4(), occurred_at=claimed_at, handoff_id=handoff,
                                          version=version + 1, released_by=uuid.uuid4(),
                                          released_at=claimed_at + timedelta(minutes=1), **common))
            version += 2
            claimed_at += timedelta(minutes=rng.uniform(2, 60))
        events.append(HandoffClaimed(event_id=uuid.uuid4(), occurred_at=claimed_at, handoff_id=handoff,
                                     version=version, claimed_by=uuid.uuid4(), claimed_at=claimed_at, **common))
        for _ in range(rng.randint(4, 14)):
            at = claimed_at + timedelta(seconds=rng.uniform(-1800, 7200))
            events.append(StepCreated(event_id=uuid.uuid4(), occurred_at=at, step_id=uuid.uuid4(), created_at=at,
                                      kind="action", actor_type="human", actor_id=uuid.uuid4(), **common))
    events = events[:n_events]
    rng.shuffle(events)  # steps before their claims, releases before claims: the order-tolerant path
    return events


async def produce_all(kafka: KafkaConnection, prefix: str, events: list[Event]) -> None:
    producer = AIOKafkaProducer(**kafka.client_kwargs(), acks="all", linger_ms=20, max_batch_size=256 * 1024)
    await producer.start()
    try:
        pending = []
        for event in events:
            pending.append(await producer.send(prefix + event.TOPIC, value=event.to_json(), key=event.key()))
            if len(pending) >= 10_000:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
    finally:
        await producer.stop()


async def raw_consume(
    kafka: KafkaConnection, topics: list[str], expected: int, *, prefix: str = "", validate: bool = False
) -> float:
    """Seconds for a bare aiokafka consumer (fresh group, from the earliest offset) to read every record.

    With `validate`, each record is also parsed against its contract (what every kit consumer does first).
    """
    consumer = AIOKafkaConsumer(
        *topics, **kafka.client_kwargs(), group_id=f"bench-raw-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest", enable_auto_commit=False,
    )
    started = time.perf_counter()
    await consumer.start()
    seen = 0
    try:
        while seen < expected:
            batch = await consumer.getmany(timeout_ms=500, max_records=1000)
            for records in batch.values():
                seen += len(records)
                if validate:
                    for record in records:
                        parse_event(record.topic[len(prefix) :], record.value, record.key)
    finally:
        elapsed = time.perf_counter() - started
        await consumer.stop()
    return elapsed


async def store_only_consume(
    kafka: KafkaConnection, topics: list[str], expected: int, dsn: str, *, parse: bool, workers: int = 2
) -> float:
    """Seconds for `workers` bare consumers of one fresh group to read every record and keep it durably.

    Each batch goes into an unindexed table with one COPY and one commit, then its offsets are committed:
    the record's bytes as they are, or (`parse`) two fields of its JSON (a session id and a time).
    """
    table = f"floor_{uuid.uuid4().hex[:8]}"
    group = f"bench-floor-{uuid.uuid4().hex[:8]}"
    setup = await asyncpg.connect(dsn)
    try:
        columns = "session_id uuid, at timestamptz" if parse else "value bytea"
        await setup.execute(f"CREATE TABLE {table} ({columns})")
    finally:
        await setup.close()
    seen = 0
    kept: dict[tuple[str, int], int] = {}
    done = asyncio.Event()

    async def consume() -> None:
        nonlocal seen
        conn = await asyncpg.connect(dsn)
        consumer = AIOKafkaConsumer(
            *topics, **kafka.client_kwargs(), group_id=group, auto_offset_reset="earliest",
            enable_auto_commit=False,
        )
        await consumer.start()
        try:
            while not done.is_set():
                batch = await consumer.getmany(timeout_ms=100, max_records=2000)
                records = [record for part in batch.values() for record in part]
                if not records:
                    continue
                rows: list[tuple[object, ...]]
                if parse:
                    rows = []
                    for record in records:
                        fields = json.loads(record.value)
                        rows.append((fields["session_id"], datetime.fromisoformat(fields["occurred_at"])))
                else:
                    rows = [(record.value,) for record in records]
                async with conn.transaction():
                    await conn.copy_records_to_table(table, records=rows)
                try:
                    await consumer.commit()
                except CommitFailedError:
                    pass  # the other consumer joined: the group rebalanced, and uncommitted records come again
                for record in records:  # each record counted once, even when a rebalance delivers it again
                    key = (record.topic, record.partition)
                    if record.offset >= kept.get(key, 0):
                        kept[key] = record.offset + 1
                        seen += 1
                if seen >= expected:
                    done.set()
        finally:
            await consumer.stop()
            await conn.close()

    started = time.perf_counter()
    await asyncio.gather(*(consume() for _ in range(workers)))
    return time.perf_counter() - started


async def service_consume(settings: Settings, topics: list[str]) -> float:
    """Seconds for the analytics service (fresh group) to apply and commit every record."""
    async with OffsetProbe(settings.kafka(), topics) as probe:
        group = settings.group(settings.consumer_group)
        started = time.perf_counter()
        async with RunningApp(create_app(settings)):
            while await probe.lag(group) > 0:  # noqa: ASYNC110 (polling Kafka, nothing to wait on)
                await asyncio.sleep(0.2)
            return time.perf_counter() - started


async def run(n_events: int, accounts: int) -> dict[str, object]:
    infra = await bench_infra()
    try:
        prefix = f"bench{uuid.uuid4().hex[:8]}."
        db_name = f"bench_analytics_{uuid.uuid4().hex[:8]}"
        await ensure_databases(infra.database_url, [db_name])
        settings = Settings(
            database_url=url_with_database(infra.database_url, db_name), kafka_bootstrap=infra.kafka_bootstrap,
            topic_prefix=prefix, env="test", log_level="WARNING",
        )
        await asyncio.to_thread(migrate.upgrade, "analytics", settings.database_url)
        kafka = settings.kafka()
        await ensure_topics(kafka, prefix)
        topics = [prefix + t for t in TOPICS]

        began = time.perf_counter()
        events = generate(n_events, accounts, random.Random(6))
        await produce_all(kafka, prefix, events)
        n_events = len(events)
        print(f"produced {n_events} events over {accounts} accounts in {time.perf_counter() - began:.1f}s")
        # The generated events are not the consumers' business: they would only make every garbage collection
        # during the measurements below walk 200,000 models.
        del events
        gc.collect()

        raw_s = await raw_consume(kafka, topics, n_events)
        print(f"bare aiokafka consumer: {raw_s:.2f}s, {n_events / raw_s:,.0f} records/s")
        parsed_s = await raw_consume(kafka, topics, n_events, prefix=prefix, validate=True)
        print(f"bare consumer + contract validation only: {parsed_s:.2f}s, {n_events / parsed_s:,.0f} records/s")
        dsn = asyncpg_dsn(settings.database_url)
        bytes_s = await store_only_consume(kafka, topics, n_events, dsn, parse=False)
        print(f"floor, 2 bare consumers keeping each record's bytes: {bytes_s:.2f}s, {n_events / bytes_s:,.0f}"
              f" records/s (ratio {raw_s / bytes_s:.3f})")
        fields_s = await store_only_consume(kafka, topics, n_events, dsn, parse=True)
        print(f"floor, 2 bare consumers keeping two fields of each record: {fields_s:.2f}s,"
              f" {n_events / fields_s:,.0f} records/s (ratio {raw_s / fields_s:.3f})")
        service_s = await service_consume(settings, topics)
        print(f"analytics service: {service_s:.2f}s, {n_events / service_s:,.0f} events/s applied")
        return {
            "bench": "analytics_ingest",
            "events": n_events,
            "events_per_s": round(n_events / service_s),
            "raw_consume_per_s": round(n_events / raw_s),
            "ratio": round(raw_s / service_s, 3),
            "validate_only_per_s": round(n_events / parsed_s),
            "floor_keep_bytes_per_s": round(n_events / bytes_s),
            "floor_keep_fields_per_s": round(n_events / fields_s),
            "command": COMMAND,
        }
    finally:
        await asyncio.to_thread(infra.stop)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.analytics_ingest")
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--accounts", type=int, default=1_000)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(run(args.events, args.accounts))))


if __name__ == "__main__":
    main()
