"""Migration 0008 on real PostgreSQL: the handoffs stored before it get their session's tree, within their account."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import asyncpg

from rf_testsupport import new_database
from rfkit import migrate


def _dsn(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://")


async def test_the_backfill_copies_each_sessions_tree_onto_its_handoffs_of_the_same_account(make_database) -> None:
    url = await new_database(make_database)
    await asyncio.to_thread(migrate.upgrade, "analytics", url, "0006")
    account, other = uuid.uuid4(), uuid.uuid4()
    started, lone = uuid.uuid4(), uuid.uuid4()
    tree = uuid.uuid4()
    at = datetime(2026, 11, 1, tzinfo=UTC)
    # Two handoffs of a started session, one of a session never started, and one of another account that happens
    # to name the same session (ids are the producers' own: the account is part of the key).
    handoffs = {uuid.uuid4(): (account, started), uuid.uuid4(): (account, started), uuid.uuid4(): (account, lone)}
    foreign = uuid.uuid4()
    handoffs[foreign] = (other, started)
    connection = await asyncpg.connect(_dsn(url))
    try:
        await connection.execute(
            "INSERT INTO session_trees (account_id, session_id, tree_id, tree_title, tree_category, started_at)"
            " VALUES ($1, $2, $3, 'Printer', 'hardware', $4)",
            account,
            started,
            tree,
            at,
        )
        await connection.executemany(
            "INSERT INTO handoffs (handoff_id, account_id, session_id, claim_version, claimed_at)"
            " VALUES ($1, $2, $3, 2, $4)",
            [(h, a, s, at) for h, (a, s) in handoffs.items()],
        )
        await asyncio.to_thread(migrate.upgrade, "analytics", url)
        rows = await connection.fetch("SELECT handoff_id, tree_id, tree_category FROM handoffs")
    finally:
        await connection.close()
    got = {r["handoff_id"]: (r["tree_id"], r["tree_category"]) for r in rows}
    want = {h: ((tree, "hardware") if (a, s) == (account, started) else (None, None)) for h, (a, s) in handoffs.items()}
    assert got == want
    assert got[foreign] == (None, None)
