"""Databases in tests: a fresh database from the devstack pytest plugin's `make_database` fixture."""

from __future__ import annotations

from typing import Any


async def new_database(make_database: Any) -> str:
    """Call the `make_database` fixture whether it is sync or async; returns the new database's URL."""
    result = make_database()
    if hasattr(result, "__await__"):
        result = await result
    return str(result)
