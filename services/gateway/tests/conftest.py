"""Fixtures of the gateway tests: one gateway per module on its own real PostgreSQL database."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest_asyncio

from rf_testsupport.gateway import Gateway, start_gateway


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def gateway(kafka_bootstrap: str, make_session_database: Any) -> AsyncIterator[Gateway]:
    """One gateway per test module, on a database of its own; its services are not running (503)."""
    async for gw in start_gateway(kafka_bootstrap, make_session_database("gateway")):
        yield gw
