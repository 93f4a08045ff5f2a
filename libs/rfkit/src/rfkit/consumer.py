"""Idempotent, dead-lettering event consumption on FastStream: validate, apply once, then commit the offset."""

from __future__ import annotations

import asyncio
import base64
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from aiokafka import ConsumerRecord
from aiokafka.errors import MessageSizeTooLargeError
from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from sqlalchemy import exc as sa_exc
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_exponential

from rf_contracts import Event, deadletter, dlq
from rf_contracts.events import ContractViolation, parse_event
from rfkit import metrics
from rfkit.db import Database, UnitOfWork
from rfkit.logs import event_id_var

log = logging.getLogger(__name__)

# (unit of work, the new events of this delivery in arrival order) -> None. Runs inside the transaction that
# also records the event ids, so an effect and its "already applied" mark commit together (unless the consumer
# has no ledger: deduplicate=False, for effects idempotent by themselves).
# (the service's unit of work, of the kind given as `unit_of_work`; the new events) -> None
EventHandler = Callable[[Any, list[Event]], Awaitable[None]]
# A consumer's own check of a valid event: why it cannot be applied (it is dead-lettered with that reason), or None.
EventScreen = Callable[[Event], str | None]

DLQ_REASON_HEADER = deadletter.REASON_HEADER
DLQ_STUB_HEADER = deadletter.STUB_HEADER
# The producer refuses a request over 1 MiB (aiokafka's max_request_size) and the broker a batch over
# message.max.bytes (1,048,588 by default): a record the broker accepted can come back too large to copy once
# the DLQ headers are added. Past this size the dead letter is a stub that points at the original.
DLQ_MAX_BYTES = 1_000_000
DLQ_STUB_HEAD_BYTES = 1024


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


Valid = tuple[ConsumerRecord[Any, Any], Event]


def sort_records(
    records: Iterable[ConsumerRecord[Any, Any]], *, prefix: str = "", screen: EventScreen | None = None
) -> tuple[list[Event], list[DeadLetter]]:
    """Each record validated against its topic's contract, then `screen`ed: the events, and the dead letters."""
    valid, dead = _sort(records, prefix=prefix, screen=screen)
    return [event for _, event in valid], dead


def _sort(
    records: Iterable[ConsumerRecord[Any, Any]], *, prefix: str = "", screen: EventScreen | None = None
) -> tuple[list[Valid], list[DeadLetter]]:
    valid: list[Valid] = []
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
            valid.append((record, event))
    return valid, dead


# SQLSTATE classes a record causes: data exception (a value out of range, bad encoding...) and integrity
# constraint violation. Any other error of the database (unreachable, shutting down, a deadlock, a missing table
# or privilege after a botched deploy) is no record's fault: dead-lettering on it would empty the topic.
_RECORD_SQLSTATE_CLASSES = ("22", "23")


def is_transient(exc: BaseException) -> bool:
    """True for a failure of the database, the network or the deployment (retry everything later), False for
    one a record causes (a value the database or the driver refuses, a handler error on its data)."""
    if isinstance(exc, (OSError, TimeoutError, sa_exc.TimeoutError)):
        return True
    if isinstance(exc, sa_exc.DBAPIError):
        if exc.connection_invalidated:
            return True
        if isinstance(getattr(exc.orig, "__cause__", None), ValueError):
            return False  # the driver refused a parameter (asyncpg's DataError: "value out of int32 range")
        state = _sqlstate(exc)
        return state is None or state[:2] not in _RECORD_SQLSTATE_CLASSES
    if isinstance(exc, sa_exc.StatementError) and isinstance(exc.orig, Exception):
        return is_transient(exc.orig)  # a parameter's type processor failed on the record's value, or not
    if isinstance(exc, sa_exc.SQLAlchemyError):
        return True  # the engine's own trouble (pool, connection state), not a record's
    cause = exc.__cause__
    return cause is not None and cause is not exc and is_transient(cause)


def _sqlstate(exc: sa_exc.DBAPIError) -> str | None:
    for candidate in (exc.orig, getattr(exc.orig, "__cause__", None)):
        state = getattr(candidate, "sqlstate", None) or getattr(candidate, "pgcode", None)
        if isinstance(state, str):
            return state
    return None


