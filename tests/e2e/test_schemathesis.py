"""Schemathesis with every check against the gateway's public API, all four services behind it: zero failures.

The run is schemathesis' own CLI (`schemathesis run --checks all`) on the committed docs/openapi.json, the
document integrators build on (tests/test_api_documents.py checks it is the one the gateway serves at
/openapi.json), sent to the running gateway as the admin of an account made for the run, with a tree, a session
and a handoff of its own (tests/e2e/schemathesis.toml says where their ids go and what the document cannot say).
It is bounded (a few examples per operation, one worker) and deterministic (deterministic generation, no
example database, no cache of earlier failures): the same cases run every time, and a failure is a real
disagreement between the API and its document.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import pytest

from rf_testsupport.gateway import PASSWORD

from .conftest import API, Stack, tree_body

SCHEMATHESIS = str(Path(sys.executable).with_name("schemathesis"))
DOCUMENT = Path(__file__).resolve().parents[2] / "docs" / "openapi.json"
CONFIG = Path(__file__).with_name("schemathesis.toml")
MAX_EXAMPLES = 6  # per operation and phase; the coverage phase adds its own boundary cases
# The whole run, stack included: bounded by its case count, but a loaded machine stretches it past the default.
RUN_TIMEOUT_S = 900


def _fresh_account(gateway_url: str) -> dict[str, str]:
    """An account made through the API for this run only, with two trees (one to delete), a session and its
    handoff: the admin's token and the ids, as the environment schemathesis.toml reads them from."""
    email = f"schemathesis-{uuid.uuid4().hex[:10]}@example.com"
    with httpx.Client(base_url=gateway_url + API, timeout=30) as client:
        r = client.post("/auth/register", json={
            "email": email, "password": PASSWORD, "full_name": "Schema Thesis", "account_name": f"Team {email}"})
        assert r.status_code == 201, r.text
        r = client.post("/auth/login/json", json={"email": email, "password": PASSWORD})
        assert r.status_code == 200, r.text
        client.headers["Authorization"] = f"Bearer {r.json()['access_token']}"
        ids = {}
        for name, path, body in [
            ("tree", "/trees", lambda: tree_body()),
            ("doomed_tree", "/trees", lambda: tree_body("Deleted by DELETE /trees/{tree_id}")),
            ("session", "/sessions", lambda: {"tree_id": ids["tree"]}),
            ("handoff", "/handoffs", lambda: {"session_id": ids["session"], "reason": "stuck", "priority": "high"}),
        ]:
            r = client.post(path, json=body())
            assert r.status_code == 201, r.text
            ids[name] = r.json()["id"]
        return {"RF_SCHEMATHESIS_TOKEN": client.headers["Authorization"].removeprefix("Bearer "),
                **{f"RF_SCHEMATHESIS_{name.upper()}_ID": value for name, value in ids.items()}}


def _schemathesis(stack: Stack, tmp_path: Path, *options: str) -> tuple[int, str]:
    """Run schemathesis with every check on the gateway as a fresh account's admin: exit code and output."""
    account = _fresh_account(stack.gateway_url)
    command = [
        SCHEMATHESIS, "--config-file", str(CONFIG), "run", str(DOCUMENT), "--url", stack.gateway_url,
        "--checks", "all",
        "--header", f"Authorization: Bearer {account['RF_SCHEMATHESIS_TOKEN']}",
        "--max-examples", str(MAX_EXAMPLES),
        "--generation-deterministic",
        # One worker: with two, hypothesis describes filter lambdas with ast.parse in two threads at once, which
        # CPython 3.11 can fail with "SystemError: AST constructor recursion depth mismatch" (seen once in CI).
        "--workers", "1", "--request-timeout", "30",
        "--no-color", *options,
    ]
    # Run in the test's own directory: schemathesis keeps a cache of past failures in its working directory, and
    # replaying those would make one run depend on the ones before it.
    result = subprocess.run(command, capture_output=True, text=True, timeout=RUN_TIMEOUT_S, check=False, cwd=tmp_path,
                            env={**os.environ, **account})
    print(result.stdout)  # the run's summary, for `pytest -rP`
    return result.returncode, result.stdout + result.stderr


# Operations that can end the session of the token every request uses: logging out revokes it, and an admin
# resetting a password (a stateful link can lead to the admin's own id) revokes all that user's sessions.
SESSION_ENDING = ["--include-path", f"{API}/auth/logout", "--include-path-regex", f"^{API}/users/[^/]+/password$"]
# The live queue's stream stays open until the token expires: a client of it reads events, not one answer
# (tests/e2e/test_queue_stream.py checks it against its document).
OTHERS = ["--exclude-path", f"{API}/auth/logout", "--exclude-path-regex", f"^{API}/users/[^/]+/password$",
          "--exclude-path", f"{API}/handoffs/queue/stream"]


@pytest.mark.timeout(RUN_TIMEOUT_S)
def test_every_operation_conforms_to_the_document_under_every_check(stack: Stack, tmp_path: Path) -> None:
    # The session-ending operations have a run of their own, below.
    code, output = _schemathesis(stack, tmp_path, *OTHERS)
    assert code == 0, output
    assert "Authentication failed" not in output, output


@pytest.mark.timeout(RUN_TIMEOUT_S)
def test_session_ending_operations_conform_to_the_document_under_every_check(stack: Stack, tmp_path: Path) -> None:
    code, output = _schemathesis(stack, tmp_path, *SESSION_ENDING)
    assert code == 0, output
