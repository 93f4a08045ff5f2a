"""Starts, watches and stops the four ResolutionFlow services as uvicorn processes for local development."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from rf_devstack._util import atomic_write, find_pids, live_pid, tail, tcp_open, terminate_group

SERVICES = ("gateway", "sessions", "handoffs", "analytics")
DEFAULT_PORTS = {"gateway": 8000, "sessions": 8001, "handoffs": 8002, "analytics": 8003}
HOST = "127.0.0.1"


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    port: int

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def database(self) -> str:
        return f"rf_{self.name}"

    @property
    def app(self) -> str:
        return f"{self.name}.main:create_app"

    def command(self, python: str) -> list[str]:
        # --no-proxy-headers: whom to believe about X-Forwarded-For is the gateway's own setting (RF_TRUSTED_PROXIES).
        return [python, "-m", "uvicorn", self.app, "--factory", "--host", HOST, "--port", str(self.port),
                "--no-proxy-headers"]

    @property
    def marker(self) -> str:
        """A piece of the command line that identifies this service's process."""
        return f"{self.app} --factory --host {HOST} --port {self.port}"


def service_specs(env: Mapping[str, str] | None = None) -> list[ServiceSpec]:
    env = os.environ if env is None else env
    ports = dict(DEFAULT_PORTS, gateway=int(env.get("RF_GATEWAY_PORT", DEFAULT_PORTS["gateway"])))
    return [ServiceSpec(name, ports[name]) for name in SERVICES]


def service_env(
    spec: ServiceSpec,
    specs: list[ServiceSpec],
    *,
    kafka_bootstrap: str,
    database_url_for: Callable[[str], str],
    private_key: Path,
    public_key: Path,
    base: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The environment of one service process: the caller's, plus its RF_ settings."""
    env = dict(os.environ if base is None else base)
    env.update(
        RF_ENV="local",
        RF_SERVICE_NAME=spec.name,
        RF_HOST=HOST,
        RF_PORT=str(spec.port),
        RF_KAFKA_BOOTSTRAP=kafka_bootstrap,
        RF_DATABASE_URL=database_url_for(spec.database),
        RF_JWT_PUBLIC_KEY_FILE=str(public_key),
        PYTHONUNBUFFERED="1",
    )
    if spec.name == "gateway":
        env["RF_JWT_PRIVATE_KEY_FILE"] = str(private_key)
    # Every peer's address (RF_GATEWAY_URL, RF_SESSIONS_URL, ...); a service reads the ones it calls.
    for other in specs:
        if other.name != spec.name:
            env[f"RF_{other.name.upper()}_URL"] = other.url
    return env


def readyz(spec: ServiceSpec, timeout: float = 2.0) -> int | None:
    """The HTTP status of GET /readyz, None when nothing answers."""
    import httpx

    try:
        return httpx.get(f"{spec.url}/readyz", timeout=timeout).status_code
    except httpx.HTTPError:
        return None


class ServiceFailedError(RuntimeError):
    """A service exited or never became ready; the message carries the tail of its log."""


class ServiceRunner:
    """Service processes of one run directory: pid files in run_dir/pids, logs in run_dir/logs."""

    def __init__(self, run_dir: Path, specs: list[ServiceSpec], python: str | None = None) -> None:
        self.run_dir = run_dir
        self.specs = specs
        self.python = python or sys.executable
        self._procs: dict[str, subprocess.Popen[bytes]] = {}
        self._pumps: list[threading.Thread] = []

    def pid_path(self, spec: ServiceSpec) -> Path:
        return self.run_dir / "pids" / f"{spec.name}.pid"

    def log_path(self, spec: ServiceSpec) -> Path:
        return self.run_dir / "logs" / f"{spec.name}.log"

    def pid(self, spec: ServiceSpec) -> int | None:
        return live_pid(self.pid_path(spec), spec.marker)

    def launch(self, spec: ServiceSpec, env: Mapping[str, str], *, echo: IO[str] | None = None) -> int:
        """Starts a service in its own session; its output goes to its log, and also to `echo` when given."""
        if self.pid(spec) is not None:
            raise RuntimeError(f"{spec.name} is already running (pid {self.pid(spec)})")
        if tcp_open(HOST, spec.port):
            raise RuntimeError(f"cannot start {spec.name}: {HOST}:{spec.port} is already in use by another process")
        for directory in (self.pid_path(spec).parent, self.log_path(spec).parent):
            directory.mkdir(parents=True, exist_ok=True)
        log = self.log_path(spec)
        if log.exists():
            log.replace(log.with_name(log.name + ".1"))
        with log.open("wb") as out:
            proc = subprocess.Popen(
                spec.command(self.python),
                env=dict(env),
                cwd=self.run_dir,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE if echo else out,
                stderr=subprocess.STDOUT,
                # Own session: a terminal's Ctrl-C reaches only us, and we stop services in order.
                start_new_session=True,
            )
        self._procs[spec.name] = proc
        atomic_write(self.pid_path(spec), f"{proc.pid}\n")
        if echo is not None:
            pump = threading.Thread(target=self._pump, args=(spec, proc, echo), daemon=True)
            pump.start()
            self._pumps.append(pump)
        return proc.pid

    def _pump(self, spec: ServiceSpec, proc: subprocess.Popen[bytes], echo: IO[str]) -> None:
        assert proc.stdout is not None
        prefix = f"{spec.name:<9}| "
        with self.log_path(spec).open("ab") as log:
            for line in proc.stdout:
                log.write(line)
                log.flush()
                try:
                    echo.write(prefix + line.decode(errors="replace"))
                    echo.flush()
                except (OSError, ValueError):
                    pass

    def wait_ready(self, specs: list[ServiceSpec], timeout: float = 120.0) -> None:
        """Returns when every service's /readyz answers 200; raises ServiceFailedError otherwise."""
        pending = list(specs)
        deadline = time.monotonic() + timeout
        while pending:
            for spec in list(pending):
                if self.pid(spec) is None:
                    raise ServiceFailedError(
                        f"{spec.name} exited during startup; last lines of {self.log_path(spec)}:\n"
                        f"{tail(self.log_path(spec))}"
                    )
                if readyz(spec) == 200:
                    pending.remove(spec)
            if pending and time.monotonic() > deadline:
                names = ", ".join(spec.name for spec in pending)
                raise ServiceFailedError(
                    f"{names} not ready within {timeout:.0f}s (GET /readyz); last lines of "
                    f"{self.log_path(pending[0])}:\n{tail(self.log_path(pending[0]))}"
                )
            if pending:
                time.sleep(0.25)

    def exited(self) -> list[tuple[str, int]]:
        """(name, exit code) of the services this runner launched that have exited."""
        return [(name, code) for name, proc in self._procs.items() if (code := proc.poll()) is not None]

    def stop(self, specs: list[ServiceSpec] | None = None, timeout: float = 20.0) -> list[str]:
        """Stops services (the gateway first, so that no request reaches a stopped backend); returns their names."""
        stopped = []
        for spec in specs if specs is not None else self.specs:
            pid = self.pid(spec)
            # A lost pid file must not leave an orphan service holding its port.
            pids = [pid] if pid is not None else find_pids(spec.marker)
            for each in pids:
                terminate_group(each, timeout)
            proc = self._procs.pop(spec.name, None)
            if proc is not None:
                proc.wait()
            self.pid_path(spec).unlink(missing_ok=True)
            if pids:
                stopped.append(spec.name)
        for pump in self._pumps:
            pump.join(timeout=2)
        self._pumps.clear()
        return stopped
