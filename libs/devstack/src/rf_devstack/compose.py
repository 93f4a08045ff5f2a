"""`make compose-test`: builds the images, runs compose.yaml in a real container engine and checks it end to end."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import yaml

from rf_devstack._paths import repo_root
from rf_devstack.infra import docker_engine_available
from rf_devstack.samples import printer_tree

PROJECT = "resolutionflow-test"
IMAGE_TAG = "local"
SERVICES = {"gateway": 8000, "sessions": 8001, "handoffs": 8002, "analytics": 8003}
UV_VERSION = "0.13.9"
# Local stand-ins for the public images, built on this machine when no registry answers. Bump a tag when
# what goes into that image changes, so that a machine with the old one builds it again.
BASE_IMAGE = "localhost/resolutionflow/bookworm:1"
BASE_PACKAGES = ("python3", "ca-certificates")
UV_IMAGE = f"localhost/resolutionflow/uv:{UV_VERSION}"
KAFKA_IMAGE = "localhost/resolutionflow/kafka:4.1.1"
POSTGRES_IMAGE = "localhost/resolutionflow/postgres:15"
PUBLIC_IMAGES = ("python:3.11-slim", f"ghcr.io/astral-sh/uv:{UV_VERSION}", "apache/kafka:4.1.1", "postgres:17")
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
NO_ENGINE = (
    "compose-test needs a container engine and found none that answers.\n"
    "  Docker: install Docker Engine with the compose plugin and make sure `docker info` works, or\n"
    "  Podman (Debian/Ubuntu, as root): apt-get update && apt-get install -y podman runc debootstrap\n"
    "(.ci/run installs Podman itself when it is missing.)"
)


class ComposeTestError(RuntimeError):
    """A step of the composed run failed; the message says which and why."""


def say(message: str) -> None:
    print(f"compose-test: {message}", flush=True)


# ---------------------------------------------------------------------------------------------------- engine


@dataclass
class Engine:
    """The container engine's CLI (docker or podman) with the environment it needs."""

    name: str
    env: dict[str, str]

    def run(
        self, *args: str, check: bool = True, capture: bool = True, timeout: float | None = None,
        cwd: Path | None = None,
    ) -> subprocess.CompletedProcess[str]:
        return run([self.name, *args], env=self.env, check=check, capture=capture, timeout=timeout, cwd=cwd)

    def out(self, *args: str) -> str:
        return self.run(*args).stdout.strip()

    def exists(self, image: str) -> bool:
        return self.run("image", "inspect", image, check=False).returncode == 0

    def inspect(self, container: str) -> dict[str, Any]:
        data = json.loads(self.out("container", "inspect", container))
        return dict(data[0])


def run(
    argv: Sequence[str], *, env: Mapping[str, str] | None = None, check: bool = True, capture: bool = True,
    timeout: float | None = None, cwd: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        list(argv), env=dict(env) if env is not None else None, cwd=cwd, text=True, timeout=timeout,
        stdout=subprocess.PIPE if capture else None, stderr=subprocess.PIPE if capture else None, check=False,
    )
    if check and proc.returncode != 0:
        detail = f"\n{proc.stdout or ''}{proc.stderr or ''}".rstrip() if capture else ""
        raise ComposeTestError(f"`{' '.join(argv)}` failed (exit {proc.returncode}){detail}")
    return proc


def find_engine(root: Path) -> Engine:
    """Docker when an engine answers (and has compose), else Podman with this repository's containers.conf."""
    env = dict(os.environ)
    if docker_engine_available():
        if run(["docker", "compose", "version"], check=False).returncode == 0:
            return Engine("docker", env)
        say("a Docker engine answers but `docker compose` is missing; trying Podman")
    if shutil.which("podman"):
        # The sandbox's limits (no setrlimit, hybrid cgroups, no systemd) need these settings; a machine with
        # its own containers.conf can point CONTAINERS_CONF elsewhere.
        env.setdefault("CONTAINERS_CONF", str(root / "deploy/podman/containers.conf"))
        engine = Engine("podman", env)
        info = engine.run("info", "--format", "{{.Host.OCIRuntime.Name}}", check=False)
        if info.returncode == 0:
            return engine
        raise ComposeTestError(f"podman is installed but does not work here:\n{info.stderr}\n{NO_ENGINE}")
    raise ComposeTestError(NO_ENGINE)


