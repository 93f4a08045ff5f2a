"""Idempotent, dead-lettering event consumption on FastStream: validate, apply once, then commit the offset."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from aiokafka import ConsumerRecord
from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from rf_contracts import Event, dlq
from rf_contracts.events import ContractViolation, parse_event
from rfkit import metrics
from rfkit.db import Database, UnitOfWork
from rfkit.logs import event_id_var
from rfkit.tables import processed_events

log = logging.getLogger(__name__)

# (unit of work, the new events of this delivery in arrival order) -> None. Runs inside the transaction that
# also records the event ids, so an effect and its "already applied" mark commit together (unless the consumer
# has no ledger: deduplicate=False, for effects idempotent by themselves).
EventHandler = Callable[[UnitOfWork, list[Event]], Awaitable[None]]
# A consumer's own check of a valid event: why it cannot be applied (it is dead-lettered with that reason), or None.
EventScreen = Callable[[Event], str | None]

DLQ_REASON_HEADER = "x-dlq-reason"


@dataclass(frozen=True)
class DeadLetter:
    record: ConsumerRecord[Any, Any]
    reason: str


async def claim_new_events(session: AsyncSession, consumer: str, events: Sequence[Event]) -> list[Event]:
    """Record the events' ids for this consumer; returns those not seen before (first occurrence each)."""
    unique = _unique(events)
    if not unique:
        return []
    # One array parameter rather than a VALUES row per event: a multi-row VALUES statement is compiled anew
    # for each batch and cost several times more than the handler's own work on a batch of 1000.
    ids = [e.event_id for e in unique]
    fresh = set((await session.execute(_CLAIM, {"consumer": consumer, "ids": ids})).scalars().all())
    return [e for e in unique if e.event_id in fresh]


# Inserted in id order: two consumers claiming overlapping batches wait on each other instead of deadlocking.
_CLAIM = text(
    "INSERT INTO processed_events (consumer, event_id)"
    " SELECT :consumer, id FROM unnest(CAST(:ids AS uuid[])) AS id ORDER BY id"
    " ON CONFLICT DO NOTHING RETURNING event_id"
)


def _unique(events: Sequence[Event]) -> list[Event]:
    """First occurrence of each event id (for handlers idempotent by themselves: no ledger round trip)."""
    unique: dict[Any, Event] = {}
    for event in events:
        unique.setdefault(event.event_id, event)
    return list(unique.values())


async def _skip_decoding(msg: Any) -> Any:
    """The kit validates each record's raw bytes itself: FastStream's own JSON decoding would be wasted work."""
    return None


def _records(msg: Any) -> tuple[ConsumerRecord[Any, Any], ...]:
    raw = msg.raw_message
    return raw if isinstance(raw, tuple) else (raw,)


def sort_records(
    records: Iterable[ConsumerRecord[Any, Any]], *, prefix: str = "", screen: EventScreen | None = None
) -> tuple[list[Event], list[DeadLetter]]:
    """Each record validated against its topic's contract, then `screen`ed: the events, and the dead letters."""
    events: list[Event] = []
    dead: list[DeadLetter] = []
    for record in records:
        try:
            event = parse_event(_unprefixed(record.topic, prefix), record.value, record.key)
        except ContractViolation as exc:
            dead.append(DeadLetter(record, str(exc)))
            continue
        problem = screen(event) if screen is not None else None
        if problem is not None:
            dead.append(DeadLetter(record, problem))
        else:
            events.append(event)
    return events, dead


def _unprefixed(topic: str, prefix: str) -> str:
    return topic[len(prefix) :] if prefix and topic.startswith(prefix) else topic


