"""Fixtures of the deployment tests: the repository, kustomize (installed on demand) and the rendered overlays."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "deploy" / "k8s"
OVERLAYS = ("dev", "prod")

# The services, their HTTP ports and their Kafka consumer groups (None: the gateway consumes nothing).
SERVICE_PORTS = {"gateway": 8000, "sessions": 8001, "handoffs": 8002, "analytics": 8003}
CONSUMER_GROUPS = {"sessions": "sessions", "handoffs": "handoffs", "analytics": "analytics"}

# The settings contract every service reads (SPEC section 6, libs/rfkit/src/rfkit/settings.py).
COMMON_ENV = frozenset(
    {
        "RF_ENV",
        "RF_SERVICE_NAME",
        "RF_HOST",
        "RF_PORT",
        "RF_LOG_LEVEL",
        "RF_DATABASE_URL",
        "RF_MIGRATE_ON_START",
        "RF_KAFKA_BOOTSTRAP",
        "RF_TOPIC_PREFIX",
        "RF_CREATE_TOPICS",
        "RF_JWT_PUBLIC_KEY",
        "RF_JWT_PUBLIC_KEY_FILE",
        "RF_JWT_ISSUER",
        "RF_JWT_AUDIENCE",
    }
)
GATEWAY_ENV = frozenset(
    {"RF_JWT_PRIVATE_KEY_FILE", "RF_SESSIONS_URL", "RF_HANDOFFS_URL", "RF_ANALYTICS_URL", "RF_TRUSTED_PROXIES"}
)


def allowed_env(service: str) -> frozenset[str]:
    """The RF_ names a service may be given."""
    return COMMON_ENV | GATEWAY_ENV if service == "gateway" else COMMON_ENV


def kustomize_command() -> list[str]:
    """kustomize from deploy/tools/install-kustomize.sh; `kubectl kustomize` only when that cannot install it."""
    script = REPO / "deploy" / "tools" / "install-kustomize.sh"
    result = subprocess.run(["bash", str(script)], capture_output=True, text=True, timeout=600)
    if result.returncode == 0:
        return [result.stdout.strip().splitlines()[-1], "build"]
    if shutil.which("kubectl"):
        return ["kubectl", "kustomize"]
    pytest.fail(f"cannot install kustomize:\n{result.stderr}")


@pytest.fixture(scope="session")
def kustomize() -> list[str]:
    return kustomize_command()


def _make_dev_keys(directory: Path) -> None:
    spec = importlib.util.spec_from_file_location("make_jwt_keys", REPO / "deploy" / "tools" / "make-jwt-keys.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.make_keys(directory)


@pytest.fixture(scope="session")
def rendered(kustomize: list[str], tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[dict[str, Any]]]:
    """Every overlay built by kustomize, as lists of objects. Built from a copy of deploy/k8s, so that the dev
    overlay's signing keys (generated, never committed) are made there and not in the work tree."""
    copy = tmp_path_factory.mktemp("k8s") / "k8s"
    shutil.copytree(K8S, copy, ignore=shutil.ignore_patterns("*.pem"))
    _make_dev_keys(copy / "overlays" / "dev" / "secrets")
    out: dict[str, list[dict[str, Any]]] = {}
    for overlay in OVERLAYS:
        result = subprocess.run(
            [*kustomize, str(copy / "overlays" / overlay)],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, f"kustomize build {overlay} failed:\n{result.stderr}"
        out[overlay] = [doc for doc in yaml.safe_load_all(result.stdout) if doc]
    return out
