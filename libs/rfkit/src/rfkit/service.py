"""The runtime of one service: settings, database, Kafka broker, outbox relay, consumers, and its lifespan."""

from __future__ import annotations

import asyncio
import gc
import logging
import re
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from faststream.kafka import KafkaBroker
from sqlalchemy import text
from tenacity import (
    AsyncRetrying,
    retry_if_exception_type,
    retry_if_not_exception_type,
    stop_after_delay,
    wait_exponential,
)

from rfkit import migrate
from rfkit.auth import RememberingVerifier, TokenVerifier
from rfkit.consumer import EventConsumer, EventHandler, EventScreen
from rfkit.db import Database
from rfkit.denials import TokenDenials
from rfkit.kafka import KafkaAccessError
from rfkit.logs import configure_logging
from rfkit.outbox import OutboxRelay
from rfkit.settings import ServiceSettings
from rfkit.topics import ensure_topics

log = logging.getLogger(__name__)


class ServiceRuntime:
    """Everything a service owns at run time; the FastAPI lifespan starts and stops it in order."""

    def __init__(self, settings: ServiceSettings, *, package: str, produces: bool = True) -> None:
        self.settings = settings
        self.package = package
        self.db = Database(settings.database_url, pool_size=settings.db_pool_size, topic_prefix=settings.topic_prefix)
        self.kafka = settings.kafka()
        self.broker = KafkaBroker(
            settings.kafka_bootstrap,
            security=self.kafka.faststream_security(),
            client_id=settings.service_name,
            # Per-message framework logs would dominate the output; consumers log what matters themselves.
            log_level=logging.DEBUG,
        )
        self.relay = (
            OutboxRelay(
                self.db,
                self.kafka,
                service=settings.service_name,
                poll_interval_s=settings.outbox_poll_interval_s,
                batch_size=settings.outbox_batch_size,
            )
            if produces
            else None
        )
        gateway_url = getattr(settings, "gateway_url", None)
        self.denials = (
            TokenDenials(gateway_url, poll_interval_s=settings.denials_poll_interval_s)  # type: ignore[attr-defined]
            if gateway_url
            else None
        )
        self.consumers: list[EventConsumer] = []
        self.migrated = False
        self.started = False
        self.verifier: RememberingVerifier | None = None
        key = settings.public_key_pem()
        if key:
            self.verifier = RememberingVerifier(
                TokenVerifier(
                    # Several concatenated PEM blocks while the signing key is being rotated.
                    re.findall(r"-----BEGIN PUBLIC KEY-----.+?-----END PUBLIC KEY-----", key, re.S) or [key],
                    issuer=settings.jwt_issuer,
                    audience=settings.jwt_audience,
                )
            )

    def consumer(
        self,
        *,
        name: str,
        topics: Sequence[str],
        handler: EventHandler,
        batch: bool = False,
        max_records: int = 500,
        group: str | None = None,
        deduplicate: bool = True,
        workers: int = 1,
        screen: EventScreen | None = None,
    ) -> EventConsumer:
        """Subscribe `handler` to contract topics (names without prefix) in group `group` (default: service).

        `workers` > 1 runs that many Kafka consumers of the group in this process: the group splits the
        partitions between them, and one's batch is validated while another's waits on the database.
        """
        consumer = EventConsumer(
            broker=self.broker,
            db=self.db,
            service=self.settings.service_name,
            name=name,
            topics=topics,
            group=self.settings.group(group or self.settings.service_name),
            handler=handler,
            topic_prefix=self.settings.topic_prefix,
            batch=batch,
            max_records=max_records,
            deduplicate=deduplicate,
            workers=workers,
            screen=screen,
        )
        self.consumers.append(consumer)
        return consumer

    async def start(self) -> None:
        s = self.settings
        configure_logging(s.service_name, s.log_level)
        if s.migrate_on_start:
            await asyncio.to_thread(migrate.upgrade, self.package, s.database_url)
        self.migrated = await self._at_head()
        async for attempt in AsyncRetrying(
            stop=stop_after_delay(60),
            wait=wait_exponential(min=0.2, max=5),
            # A refused certificate or password is reported at once: waiting does not change it.
            retry=retry_if_exception_type(Exception) & retry_if_not_exception_type(KafkaAccessError),
            reraise=True,
        ):
            with attempt:
                await self.kafka.check_access()
                if s.create_topics:
                    await ensure_topics(self.kafka, s.topic_prefix)
                if s.consume and self.consumers:
                    await self.broker.start()
                else:
                    await self.broker.connect()
        if self.relay:
            await self.relay.start()
        if self.denials:
            await self.denials.start()
        tune_gc(s.gc_gen0_threshold)
        self.started = True
        log.info("%s started", s.service_name)

    async def stop(self) -> None:
        if self.denials:
            await self.denials.stop()
        if self.relay:
            await self.relay.stop()
        await self.broker.stop()
        await self.db.dispose()
        self.started = False

    @asynccontextmanager
    async def lifespan(self, app: FastAPI) -> AsyncIterator[None]:
        app.state.runtime = self
        app.state.verifier = self.verifier
        app.state.denials = self.denials
        await self.start()
        try:
            yield
        finally:
            await self.stop()

    async def _at_head(self) -> bool:
        head = migrate.head_revision(self.package)
        async with self.db.read() as session:
            try:
                current = await session.scalar(text("SELECT version_num FROM alembic_version"))
            except Exception:
                return False
        return current == head

    async def readiness(self) -> dict[str, Any]:
        """What /readyz reports: each dependency and whether it answers."""
        checks: dict[str, Any] = {}
        try:
            async with self.db.read() as session:
                await asyncio.wait_for(session.execute(text("SELECT 1")), 2)
            checks["database"] = "ok"
        except Exception as exc:
            checks["database"] = f"unreachable: {type(exc).__name__}"
        if not self.migrated:
            self.migrated = checks["database"] == "ok" and await self._at_head()
        checks["migrations"] = "ok" if self.migrated else "not at head"
        checks["kafka"] = "ok" if await kafka_reachable(self.settings.kafka_bootstrap) else "unreachable"
        return checks


def tune_gc(gen0_threshold: int) -> None:
    """Fewer young collections, and none that walk the objects that live as long as the process.

    What exists once the service has started (modules, the app, the engine, the broker) is moved out of the
    collector's generations (`gc.freeze`, as for pre-forked servers), so a full collection walks only
    what was allocated since. Reference counting still frees everything acyclic at once.
    """
    gc.collect()
    gc.freeze()
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(gen0_threshold, gen1, gen2)


async def kafka_reachable(bootstrap: str, timeout: float = 1.0) -> bool:
    """True when a bootstrap address accepts a TCP connection."""
    for address in bootstrap.split(","):
        host, _, port = address.strip().rpartition(":")
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection(host.strip("[]"), int(port)), timeout)
        except (OSError, TimeoutError, ValueError):
            continue
        writer.close()
        return True
    return False