# ---------------------------------------------------------------------------------------------------- images


def public_images_available(engine: Engine) -> bool:
    """True when every public image is in the engine's store or can be pulled."""
    for image in PUBLIC_IMAGES:
        if engine.exists(image):
            continue
        try:
            pulled = engine.run("pull", image, check=False, timeout=600)
        except subprocess.TimeoutExpired:
            return False
        if pulled.returncode != 0:
            return False
    return True


def build_base_image(engine: Engine) -> None:
    """Debian bookworm with Python 3.11 from debootstrap, trusting what this machine trusts (for PyPI in builds)."""
    for tool in ("debootstrap", "tar"):
        if not shutil.which(tool):
            raise ComposeTestError(f"{tool} is missing: apt-get install -y {tool}")
    mirror = debian_mirror()
    say(f"building {BASE_IMAGE} with debootstrap from {mirror} (once per machine, a few minutes)")
    with tempfile.TemporaryDirectory(prefix="rf-rootfs-", dir="/var/tmp") as tmp:
        rootfs = Path(tmp) / "rootfs"
        run(["debootstrap", "--variant=minbase", f"--include={','.join(BASE_PACKAGES)}", "bookworm",
             str(rootfs), mirror])
        if HOST_CA_BUNDLE.is_file():
            shutil.copyfile(HOST_CA_BUNDLE, rootfs / "etc/ssl/certs/ca-certificates.crt")
        for leftover in (rootfs / "var/cache/apt/archives").glob("*.deb"):
            leftover.unlink()
        tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
        try:
            imported = subprocess.run(
                [engine.name, "import", "--change", "CMD [\"/bin/bash\"]", "-", BASE_IMAGE],
                stdin=tar.stdout, env=engine.env, capture_output=True, text=True, check=False,
            )
        finally:
            if tar.stdout:
                tar.stdout.close()
            tar.wait()
        if imported.returncode != 0 or tar.returncode != 0:
            raise ComposeTestError(f"importing {BASE_IMAGE} failed: {imported.stderr}")


def debian_mirror() -> str:
    """The first Debian mirror apt uses here (deb822 sources, else sources.list), else deb.debian.org."""
    for path in (Path("/etc/apt/sources.list.d/debian.sources"),):
        if path.is_file():
            for line in path.read_text().splitlines():
                if line.startswith("URIs:"):
                    return line.split()[1]
    sources = Path("/etc/apt/sources.list")
    if sources.is_file():
        for line in sources.read_text().splitlines():
            parts = line.split()
            if len(parts) >= 3 and parts[0] == "deb" and "security" not in parts[1]:
                return parts[1]
    return "http://deb.debian.org/debian"


def build_uv_image(engine: Engine) -> None:
    """The uv image from this machine's uv (the one `make uv` installs), which must be the version that locks."""
    uv = shutil.which("uv")
    version = run([uv, "--version"]).stdout.split()[1] if uv else None
    if not uv or version != UV_VERSION:
        raise ComposeTestError(f"uv {UV_VERSION} is needed on PATH to build {UV_IMAGE} (found {version}): make uv")
    with tempfile.TemporaryDirectory(prefix="rf-uv-") as tmp:
        shutil.copy2(repo_root() / "deploy/images/uv/Containerfile", tmp)
        shutil.copy2(uv, Path(tmp) / "uv")
        engine.run("build", "-t", UV_IMAGE, tmp, capture=False)


