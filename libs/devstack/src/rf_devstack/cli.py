"""`python -m rf_devstack`: runs the local stack (infra-up, infra-down, up, start, stop, status, kafka-jars)."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from rf_devstack._paths import default_pom, run_dir
from rf_devstack._util import atomic_write, run_sync, tcp_open
from rf_devstack.infra import Infra, docker_engine_available, obtain_infra
from rf_devstack.kafka import LocalKafka, cached_classpath, kafka_answers, resolve_classpath
from rf_devstack.keys import ensure_jwt_keypair
from rf_devstack.postgres import LocalPostgres, ensure_databases
from rf_devstack.prereqs import MissingPrerequisiteError, check_prerequisites
from rf_devstack.stack import (
    ServiceFailedError,
    ServiceRunner,
    ServiceSpec,
    readyz,
    service_env,
    service_specs,
)

KAFKA_PORT, CONTROLLER_PORT, PG_PORT = 9092, 9093, 5432


def say(message: str) -> None:
    print(message, flush=True)


class Paths:
    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self.state = run_dir / "stack.json"
        self.keys = run_dir / "keys"

    def kafka(self) -> LocalKafka:
        return LocalKafka(self.run_dir / "kafka", KAFKA_PORT, CONTROLLER_PORT)

    def postgres(self) -> LocalPostgres:
        return LocalPostgres(self.run_dir / "postgres", PG_PORT)

    def read_state(self) -> dict[str, Any]:
        try:
            return dict(json.loads(self.state.read_text()))
        except (OSError, ValueError):
            return {}

    def write_state(self, state: dict[str, Any]) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write(self.state, json.dumps(state, indent=2) + "\n")


def _ensure_topics(bootstrap: str) -> bool:
    """Creates the contract topics with rfkit when it is importable (services also do it on startup)."""
    try:
        from rfkit.settings import KafkaSettings
        from rfkit.topics import ensure_topics
    except ImportError:
        say("topics: rfkit.topics not importable, leaving topic creation to the services")
        return False
    try:
        # TLS and SASL come from the same RF_KAFKA_* variables the services read.
        kafka = KafkaSettings(kafka_bootstrap=bootstrap).kafka()
        result = run_sync(lambda: ensure_topics(kafka))
    except Exception as exc:
        say(f"topics: rfkit.topics.ensure_topics failed ({exc!r}); the services will retry on startup")
        return False
    created = len(result) if isinstance(result, list | tuple | set) else "?"
    say(f"topics: ensured on {bootstrap} ({created} created)")
    return True


def _prepare(infra: Infra, paths: Paths, specs: list[ServiceSpec]) -> tuple[Path, Path]:
    """Databases, topics and JWT keys the services expect; returns the (private, public) key files."""
    run_sync(lambda: ensure_databases(infra.database_url, [spec.database for spec in specs]))
    _ensure_topics(infra.kafka_bootstrap)
    return ensure_jwt_keypair(paths.keys)


def _running_containers(container_ids: dict[str, str]) -> dict[str, str]:
    if not container_ids:
        return {}
    try:
        import docker

        client = docker.from_env(timeout=5)
        return {name: cid for name, cid in container_ids.items() if client.containers.get(cid).status == "running"}
    except Exception:
        return {}


@contextlib.contextmanager
def _environ(overrides: dict[str, str]) -> Iterator[None]:
    saved = {key: os.environ.get(key) for key in overrides}
    os.environ.update(overrides)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _obtain(paths: Paths, *, background: bool) -> Infra:
    """The dev infra; containers an earlier background command left running are reused, not duplicated."""
    recorded = paths.read_state().get("infra", {})
    reused = _running_containers(recorded.get("container_ids", {}))
    overrides = {}
    if "kafka" in reused:
        overrides["RF_KAFKA_BOOTSTRAP"] = recorded["kafka_bootstrap"]
    if "postgres" in reused:
        overrides["RF_DATABASE_URL"] = recorded["database_url"]
    with _environ(overrides):
        infra = obtain_infra(
            paths.run_dir, KAFKA_PORT, CONTROLLER_PORT, PG_PORT, fsync=True, keep_containers=background, log=say
        )
    if "kafka" in reused:
        infra.kafka_source = "docker"
    if "postgres" in reused:
        infra.postgres_source = "docker"
    infra.container_ids.update(reused)
    return infra


def _remember_infra(paths: Paths, infra: Infra) -> None:
    state = paths.read_state()
    state["infra"] = infra.describe()
    paths.write_state(state)


def _stop_infra(paths: Paths) -> None:
    state = paths.read_state()
    container_ids: dict[str, str] = state.get("infra", {}).get("container_ids", {})
    if container_ids:
        import docker

        client = docker.from_env()
        for name, container_id in container_ids.items():
            with contextlib.suppress(Exception):
                client.containers.get(container_id).remove(force=True, v=True)
                say(f"{name}: container {container_id[:12]} removed")
    for component in (paths.kafka(), paths.postgres()):
        name = "kafka" if isinstance(component, LocalKafka) else "postgres"
        if component.pid() is not None:
            component.stop()
            say(f"{name}: stopped")
    state.pop("infra", None)
    if state:
        paths.write_state(state)
    else:
        paths.state.unlink(missing_ok=True)


def _launch_services(
    runner: ServiceRunner, infra: Infra, specs: list[ServiceSpec], keys: tuple[Path, Path], *, echo: bool
) -> None:
    for spec in specs:
        env = service_env(
            spec,
            specs,
            kafka_bootstrap=infra.kafka_bootstrap,
            database_url_for=infra.database_url_for,
            private_key=keys[0],
            public_key=keys[1],
        )
        pid = runner.launch(spec, env, echo=sys.stdout if echo else None)
        say(f"{spec.name}: starting pid={pid} on {spec.url} (log {runner.log_path(spec)})")


def cmd_infra_up(paths: Paths) -> int:
    infra = _obtain(paths, background=True)
    _remember_infra(paths, infra)
    _prepare(infra, paths, service_specs())
    return cmd_status(paths)


def cmd_infra_down(paths: Paths) -> int:
    _stop_infra(paths)
    return 0


def cmd_start(paths: Paths) -> int:
    specs = service_specs()
    infra = _obtain(paths, background=True)
    _remember_infra(paths, infra)
    keys = _prepare(infra, paths, specs)
    runner = ServiceRunner(paths.run_dir, specs)
    to_start = [spec for spec in specs if runner.pid(spec) is None]
    for spec in specs:
        if spec not in to_start:
            say(f"{spec.name}: already running pid={runner.pid(spec)}")
    began = time.monotonic()
    try:
        _launch_services(runner, infra, to_start, keys, echo=False)
        runner.wait_ready(specs)
    except (ServiceFailedError, RuntimeError):
        runner.stop(to_start)
        say("services stopped; Kafka and PostgreSQL keep running (`make stop` stops them)")
        raise
    say(f"services: ready in {time.monotonic() - began:.1f}s")
    return cmd_status(paths)


def cmd_stop(paths: Paths) -> int:
    runner = ServiceRunner(paths.run_dir, service_specs())
    for name in runner.stop():
        say(f"{name}: stopped")
    _stop_infra(paths)
    return 0


@contextlib.contextmanager
def _signals_raise_interrupt() -> Iterator[None]:
    """Turns SIGTERM and SIGHUP into KeyboardInterrupt, so `up` cleans up however it is asked to end."""

    def handler(signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt(signal.Signals(signum).name)

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _stop_started_infra(paths: Paths, infra: Infra) -> None:
    """Stops what `up` started; what an earlier infra-up or start left running stays, and stays recorded."""
    started = list(infra.started)
    infra.stop()
    for name in started:
        say(f"{name}: stopped")
    sources = {"kafka": infra.kafka_source, "postgres": infra.postgres_source}
    remaining = [name for name, source in sources.items() if source != "env" and name not in started]
    state = paths.read_state()
    if remaining and "infra" in state:
        ids = state["infra"].get("container_ids", {})
        state["infra"]["container_ids"] = {name: cid for name, cid in ids.items() if name in remaining}
    else:
        state.pop("infra", None)
    if state:
        paths.write_state(state)
    else:
        paths.state.unlink(missing_ok=True)


def cmd_up(paths: Paths) -> int:
    specs = service_specs()
    runner = ServiceRunner(paths.run_dir, specs)
    running = [spec.name for spec in specs if runner.pid(spec) is not None]
    if running:
        raise RuntimeError(f"{', '.join(running)} already running in the background: run `make stop` first")
    infra: Infra | None = None
    code = 0
    with _signals_raise_interrupt():
        try:
            infra = _obtain(paths, background=False)
            _remember_infra(paths, infra)
            keys = _prepare(infra, paths, specs)
            _launch_services(runner, infra, specs, keys, echo=True)
            runner.wait_ready(specs)
            say("services: ready; Ctrl-C stops everything")
            cmd_status(paths)
            while not (exited := runner.exited()):
                time.sleep(0.5)
            say("; ".join(f"{name} exited with code {rc}" for name, rc in exited) + ": stopping everything")
            code = 1
        except KeyboardInterrupt:
            say("\nstopping...")
        finally:
            # A second Ctrl-C (or a SIGTERM) must not abandon half-stopped processes.
            patient = {
                sig: signal.signal(sig, lambda *_: say("still stopping, please wait"))
                for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
            }
            try:
                for name in runner.stop():
                    say(f"{name}: stopped")
                if infra is not None:
                    _stop_started_infra(paths, infra)
            finally:
                for sig, handler in patient.items():
                    signal.signal(sig, handler)
    return code


def _addresses(paths: Paths) -> tuple[str, str]:
    infra_state = paths.read_state().get("infra", {})
    bootstrap = (
        infra_state.get("kafka_bootstrap") or os.environ.get("RF_KAFKA_BOOTSTRAP") or (f"127.0.0.1:{KAFKA_PORT}")
    )
    database = infra_state.get("database_url") or os.environ.get("RF_DATABASE_URL") or paths.postgres().admin_url
    return bootstrap, database


def _kafka_state(paths: Paths, bootstrap: str, source: str) -> str:
    host, _, port = bootstrap.split(",")[0].rpartition(":")
    answers = kafka_answers(host.strip("[]"), int(port))
    pid = paths.kafka().pid() if source == "local" else None
    return f"kafka={'up' if answers else 'down'}" + (f" pid={pid}" if pid else "") + f" source={source}"


def _postgres_state(paths: Paths, database_url: str, source: str) -> str:
    parts = urlsplit(database_url)
    answers = tcp_open(parts.hostname or "127.0.0.1", parts.port or 5432)
    pid = paths.postgres().pid() if source == "local" else None
    if source == "local" and answers:
        answers = paths.postgres().answers()
    return f"postgres={'up' if answers else 'down'}" + (f" pid={pid}" if pid else "") + f" source={source}"


def cmd_status(paths: Paths) -> int:
    specs = service_specs()
    runner = ServiceRunner(paths.run_dir, specs)
    bootstrap, database_url = _addresses(paths)
    infra_state = paths.read_state().get("infra", {})
    for spec in specs:
        say(f"RF_{spec.name.upper()}_URL={spec.url}")
    say(f"RF_KAFKA_BOOTSTRAP={bootstrap}")
    say(f"RF_DATABASE_URL={database_url}")
    say(f"RF_JWT_PUBLIC_KEY_FILE={paths.keys / 'jwt_ed25519_public.pem'}")
    default_source = "env" if os.environ.get("RF_KAFKA_BOOTSTRAP") else "local"
    say(_kafka_state(paths, bootstrap, infra_state.get("kafka_source", default_source)))
    default_source = "env" if os.environ.get("RF_DATABASE_URL") else "local"
    say(_postgres_state(paths, database_url, infra_state.get("postgres_source", default_source)))
    for spec in specs:
        pid = runner.pid(spec)
        if pid is None:
            say(f"{spec.name}=down")
            continue
        code = readyz(spec)
        state = "up" if code == 200 else f"unready readyz={code or 'no-answer'}"
        say(f"{spec.name}={state} pid={pid} url={spec.url}")
    return 0


def cmd_kafka_jars(if_needed: bool) -> int:
    if if_needed and os.environ.get("RF_KAFKA_BOOTSTRAP"):
        say("kafka jars: skipped, RF_KAFKA_BOOTSTRAP is set")
        return 0
    if if_needed and docker_engine_available():
        say("kafka jars: skipped, a Docker engine answers (Kafka runs in a container)")
        return 0
    pom = default_pom()
    check_prerequisites(need_maven=cached_classpath(pom) is None)
    began = time.monotonic()
    classpath = resolve_classpath(pom)
    say(
        f"kafka jars: {len(classpath.split(':'))} jars on the classpath ({time.monotonic() - began:.1f}s), "
        f"cached in {pom.parent / 'classpath.txt'}"
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rf_devstack", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("infra-up", help="start Kafka and PostgreSQL in the background (.run/dev)")
    sub.add_parser("infra-down", help="stop the background Kafka and PostgreSQL")
    sub.add_parser("up", help="infra and the four services in the foreground; Ctrl-C stops everything")
    sub.add_parser("start", help="infra and the four services in the background; returns when all are ready")
    sub.add_parser("stop", help="stop the services and the infrastructure")
    sub.add_parser("status", help="print KEY=VALUE addresses and the state of each component")
    jars = sub.add_parser("kafka-jars", help="resolve the Kafka broker jars with Maven (cached)")
    jars.add_argument("--if-needed", action="store_true", help="skip when Kafka comes from env or Docker")
    args = parser.parse_args(argv)
    paths = Paths(run_dir("dev"))
    commands = {
        "infra-up": lambda: cmd_infra_up(paths),
        "infra-down": lambda: cmd_infra_down(paths),
        "up": lambda: cmd_up(paths),
        "start": lambda: cmd_start(paths),
        "stop": lambda: cmd_stop(paths),
        "status": lambda: cmd_status(paths),
        "kafka-jars": lambda: cmd_kafka_jars(args.if_needed),
    }
    try:
        return commands[args.command]()
    except MissingPrerequisiteError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (RuntimeError, TimeoutError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
