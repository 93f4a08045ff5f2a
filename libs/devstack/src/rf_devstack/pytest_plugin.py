"""Pytest fixtures giving tests a real Kafka and PostgreSQL (infra, kafka_bootstrap, pg_server_url, make_database).

Loaded by the repository's root conftest.py. The infrastructure comes from obtain_infra: RF_KAFKA_BOOTSTRAP /
RF_DATABASE_URL, else Docker, else local processes in .run/test (Kafka 127.0.0.1:19092, PostgreSQL
127.0.0.1:15432 without fsync), shared by concurrent sessions. RF_TEST_KEEP_INFRA=1 leaves the local
processes running for the next session (a warm start then costs nothing).
"""

from __future__ import annotations

import contextlib
import os
import re
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from rf_devstack._paths import run_dir
from rf_devstack._util import file_lock, pid_alive, run_sync
from rf_devstack.infra import Infra, obtain_infra
from rf_devstack.kafka import LocalKafka
from rf_devstack.postgres import LocalPostgres, drop_database, ensure_databases, url_with_database
from rf_devstack.prereqs import MissingPrerequisiteError

TEST_KAFKA_PORT = 19092
TEST_CONTROLLER_PORT = 19093
TEST_PG_PORT = 15432

DatabaseFactory = Callable[..., str]


@pytest.fixture(scope="session")
def infra() -> Iterator[Infra]:
    """Kafka and PostgreSQL for the whole session, started when needed.

    Concurrent sessions (several pytest runs, xdist workers) share the local processes: each holds a lease
    (a file named after its pid) and the last one to finish stops them.
    """
    base = run_dir("test")
    lease = base / "sessions" / str(os.getpid())
    lease.parent.mkdir(parents=True, exist_ok=True)
    with file_lock(base / ".sessions.lock"):
        lease.touch()
        try:
            obtained = obtain_infra(
                base,
                TEST_KAFKA_PORT,
                TEST_CONTROLLER_PORT,
                TEST_PG_PORT,
                fsync=False,
                fresh_kafka=True,
                random_docker_ports=True,
            )
        except BaseException as exc:
            lease.unlink(missing_ok=True)
            if isinstance(exc, MissingPrerequisiteError):
                pytest.fail(str(exc), pytrace=False)
            raise
    yield obtained
    with file_lock(base / ".sessions.lock"):
        lease.unlink(missing_ok=True)
        _release(base, obtained)


def _release(base: Path, obtained: Infra) -> None:
    if "docker" in (obtained.kafka_source, obtained.postgres_source):
        obtained.stop()  # This session's own containers; nothing is shared.
        return
    others = [entry for entry in (base / "sessions").iterdir() if entry.name.isdigit()]
    live = [entry for entry in others if pid_alive(int(entry.name))]
    for stale in set(others) - set(live):
        stale.unlink(missing_ok=True)
    if live or os.environ.get("RF_TEST_KEEP_INFRA") == "1":
        return
    obtained.stop()
    # The last session also stops what an earlier, already finished session started.
    if obtained.kafka_source == "local":
        LocalKafka(base / "kafka", TEST_KAFKA_PORT, TEST_CONTROLLER_PORT).stop()
    if obtained.postgres_source == "local":
        LocalPostgres(base / "postgres", TEST_PG_PORT).stop()


@pytest.fixture(scope="session")
def kafka_bootstrap(infra: Infra) -> str:
    return infra.kafka_bootstrap


@pytest.fixture(scope="session")
def pg_server_url(infra: Infra) -> str:
    """The admin URL (database `postgres`) of the test server, `postgresql+asyncpg://...`."""
    return infra.database_url


@contextlib.contextmanager
def _database_factory(admin_url: str) -> Iterator[DatabaseFactory]:
    created: list[str] = []

    def make(prefix: str = "t") -> str:
        clean = re.sub(r"[^a-z0-9_]", "_", prefix.lower()).strip("_")[:40] or "t"
        name = f"{clean}_{uuid.uuid4().hex[:12]}"
        if not name[0].isalpha():
            name = f"t_{name}"
        run_sync(lambda: ensure_databases(admin_url, [name]))
        created.append(name)
        return url_with_database(admin_url, name)

    yield make
    for name in created:
        # Keeps the long-lived test server small; a database still in use is dropped all the same (FORCE).
        with contextlib.suppress(Exception):
            _drop(admin_url, name)


def _drop(admin_url: str, name: str) -> None:
    run_sync(lambda: drop_database(admin_url, name))


@pytest.fixture
def make_database(pg_server_url: str) -> Iterator[DatabaseFactory]:
    """`make_database(prefix="t") -> url`: a new, empty, uniquely named database, dropped after the test.

    Synchronous, so it can be called from sync and async tests alike.
    """
    with _database_factory(pg_server_url) as make:
        yield make


@pytest.fixture(scope="session")
def make_session_database(pg_server_url: str) -> Iterator[DatabaseFactory]:
    """Like make_database, for session-scoped fixtures; the databases are dropped at the end of the session."""
    with _database_factory(pg_server_url) as make:
        yield make
