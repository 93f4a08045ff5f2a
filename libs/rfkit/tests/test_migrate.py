"""`python -m rfkit.migrate`: a database not reachable yet is waited for; a migration that fails is not repeated."""

from __future__ import annotations

import asyncio
import socket

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import create_async_engine

from rfkit import migrate


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def upgrade_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The URLs `migrate.upgrade` is called with, in order (each call still runs the real upgrade)."""
    calls: list[str] = []
    real_upgrade = migrate.upgrade

    def counted(service: str, url: str, revision: str = "head") -> None:
        calls.append(url)
        real_upgrade(service, url, revision)

    monkeypatch.setattr(migrate, "upgrade", counted)
    return calls


def test_an_unreachable_database_is_tried_until_the_wait_ends(upgrade_calls: list[str]) -> None:
    url = f"postgresql+asyncpg://postgres@127.0.0.1:{_closed_port()}/postgres"
    with pytest.raises(Exception) as raised:
        migrate.upgrade_when_reachable("sessions", url, wait_s=1.5)
    assert migrate.unreachable(raised.value), "the last error is the refused connection itself"
    assert len(upgrade_calls) >= 2, "a refused connection is tried again"


def test_a_database_reachable_after_a_few_failures_is_migrated(
    monkeypatch: pytest.MonkeyPatch, make_database
) -> None:
    url = make_database()
    failures = [socket.gaierror(-2, "Name or service not known"), ConnectionRefusedError(111, "refused")]
    real_upgrade = migrate.upgrade

    def flaky(service: str, url: str, revision: str = "head") -> None:
        if failures:
            raise failures.pop(0)
        real_upgrade(service, url, revision)

    monkeypatch.setattr(migrate, "upgrade", flaky)
    migrate.upgrade_when_reachable("sessions", url, wait_s=30)
    assert not failures
    assert asyncio.run(_version(url)) == migrate.head_revision("sessions")


async def _version(url: str) -> str | None:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            return (await conn.execute(text("SELECT version_num FROM alembic_version"))).scalar_one()
    finally:
        await engine.dispose()


def test_a_failure_that_is_not_about_reaching_the_database_is_not_repeated(
    upgrade_calls: list[str], make_database
) -> None:
    missing = make_database().rsplit("/", 1)[0] + "/no_such_database_here"
    with pytest.raises(DBAPIError):
        migrate.upgrade_when_reachable("sessions", missing, wait_s=30)
    assert len(upgrade_calls) == 1
