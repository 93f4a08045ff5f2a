"""Kafka health: an outage is counted and logged once when it begins and once when it ends, not per probe."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest
from prometheus_client import REGISTRY

from rf_testsupport import free_port
from rfkit.kafka_health import KafkaHealth, kafka_answers


def _sample(name: str, service: str) -> float | None:
    return REGISTRY.get_sample_value(name, {"service": service})


def test_an_outage_is_logged_and_counted_once_from_its_first_miss_to_its_end(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="rfkit.kafka_health")
    health = KafkaHealth("kafka:9092", service="health-unit", misses=2)
    def mine() -> list[logging.LogRecord]:
        # Only this probe's lines: services of other tests in this process may log their own.
        return [r for r in caplog.records if r.name == "rfkit.kafka_health" and "kafka:9092" in r.getMessage()]

    health.record(True)
    health.record(False)  # one slow answer: not an outage yet
    assert _sample("rf_kafka_up", "health-unit") == 1 and mine() == []
    for _ in range(10):
        health.record(False)
    assert _sample("rf_kafka_up", "health-unit") == 0
    assert _sample("rf_kafka_outages_total", "health-unit") == 1
    time.sleep(0.01)  # the outage lasts a measurable while (its duration is logged to the millisecond)
    health.record(True)
    health.record(True)
    assert _sample("rf_kafka_up", "health-unit") == 1
    records = mine()
    assert len(records) == 2, [r.getMessage() for r in records]
    assert records[0].getMessage().startswith("Kafka unreachable at kafka:9092: outage began")
    assert records[1].getMessage().startswith("Kafka reachable again at kafka:9092 after an outage of")
    assert records[1].kafka_outage_s > 0  # type: ignore[attr-defined]
    assert (_sample("rf_kafka_outage_seconds_total", "health-unit") or 0) > 0


async def test_the_probe_is_a_kafka_request_not_a_tcp_connection(kafka_bootstrap: str) -> None:
    assert await kafka_answers(kafka_bootstrap)
    assert not await kafka_answers(f"127.0.0.1:{free_port()}")
    # Something that accepts connections but is no broker (a sidecar with nothing behind it).
    async def accept_and_close(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    impostor = await asyncio.start_server(accept_and_close, "127.0.0.1", 0)
    try:
        assert not await kafka_answers(f"127.0.0.1:{impostor.sockets[0].getsockname()[1]}", timeout=2)
    finally:
        impostor.close()
        await impostor.wait_closed()