def failure_reason(exc: BaseException) -> str:
    """The dead letter's reason for a record that cannot be applied: the database's own words, short."""
    if isinstance(exc, sa_exc.DBAPIError):
        # The driver's exception, not SQLAlchemy's text (which repeats the statement and its parameters).
        origin: BaseException = getattr(exc.orig, "__cause__", None) or exc.orig  # type: ignore[assignment]
        return _short(f"database error: {type(origin).__name__}: {origin}")
    return _short(f"{type(exc).__name__}: {exc}")


def _short(text: str) -> str:
    return " ".join(text.split())[:500]


def _by_partition(valid: Sequence[Valid]) -> list[list[Valid]]:
    """The records of each topic partition, in arrival order."""
    groups: dict[tuple[str, int], list[Valid]] = {}
    for pair in valid:
        groups.setdefault((pair[0].topic, pair[0].partition), []).append(pair)
    return list(groups.values())


class RepeatedFailure:
    """Logs a failure once with its traceback, then only a count (every `every_s`) and its end."""

    def __init__(self, name: str, every_s: float = 60.0) -> None:
        self.name = name
        self.every_s = every_s
        self.count = 0
        self._signature: str | None = None
        self._since = self._logged = 0.0

    def failed(self, exc: BaseException, messages: int) -> None:
        # By type only: the text of one outage's errors varies (addresses, offsets) and would defeat the count.
        signature = type(exc).__name__
        now = time.monotonic()
        if self.count and signature == self._signature:
            self.count += 1
            if now - self._logged >= self.every_s:
                self._logged = now
                log.error(
                    "%s: still failing (%d attempts in %.0f s): %s", self.name, self.count, now - self._since,
                    _short(str(exc))[:200],
                )
            return
        self.count, self._signature, self._since, self._logged = 1, signature, now, now
        log.error("%s: applying %d message(s) failed; they will be redelivered", self.name, messages, exc_info=exc)

    def succeeded(self) -> None:
        if self.count:
            log.warning(
                "%s: recovered after %d failed attempt(s) over %.1f s", self.name, self.count,
                time.monotonic() - self._since,
            )
            self.count = 0
            self._signature = None


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
        max_attempts: int = 3,
        attempt_wait_s: float = 0.1,
        unit_of_work: type[UnitOfWork] = UnitOfWork,
    ) -> None:
        self.broker = broker
        self.unit_of_work = unit_of_work
        self.db = db
        self.service = service
        self.name = name
        self.prefix = topic_prefix
        self.handler = handler
        self.retry_delay_s = retry_delay_s
        self.deduplicate = deduplicate
        self.screen = screen
        self.max_attempts = max(1, max_attempts)
        self.attempt_wait_s = attempt_wait_s
        self.failures = RepeatedFailure(name)
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
        except Exception as exc:
            # Only what no record can be blamed for gets here (the database or the broker is unavailable):
            # the offsets are rewound and everything is retried, logged once with a count.
            self.failures.failed(exc, len(records))
            # Redelivery follows at once (the offset is rewound): pause so a database outage is not a hot loop.
            await asyncio.sleep(self.retry_delay_s)
            raise
        self.failures.succeeded()

    async def process(self, records: Sequence[ConsumerRecord[Any, Any]]) -> list[Event]:
        """Validate, dead-letter the bad, apply the good once; returns the events applied now.

        A batch the database refuses is split (per partition, then in halves) until the record it refuses
        is alone; that record is tried `max_attempts` times and then dead-lettered with the database's
        error, and the rest is applied. A failure no record causes (see `is_transient`) propagates.
        """
        valid, dead = _sort(records, prefix=self.prefix, screen=self.screen)
        applied: list[Event] = []
        if valid:
            try:
                applied = await self._apply(valid)
            except Exception as exc:
                if is_transient(exc):
                    raise
                groups = _by_partition(valid)
                applied = []
                for group in groups:
                    # One partition's batch failed as a whole already: straight to its halves.
                    applied.extend(await self._isolate(group, dead, failed=len(groups) == 1))
        # By id: `event in applied` compared pydantic models field by field, quadratic in the batch size.
        applied_ids = {e.event_id for e in applied}
        refused = {id(letter.record) for letter in dead}
        outcomes = Counter(
            (e.TOPIC, "applied" if e.event_id in applied_ids else "duplicate") for r, e in valid if id(r) not in refused
        )
        for (topic, outcome), count in outcomes.items():
            metrics.EVENTS_CONSUMED.labels(self.service, topic, outcome).inc(count)
        for letter in dead:
            await self.dead_letter(letter)
        return applied

    async def _apply(self, valid: Sequence[Valid]) -> list[Event]:
        """Apply some valid events in one transaction (with their ledger rows); returns those new."""
        events = [event for _, event in valid]
        async with self.db.unit_of_work(self.unit_of_work) as uow:
            applied = await claim_new_events(uow.session, self.name, events) if self.deduplicate else _unique(events)
            if applied:
                token = event_id_var.set(",".join(str(e.event_id) for e in applied[:3]))
                try:
                    await self.handler(uow, applied)
                finally:
                    event_id_var.reset(token)
        return applied

    async def _isolate(self, valid: list[Valid], dead: list[DeadLetter], *, failed: bool = False) -> list[Event]:
        """Apply what can be applied of `valid` (in order), adding what cannot to `dead`; bisects on failure."""
        if len(valid) == 1:
            return await self._apply_alone(valid[0], dead)
        if not failed:
            try:
                return await self._apply(valid)
            except Exception as exc:
                if is_transient(exc):
                    raise
        middle = len(valid) // 2
        first = await self._isolate(valid[:middle], dead)
        return first + await self._isolate(valid[middle:], dead)

    async def _apply_alone(self, pair: Valid, dead: list[DeadLetter]) -> list[Event]:
        record, _ = pair
        try:
            async for attempt in AsyncRetrying(
                stop=stop_after_attempt(self.max_attempts),
                wait=wait_exponential(multiplier=self.attempt_wait_s, max=2),
                retry=retry_if_exception(lambda e: not is_transient(e)),
                reraise=True,
            ):
                with attempt:
                    return await self._apply([pair])
        except Exception as exc:
            if is_transient(exc) or not await self._database_answers():
                raise
            dead.append(DeadLetter(record, failure_reason(exc)))
        return []

    async def _database_answers(self) -> bool:
        """A last check before blaming a record: a database that does not answer is an outage, not poison."""
        try:
            async with self.db.read() as session:
                await session.execute(text("SELECT 1"))
        except Exception:
            return False
        return True

    async def dead_letter(self, letter: DeadLetter) -> None:
        record = letter.record
        log.warning(
            "dead-lettering %s[%d]@%d: %s", record.topic, record.partition, record.offset, letter.reason
        )
        headers = {
            DLQ_REASON_HEADER: letter.reason,
            deadletter.ORIGINAL_TOPIC_HEADER: record.topic,
            deadletter.ORIGINAL_PARTITION_HEADER: str(record.partition),
            deadletter.ORIGINAL_OFFSET_HEADER: str(record.offset),
            deadletter.CONSUMER_HEADER: self.name,
        }
        value: bytes = record.value if record.value is not None else b""
        key: bytes | None = record.key
        size = len(value) + len(key or b"") + sum(len(k) + len(v) for k, v in headers.items())
        try:
            if size > DLQ_MAX_BYTES:
                raise MessageSizeTooLargeError(f"{size} bytes")
            await self.broker.publish(value, topic=dlq(record.topic), key=key, headers=headers)
        except MessageSizeTooLargeError:
            value, key = _stub(record, value), key if key is None or len(key) <= DLQ_STUB_HEAD_BYTES else None
            headers.update({DLQ_STUB_HEADER: "true", deadletter.ORIGINAL_SIZE_HEADER: str(len(record.value or b""))})
            await self.broker.publish(value, topic=dlq(record.topic), key=key, headers=headers)
        metrics.EVENTS_DEAD_LETTERED.labels(self.service, record.topic).inc()


def _stub(record: ConsumerRecord[Any, Any], value: bytes) -> bytes:
    """What stands in the DLQ for a record too large to copy: where it is, how large, and its first bytes."""
    return deadletter.DeadLetterStub(
        original_topic=record.topic,
        original_partition=record.partition,
        original_offset=record.offset,
        original_size=len(value),
        head_base64=base64.b64encode(value[:DLQ_STUB_HEAD_BYTES]).decode(),
    ).model_dump_json().encode()
