"""A Kafka outage does not take the API down: the whole stack on a broker of its own, which the test stops and restarts.

While the broker is down: registration, login, a forwarded read and writes that publish (queued in the outbox)
succeed, every /readyz stays ready, a service even starts; each service logs the outage once and reports it as a
metric. Once the broker is back, what was written during the outage is published.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from aiokafka import AIOKafkaConsumer
from prometheus_client.parser import text_string_to_metric_families

from rf_contracts import topics
from rf_devstack.kafka import LocalKafka
from rf_testsupport import Caller, Served, free_port, running, wait_until
from sessions.main import create_app as sessions_app
from sessions.settings import Settings as SessionsSettings

from .conftest import Api, Stack

pytestmark = pytest.mark.timeout(600)

SUFFIX = "-outage"
SERVICES = [f"{name}{SUFFIX}" for name in ("sessions", "handoffs", "analytics")]


@pytest.fixture(scope="module")
def own_kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalKafka]:
    """A broker only this module uses (the shared one is never stopped); stopped and restarted on its data."""
    with running(LocalKafka(Path(tmp_path_factory.mktemp("kafka")), free_port(), free_port(), fresh=True)) as kafka:
        yield kafka


@pytest.fixture(scope="module")
def outage_stack(own_kafka: LocalKafka, make_session_database: Any) -> Iterator[Stack]:
    with running(
        Stack(own_kafka.bootstrap, make_session_database, name_suffix=SUFFIX, kafka_probe_interval_s=0.2)
    ) as stack:
        yield stack


@pytest_asyncio.fixture(loop_scope="session")
async def api(outage_stack: Stack) -> AsyncIterator[Api]:
    async with httpx.AsyncClient(base_url=outage_stack.urls["gateway"], timeout=30) as client:
        yield Api(client)


async def metric(url: str, name: str, service: str) -> float | None:
    """A sample of the process's metrics (the stack shares one registry, labelled by service)."""
    async with httpx.AsyncClient(timeout=10) as client:
        text = (await client.get(f"{url}/metrics")).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and sample.labels.get("service") == service:
                return float(sample.value)
    return None


async def find_event(bootstrap: str, topic: str, field: str, value: str, *, timeout_s: float = 90) -> dict[str, Any]:
    """The first event on `topic` whose `field` is `value`, read from the beginning until the deadline."""
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False, group_id=None
    )
    await consumer.start()
    try:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                for record in records:
                    event = json.loads(record.value)
                    if event.get(field) == value:
                        return event  # type: ignore[no-any-return]
    finally:
        await consumer.stop()
    raise AssertionError(f"no event with {field}={value} on {topic} within {timeout_s}s")


async def all_ready(urls: dict[str, str]) -> dict[str, int]:
    async with httpx.AsyncClient(timeout=10) as client:
        return {name: (await client.get(f"{url}/readyz")).status_code for name, url in urls.items()}


async def test_the_api_rides_out_a_kafka_outage_and_publishes_afterwards(
    own_kafka: LocalKafka, outage_stack: Stack, api: Api, make_session_database: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    urls = outage_stack.urls
    prefix = outage_stack.prefix
    team = await api.account("engineer")
    engineer = team.users["engineer"]
    session = await api.session(engineer)
    for service in SERVICES:
        assert await metric(urls["gateway"], "rf_kafka_up", service) == 1

    outage_began = len(caplog.records)  # before the stop: the services notice while the broker shuts down
    await asyncio.to_thread(own_kafka.stop)

    async def every_service_saw_it() -> bool:
        return all([await metric(urls["gateway"], "rf_kafka_up", s) == 0 for s in SERVICES])

    await wait_until(every_service_saw_it, timeout_s=60, interval_s=0.2)

    # Identity (the gateway's own database) and the services' APIs, all while Kafka is down.
    newcomer = await api.account()
    assert (await api.ok("GET", "/auth/me", newcomer.admin))["account_id"] == newcomer.id
    read = await api.ok("GET", f"/sessions/{session['id']}", engineer)
    assert read["id"] == session["id"]
    step = await api.ok("POST", f"/sessions/{session['id']}/steps", engineer, 201,
                        json={"kind": "note", "content": "written during the outage", "actor_type": "human"})
    assert await all_ready(urls) == dict.fromkeys(urls, 200)

    # A service that starts during the outage comes up on its database and publishes once Kafka is back.
    late_settings = SessionsSettings(
        env="test", database_url=make_session_database("late"), kafka_bootstrap=own_kafka.bootstrap,
        topic_prefix=prefix, jwt_public_key=outage_stack.public_pem, outbox_poll_interval_s=0.05,
        service_name=f"sessions-late{SUFFIX}", kafka_startup_wait_s=0.5, kafka_probe_interval_s=0.2,
    )
    caller = Caller(outage_stack.private_pem, role="admin")
    async with Served(sessions_app(late_settings)) as late, httpx.AsyncClient(base_url=late.url, timeout=30) as c:
        assert (await c.get("/readyz")).status_code == 200
        tree = await c.post("/api/v1/trees", headers=caller.headers, json=api.tree_body())
        assert tree.status_code == 201, tree.text
        late_session = await c.post("/api/v1/sessions", headers=caller.headers, json={"tree_id": tree.json()["id"]})
        assert late_session.status_code == 201, late_session.text

        assert await metric(urls["gateway"], "rf_kafka_up", SERVICES[0]) == 0  # still the same outage
        outage_records = list(caplog.records[outage_began:])
        await asyncio.to_thread(own_kafka.start)

        published = await find_event(
            own_kafka.bootstrap, f"{prefix}{topics.STEP_CREATED}", "step_id", step["id"]
        )
        assert published["session_id"] == session["id"] and published["account_id"] == team.id
        started = await find_event(
            own_kafka.bootstrap, f"{prefix}{topics.SESSION_STARTED}", "session_id", late_session.json()["id"]
        )
        assert started["account_id"] == str(caller.account_id)

        async def late_instance_is_back() -> bool:
            return await metric(late.url, "rf_kafka_up", late_settings.service_name) == 1

        await wait_until(late_instance_is_back, timeout_s=60, interval_s=0.2)

    async def every_service_is_back() -> bool:
        return all([await metric(urls["gateway"], "rf_kafka_up", s) == 1 for s in SERVICES])

    await wait_until(every_service_is_back, timeout_s=60, interval_s=0.2)
    for service in SERVICES:
        assert await metric(urls["gateway"], "rf_kafka_outages_total", service) == 1
        lasted = await metric(urls["gateway"], "rf_kafka_outage_seconds_total", service)
        assert lasted is not None and lasted > 0

    # The outage is told once when it begins and once when it ends, per service, and never as a traceback.
    during = [r.getMessage() for r in outage_records]
    after = [r.getMessage() for r in caplog.records[outage_began + len(outage_records):]]
    assert sum("outage began" in m for m in during) == len(SERVICES) + 1  # + the late instance
    assert sum("reachable again" in m and "outage of" in m for m in after) == len(SERVICES) + 1
    tracebacks = [f"{r.name}: {r.getMessage()}" for r in outage_records if r.exc_info]
    assert tracebacks == []
