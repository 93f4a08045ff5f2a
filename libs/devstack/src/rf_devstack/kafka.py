"""Runs a single-node Apache Kafka broker (KRaft, broker and controller in one JVM) from Maven-resolved jars."""

from __future__ import annotations

import base64
import hashlib
import os
import resource
import shutil
import socket
import struct
import subprocess
import time
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path

from rf_devstack._paths import default_pom
from rf_devstack._util import (
    atomic_write,
    file_lock,
    find_pids,
    live_pid,
    self_connected,
    tail,
    tcp_open,
    terminate_group,
)
from rf_devstack.prereqs import MAVEN_HINT, MissingPrerequisiteError, check_prerequisites, find_maven

CLASSPATH_HEADER = "# pom-sha256="


def _pom_key(pom: Path) -> str:
    return hashlib.sha256(pom.read_bytes()).hexdigest()


def _cache_file(pom: Path) -> Path:
    return pom.parent / "classpath.txt"


def cached_classpath(pom: Path | None = None) -> str | None:
    """The cached classpath if it matches the POM and every jar is still in the Maven repository."""
    pom = pom or default_pom()
    try:
        header, classpath = _cache_file(pom).read_text().splitlines()[:2]
    except (OSError, ValueError):
        return None
    if header != CLASSPATH_HEADER + _pom_key(pom):
        return None
    if not all(Path(jar).is_file() for jar in classpath.split(":")):
        return None
    return classpath


def resolve_classpath(pom: Path | None = None, *, env: Mapping[str, str] | None = None) -> str:
    """The broker classpath: from the cache next to the POM, else from `mvn dependency:build-classpath`."""
    pom = pom or default_pom()
    cached = cached_classpath(pom)
    if cached:
        return cached
    target = pom.parent / "target"
    target.mkdir(exist_ok=True)
    with file_lock(target / ".classpath.lock"):
        cached = cached_classpath(pom)
        if cached:
            return cached
        mvn = find_maven(env)
        if mvn is None:
            raise MissingPrerequisiteError(f"Maven (`mvn`) was not found (it resolves the Kafka jars): {MAVEN_HINT}.")
        out_file = target / "classpath.out"
        proc = subprocess.run(
            [
                mvn,
                "-B",
                "-q",
                "-Dstyle.color=never",
                "-f",
                str(pom),
                "dependency:build-classpath",
                f"-Dmdep.outputFile={out_file}",
            ],
            capture_output=True,
            text=True,
            check=False,
            timeout=1800,
        )
        if proc.returncode != 0 or not out_file.is_file():
            output = "\n".join((proc.stdout + proc.stderr).splitlines()[-30:])
            raise RuntimeError(f"`mvn dependency:build-classpath` failed for {pom} (exit {proc.returncode}):\n{output}")
        classpath = out_file.read_text().strip()
        atomic_write(_cache_file(pom), f"{CLASSPATH_HEADER}{_pom_key(pom)}\n{classpath}\n")
        return classpath


def new_cluster_id() -> str:
    """A Kafka cluster id, the same shape as `StorageTool random-uuid` prints, without starting a JVM."""
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        # Kafka's Uuid.randomUuid() also rejects ids that would read as a command-line flag.
        if not text.startswith("-"):
            return text