def build_kafka_image(engine: Engine, root: Path) -> None:
    """Kafka from the jars Maven resolves for the image POM (the local broker's, plus kafka-tools)."""
    source = root / "deploy/images/kafka"
    with tempfile.TemporaryDirectory(prefix="rf-kafka-") as tmp:
        context = Path(tmp) / "context"
        shutil.copytree(source, context, ignore=shutil.ignore_patterns("pom.xml", "target"))
        run(["mvn", "-q", "-B", "-f", str(source / "pom.xml"), "dependency:copy-dependencies",
             f"-DoutputDirectory={context / 'libs'}", "-DincludeScope=runtime"])
        engine.run("build", "--build-arg", f"BASE_IMAGE={BASE_IMAGE}", "-t", KAFKA_IMAGE, str(context),
                   capture=False)


def build_images(engine: Engine, root: Path, *, local: bool) -> dict[str, str]:
    """Every image compose.yaml names; returns the environment that makes compose.yaml use them."""
    env: dict[str, str] = {"RF_IMAGE_TAG": IMAGE_TAG}
    build_args: list[str] = []
    if local:
        if not engine.exists(BASE_IMAGE):
            build_base_image(engine)
        if not engine.exists(UV_IMAGE):
            build_uv_image(engine)
        say("building the Kafka and PostgreSQL images (cached layers after the first run)")
        build_kafka_image(engine, root)
        engine.run("build", "--build-arg", f"BASE_IMAGE={BASE_IMAGE}", "-t", POSTGRES_IMAGE,
                   str(root / "deploy/images/postgres"), capture=False)
        env |= {"RF_KAFKA_IMAGE": KAFKA_IMAGE, "RF_POSTGRES_IMAGE": POSTGRES_IMAGE}
        build_args = ["--build-arg", f"PYTHON_IMAGE={BASE_IMAGE}", "--build-arg", "PYTHON=/usr/bin/python3",
                      "--build-arg", f"UV_IMAGE={UV_IMAGE}"]
    dockerfile = root / "deploy/docker/Dockerfile"
    # Podman reads no <Dockerfile>.dockerignore, and keeps HEALTHCHECK only in the docker image format.
    podman = ["--ignorefile", str(root / "deploy/docker/Dockerfile.dockerignore"), "--format", "docker"]
    ignore = podman if engine.name == "podman" else []
    for service, port in SERVICES.items():
        say(f"building resolutionflow/{service}:{IMAGE_TAG}")
        engine.run(
            "build", "-f", str(dockerfile), *ignore, *build_args, "--build-arg", f"SERVICE={service}",
            "--build-arg", f"PORT={port}", "-t", f"resolutionflow/{service}:{IMAGE_TAG}", str(root),
            capture=False,
        )
    return env


# ---------------------------------------------------------------------------------------------------- stack


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def dependency_order(services: Mapping[str, Any]) -> list[str]:
    """The services in an order that starts each after everything it depends on."""
    order: list[str] = []
    visiting: set[str] = set()

    def visit(name: str) -> None:
        if name in order:
            return
        if name in visiting:
            raise ComposeTestError(f"compose.yaml: dependency cycle through {name}")
        visiting.add(name)
        for dep in sorted(services[name].get("depends_on") or {}):
            visit(dep)
        visiting.discard(name)
        order.append(name)

    for name in sorted(services):
        visit(name)
    return order


def depends_on(spec: Mapping[str, Any]) -> dict[str, str]:
    deps = spec.get("depends_on") or {}
    if isinstance(deps, list):
        return dict.fromkeys(deps, "service_started")
    return {name: (cond or {}).get("condition", "service_started") for name, cond in deps.items()}


