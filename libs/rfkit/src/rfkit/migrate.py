"""Runs a service's alembic migrations: `python -m rfkit.migrate <service>` or from the service's lifespan."""

from __future__ import annotations

import asyncio
import importlib
import sys
from pathlib import Path
from typing import Any

from alembic import command, context
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import pool, text
from sqlalchemy.ext.asyncio import create_async_engine
from tenacity import Retrying, retry_if_exception, stop_after_delay, wait_exponential

# One lock id for every service: migrations of replicas starting together run one after another.
_LOCK_ID = 0x52460001


def migrations_dir(service: str) -> Path:
    """services/<service>/migrations, found from the installed package."""
    module = importlib.import_module(service)
    pkg = Path(module.__file__ or "").resolve().parent  # services/<s>/src/<s>
    for candidate in (pkg / "migrations", pkg.parent.parent / "migrations"):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"no migrations directory for service {service!r}")


def alembic_config(service: str, url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(migrations_dir(service)))
    cfg.set_main_option("sqlalchemy.url", url)
    return cfg


def upgrade(service: str, url: str, revision: str = "head") -> None:
    """Blocking: bring the service's database to `revision` (run it in a thread from async code)."""
    command.upgrade(alembic_config(service, url), revision)


def unreachable(exc: BaseException) -> bool:
    """Whether `exc` says the database could not be reached (name, refused, reset), as opposed to a failed migration."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, OSError):  # socket.gaierror, ConnectionRefusedError, ConnectionResetError, ...
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def upgrade_when_reachable(service: str, url: str, wait_s: float = 60.0) -> None:
    """`upgrade`, tried again while the database cannot be reached, for up to `wait_s` seconds.

    A one-shot migration job starts with its database: the name may not resolve yet, or stop resolving for a moment
    (a container network's DNS while other containers start), or the server may still refuse. A migration that
    fails for any other reason is not repeated.
    """
    for attempt in Retrying(
        stop=stop_after_delay(wait_s),
        wait=wait_exponential(min=0.5, max=5),
        retry=retry_if_exception(unreachable),
        reraise=True,
    ):
        with attempt:
            upgrade(service, url)


def head_revision(service: str) -> str | None:
    return ScriptDirectory.from_config(alembic_config(service, "postgresql://unused")).get_current_head()


def run_env(target_metadata: Any = None) -> None:
    """The body of every service's migrations/env.py: online migrations over asyncpg, under a lock."""
    url = context.config.get_main_option("sqlalchemy.url")
    assert url, "sqlalchemy.url is not set"

    def do_run(connection: Any) -> None:
        context.configure(connection=connection, target_metadata=target_metadata)
        with context.begin_transaction():
            # Held until commit: replicas starting together migrate one after another.
            connection.execute(text(f"SELECT pg_advisory_xact_lock({_LOCK_ID})"))
            context.run_migrations()

    async def run() -> None:
        engine = create_async_engine(url, poolclass=pool.NullPool)
        async with engine.connect() as conn:
            await conn.run_sync(do_run)
        await engine.dispose()

    asyncio.run(run())


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python -m rfkit.migrate <service>  (reads RF_DATABASE_URL)", file=sys.stderr)
        return 2
    from rfkit.settings import ServiceSettings

    upgrade_when_reachable(argv[1], ServiceSettings().database_url)
    print(f"{argv[1]}: migrated to {head_revision(argv[1])}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
