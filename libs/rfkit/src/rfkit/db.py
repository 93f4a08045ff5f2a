"""Database engine and the unit of work: one transaction that holds a state change and its events."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, Literal, TypeVar, overload

import asyncpg
import sqlalchemy as sa
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from rf_contracts import Event
from rfkit.tables import outbox


def make_engine(url: str, pool_size: int = 10) -> AsyncEngine:
    return create_async_engine(url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True)


class UnitOfWork:
    """One database transaction: the service's repositories over it, and the events its handler raised.

    A service subclasses it to expose its repositories (`uow.handoffs`, `uow.trees`...), built in `__init__` over
    `session`; handlers use those and never the session. Events given to `collect` are written to the outbox just
    before the transaction commits, so they reach Kafka if and only if the state change does.
    """

    def __init__(self, session: AsyncSession, topic_prefix: str) -> None:
        self.session = session
        self._topic_prefix = topic_prefix
        self.events: list[Event] = []
        self._written = 0

    def collect(self, *events: Event) -> None:
        """Raise events: they are published if and only if this unit of work commits."""
        self.events.extend(events)

    async def publish(self, *events: Event) -> None:
        """Collect events and write them to the outbox now (within the transaction), e.g. before a savepoint."""
        self.collect(*events)
        await self.flush_events()

    async def flush_events(self) -> None:
        """Write the events collected since the last flush to the outbox, in this transaction."""
        pending = self.events[self._written :]
        if not pending:
            return
        await self.session.execute(
            insert(outbox),
            [
                {
                    "event_id": e.event_id,
                    "topic": f"{self._topic_prefix}{e.TOPIC}",
                    "key": str(e.session_id),
                    "payload": e.to_json(),
                    "headers": e.headers(),
                }
                for e in pending
            ],
        )
        self._written = len(self.events)


U = TypeVar("U", bound=UnitOfWork)


class Database:
    """The service's engine and session factory; `on_publish` wakes the outbox relay after a commit."""

    def __init__(self, url: str, *, pool_size: int = 10, topic_prefix: str = "") -> None:
        self.engine = make_engine(url, pool_size)
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False)
        self.topic_prefix = topic_prefix
        self.on_publish: Callable[[], None] | None = None
        self._pool_size = pool_size
        self._statements: asyncpg.Pool[Any] | None = None
        self._statements_lock = asyncio.Lock()

    @overload
    def unit_of_work(self) -> AbstractAsyncContextManager[UnitOfWork]: ...
    @overload
    def unit_of_work(self, kind: type[U]) -> AbstractAsyncContextManager[U]: ...

    def unit_of_work(self, kind: type[UnitOfWork] = UnitOfWork) -> AbstractAsyncContextManager[UnitOfWork]:
        """A transaction as a unit of work of the given kind (the service's subclass); commits on a clean exit."""
        return self._unit_of_work(kind)

    @asynccontextmanager
    async def _unit_of_work(self, kind: type[UnitOfWork]) -> AsyncIterator[UnitOfWork]:
        async with self.sessions() as session, session.begin():
            uow = kind(session, self.topic_prefix)
            yield uow
            await uow.flush_events()
        if uow.events and self.on_publish is not None:
            self.on_publish()

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncSession]:
        """A session for queries only."""
        async with self.sessions() as session:
            yield session

    async def fetchrow(self, query: str, *args: Any) -> asyncpg.Record | None:
        """One read-only statement (asyncpg text, `$1` parameters) outside a transaction block: its first row.

        For hot reads (the escalation metric). A single statement is its own consistent snapshot, so there is no
        BEGIN/ROLLBACK; it runs on a pool of plain asyncpg connections, without SQLAlchemy's per-checkout liveness
        ping or asyncpg's session reset on release (nothing here changes session state), and asyncpg prepares
        each text once per connection. A pooled connection PostgreSQL closed before the pool noticed (a restart,
        an idle timeout) fails the statement; it is sent once more, on a fresh connection. Use `read()` for
        several statements that must agree, and for anything that writes.
        """
        pool = self._statements or await self._statement_pool()
        try:
            async with pool.acquire() as connection:
                return await connection.fetchrow(query, *args)
        except _LOST:
            # One re-send, on a connection the pool opens anew; written out rather than through tenacity because a
            # retry controller built for every call cost ~37 µs, a few percent of this hot read, to handle a rare case.
            async with pool.acquire() as connection:
                return await connection.fetchrow(query, *args)

    async def stream(self, query: str, *args: Any, prefetch: int = 1000) -> AsyncIterator[asyncpg.Record]:
        """The rows of one read-only statement (asyncpg text) from a server-side cursor, `prefetch` rows a round trip,
        while the caller consumes them (a download of every row without holding them all): a read-only transaction
        on a connection of the `fetchrow` pool, held until the last row is read or the caller stops."""
        pool = self._statements or await self._statement_pool()
        async with pool.acquire() as connection, connection.transaction(readonly=True):
            async for record in connection.cursor(query, *args, prefetch=prefetch):
                yield record

    async def copy_out(
        self, query: str, *args: Any, format: Literal["csv", "text"] = "csv", buffered_chunks: int = 4
    ) -> AsyncIterator[bytes]:
        """One read-only statement's rows as PostgreSQL itself writes them (`COPY (query) TO STDOUT`): `csv`, a
        header row then its quoting and its text form of each value, NULL an empty cell; `text`, its text format (no
        header, tab-separated, backslash escapes, NULL as `\\N`). Yielded in the chunks they arrive in while the caller
        consumes them, on a connection of the `fetchrow` pool held until the end (closed instead when the caller
        stops early). At most `buffered_chunks` wait for the caller: asyncpg reads no further until one is taken, so
        memory stays bounded whatever the row count. COPY takes no parameters: asyncpg inlines `args` as quoted
        literals."""
        pool = self._statements or await self._statement_pool()
        chunks: asyncio.Queue[bytes | None] = asyncio.Queue(maxsize=buffered_chunks)
        async with pool.acquire() as connection:

            async def sink(data: bytearray) -> None:
                await chunks.put(bytes(data))  # asyncpg hands over a bytearray; callers get immutable bytes

            async def copy() -> None:
                try:
                    await connection.copy_from_query(query, *args, output=sink, format=format, header=format == "csv")
                except Exception:
                    await chunks.put(None)  # the end, then the error from `await copying` (not when cancelled)
                    raise
                await chunks.put(None)

            copying = asyncio.create_task(copy())
            try:
                while (chunk := await chunks.get()) is not None:
                    yield chunk
                await copying  # its error, if it ended in one
            finally:
                if not copying.done():
                    # The caller stopped early (a client gone). asyncpg cannot take a connection back in the middle
                    # of a COPY (it stays paused in it): stop the COPY, close the connection (its backend ends the
                    # statement), and the pool opens a fresh one for the next caller.
                    copying.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await copying
                    connection.terminate()
                elif not copying.cancelled():
                    copying.exception()  # seen: a COPY that failed after its caller stopped is no one's error

    async def _statement_pool(self) -> asyncpg.Pool[Any]:
        async with self._statements_lock:
            if self._statements is None:
                url = self.engine.url.set(drivername="postgresql")
                self._statements = await asyncpg.create_pool(
                    url.render_as_string(hide_password=False),
                    min_size=1,
                    max_size=self._pool_size,
                    reset=_keep_session,
                )
            return self._statements

    async def dispose(self) -> None:
        if self._statements is not None:
            await self._statements.close()
            self._statements = None
        await self.engine.dispose()