@dataclass
class Stack:
    """compose.yaml run under one project name, and what the test does to its containers."""

    engine: Engine
    root: Path
    env: dict[str, str]
    project: str = PROJECT
    services: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.services = dict(yaml.safe_load((self.root / "compose.yaml").read_text())["services"])

    def compose(self, *args: str, capture: bool = True, check: bool = True) -> subprocess.CompletedProcess[str]:
        env = {**self.engine.env, **self.env}
        if self.engine.name == "docker":
            argv = ["docker", "compose", "-p", self.project, "-f", "compose.yaml", *args]
        else:
            runner = shutil.which("podman-compose") or str(Path(sys.executable).parent / "podman-compose")
            # No pod: each service keeps its own network identity (its name in DNS), as with Docker.
            argv = [runner, "--in-pod=false", "-p", self.project, "-f", "compose.yaml",
                    "-f", "deploy/podman/compose.override.yaml", *args]
        return run(argv, env=env, capture=capture, check=check, cwd=self.root)

    # Podman 4.3 without systemd runs no healthcheck timers and podman-compose then ignores service_healthy (and
    # takes any exit for service_completed_successfully), so on Podman the dependency conditions are kept here:
    # containers are created by podman-compose and started one by one, each when its conditions hold.
    def up(self, timeout: float) -> None:
        if self.engine.name == "docker":
            self.compose("up", "--detach", "--wait", "--no-build", "--wait-timeout", str(int(timeout)), capture=False)
            return
        # --no-deps: no podman --requires links, which make `podman start` start (and trip over) the one-shots again.
        self.compose("up", "--no-build", "--no-start", "--no-deps", capture=False)
        pending = dependency_order(self.services)
        met: set[tuple[str, str]] = set()

        def ready(name: str) -> bool:
            for dep, condition in depends_on(self.services[name]).items():
                if dep in pending:
                    return False
                # Checked once, as compose does when it starts the dependent (and a healthcheck costs a JVM).
                if (dep, condition) not in met:
                    if not self.holds(dep, condition):
                        return False
                    met.add((dep, condition))
            return True

        def start_ready() -> bool:
            # Each pass starts every service whose conditions hold now, so independent ones start together.
            for name in list(pending):
                if ready(name):
                    say(f"starting {name}")
                    self.engine.run("start", self.container(name))
                    pending.remove(name)
            return not pending

        # A chain of waits (infrastructure, then one-shots, then servers): each link gets the timeout.
        poll(start_ready, 4 * timeout, "every service to start", interval=0.5,
             on_timeout=lambda: "still waiting: " + ", ".join(pending))

    def container(self, service: str) -> str:
        listed = self.engine.out(
            "ps", "-a", "--filter", f"label=com.docker.compose.project={self.project}",
            "--filter", f"label=com.docker.compose.service={service}", "--format", "{{.Names}}",
        ).split()
        if len(listed) != 1:
            raise ComposeTestError(f"expected one container of {service}, found {listed}")
        return listed[0]

    def holds(self, service: str, condition: str) -> bool:
        """Whether a depends_on condition holds now; raises when it never can (a one-shot failed, ...)."""
        if condition == "service_started":
            return self.state(service)["Running"] is True
        if condition == "service_healthy":
            return self.healthy(service)
        if condition == "service_completed_successfully":
            return self.completed(service)
        raise ComposeTestError(f"{service}: unknown depends_on condition {condition}")

    def wait_for(self, service: str, condition: str, timeout: float) -> None:
        poll(lambda: self.holds(service, condition), timeout, f"{service} to be {condition.removeprefix('service_')}",
             on_timeout=lambda: self.logs(service))

    def state(self, service: str) -> dict[str, Any]:
        return dict(self.engine.inspect(self.container(service))["State"])

    def healthy(self, service: str) -> bool:
        """Runs the service's compose healthcheck now (Podman) or reads the engine's verdict (Docker)."""
        state = self.state(service)
        if not state["Running"] and not state.get("Restarting"):
            restart = self.services[service].get("restart", "no")
            if restart in ("no", None):
                raise ComposeTestError(f"{service} exited ({state.get('ExitCode')})\n{self.logs(service)}")
            return False
        if self.engine.name == "docker":
            return bool((state.get("Health") or {}).get("Status") == "healthy")
        return self.engine.run("healthcheck", "run", self.container(service), check=False).returncode == 0

    def completed(self, service: str) -> bool:
        state = self.state(service)
        if state["Running"] or state.get("Status") in ("created", "configured"):
            return False
        if state["ExitCode"] != 0:
            raise ComposeTestError(f"{service} failed (exit {state['ExitCode']})\n{self.logs(service)}")
        return True

    def logs(self, service: str) -> str:
        try:
            proc = self.engine.run("logs", "--tail", "60", self.container(service), check=False)
        except ComposeTestError as exc:
            return str(exc)
        return f"--- last log lines of {service} ---\n{proc.stdout}{proc.stderr}"

    def network_view(self, service: str, peers: list[str]) -> str:
        """How `service`'s container resolves and reaches each peer's name now (a failed run's diagnosis)."""
        probe = (
            "import socket, sys, time\n"
            "for name in sys.argv[1:]:\n"
            "    began = time.monotonic()\n"
            "    try:\n"
            "        found = sorted({a[4][0] for a in socket.getaddrinfo(name, None)})\n"
            "    except OSError as exc:\n"
            "        found = repr(exc)\n"
            "    print(f'{name}: {found} in {time.monotonic() - began:.2f}s')\n"
        )
        try:
            proc = self.engine.run(
                "exec", self.container(service), "python", "-c", probe, *peers, check=False, timeout=60
            )
        except (ComposeTestError, subprocess.TimeoutExpired) as exc:
            return f"could not look from {service}: {exc}"
        return f"--- names as {service} resolves them ---\n{proc.stdout}{proc.stderr}"

    def crash(self, service: str) -> int:
        """Kills the service's main process from outside, as a crash would (not a stop: restart policy applies)."""
        before = self.engine.inspect(self.container(service))
        pid = int(before["State"]["Pid"])
        if pid <= 0:
            raise ComposeTestError(f"{service} is not running")
        os.kill(pid, signal.SIGKILL)
        return int(before.get("RestartCount", 0))

    def restarts(self, service: str) -> int:
        return int(self.engine.inspect(self.container(service)).get("RestartCount", 0))

    def leftovers(self) -> list[str]:
        """What the engine still holds of this project: containers, networks, volumes."""
        label = f"label=com.docker.compose.project={self.project}"
        podman_label = f"label=io.podman.compose.project={self.project}"
        found: list[str] = []
        for kind, args in (
            ("container", ("ps", "-a", "--format", "{{.Names}}")),
            ("network", ("network", "ls", "--format", "{{.Name}}")),
            ("volume", ("volume", "ls", "--format", "{{.Name}}")),
        ):
            names: set[str] = set()
            for flt in (label, podman_label):
                names.update(self.engine.out(*args[:-2], "--filter", flt, *args[-2:]).split())
            # Named after the project too (the engines prefix what compose creates): catches unlabelled ones.
            names.update(n for n in self.engine.out(*args).split() if n.startswith(f"{self.project}_"))
            found.extend(f"{kind} {name}" for name in sorted(names))
        return found

    def down(self) -> list[str]:
        """Removes the project's containers, networks and volumes; returns whatever is still there after."""
        self.compose("down", "--volumes", "--timeout", "10", check=False)
        return self.leftovers()


