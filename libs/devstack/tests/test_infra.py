"""The test infrastructure works end to end, and the local runners behave (idempotent start, clear errors)."""

from __future__ import annotations

import asyncio
import socket
import uuid
from pathlib import Path

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from rf_devstack import cli
from rf_devstack._util import self_connected, tcp_open
from rf_devstack.infra import Infra, obtain_infra
from rf_devstack.kafka import LocalKafka, kafka_answers, new_cluster_id
from rf_devstack.keys import ensure_jwt_keypair
from rf_devstack.postgres import asyncpg_dsn, drop_database, ensure_databases, sqlalchemy_url, url_with_database
from rf_devstack.prereqs import MissingPrerequisiteError, check_prerequisites
from rf_devstack.stack import service_env, service_specs
from rf_testsupport import free_port


async def test_kafka_accepts_a_produce_consume_round_trip(kafka_bootstrap: str) -> None:
    topic = f"devstack-test-{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=6, replication_factor=1)])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(topic, b"hello", key=b"k1")
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=kafka_bootstrap,
        group_id=f"g-{topic}",
        auto_offset_reset="earliest",
        # The group leader may assign before its metadata lists a just-created topic; it then rejoins only at
        # the next metadata refresh, 5 minutes by default.
        metadata_max_age_ms=1000,
    )
    await consumer.start()
    try:
        record = await asyncio.wait_for(consumer.getone(), timeout=60)
    finally:
        await consumer.stop()
    assert (record.key, record.value) == (b"k1", b"hello")


async def test_postgres_answers_on_a_database_from_make_database(make_database) -> None:
    url = make_database("devstack")
    assert url.startswith("postgresql+asyncpg://") and "/devstack_" in url
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        assert await conn.fetchval("select 1") == 1
        assert await conn.fetchval("select current_database()") == url.rsplit("/", 1)[1]
    finally:
        await conn.close()


def test_make_database_gives_distinct_databases(make_database) -> None:
    assert make_database() != make_database()


async def test_ensure_databases_is_idempotent(pg_server_url: str) -> None:
    name = f"devstack_{uuid.uuid4().hex[:8]}"
    try:
        await ensure_databases(pg_server_url, [name])
        await ensure_databases(pg_server_url, [name])
        conn = await asyncpg.connect(asyncpg_dsn(url_with_database(pg_server_url, name)))
        await conn.close()
    finally:
        await drop_database(pg_server_url, name)


def test_database_url_for_keeps_the_server(infra: Infra) -> None:
    assert infra.database_url.endswith("/postgres")
    assert infra.database_url_for("rf_x") == infra.database_url.rsplit("/", 1)[0] + "/rf_x"


def test_starting_a_running_local_kafka_is_a_no_op(tmp_path: Path) -> None:
    # A broker of this test's own, so that it runs whichever way the session's infrastructure came.
    kafka = LocalKafka(tmp_path / "kafka", free_port(), free_port(), fresh=True)
    kafka.start()
    try:
        pid = kafka.pid()
        assert pid is not None and kafka.is_running()
        kafka.start()
        kafka.start()
        assert kafka.pid() == pid, "a second start must not launch another broker"
    finally:
        kafka.stop()
    assert not kafka.is_running()


def test_kafka_probe_is_false_where_nothing_listens() -> None:
    assert not kafka_answers("127.0.0.1", 1, timeout=0.2)


def test_a_probe_connected_to_itself_is_told_from_a_listener() -> None:
    # What a readiness probe meets when its ephemeral source port equals the free port it probes: TCP's
    # simultaneous open connects the socket to itself, with nobody listening.
    port = free_port()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", port))
        probe.connect(("127.0.0.1", port))
        assert self_connected(probe)
    with socket.create_server(("127.0.0.1", 0)) as server, socket.create_connection(server.getsockname()) as client:
        assert not self_connected(client)
        assert tcp_open(*server.getsockname())


def test_cluster_ids_look_like_kafka_ones() -> None:
    ids = {new_cluster_id() for _ in range(50)}
    assert len(ids) == 50
    assert all(len(i) == 22 and not i.startswith("-") for i in ids)


def test_missing_java_and_maven_are_named_with_how_to_install(tmp_path: Path) -> None:
    with pytest.raises(MissingPrerequisiteError) as caught:
        check_prerequisites(need_maven=True, env={"PATH": str(tmp_path)})
    message = str(caught.value)
    assert "Java (`java`) was not found" in message and "openjdk-17" in message
    assert "Maven (`mvn`) was not found" in message and "apt-get install -y maven" in message
    assert "RF_KAFKA_BOOTSTRAP" in message


def _fake_tool(directory: Path, name: str, stderr: str = "") -> None:
    tool = directory / name
    tool.write_text(f"#!/bin/sh\necho '{stderr}' >&2\n")
    tool.chmod(0o755)


def test_too_old_java_is_named(tmp_path: Path) -> None:
    _fake_tool(tmp_path, "java", 'openjdk version "11.0.22" 2024-01-16')
    with pytest.raises(MissingPrerequisiteError, match=r"Java 11 at .* is too old, Kafka 4 needs Java 17\+"):
        check_prerequisites(need_maven=False, env={"PATH": str(tmp_path)})


def test_java_17_without_maven_is_enough_once_jars_are_resolved(tmp_path: Path) -> None:
    _fake_tool(tmp_path, "java", 'openjdk version "17.0.15" 2025-04-15')
    assert check_prerequisites(need_maven=False, env={"PATH": str(tmp_path)}) == str(tmp_path / "java")
    with pytest.raises(MissingPrerequisiteError, match="Maven"):
        check_prerequisites(need_maven=True, env={"PATH": str(tmp_path)})


