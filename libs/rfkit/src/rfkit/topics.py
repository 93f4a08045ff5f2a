"""Creates the contract topics and their dead-letter topics with the partitions and retention they need."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from rf_contracts import topics as t
from rfkit.kafka import KafkaConnection

log = logging.getLogger(__name__)


def topic_specs(prefix: str = "") -> list[NewTopic]:
    specs = []
    for name in t.ALL_TOPICS:
        specs.append(NewTopic(f"{prefix}{name}", t.PARTITIONS, 1, topic_configs={"retention.ms": str(t.RETENTION_MS)}))
        specs.append(
            NewTopic(f"{prefix}{t.dlq(name)}", t.PARTITIONS, 1, topic_configs={"retention.ms": str(t.DLQ_RETENTION_MS)})
        )
    return specs


async def ensure_topics(
    kafka: str | KafkaConnection, prefix: str = "", specs: Iterable[NewTopic] | None = None
) -> list[str]:
    """Create what is missing (idempotent); returns the names created."""
    admin = AIOKafkaAdminClient(**KafkaConnection.of(kafka).client_kwargs(), request_timeout_ms=10_000)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [s for s in (specs or topic_specs(prefix)) if s.name not in existing]
        if missing:
            try:
                await admin.create_topics(missing)
            except TopicAlreadyExistsError:
                pass  # a replica created them first
        created = [s.name for s in missing]
        if created:
            log.info("created topics", extra={"topics": created})
        return created
    finally:
        await admin.close()