def poll(
    check: Callable[[], bool], timeout: float, what: str, *, interval: float = 1.0,
    on_timeout: Callable[[], str] | None = None,
) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if check():
            return
        if time.monotonic() > deadline:
            detail = f"\n{on_timeout()}" if on_timeout else ""
            raise ComposeTestError(f"timed out after {timeout:.0f}s waiting for {what}{detail}")
        time.sleep(interval)


# ---------------------------------------------------------------------------------------------------- scenario

PASSWORD = "compose test passphrase"


def seconds(delta: timedelta) -> float:
    return delta / timedelta(seconds=1)


def expected_metric(deltas: list[float]) -> dict[str, Any]:
    """The section 5 numbers over these deltas, computed the way PostgreSQL does (avg, percentile_cont)."""
    ordered = sorted(deltas)

    def percentile(p: float) -> float:
        position = p * (len(ordered) - 1)
        lo = int(position)
        hi = min(lo + 1, len(ordered) - 1)
        return ordered[lo] + (ordered[hi] - ordered[lo]) * (position - lo)

    return {
        "n_handoffs_claimed": len(deltas), "n_handoffs_with_action": len(deltas),
        "avg_seconds": sum(deltas) / len(deltas), "median_seconds": percentile(0.5),
        "p95_seconds": percentile(0.95),
    }