class EventConsumer:
    """One consumer group over some contract topics; `handler` sees each valid event once."""

    def __init__(
        self,
        *,
        broker: KafkaBroker,
        db: Database,
        service: str,
        name: str,
        topics: Sequence[str],
        group: str,
        handler: EventHandler,
        topic_prefix: str = "",
        batch: bool = False,
        max_records: int = 500,
        auto_offset_reset: str = "earliest",
        retry_delay_s: float = 1.0,
        deduplicate: bool = True,
        workers: int = 1,
        screen: EventScreen | None = None,
    ) -> None:
        self.broker = broker
        self.db = db
        self.service = service
        self.name = name
        self.prefix = topic_prefix
        self.handler = handler
        self.retry_delay_s = retry_delay_s
        self.deduplicate = deduplicate
        self.screen = screen
        full_topics = [f"{topic_prefix}{t}" for t in topics]
        options: dict[str, Any] = {
            "group_id": group,
            "ack_policy": AckPolicy.NACK_ON_ERROR,
            "auto_offset_reset": auto_offset_reset,
            "fetch_max_wait_ms": 100,
            # A member learns of a rebalance at its next heartbeat: at 1 s (Kafka's default is 3 s) a replica or
            # worker that joins gets its partitions sooner and the others pause for less.
            "heartbeat_interval_ms": 1000,
            "decoder": _skip_decoding,
        }
        if batch:
            options.update(batch=True, max_records=max_records, batch_timeout_ms=100)
        # Several subscribers of one group are several Kafka consumers: the group splits the partitions.
        self.subscribers = [broker.subscriber(*full_topics, **options) for _ in range(max(1, workers))]
        for subscriber in self.subscribers:
            subscriber(self._on_message)

    async def _on_message(self, msg: KafkaMessage) -> None:
        records = _records(msg)
        try:
            await self.process(records)
        except Exception:
            log.exception("%s: applying %d message(s) failed; they will be redelivered", self.name, len(records))
            # Redelivery follows at once (the offset is rewound): pause so a database outage is not a hot loop.
            await asyncio.sleep(self.retry_delay_s)
            raise

    async def process(self, records: Sequence[ConsumerRecord[Any, Any]]) -> list[Event]:
        """Validate, dead-letter the bad, apply the good once; returns the events applied now."""
        events, dead = sort_records(records, prefix=self.prefix, screen=self.screen)
        applied: list[Event] = []
        if events:
            async with self.db.unit_of_work() as uow:
                applied = (
                    await claim_new_events(uow.session, self.name, events) if self.deduplicate else _unique(events)
                )
                if applied:
                    token = event_id_var.set(",".join(str(e.event_id) for e in applied[:3]))
                    try:
                        await self.handler(uow, applied)
                    finally:
                        event_id_var.reset(token)
        # By id: `event in applied` compared pydantic models field by field, quadratic in the batch size.
        applied_ids = {e.event_id for e in applied}
        outcomes = Counter((e.TOPIC, "applied" if e.event_id in applied_ids else "duplicate") for e in events)
        for (topic, outcome), count in outcomes.items():
            metrics.EVENTS_CONSUMED.labels(self.service, topic, outcome).inc(count)
        for letter in dead:
            await self.dead_letter(letter)
        return applied

    async def dead_letter(self, letter: DeadLetter) -> None:
        record = letter.record
        log.warning(
            "dead-lettering %s[%d]@%d: %s", record.topic, record.partition, record.offset, letter.reason
        )
        await self.broker.publish(
            record.value if record.value is not None else b"",
            topic=dlq(record.topic),
            key=record.key,
            headers={
                DLQ_REASON_HEADER: letter.reason,
                "x-original-topic": record.topic,
                "x-original-partition": str(record.partition),
                "x-original-offset": str(record.offset),
                "x-consumer": self.name,
            },
        )
        metrics.EVENTS_DEAD_LETTERED.labels(self.service, record.topic).inc()


async def already_processed(session: AsyncSession, consumer: str, event_id: Any) -> bool:
    found = await session.scalar(
        select(processed_events.c.event_id).where(
            processed_events.c.consumer == consumer, processed_events.c.event_id == event_id
        )
    )
    return found is not None