async def page_of(
    session: AsyncSession,
    table: sa.Table,
    conditions: Sequence[sa.ColumnElement[bool]],
    *,
    order_by: Sequence[sa.ColumnElement[Any]],
    limit: int | None,
    offset: int,
    columns: Sequence[Any] = (),
) -> tuple[Sequence[sa.Row[Any]], int]:
    """One page of the rows of `table` that meet every condition (all from `offset` without `limit`), and how many
    meet them in all: the shape of every listing the API pages with limit/offset.

    `columns` selects these instead of the whole row (for extra computed columns, add the table itself).
    """
    total = await session.scalar(sa.select(sa.func.count()).select_from(table).where(*conditions))
    query = sa.select(*(columns or (table,))).where(*conditions).order_by(*order_by).offset(offset)
    if limit is not None:
        query = query.limit(limit)
    return (await session.execute(query)).all(), int(total or 0)


# What a connection lost under a statement raises: closed by the server (class 08, or the FATAL of a terminated
# backend), by the socket, or found closed by the client.
_LOST = (
    asyncpg.PostgresConnectionError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.InterfaceError,
    OSError,
)


async def _keep_session(connection: asyncpg.Connection[Any]) -> None:
    """Statement connections carry no session state to reset: skip asyncpg's reset round trip on release."""