class Client:
    """The public API through the composed gateway, as one signed-in admin."""

    # As the contract tells clients: a POST whose outcome is unknown (the gateway's 504 when a service did not
    # answer in time, e.g. a cold container on a host busy building and starting them) is sent again with the same
    # Idempotency-Key, and an `idempotency_in_progress` 409 is waited out. Each retry is said in the output; one that
    # never succeeds still fails the run.
    POST_ATTEMPTS = 4
    RETRY_AFTER_S = 2.0

    def __init__(self, http: httpx.Client) -> None:
        self.http = http
        self.token = ""

    def call(self, method: str, path: str, expect: int = 200, **kw: Any) -> Any:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        attempts = 1
        if method == "POST":
            headers["Idempotency-Key"] = uuid.uuid4().hex
            attempts = self.POST_ATTEMPTS
        for attempt in range(1, attempts + 1):
            r = self.http.request(method, f"/api/v1{path}", headers=headers, **kw)
            unknown = r.status_code == 504 or (r.status_code == 409 and "idempotency_in_progress" in r.text)
            if r.status_code == expect or not unknown or attempt == attempts:
                break
            say(f"{method} {path}: {r.status_code} (outcome unknown), sent again with the same Idempotency-Key")
            time.sleep(self.RETRY_AFTER_S)
        if r.status_code != expect:
            raise ComposeTestError(f"{method} {path}: expected {expect}, got {r.status_code}: {r.text[:500]}")
        return r.json() if r.headers.get("content-type", "").startswith("application/json") else r.text

    def wait_reachable(self, paths: dict[str, str], timeout: float) -> None:
        """Waits until each service answers a GET through the gateway (the first requests after start-up are the
        first the gateway sends it over the container network). A wait longer than a second is said."""
        for service, path in paths.items():
            self._wait_answered(service, path, timeout)

    def _wait_answered(self, service: str, path: str, timeout: float) -> None:
        began = time.monotonic()
        last = ""

        def answers() -> bool:
            nonlocal last
            try:
                r = self.http.get(f"/api/v1{path}", headers={"Authorization": f"Bearer {self.token}"})
            except httpx.TransportError as exc:  # the gateway itself not answering: a refusal like the others
                last = f"{type(exc).__name__}: {exc}"
                return False
            if r.status_code == 200:
                return True
            last = f"{r.status_code} {r.text[:300]}"
            return False

        poll(answers, timeout, f"{service} to answer through the gateway", on_timeout=lambda: f"last: {last}")
        if (waited := time.monotonic() - began) > 1:
            say(f"{service} answered through the gateway after {waited:.0f}s (last refusal: {last})")

    def escalation(self, tree_id: str) -> tuple[str, float]:
        """A session escalated, claimed and acted on; its id and the delta the metric must count for it."""
        session = self.call("POST", "/sessions", 201, json={"tree_id": tree_id, "title": "Printer"})
        sid = session["id"]
        self.call("POST", f"/sessions/{sid}/steps", 201,
                  json={"kind": "note", "content": "Customer reports the printer offline", "actor_type": "human"})
        moved = self.call("PUT", f"/sessions/{sid}", json={"answer": {"node_id": "q1", "option_label": "no"}})
        if moved["current_node_id"] != "e1":
            raise ComposeTestError(f"the answer should lead to the escalation node: {moved}")
        handoff = self.call("POST", "/handoffs", 201, json={"session_id": sid, "reason": "needs facilities",
                                                             "priority": "high"})
        claimed = self.call("POST", f"/handoffs/{handoff['id']}/claim")
        if claimed["status"] != "claimed":
            raise ComposeTestError(f"claim did not claim: {claimed}")
        step = self.call("POST", f"/sessions/{sid}/steps", 201,
                         json={"kind": "action", "content": "Replaced the toner", "actor_type": "human"})
        delta = seconds(datetime.fromisoformat(step["created_at"]) - datetime.fromisoformat(claimed["claimed_at"]))
        return sid, max(0.0, delta)

    def metric_matches(self, deltas: list[float], timeout: float) -> dict[str, Any]:
        """Polls the metric until analytics has seen every event, then requires the exact numbers."""
        want = expected_metric(deltas)
        seen: dict[str, Any] = {}

        def caught_up() -> bool:
            nonlocal seen
            seen = self.call("GET", "/analytics/flowpilot/escalations?period=7d")
            return bool(seen["n_handoffs_with_action"] >= len(deltas))

        poll(caught_up, timeout, f"analytics to count {len(deltas)} acted-on handoffs", interval=0.5,
             on_timeout=lambda: f"last answer: {seen}")
        got = {key: seen[key] for key in want}
        if got != want:
            raise ComposeTestError(f"escalation metric {got} != {want} computed from the API's timestamps")
        return seen


