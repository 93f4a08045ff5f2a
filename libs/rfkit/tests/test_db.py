"""The kit's database handle against a real PostgreSQL: hot single statements on their own asyncpg pool."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest
import pytest_asyncio
import sqlalchemy as sa

from rf_testsupport import new_database
from rfkit.db import Database


@pytest_asyncio.fixture
async def db(make_database) -> AsyncIterator[Database]:
    """A handle on a fresh database with a one-connection pool, disposed after the test."""
    handle = Database(await new_database(make_database), pool_size=1)
    try:
        yield handle
    finally:
        await handle.dispose()


async def test_a_statement_sees_committed_writes_and_leaves_no_transaction_open(db: Database) -> None:
    async with db.unit_of_work() as uow:
        await uow.session.execute(sa.text("CREATE TABLE t (n int)"))
        await uow.session.execute(sa.text("INSERT INTO t VALUES (1), (2)"))
    row = await db.fetchrow("SELECT sum(n) AS total FROM t WHERE n >= $1", 1)
    assert row is not None and row["total"] == 3
    # A transaction left open by the statement would still hold its lock on t.
    async with db.unit_of_work() as uow:
        await uow.session.execute(sa.text("LOCK TABLE t IN ACCESS EXCLUSIVE MODE NOWAIT"))
    assert await db.fetchrow("SELECT n FROM t WHERE n > $1", 5) is None


async def test_concurrent_statements_share_one_pool_bounded_by_the_pool_size(make_database) -> None:
    db = Database(await new_database(make_database), pool_size=2)
    try:
        rows = await asyncio.gather(
            *(db.fetchrow("SELECT pg_backend_pid() AS pid FROM pg_sleep(0.05)") for _ in range(6))
        )
        pids = {row["pid"] for row in rows if row is not None}
        assert 1 <= len(pids) <= 2, "six statements at once on a pool of two use at most two connections"
    finally:
        await db.dispose()


async def test_a_statement_survives_its_pooled_connection_being_closed_by_the_server(db: Database) -> None:
    first = await db.fetchrow("SELECT pg_backend_pid() AS pid")
    assert first is not None
    # What a database restart or an idle-session timeout does to the pool's only connection.
    async with db.read() as session:
        await session.execute(sa.text("SELECT pg_terminate_backend(:p, 5000)"), {"p": first["pid"]})
    second = await db.fetchrow("SELECT pg_backend_pid() AS pid")
    assert second is not None and second["pid"] != first["pid"]


async def test_a_statement_whose_connection_is_lost_under_it_is_sent_once_more(db: Database) -> None:
    async with db.unit_of_work() as uow:
        await uow.session.execute(sa.text("CREATE SEQUENCE attempts"))
    # The first attempt ends its own backend mid-statement; the sequence (not transactional) tells attempts apart.
    row = await db.fetchrow(
        "SELECT CASE WHEN nextval('attempts') = 1 THEN pg_terminate_backend(pg_backend_pid())::int ELSE 42 END AS n"
    )
    assert row is not None and row["n"] == 42
    attempts = await db.fetchrow("SELECT last_value FROM attempts")
    assert attempts is not None and attempts["last_value"] == 2


async def test_copy_out_streams_postgresqls_csv_with_a_header_and_inlined_parameters(db: Database) -> None:
    query = (
        "SELECT n, CASE WHEN n = 2 THEN NULL ELSE $1 || n END AS label FROM generate_series(1, $2) AS n ORDER BY n"
    )
    chunks = [chunk async for chunk in db.copy_out(query, 'say "hi", ', 3)]
    assert all(isinstance(chunk, bytes) for chunk in chunks)
    assert b"".join(chunks) == b'n,label\n1,"say ""hi"", 1"\n2,\n3,"say ""hi"", 3"\n'


async def test_copy_out_in_text_format_has_no_header_and_escapes_as_postgresql_does(db: Database) -> None:
    query = "SELECT n, CASE WHEN n = 2 THEN NULL ELSE $1 || n END AS label FROM generate_series(1, 3) AS n ORDER BY n"
    chunks = [chunk async for chunk in db.copy_out(query, "tab\tand \\ ", format="text")]
    assert b"".join(chunks) == b"1\ttab\\tand \\\\ 1\n2\t\\N\n3\ttab\\tand \\\\ 3\n"


async def test_copy_out_stopped_early_gives_its_connection_back_usable(db: Database) -> None:
    # Far more than the few chunks it buffers: the COPY is still running when the reader stops.
    rows = db.copy_out("SELECT n, repeat('x', 200) FROM generate_series(1, 200000) AS n")
    first = await anext(rows)
    assert first.startswith(b"n,repeat\n")
    await rows.aclose()
    # The pool's only connection: the cancelled COPY left it ready for the next statement.
    row = await asyncio.wait_for(db.fetchrow("SELECT 41 + $1 AS answer", 1), timeout=30)
    assert row is not None and row["answer"] == 42


async def test_copy_out_raises_the_statements_error(db: Database) -> None:
    with pytest.raises(asyncpg.PostgresError):
        async for _ in db.copy_out("SELECT 1 / (n - 3) FROM generate_series(1, 5) AS n"):
            pass
    row = await db.fetchrow("SELECT 1 AS one")
    assert row is not None and row["one"] == 1
