"""Schemathesis with every check against the gateway's public API, all four services behind it: zero failures.

The run is schemathesis' own CLI (`schemathesis run --checks all`), the same thing a consumer of the API would
point at /openapi.json, with a fresh account's admin token. It is bounded (a few examples per operation, one
worker per core at most) and deterministic (fixed seed, deterministic generation, no example database), so that
the same cases run every time and a failure here is a real disagreement between the API and its document.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import httpx

from gateway.testing import PASSWORD

from .conftest import API, Stack

SCHEMATHESIS = str(Path(sys.executable).with_name("schemathesis"))
CONFIG = Path(__file__).with_name("schemathesis.toml")
MAX_EXAMPLES = 10  # per operation and phase


def _fresh_admin_token(gateway_url: str) -> str:
    """An account made through the API for this run only: its admin's access token."""
    email = f"schemathesis-{uuid.uuid4().hex[:10]}@example.com"
    with httpx.Client(base_url=gateway_url, timeout=30) as client:
        r = client.post(f"{API}/auth/register", json={
            "email": email, "password": PASSWORD, "full_name": "Schema Thesis", "account_name": f"Team {email}"})
        assert r.status_code == 201, r.text
        r = client.post(f"{API}/auth/login/json", json={"email": email, "password": PASSWORD})
        assert r.status_code == 200, r.text
        return str(r.json()["access_token"])


def _schemathesis(stack: Stack, tmp_path: Path, *options: str) -> tuple[int, str, dict[str, Any]]:
    """Run schemathesis with every check on the gateway as a fresh account's admin: exit code, output, report."""
    report = tmp_path / "report.json"
    command = [
        SCHEMATHESIS, "--config-file", str(CONFIG), "run", f"{stack.gateway_url}/openapi.json",
        "--checks", "all",
        "--header", f"Authorization: Bearer {_fresh_admin_token(stack.gateway_url)}",
        "--max-examples", str(MAX_EXAMPLES),
        "--seed", "20261129", "--generation-deterministic",
        "--workers", "2", "--request-timeout", "30",
        "--report", "json", "--report-json-path", str(report),
        "--no-color", *options,
    ]
    # Run in the test's own directory: schemathesis keeps a cache of past failures in its working directory, and
    # replaying those would make one run depend on the ones before it.
    result = subprocess.run(command, capture_output=True, text=True, timeout=900, check=False, cwd=tmp_path)
    output = result.stdout + result.stderr
    return result.returncode, output, json.loads(report.read_text()) if report.exists() else {}


def test_every_operation_conforms_to_the_document_under_every_check(stack: Stack, tmp_path: Path) -> None:
    # Logging out revokes the token every other request uses: it has a run of its own, below.
    code, output, _ = _schemathesis(stack, tmp_path, "--exclude-path", f"{API}/auth/logout")
    assert code == 0, output
    assert "Authentication failed" not in output, output


def test_logout_conforms_to_the_document_under_every_check(stack: Stack, tmp_path: Path) -> None:
    code, output, _ = _schemathesis(stack, tmp_path, "--include-path", f"{API}/auth/logout")
    assert code == 0, output