# A read of each service behind the gateway, for the signed-in admin.
UPSTREAM_READS = {
    "sessions": "/trees",
    "handoffs": "/handoffs/stats",
    "analytics": "/analytics/flowpilot/escalations?period=7d",
}


def scenario(stack: Stack, base_url: str, timeout: float) -> None:
    with httpx.Client(base_url=base_url, timeout=30) as http:
        api = Client(http)
        email = f"admin-{uuid.uuid4().hex[:10]}@example.com"
        registered = api.call("POST", "/auth/register", 201, json={
            "email": email, "password": PASSWORD, "full_name": "Ada Admin", "account_name": "Compose test"})
        tokens = api.call("POST", "/auth/login/json", json={"email": email, "password": PASSWORD})
        api.token = tokens["access_token"]
        me = api.call("GET", "/auth/me")
        if me["account_id"] != registered["account"]["id"] or me["role"] != "admin":
            raise ComposeTestError(f"/auth/me disagrees with registration: {me}")
        api.wait_reachable(UPSTREAM_READS, timeout)
        tree = api.call("POST", "/trees", 201, json=printer_tree())

        first_session, first = api.escalation(tree["id"])
        metric = api.metric_matches([first], timeout)
        say(f"escalation metric matches the timestamps: avg {metric['avg_seconds']}s over 1 handoff")
        exported = api.call("POST", f"/sessions/{first_session}/export?format=json")
        document = json.dumps(exported)
        if first_session not in document or "Replaced the toner" not in document:
            raise ComposeTestError(f"export lacks the session or its steps: {document[:500]}")
        say("session exported with its steps")

        # A crash of analytics (its process killed, not a stop): the restart policy brings it back, and what
        # happened while it was down reaches it from Kafka.
        restarts = stack.crash("analytics")
        say("analytics killed; escalating another session while it is down")
        _, second = api.escalation(tree["id"])
        poll(lambda: stack.restarts("analytics") > restarts, timeout, "analytics to be restarted by its policy",
             on_timeout=lambda: stack.logs("analytics"))
        stack.wait_for("analytics", "service_healthy", timeout)
        say("analytics restarted by the engine and healthy again")
        metric = api.metric_matches([first, second], timeout)
        say(f"nothing lost: the metric counts both handoffs (avg {metric['avg_seconds']}s, "
            f"p95 {metric['p95_seconds']}s)")


