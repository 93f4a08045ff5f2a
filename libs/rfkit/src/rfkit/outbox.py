"""The outbox relay: publishes committed outbox rows to Kafka in commit order and marks them sent."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

from aiokafka import AIOKafkaProducer
from sqlalchemy import delete, func, select, text, update

from rfkit import metrics
from rfkit.db import Database
from rfkit.kafka import KafkaConnection
from rfkit.tables import outbox
from rfkit.tasks import BackgroundTask

log = logging.getLogger(__name__)

# Only one relay of a service publishes at a time (per-key order across replicas); the others stand by.
_RELAY_LOCK_ID = 0x52460002


class OutboxRelay:
    """Background task of every producing service; survives Kafka outages and catches up afterwards."""

    def __init__(
        self,
        db: Database,
        kafka: str | KafkaConnection,
        *,
        service: str,
        poll_interval_s: float = 0.1,
        batch_size: int = 500,
        retention: timedelta = timedelta(days=7),
    ) -> None:
        self.db = db
        self.kafka = KafkaConnection.of(kafka)
        self.service = service
        self.poll_interval_s = poll_interval_s
        self.batch_size = batch_size
        self.retention = retention
        self._wake = asyncio.Event()
        self._task = BackgroundTask()
        self._producer: AIOKafkaProducer | None = None
        self.connected = False
        db.on_publish = self.wake

    def wake(self) -> None:
        self._wake.set()

    async def start(self) -> None:
        self._task.start(self._run(), name=f"{self.service}-outbox-relay")

    async def stop(self) -> None:
        await self._task.stop()
        await self._close_producer()

    async def _producer_ready(self) -> AIOKafkaProducer:
        if self._producer is None:
            producer = AIOKafkaProducer(
                **self.kafka.client_kwargs(),
                acks="all",
                enable_idempotence=True,
                linger_ms=0,
                request_timeout_ms=10_000,
                client_id=f"{self.service}-outbox",
            )
            try:
                await producer.start()
            except BaseException:
                await producer.stop()
                raise
            self._producer = producer
        return self._producer

    async def _close_producer(self) -> None:
        producer, self._producer = self._producer, None
        self.connected = False
        if producer is not None:
            try:
                await producer.stop()
            except Exception:  # a broken connection may fail to close; it is dropped either way
                log.debug("producer stop failed", exc_info=True)

    async def _run(self) -> None:
        backoff = self.poll_interval_s
        last_cleanup = 0.0
        loop = asyncio.get_running_loop()
        # A run of failed attempts (a Kafka outage): logged when it begins and when it ends, counted in between.
        failing_since: float | None = None
        failures = 0
        while True:
            try:
                sent = await self.publish_pending()
                if failing_since is not None:
                    log.warning(
                        "outbox relay publishing again after %d failed attempts over %.1f s",
                        failures, loop.time() - failing_since,
                    )
                    failing_since, failures = None, 0
                backoff = self.poll_interval_s
                if loop.time() - last_cleanup > 600:
                    await self.cleanup()
                    last_cleanup = loop.time()
                if sent:
                    continue
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                metrics.OUTBOX_ERRORS.labels(self.service).inc()
                failures += 1
                if failing_since is None:
                    failing_since = loop.time()
                    log.warning(
                        "outbox relay cannot publish (%s: %s); events stay in the outbox, retrying until it can",
                        type(exc).__name__, exc,
                    )
                else:
                    log.debug("outbox relay still cannot publish: %s", exc)
                await self._close_producer()
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), self.poll_interval_s)
            except TimeoutError:
                pass

    async def publish_pending(self, *, mark: bool = True) -> int:
        """Publish one batch of unsent rows in id order; returns how many were published.

        `mark=False` publishes without marking, as a relay that dies between the two would.
        """
        async with self.db.sessions() as session, session.begin():
            got_lock = await session.scalar(text(f"SELECT pg_try_advisory_xact_lock({_RELAY_LOCK_ID})"))
            if not got_lock:
                return 0
            rows = (
                await session.execute(
                    select(outbox.c.id, outbox.c.topic, outbox.c.key, outbox.c.payload, outbox.c.headers)
                    .where(outbox.c.published_at.is_(None))
                    .order_by(outbox.c.id)
                    .limit(self.batch_size)
                )
            ).all()
            metrics.OUTBOX_PENDING.labels(self.service).set(len(rows))
            if not rows:
                return 0
            producer = await self._producer_ready()
            self.connected = True
            futures = []
            for row in rows:
                futures.append(
                    await producer.send(
                        row.topic,
                        value=row.payload,
                        key=row.key.encode(),
                        headers=[(k, str(v).encode()) for k, v in (row.headers or {}).items()],
                    )
                )
            results = await asyncio.gather(*futures, return_exceptions=True)
            # Mark the prefix that Kafka acknowledged; the rest is retried in order on the next pass.
            done: list[int] = []
            failure: BaseException | None = None
            for row, result in zip(rows, results, strict=True):
                if isinstance(result, BaseException):
                    failure = result
                    break
                done.append(row.id)
                metrics.OUTBOX_PUBLISHED.labels(self.service, row.topic).inc()
            if mark and done:
                await session.execute(update(outbox).where(outbox.c.id.in_(done)).values(published_at=func.now()))
        if failure is not None:
            raise failure
        return len(done)

    async def cleanup(self) -> int:
        """Forget rows published longer ago than the retention."""
        async with self.db.sessions() as session, session.begin():
            result = await session.execute(
                delete(outbox).where(
                    outbox.c.published_at.is_not(None), outbox.c.published_at < func.now() - self.retention
                )
            )
            return int(getattr(result, "rowcount", 0) or 0)

    async def pending_count(self) -> int:
        async with self.db.read() as session:
            return int(
                await session.scalar(select(func.count()).select_from(outbox).where(outbox.c.published_at.is_(None)))
                or 0
            )