def test_java_home_wins_over_path(tmp_path: Path) -> None:
    (tmp_path / "jdk" / "bin").mkdir(parents=True)
    _fake_tool(tmp_path / "jdk" / "bin", "java", 'openjdk version "21.0.1"')
    env = {"PATH": "/nonexistent", "JAVA_HOME": str(tmp_path / "jdk")}
    assert check_prerequisites(need_maven=False, env=env) == str(tmp_path / "jdk" / "bin" / "java")


def test_environment_infra_starts_nothing(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("RF_KAFKA_BOOTSTRAP", "kafka.example:9092")
    monkeypatch.setenv("RF_DATABASE_URL", "postgresql://u:p@db.example:5433/app?ssl=require")
    infra = obtain_infra(tmp_path, 1, 2, 3)
    assert (infra.kafka_source, infra.postgres_source, infra.started) == ("env", "env", [])
    assert infra.kafka_bootstrap == "kafka.example:9092"
    assert infra.database_url == "postgresql+asyncpg://u:p@db.example:5433/postgres?ssl=require"
    assert infra.database_url_for("rf_sessions") == "postgresql+asyncpg://u:p@db.example:5433/rf_sessions?ssl=require"
    infra.stop()
    assert list(tmp_path.iterdir()) == []


def test_url_helpers() -> None:
    url = "postgresql+asyncpg://postgres@127.0.0.1:15432/postgres"
    assert asyncpg_dsn(url) == "postgresql://postgres@127.0.0.1:15432/postgres"
    assert url_with_database(url, "rf_gateway") == "postgresql+asyncpg://postgres@127.0.0.1:15432/rf_gateway"
    assert sqlalchemy_url("postgres://a@h/d") == "postgresql+asyncpg://a@h/d"
    assert sqlalchemy_url(url) == url


def test_jwt_keypair_is_generated_once_and_signs(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives.serialization import load_pem_private_key, load_pem_public_key

    private, public = ensure_jwt_keypair(tmp_path / "keys")
    first = private.read_bytes()
    assert ensure_jwt_keypair(tmp_path / "keys") == (private, public)
    assert private.read_bytes() == first
    assert private.stat().st_mode & 0o077 == 0
    key = load_pem_private_key(first, password=None)
    load_pem_public_key(public.read_bytes()).verify(key.sign(b"x"), b"x")  # type: ignore[union-attr,call-arg]


def test_service_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RF_GATEWAY_PORT", "18000")
    specs = service_specs()
    assert [(s.name, s.port) for s in specs] == [
        ("gateway", 18000),
        ("sessions", 8001),
        ("handoffs", 8002),
        ("analytics", 8003),
    ]
    common = {
        "kafka_bootstrap": "127.0.0.1:9092",
        "database_url_for": lambda db: f"postgresql+asyncpg://postgres@127.0.0.1:5432/{db}",
        "private_key": Path("/k/private.pem"),
        "public_key": Path("/k/public.pem"),
        "base": {"PATH": "/bin"},
    }
    gateway = service_env(specs[0], specs, **common)  # type: ignore[arg-type]
    sessions = service_env(specs[1], specs, **common)  # type: ignore[arg-type]
    assert gateway["RF_DATABASE_URL"].endswith("/rf_gateway") and gateway["RF_SERVICE_NAME"] == "gateway"
    assert gateway["RF_JWT_PRIVATE_KEY_FILE"] == "/k/private.pem"
    assert gateway["RF_SESSIONS_URL"] == "http://127.0.0.1:8001"
    assert gateway["RF_ANALYTICS_URL"] == "http://127.0.0.1:8003"
    assert sessions["RF_DATABASE_URL"].endswith("/rf_sessions") and sessions["RF_ENV"] == "local"
    assert "RF_JWT_PRIVATE_KEY_FILE" not in sessions
    # The services follow the gateway's token denials; handoffs calls sessions.
    assert sessions["RF_GATEWAY_URL"] == "http://127.0.0.1:18000"
    handoffs = service_env(specs[2], specs, **common)  # type: ignore[arg-type]
    assert handoffs["RF_SESSIONS_URL"] == "http://127.0.0.1:8001", "escalation checks the session there"
    assert specs[0].command("py")[-7:] == [
        "gateway.main:create_app",
        "--factory",
        "--host",
        "127.0.0.1",
        "--port",
        "18000",
        "--no-proxy-headers",
    ]


def test_status_prints_addresses_and_states(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert cli.cmd_status(cli.Paths(tmp_path)) == 0
    lines = capsys.readouterr().out.splitlines()
    keys = {line.split("=", 1)[0] for line in lines}
    assert {
        "RF_GATEWAY_URL",
        "RF_KAFKA_BOOTSTRAP",
        "RF_DATABASE_URL",
        "kafka",
        "postgres",
        "gateway",
        "sessions",
        "handoffs",
        "analytics",
    } <= keys
    assert "gateway=down" in lines


def test_the_broker_process_may_open_more_files_than_it_was_given() -> None:
    # Run as LocalKafka runs the broker (preexec): a process started with a low soft limit ends up with more.
    import resource
    import subprocess
    import sys

    def low_limit() -> None:
        _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))

    script = (
        "import resource; from rf_devstack.kafka import _more_open_files; "
        "before = resource.getrlimit(resource.RLIMIT_NOFILE)[0]; _more_open_files(); "
        "print(before, resource.getrlimit(resource.RLIMIT_NOFILE)[0])"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], preexec_fn=low_limit, capture_output=True, text=True, check=True
    ).stdout.split()
    before, after = int(out[0]), int(out[1])
    assert before == 256
    assert after > 256
