"""The drill-down CSV's stored cells (handoffs.csv_cells, kept by the trigger of migration 0009) on real PostgreSQL:
each cell in the text Python writes (isoformat of the UTC instant, str() of the float) whatever the instant, the
delta and the writer's settings; kept current whichever of their columns a statement sets; NULL without a current
claim."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import asyncpg
import pytest_asyncio

from rf_testsupport import new_database
from rfkit import migrate

# Whole seconds, one microsecond either side, a leap day, a year's last instant, before 1970, a three-digit year.
INSTANTS = [
    datetime(2026, 11, 29, 22, 0, 0, tzinfo=UTC),
    datetime(2026, 11, 29, 22, 0, 0, 1, tzinfo=UTC),
    datetime(2026, 11, 29, 21, 59, 59, 999_999, tzinfo=UTC),
    datetime(2024, 2, 29, 12, 30, 5, 250_000, tzinfo=UTC),
    datetime(1999, 12, 31, 23, 59, 59, 500_000, tzinfo=timezone(timedelta(hours=-5))),
    datetime(1969, 7, 20, 20, 17, 40, tzinfo=UTC),
    datetime(999, 1, 2, 3, 4, 5, 60, tzinfo=UTC),
]
# After the claim (whole, fractional, large), at the claim, and before it (a delta of 0).
OFFSETS = [
    timedelta(seconds=20),
    timedelta(microseconds=1),
    timedelta(seconds=4000, microseconds=500_000),
    timedelta(days=89, microseconds=3),
    timedelta(days=36_500, microseconds=7),  # 17 significant digits: only the shortest round-trip form keeps them
    timedelta(0),
    timedelta(seconds=-7),
]


def python_cells(
    handoff: uuid.UUID,
    session: uuid.UUID,
    tree: uuid.UUID | None,
    priority: str | None,
    claimer: uuid.UUID | None,
    claimed: datetime,
    first: datetime | None,
    human: datetime | None,
    ai: datetime | None,
) -> str:
    """The cells as Python's csv module wrote them from the JSON answer's values (None: an empty cell)."""
    actor = None if first is None else "human" if first == human else "ai" if first == ai else None
    delta = None if first is None else max(0.0, (first - claimed).total_seconds())
    values = [
        handoff,
        session,
        tree,
        priority,
        claimer,
        claimed.astimezone(UTC).isoformat(),
        first.astimezone(UTC).isoformat() if first else None,
        actor,
        delta,
    ]
    return ",".join("" if v is None else str(v) for v in values)


@pytest_asyncio.fixture
async def conn(make_database: Any) -> AsyncIterator[asyncpg.Connection[Any]]:
    url = await new_database(make_database)
    await asyncio.to_thread(migrate.upgrade, "analytics", url)
    connection = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
    # The cells must not depend on the writer's settings: a zone far from UTC, another date style, fewer float digits.
    await connection.execute("SET TimeZone = 'Pacific/Chatham'; SET DateStyle = 'SQL, DMY'; SET extra_float_digits = 0")
    try:
        yield connection
    finally:
        await connection.close()


async def stored(conn: asyncpg.Connection[Any], handoff: uuid.UUID) -> str | None:
    return await conn.fetchval("SELECT csv_cells FROM handoffs WHERE handoff_id = $1", handoff)


async def test_each_cell_is_the_text_python_writes(conn: asyncpg.Connection[Any]) -> None:
    account = uuid.uuid4()
    cases = []
    for i, claimed in enumerate(INSTANTS):
        for j, offset in enumerate([None, *OFFSETS]):
            first = None if offset is None else claimed + offset
            human, ai = (first, None) if j % 2 else (None, first)
            if j == 3:
                human = ai = first  # a human and an ai step at the same instant: human
            tree = uuid.uuid4() if i % 2 else None
            claimer = uuid.uuid4() if j % 3 else None
            priority = ["low", "normal", "high", "urgent", None][(i + j) % 5]
            cases.append((uuid.uuid4(), uuid.uuid4(), tree, priority, claimer, claimed, first, human, ai))
    await conn.executemany(
        "INSERT INTO handoffs (handoff_id, session_id, tree_id, priority, claimed_by, claimed_at, first_action_at,"
        " first_human_at, first_ai_at, account_id, claim_version) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 2)",
        [(*case, account) for case in cases],
    )
    for case in cases:
        assert await stored(conn, case[0]) == python_cells(*case), case


_ROW = "handoff_id, session_id, tree_id, priority, claimed_by, claimed_at, first_action_at, first_human_at, first_ai_at"


async def expected(conn: asyncpg.Connection[Any], handoff: uuid.UUID) -> str:
    row = await conn.fetchrow(f"SELECT {_ROW} FROM handoffs WHERE handoff_id = $1", handoff)
    assert row is not None
    return python_cells(*row.values())


async def test_the_cells_follow_each_column_they_are_made_of(conn: asyncpg.Connection[Any]) -> None:
    handoff, account = uuid.uuid4(), uuid.uuid4()
    claimed = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
    await conn.execute(
        "INSERT INTO handoffs (handoff_id, account_id, session_id, priority) VALUES ($1, $2, $3, 'high')",
        handoff,
        account,
        uuid.uuid4(),
    )
    assert await stored(conn, handoff) is None  # requested, not claimed
    await conn.execute("UPDATE handoffs SET claim_version = 2, claimed_at = $2 WHERE handoff_id = $1", handoff, claimed)
    assert await stored(conn, handoff) == await expected(conn, handoff)
    first = claimed + timedelta(seconds=90, microseconds=5)
    # Each statement sets one column the cells are made of, as the ingest's statements may.
    for column, value in [
        ("first_action_at", first),
        ("first_ai_at", first),
        ("first_human_at", first),
        ("tree_id", uuid.uuid4()),
        ("priority", "urgent"),
        ("claimed_by", uuid.uuid4()),
        ("session_id", uuid.uuid4()),
        ("claimed_at", claimed - timedelta(minutes=1, microseconds=1)),
        ("first_action_at", first + timedelta(hours=2)),
    ]:
        before = await stored(conn, handoff)
        await conn.execute(f"UPDATE handoffs SET {column} = $2 WHERE handoff_id = $1", handoff, value)
        assert await stored(conn, handoff) == await expected(conn, handoff) != before, column
    # What the business-seconds recompute sets changes no cell and does not format them again.
    cells = await stored(conn, handoff)
    await conn.execute(
        "UPDATE handoffs SET business_version = 3, business_delta_s = 1.5, csv_cells = 'untouched'"
        " WHERE handoff_id = $1",
        handoff,
    )
    assert await stored(conn, handoff) == "untouched" != cells
    await conn.execute("UPDATE handoffs SET claim_version = 4 WHERE handoff_id = $1", handoff)
    assert await stored(conn, handoff) == cells == await expected(conn, handoff)
    await conn.execute("UPDATE handoffs SET release_version = 5 WHERE handoff_id = $1", handoff)
    assert await stored(conn, handoff) is None  # released: not counted, no cells
    await conn.execute("UPDATE handoffs SET claim_version = 6 WHERE handoff_id = $1", handoff)
    assert await stored(conn, handoff) == cells  # claimed again


async def test_the_migration_fills_in_the_handoffs_already_stored(make_database: Any) -> None:
    url = await new_database(make_database)
    await asyncio.to_thread(migrate.upgrade, "analytics", url, "0008")
    account, at = uuid.uuid4(), datetime(2026, 11, 2, 8, 30, 15, 120_000, tzinfo=UTC)
    claimed, released, requested = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    connection = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        await connection.executemany(
            "INSERT INTO handoffs (handoff_id, account_id, session_id, claim_version, release_version, claimed_at,"
            " first_action_at, first_human_at, priority) VALUES ($1, $2, $3, $4, $5, $6, $7, $7, 'low')",
            [
                (claimed, account, uuid.uuid4(), 2, None, at, at + timedelta(seconds=42)),
                (released, account, uuid.uuid4(), 2, 3, at, None),
                (requested, account, uuid.uuid4(), None, None, None, None),
            ],
        )
        await asyncio.to_thread(migrate.upgrade, "analytics", url)
        assert await stored(connection, claimed) == await expected(connection, claimed)
        assert await stored(connection, released) is None
        assert await stored(connection, requested) is None
    finally:
        await connection.close()
