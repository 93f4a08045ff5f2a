"""Database engine and the unit of work: one transaction that holds a state change and its events."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from rf_contracts import Event
from rfkit.tables import outbox


def make_engine(url: str, pool_size: int = 10) -> AsyncEngine:
    return create_async_engine(url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True)


class UnitOfWork:
    """A database transaction; events published through it are written to the outbox in the same transaction."""

    def __init__(self, session: AsyncSession, topic_prefix: str) -> None:
        self.session = session
        self._topic_prefix = topic_prefix
        self.published: list[Event] = []

    async def publish(self, *events: Event) -> None:
        """Stage events: they reach Kafka if and only if this transaction commits."""
        if not events:
            return
        await self.session.execute(
            insert(outbox),
            [
                {
                    "event_id": e.event_id,
                    "topic": f"{self._topic_prefix}{e.TOPIC}",
                    "key": str(e.session_id),
                    "payload": e.to_json(),
                    "headers": {"event_type": e.EVENT_TYPE, "event_id": str(e.event_id)},
                }
                for e in events
            ],
        )
        self.published.extend(events)


class Database:
    """The service's engine and session factory; `on_publish` wakes the outbox relay after a commit."""

    def __init__(self, url: str, *, pool_size: int = 10, topic_prefix: str = "") -> None:
        self.engine = make_engine(url, pool_size)
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False)
        self._autocommit = self.engine.execution_options(isolation_level="AUTOCOMMIT")
        self.topic_prefix = topic_prefix
        self.on_publish: Callable[[], None] | None = None

    @asynccontextmanager
    async def unit_of_work(self) -> AsyncIterator[UnitOfWork]:
        async with self.sessions() as session, session.begin():
            uow = UnitOfWork(session, self.topic_prefix)
            yield uow
        if uow.published and self.on_publish is not None:
            self.on_publish()

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncSession]:
        """A session for queries only."""
        async with self.sessions() as session:
            yield session

    @asynccontextmanager
    async def statement(self) -> AsyncIterator[AsyncConnection]:
        """A connection for one read-only statement, outside a transaction block.

        A single statement is its own consistent snapshot; skipping BEGIN and ROLLBACK saves two round trips
        on hot reads (the escalation metric). Use `read()` for several statements that must agree.
        """
        async with self._autocommit.connect() as connection:
            yield connection

    async def dispose(self) -> None:
        await self.engine.dispose()
