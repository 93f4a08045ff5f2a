"""Fixtures of the deployment tests: the repository, kustomize (installed on demand) and the rendered overlays."""

from __future__ import annotations

import importlib
import importlib.util
import shutil
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from rfkit.settings import ServiceSettings

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "deploy" / "k8s"
OVERLAYS = ("dev", "prod")


@cache
def settings_classes() -> dict[str, type[ServiceSettings]]:
    """Every service under services/ and the Settings class it reads its environment with."""
    found = {}
    for path in sorted(REPO.glob("services/*/src/*/settings.py")):
        service = path.parent.name
        found[service] = importlib.import_module(f"{service}.settings").Settings
    assert found, "no services found"
    return found


def settings_env(service: str) -> frozenset[str]:
    """The RF_ names a service reads: one per field of its settings class (what else it is given is ignored)."""
    settings = settings_classes()[service]
    return frozenset(settings.env_name(name) for name in settings.model_fields)


# The services and the HTTP port each listens on by default; their Kafka consumer groups (the gateway has none).
SERVICE_PORTS = {service: int(s.model_fields["port"].default) for service, s in settings_classes().items()}
CONSUMER_GROUPS = {"sessions": "sessions", "handoffs": "handoffs", "analytics": "analytics"}


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
