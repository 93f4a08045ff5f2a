"""Rebuilds the read model from the topics: `python -m analytics.rebuild` (settings from RF_ variables).

The contract topics keep their events forever (retention.ms=-1, set by rfkit.topics), so the read model
can always be thrown away and recomputed: empty it, capture the topics' end offsets, then read every
partition from offset 0 up to those offsets, applying the events exactly as the live consumer does, and
exit. Running alongside the live consumer is safe: the read model is idempotent (an event applied by both
changes it once), and the end offsets are taken after the read model was emptied, so whatever the live
consumer had applied before that is replayed. The metric is partial until the end. Last, the replayed handoffs'
business seconds are priced for their accounts' schedules (a setting the rebuild keeps).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import time
import uuid
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer

from analytics.consumers import TOPICS
from analytics.domain import CONSUMER_NAME
from analytics.handlers import apply_events, recompute_business_seconds
from analytics.progress import OffsetProbe
from analytics.settings import Settings
from analytics.uow import AnalyticsUnitOfWork
from rfkit import migrate
from rfkit.clock import utcnow
from rfkit.consumer import sort_records
from rfkit.db import Database
from rfkit.logs import configure_logging

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RebuildReport:
    group: str
    messages: int
    applied: int  # valid events re-applied (a duplicate delivery counts each time; it changes nothing)
    invalid: int
    seconds: float


async def rebuild(settings: Settings, *, group: str | None = None, batch_size: int = 2000) -> RebuildReport:
    """Empty the read model and re-apply every event up to the topics' current ends; returns what it did."""
    started = time.perf_counter()
    prefix = settings.topic_prefix
    group = group or settings.group(f"{settings.consumer_group}-rebuild-{uuid.uuid4().hex[:8]}")
    await asyncio.to_thread(migrate.upgrade, "analytics", settings.database_url)
    full_topics = [f"{prefix}{t}" for t in TOPICS]
    db = Database(settings.database_url, pool_size=2, topic_prefix=prefix)
    kafka = settings.kafka()
    consumer = AIOKafkaConsumer(
        **kafka.client_kwargs(),
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=4 * 1024 * 1024,
    )
    messages = applied = invalid = 0
    started_consumer = False
    try:
        # Before the read model is emptied: a refused certificate or password must not leave it empty.
        await kafka.check_access()
        async with db.unit_of_work(AnalyticsUnitOfWork) as uow:
            await uow.escalations.clear_all_accounts(consumer=CONSUMER_NAME)
        # After the clear (TRUNCATE waits for the live consumer's open transaction): every event applied
        # before it lies below these offsets and is replayed.
        async with OffsetProbe(kafka, full_topics) as probe:
            partitions = probe.partitions
            targets = {tp: end for tp, end in (await probe.end_offsets()).items() if end > 0}
        log.info("read model cleared; replaying %d partitions into group %s", len(targets), group)
        if targets:
            await consumer.start()
            started_consumer = True
            # Fixed assignment (no rebalancing): every partition of every topic, from its first offset.
            consumer.assign(partitions)
            await consumer.seek_to_beginning(*partitions)
            remaining = dict(targets)
            while remaining:
                batch = await consumer.getmany(*remaining, timeout_ms=500, max_records=batch_size)
                # Records that arrived after the start are the live consumer's business.
                records = [r for tp, part in batch.items() for r in part if r.offset < targets[tp]]
                messages += len(records)
                # Validated as the live consumer does; what it rejects it has already dead-lettered.
                events, rejected = sort_records(records, prefix=prefix)
                invalid += len(rejected)
                if events:
                    async with db.unit_of_work(AnalyticsUnitOfWork) as uow:
                        await apply_events(uow, events)
                    applied += len(events)
                if batch:
                    await consumer.commit()
                for tp in list(remaining):
                    if await consumer.position(tp) >= remaining[tp]:
                        del remaining[tp]
        # The business seconds of the replayed handoffs, for every account's current schedule (the schedules are
        # settings, kept): answers are right meanwhile (priced at query time), this makes them fast again.
        priced = await recompute_business_seconds(db=db, now=utcnow(), batch_size=batch_size)
        log.info("business seconds priced for %d handoffs", priced)
    finally:
        if started_consumer:
            await consumer.stop()
        await db.dispose()
    report = RebuildReport(group, messages, applied, invalid, time.perf_counter() - started)
    log.info("rebuild done: %s", report)
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m analytics.rebuild", description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=2000, help="events applied per transaction")
    parser.add_argument("--group", default=None, help="consumer group to replay in (default: a fresh one)")
    args = parser.parse_args(argv)
    settings = Settings()
    configure_logging("analytics-rebuild", settings.log_level)
    report = asyncio.run(rebuild(settings, group=args.group, batch_size=args.batch_size))
    print(
        f"analytics rebuild: {report.messages} messages, {report.applied} applied, {report.invalid} invalid, "
        f"{report.seconds:.1f}s (group {report.group})"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
