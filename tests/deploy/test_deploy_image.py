"""The Dockerfile installs one service from the lock, runs it unprivileged, and checks /healthz."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from .conftest import REPO

DOCKERFILE = REPO / "deploy" / "docker" / "Dockerfile"


def test_every_workspace_member_manifest_is_copied_for_uv() -> None:
    text = DOCKERFILE.read_text()
    members = sorted(p.parent.relative_to(REPO).as_posix() for p in REPO.glob("*/*/pyproject.toml"))
    members = [m for m in members if m.split("/")[0] in {"libs", "services"}]
    for member in members:
        assert f"COPY {member}/pyproject.toml {member}/" in text, f"{member} missing: uv cannot read the workspace"


def test_one_service_is_installed_from_the_lock_without_dev_tools() -> None:
    text = DOCKERFILE.read_text()
    syncs = re.findall(r"uv sync ([^\n\\]+)", text)
    assert len(syncs) == 2
    for args in syncs:
        assert "--frozen" in args and "--no-dev" in args and '--package "rf-${SERVICE}"' in args
    assert "--no-install-workspace" in syncs[0]


def test_the_image_runs_unprivileged_and_serves_with_uvicorn() -> None:
    text = DOCKERFILE.read_text()
    runtime = text[text.rindex("\nFROM ") :]
    (user,) = re.findall(r"^USER (\S+)", runtime, re.M)
    assert re.fullmatch(r"[1-9]\d*:[1-9]\d*", user), "numeric non-root user, for runAsNonRoot"
    assert re.search(r"^HEALTHCHECK .*\n?.*/healthz", runtime, re.M)
    (cmd,) = re.findall(r"^CMD (.+)$", runtime, re.M)
    assert 'exec uvicorn \\"${SERVICE}.main:create_app\\" --factory' in cmd


@pytest.mark.timeout(900)
def test_install_kustomize_does_not_rebuild_once_installed(kustomize: list[str]) -> None:
    script = REPO / "deploy" / "tools" / "install-kustomize.sh"
    result = subprocess.run(["bash", str(script)], capture_output=True, text=True, timeout=600)
    if kustomize[0] == "kubectl":
        # The fixture falls back to `kubectl kustomize` only when the script cannot install kustomize.
        assert result.returncode != 0
        return
    binary = Path(kustomize[0])
    built_at = binary.stat().st_mtime_ns
    again = subprocess.run(["bash", str(script)], capture_output=True, text=True, timeout=600, check=True)
    assert again.stdout.strip().splitlines()[-1] == kustomize[0]
    assert "building" not in again.stderr
    assert binary.stat().st_mtime_ns == built_at, "an installed kustomize must not be rebuilt"


def test_the_workspace_packages_a_service_needs_are_copied() -> None:
    """A service may depend on workspace libraries only if the image copies their sources."""
    import tomllib

    text = DOCKERFILE.read_text()
    members = {}
    for manifest in [*REPO.glob("libs/*/pyproject.toml"), *REPO.glob("services/*/pyproject.toml")]:
        project = tomllib.loads(manifest.read_text())["project"]
        members[project["name"]] = (manifest.parent.relative_to(REPO).as_posix(), project.get("dependencies", []))
    for name, (path, deps) in members.items():
        if not path.startswith("services/"):
            continue
        needed = {re.split(r"[\s\[<>=!~;]", d, maxsplit=1)[0] for d in deps} & set(members)
        for dep in needed:
            dep_path = members[dep][0]
            assert f"COPY {dep_path} {dep_path}" in text, f"{name} needs {dep_path} in the image"