# ---------------------------------------------------------------------------------------------------- main


@contextlib.contextmanager
def phase(name: str, timings: dict[str, float]) -> Iterator[None]:
    started = time.monotonic()
    try:
        yield
    finally:
        timings[name] = round(time.monotonic() - started, 1)


def prepare(images: str, timings: dict[str, float]) -> tuple[Engine, dict[str, str]]:
    """The engine, the images built, and the environment compose.yaml needs to use them."""
    root = repo_root()
    engine = find_engine(root)
    say(f"engine: {engine.name}")
    with phase("images", timings):
        local = images == "local" or (images == "auto" and not public_images_available(engine))
        say(f"images: {'built locally (no registry)' if local else 'public'}")
        env = build_images(engine, root, local=local)
    return engine, env


def compose_test(images: str, timeout: float) -> dict[str, float]:
    timings: dict[str, float] = {}
    engine, env = prepare(images, timings)
    port = free_port()
    env["RF_GATEWAY_PORT"] = str(port)
    stack = Stack(engine, repo_root(), env)
    if stack.leftovers():
        say("removing what an earlier run left behind")
        stack.down()
    failure: BaseException | None = None
    try:
        with phase("up", timings):
            stack.up(timeout)
            stack.wait_for("gateway", "service_healthy", timeout)
        say(f"composed system up; gateway on http://127.0.0.1:{port}")
        with phase("scenario", timings):
            scenario(stack, f"http://127.0.0.1:{port}", timeout)
    except BaseException as exc:
        failure = exc
        if isinstance(exc, ComposeTestError):
            for service in ("gateway", "sessions", "handoffs", "analytics"):  # what they said before teardown
                say(stack.logs(service))
            say(stack.network_view("gateway", [*UPSTREAM_READS, "postgres", "kafka"]))
        raise
    finally:
        with phase("down", timings):
            left = stack.down()
        if left:
            message = "teardown left these behind: " + ", ".join(left)
            if failure is None:
                raise ComposeTestError(message)
            say(message)
        else:
            say(f"torn down: no containers, networks or volumes of {PROJECT} remain")
    return timings


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rf_devstack.compose", description=__doc__)
    parser.add_argument("command", nargs="?", choices=["test", "up", "down"], default="test",
                        help="test (default): the whole check; up: build and start project resolutionflow and leave "
                        "it running (gateway on RF_GATEWAY_PORT, default 8000); down: remove it with its volumes")
    parser.add_argument("--images", choices=["auto", "public", "local"], default=os.environ.get(
        "RF_COMPOSE_IMAGES", "auto"), help="public images, local stand-ins, or public when they can be pulled")
    parser.add_argument("--timeout", type=float, default=300, help="seconds to wait for any one thing")
    args = parser.parse_args(argv)
    started = time.monotonic()
    try:
        if args.command == "test":
            timings = compose_test(args.images, args.timeout)
            say(f"passed in {time.monotonic() - started:.0f}s "
                f"({', '.join(f'{k} {v}s' for k, v in timings.items())})")
        elif args.command == "up":
            engine, env = prepare(args.images, {})
            env["RF_GATEWAY_PORT"] = port = os.environ.get("RF_GATEWAY_PORT", "8000")
            stack = Stack(engine, repo_root(), env, project="resolutionflow")
            stack.up(args.timeout)
            stack.wait_for("gateway", "service_healthy", args.timeout)
            say(f"up: gateway on http://127.0.0.1:{port}; `python -m rf_devstack.compose down` removes it")
        else:
            stack = Stack(find_engine(repo_root()), repo_root(), {}, project="resolutionflow")
            left = stack.down()
            if left:
                raise ComposeTestError("still there: " + ", ".join(left))
            say("down: no containers, networks or volumes of resolutionflow remain")
    except ComposeTestError as exc:
        print(f"compose-test: FAILED: {exc}", file=sys.stderr, flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