def _recv_exact(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ConnectionError("connection closed")
        data += chunk
    return data


def kafka_answers(host: str, port: int, timeout: float = 1.0) -> bool:
    """True when a broker at host:port answers an ApiVersions request without error."""
    # A bound port is not enough: the broker accepts connections before it processes requests.
    client_id = b"rf-devstack"
    request = struct.pack(">hhih", 18, 0, 1, len(client_id)) + client_id
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            if self_connected(sock):
                return False
            sock.settimeout(timeout)
            sock.sendall(struct.pack(">i", len(request)) + request)
            (size,) = struct.unpack(">i", _recv_exact(sock, 4))
            correlation_id, error_code = struct.unpack(">ih", _recv_exact(sock, size)[:6])
    except (OSError, struct.error):
        return False
    return correlation_id == 1 and error_code == 0


class LocalKafka:
    """A broker whose configuration, data, pid file and logs all live in `run_dir`.

    `fresh` empties the data directory the first time this object starts the broker.
    """

    def __init__(
        self,
        run_dir: Path,
        port: int,
        controller_port: int,
        *,
        host: str = "127.0.0.1",
        pom: Path | None = None,
        heap_min: str = "256m",
        heap_max: str = "512m",
        fresh: bool = False,
        extra_listeners: Mapping[str, tuple[str, int]] | None = None,
        extra_properties: Mapping[str, str] | None = None,
        format_args: Sequence[str] = (),
    ) -> None:
        self.run_dir = Path(run_dir).resolve()
        self.port = port
        self.controller_port = controller_port
        self.host = host
        self.pom = pom
        self.heap = (heap_min, heap_max)
        self.fresh = fresh
        # More listeners beside PLAINTEXT (which stays: readiness checks and the broker's own traffic use it),
        # as name -> (security protocol, port), with their settings in extra_properties (e.g. a SASL_SSL one).
        self.extra_listeners = dict(extra_listeners or {})
        self.extra_properties = dict(extra_properties or {})
        # Extra `StorageTool format` arguments, e.g. `--add-scram` to create SCRAM users before the first start.
        self.format_args = list(format_args)
        self.data_dir = self.run_dir / "data"
        self.properties_path = self.run_dir / "server.properties"
        self.log4j_path = self.run_dir / "log4j2.properties"
        self.pid_path = self.run_dir / "kafka.pid"
        self.stdout_path = self.run_dir / "kafka.out"
        self.log_path = self.run_dir / "server.log"
        self.cds_pending_path = self.run_dir / "cds.pending"
        self._proc: subprocess.Popen[bytes] | None = None
        self._wiped = False

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    def pid(self) -> int | None:
        # The properties path is unique to this run_dir, so it tells our broker from any other JVM.
        return live_pid(self.pid_path, str(self.properties_path))

    def is_running(self) -> bool:
        return self.pid() is not None and kafka_answers(self.host, self.port)

    def server_properties(self) -> dict[str, str]:
        listeners = [f"PLAINTEXT://{self.host}:{self.port}"]
        protocols = ["CONTROLLER:PLAINTEXT", "PLAINTEXT:PLAINTEXT"]
        for name, (protocol, port) in self.extra_listeners.items():
            listeners.append(f"{name}://{self.host}:{port}")
            protocols.append(f"{name}:{protocol}")
        advertised = ",".join(listeners)
        return {
            "process.roles": "broker,controller",
            "node.id": "1",
            # Static voters: the storage is then formatted without --standalone (that flag is for a
            # dynamic quorum, configured with controller.quorum.bootstrap.servers instead).
            "controller.quorum.voters": f"1@{self.host}:{self.controller_port}",
            "listeners": f"{advertised},CONTROLLER://{self.host}:{self.controller_port}",
            "advertised.listeners": advertised,
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": ",".join(protocols),
            "log.dirs": str(self.data_dir),
            "num.partitions": "6",
            "default.replication.factor": "1",
            "min.insync.replicas": "1",
            "auto.create.topics.enable": "false",
            # Contract topics keep their events forever (the analytics read model is rebuilt from them).
            "log.retention.ms": "-1",
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "6",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "transaction.state.log.num.partitions": "6",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
            # The cleaner allocates this on the heap at startup; the 128 MB default is a quarter of ours.
            "log.cleaner.dedupe.buffer.size": str(32 * 1024 * 1024),
            **self.extra_properties,
        }

    def _log4j_config(self) -> str:
        return "\n".join(
            [
                "status = error",
                "name = rf-devstack-kafka",
                "appender.file.type = File",
                "appender.file.name = FILE",
                f"appender.file.fileName = {self.log_path}",
                "appender.file.layout.type = PatternLayout",
                "appender.file.layout.pattern = [%d] %p %m (%c)%n",
                "rootLogger.level = WARN",
                "rootLogger.appenderRef.file.ref = FILE",
                # Keeps the "Kafka Server started" and shutdown lines, which tell a reader when it was up.
                "logger.server.name = kafka.server.KafkaRaftServer",
                "logger.server.level = INFO",
                "",
            ]
        )

    def _write_config(self) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        props = "".join(f"{key}={value}\n" for key, value in self.server_properties().items())
        atomic_write(self.properties_path, props)
        atomic_write(self.log4j_path, self._log4j_config())

    def _cds_archive(self, java: str, classpath: str, pom: Path) -> Path:
        """Where the class-data-sharing archive of this JVM and classpath lives (shared by all run dirs)."""
        real_java = os.path.realpath(java)
        # The JVM ignores an archive whose jars changed since it was made, so their stamps are part of the key.
        stamps = [f"{jar}:{os.stat(jar).st_mtime_ns}:{os.stat(jar).st_size}" for jar in classpath.split(":")]
        identity = "\n".join([real_java, str(os.stat(real_java).st_mtime_ns), *stamps])
        return pom.parent / "target" / f"kafka-{hashlib.sha256(identity.encode()).hexdigest()[:16]}.jsa"

    def _cds_options(self, archive: Path, *, record: bool) -> list[str]:
        # A dynamic CDS archive of Kafka's classes cuts JVM startup by ~1.5 s. The broker's first run records it
        # at exit into a private file, which stop() publishes only after a clean shutdown.
        if archive.is_file():
            return [f"-XX:SharedArchiveFile={archive}"]
        if not record:
            return []
        pending = archive.with_name(f"{archive.name}.{os.getpid()}.{self.port}.tmp")
        atomic_write(self.cds_pending_path, f"{pending}\n{archive}\n")
        return [f"-XX:ArchiveClassesAtExit={pending}"]

    def _finish_cds(self, publish: bool) -> None:
        try:
            pending, archive = (Path(line) for line in self.cds_pending_path.read_text().splitlines()[:2])
        except (OSError, ValueError):
            return
        if publish and pending.is_file() and pending.stat().st_size > 0 and not archive.exists():
            pending.replace(archive)
        pending.unlink(missing_ok=True)
        self.cds_pending_path.unlink(missing_ok=True)

    def _java_command(
        self, java: str, classpath: str, main: str, *args: str, heap: bool = False, cds: list[str]
    ) -> list[str]:
        memory = [f"-Xms{self.heap[0]}", f"-Xmx{self.heap[1]}"] if heap else []
        return [
            java,
            *memory,
            *cds,
            "-XX:+UseG1GC",
            "-XX:MaxGCPauseMillis=20",
            "-XX:+ExitOnOutOfMemoryError",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={self.log4j_path}",
            "-cp",
            classpath,
            main,
            *args,
        ]

    def _format(self, java: str, classpath: str, cds: list[str]) -> None:
        if (self.data_dir / "meta.properties").is_file():
            return
        args = ["format", "-t", new_cluster_id(), "-c", str(self.properties_path), "--ignore-formatted"]
        args += self.format_args
        if "controller.quorum.bootstrap.servers" in self.server_properties():
            args.append("--standalone")
        proc = subprocess.run(
            self._java_command(java, classpath, "kafka.tools.StorageTool", *args, cds=cds),
            capture_output=True,
            text=True,
            check=False,
            timeout=300,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"formatting Kafka storage in {self.data_dir} failed:\n{proc.stdout}{proc.stderr}")

    def start(self, timeout: float = 120.0) -> None:
        """Starts the broker and waits until it answers; a no-op when this run_dir's broker already runs."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        with file_lock(self.run_dir / ".lock"):
            pid = self.pid()
            if pid is not None:
                self._wiped = True  # A broker found running is adopted with its data, and keeps it on restart.
                self._wait_ready(pid, timeout)
                return
            self.pid_path.unlink(missing_ok=True)
            for port in (self.port, self.controller_port):
                if tcp_open(self.host, port):
                    raise RuntimeError(
                        f"cannot start Kafka: {self.host}:{port} is already in use by another process "
                        f"(set RF_KAFKA_BOOTSTRAP to use a running broker, or free the port)"
                    )
            pom = self.pom or default_pom()
            java = check_prerequisites(need_maven=cached_classpath(pom) is None)
            classpath = resolve_classpath(pom)
            if self.fresh and not self._wiped:
                # Only the first start of this object wipes: a restart (an outage test) keeps the data.
                shutil.rmtree(self.data_dir, ignore_errors=True)
                self._wiped = True
            self._write_config()
            self._finish_cds(publish=False)
            archive = self._cds_archive(java, classpath, pom)
            self._format(java, classpath, self._cds_options(archive, record=False))
            command = self._java_command(
                java,
                classpath,
                "kafka.Kafka",
                str(self.properties_path),
                heap=True,
                cds=self._cds_options(archive, record=True),
            )
            with self.stdout_path.open("wb") as out:
                self._proc = subprocess.Popen(
                    command,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    cwd=self.run_dir,
                    start_new_session=True,
                    preexec_fn=_more_open_files,
                )
            atomic_write(self.pid_path, f"{self._proc.pid}\n")
            try:
                self._wait_ready(self._proc.pid, timeout)
            except BaseException:
                self._stop_unlocked(10.0)
                raise

    def _wait_ready(self, pid: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if kafka_answers(self.host, self.port):
                return
            if live_pid(self.pid_path, str(self.properties_path)) != pid:
                raise RuntimeError(f"Kafka exited during startup.\n{self.diagnostics()}")
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"Kafka did not answer on {self.bootstrap} within {timeout:.0f}s.\n{self.diagnostics()}"
                )
            time.sleep(0.1)

    def diagnostics(self) -> str:
        return f"--- {self.stdout_path} ---\n{tail(self.stdout_path)}\n--- {self.log_path} ---\n{tail(self.log_path)}"

    def stop(self, timeout: float = 30.0) -> None:
        """Stops the broker of this run_dir (SIGTERM for a clean shutdown, SIGKILL after `timeout`)."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        with file_lock(self.run_dir / ".lock"):
            self._stop_unlocked(timeout)

    def _stop_unlocked(self, timeout: float) -> None:
        pid = self.pid()
        # A lost pid file must not leave an orphan broker holding the ports.
        pids = [pid] if pid is not None else find_pids(str(self.properties_path))
        if not pids and self._proc is not None and self._proc.poll() is None:
            # Our own child, even when neither its pid file nor its command line could be read: waiting for it
            # below without stopping it first would never return.
            pids = [self._proc.pid]
        clean = [terminate_group(each, timeout) for each in pids]
        if self._proc is not None:
            self._proc.wait()
            self._proc = None
        self._finish_cds(publish=bool(clean) and all(clean))
        self.pid_path.unlink(missing_ok=True)


# Every test isolates itself with a topic prefix, and every partition keeps a few files open: a broker serving a
# long test session (or a day of development) outgrows a 20,000-file limit ("Too many open files" takes its log
# directory offline and the broker down). Raised as far as the process may: to the kernel's ceiling when root.
_OPEN_FILES_WANTED = 1 << 20


def _more_open_files() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        ceiling = int(Path("/proc/sys/fs/nr_open").read_text())
    except (OSError, ValueError):
        ceiling = hard
    wanted = min(_OPEN_FILES_WANTED, ceiling)
    for limits in ((wanted, wanted), (hard, hard)):
        if limits[0] <= soft:
            return
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, limits)
            return
        except (ValueError, OSError):
            continue
