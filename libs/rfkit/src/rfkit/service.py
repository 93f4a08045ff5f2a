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
    RetryCallState,
    retry_if_exception_type,
    retry_if_not_exception_type,
    stop_after_delay,
    wait_exponential,
)

from rfkit import migrate
from rfkit.auth import RememberingVerifier, TokenVerifier
from rfkit.consumer import EventConsumer, EventHandler, EventScreen
from rfkit.db import Database, UnitOfWork
from rfkit.denials import TokenDenials
from rfkit.kafka import KafkaAccessError
from rfkit.kafka_health import KafkaHealth
from rfkit.logs import RepeatFilter, configure_logging
from rfkit.outbox import OutboxRelay
from rfkit.settings import ServiceSettings
from rfkit.topics import ensure_topics

log = logging.getLogger(__name__)

# FastStream's own messages (its default logger writes unstructured lines past the JSON handler). While Kafka is
# down its consumers log "Kafka error occurred" with a traceback every few seconds: once per 5 minutes is enough.
_quiet_outage_logger = logging.getLogger("rfkit.broker")
_quiet_outage_logger.addFilter(RepeatFilter(quiet_s=300.0))


class ServiceRuntime:
    """Everything a service owns at run time; the FastAPI lifespan starts and stops it in order."""

    def __init__(
        self, settings: ServiceSettings, *, package: str, produces: bool = True, kafka: bool = True
    ) -> None:
        """`kafka=False`: a service that neither produces nor consumes (the gateway) opens no Kafka connection."""
        self.settings = settings
        self.package = package
        self.db = Database(settings.database_url, pool_size=settings.db_pool_size, topic_prefix=settings.topic_prefix)
        # Address, TLS and SASL: what every Kafka client of the process is given.
        self.kafka = settings.kafka()
        self.broker: KafkaBroker | None = None
        self.kafka_health: KafkaHealth | None = None
        if kafka:
            self.broker = KafkaBroker(
                settings.kafka_bootstrap,
                security=self.kafka.faststream_security(),
                client_id=settings.service_name,
                # Per-message framework logs would dominate the output; consumers log what matters themselves.
                log_level=logging.DEBUG,
                logger=_quiet_outage_logger,
            )
            connection = {k: v for k, v in self.kafka.client_kwargs().items() if k != "bootstrap_servers"}
            self.kafka_health = KafkaHealth(
                settings.kafka_bootstrap, service=settings.service_name, interval_s=settings.kafka_probe_interval_s,
                **connection,
            )
        self.relay = (
            OutboxRelay(
                self.db,
                self.kafka,
                service=settings.service_name,
                poll_interval_s=settings.outbox_poll_interval_s,
                batch_size=settings.outbox_batch_size,
            )
            if produces and kafka
            else None
        )
        self._kafka_task: asyncio.Task[None] | None = None
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
        unit_of_work: type[UnitOfWork] = UnitOfWork,
    ) -> EventConsumer:
        """Subscribe `handler` to contract topics (names without prefix) in group `group` (default: service).

        `workers` > 1 runs that many Kafka consumers of the group in this process: the group splits the
        partitions between them, and one's batch is validated while another's waits on the database.
        """
        if self.broker is None:
            raise RuntimeError(f"{self.settings.service_name} was built without Kafka; it cannot consume")
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
            unit_of_work=unit_of_work,
        )
        self.consumers.append(consumer)
        return consumer

    async def start(self) -> None:
        """Ready to serve once the database is migrated; Kafka is connected now if it answers, else in the background.

        A service answers its API from its database: waiting for Kafka (or failing) at startup would turn a Kafka
        outage into an API outage at the next deploy or restart. What it publishes meanwhile waits in the outbox.
        """
        s = self.settings
        configure_logging(s.service_name, s.log_level)
        if s.migrate_on_start:
            await asyncio.to_thread(migrate.upgrade, self.package, s.database_url)
        self.migrated = await self._at_head()
        if self.kafka_health is not None:
            await self.kafka_health.start()
        if self.broker is not None:
            try:
                # Bounded as a whole too: against a silent (firewalled) address one attempt alone can take 40 s.
                async with asyncio.timeout(s.kafka_startup_wait_s + 5):
                    await self._connect_kafka(stop=stop_after_delay(s.kafka_startup_wait_s))
            except KafkaAccessError:
                # A refused certificate or password: waiting does not change it, so startup fails naming the cause.
                await self._reset_broker()
                raise
            except Exception as exc:
                log.warning(
                    "Kafka not reachable at startup (%s): serving the API, connecting to Kafka in the background",
                    str(exc) or type(exc).__name__,
                )
                await self._reset_broker()
                self._kafka_task = asyncio.create_task(
                    self._connect_kafka(stop=None), name=f"{s.service_name}-kafka-connect"
                )
        if self.denials:
            await self.denials.start()
        tune_gc(s.gc_gen0_threshold)
        self.started = True
        log.info("%s started", s.service_name)

    async def _connect_kafka(self, *, stop: Any) -> None:
        """Create the topics (when this service may) and start the broker with its subscribers, then the relay."""
        s = self.settings
        broker = self.broker
        assert broker is not None

        async def reset(state: RetryCallState) -> None:
            await self._reset_broker()

        retrying = AsyncRetrying(
            wait=wait_exponential(min=0.2, max=5),
            # A refused certificate or password is reported at once (retrying changes nothing).
            retry=retry_if_exception_type(Exception) & retry_if_not_exception_type(KafkaAccessError),
            reraise=True,
            before_sleep=reset,
            **({"stop": stop} if stop is not None else {}),
        )
        async for attempt in retrying:
            with attempt:
                await self.kafka.check_access()
                if s.create_topics:
                    await ensure_topics(self.kafka, s.topic_prefix)
                if s.consume and self.consumers:
                    await broker.start()
                else:
                    await broker.connect()
        if self._kafka_task is not None:
            log.info("%s connected to Kafka", s.service_name)
        if self.relay:
            await self.relay.start()

    async def _reset_broker(self) -> None:
        """Stop a half-started broker before the next attempt, or the subscribers it started would double."""
        if self.broker is None:
            return
        try:
            await self.broker.stop()
        except Exception:
            log.debug("stopping a half-started broker failed", exc_info=True)

    async def stop(self) -> None:
        if self.denials:
            await self.denials.stop()
        if self._kafka_task is not None:
            self._kafka_task.cancel()
            try:
                await self._kafka_task
            except (asyncio.CancelledError, Exception):
                pass
            self._kafka_task = None
        if self.relay:
            await self.relay.stop()
        if self.broker is not None:
            await self.broker.stop()
        if self.kafka_health is not None:
            await self.kafka_health.stop()
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
        """What /readyz reports: the database and its migrations. Not Kafka (see `start` and rfkit.kafka_health)."""
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
