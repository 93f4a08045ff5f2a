"""The gateway uses no Kafka: it never connects to one, and its readiness is its own database and migrations."""

from __future__ import annotations

import asyncio
from typing import Any

from rf_testsupport.gateway import start_gateway


async def test_the_gateway_never_connects_to_kafka_and_is_ready_without_it(make_session_database: Any) -> None:
    connections: list[object] = []

    async def count(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(writer.get_extra_info("peername"))
        writer.close()

    # What the gateway is told is Kafka: a listener that only counts who connects.
    listener = await asyncio.start_server(count, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    try:
        async for gw in start_gateway(f"127.0.0.1:{port}", make_session_database("gateway")):
            admin, _ = await gw.register()
            assert (await gw.client.get("/api/v1/auth/me", headers=admin.headers)).status_code == 200
            ready = await gw.client.get("/readyz")
            assert ready.status_code == 200
            assert ready.json() == {"status": "ready", "checks": {"database": "ok", "migrations": "ok"}}
            metrics = (await gw.client.get("/metrics")).text
            assert 'rf_kafka_up{service="gateway"}' not in metrics
    finally:
        listener.close()
        await listener.wait_closed()
    assert connections == []
