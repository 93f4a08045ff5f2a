"""A client generated from the committed docs/openapi.json (openapi-python-client) drives a whole flow.

The client is generated into the test's own directory on every run (about ten seconds), so it is always made
from the document in the repository, exactly as an integrator would make it, and then used against the real
gateway with the real services, Kafka and PostgreSQL behind it.
"""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from rf_testsupport.gateway import PASSWORD

from .conftest import Stack, tree_body

ROOT = Path(__file__).resolve().parents[2]
GENERATOR = str(Path(sys.executable).with_name("openapi-python-client"))
RUFF = str(Path(sys.executable).with_name("ruff"))
PACKAGE = "rf_generated_client"


@pytest.fixture(scope="module")
def client_package(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModuleType]:
    """The generated package, importable as PACKAGE."""
    where = tmp_path_factory.mktemp("client")
    config = where / "config.yaml"
    # The generator's own code reads right only once formatted (`1and`); ruff is the project's, in this venv.
    config.write_text(json.dumps({"post_hooks": [f"{RUFF} format ."]}))  # JSON is YAML
    result = subprocess.run(
        [GENERATOR, "generate", "--path", str(ROOT / "docs" / "openapi.json"), "--meta", "none",
         "--output-path", str(where / PACKAGE), "--config", str(config), "--fail-on-warning"],
        capture_output=True, text=True, timeout=600, check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    sys.path.insert(0, str(where))
    try:
        yield importlib.import_module(PACKAGE)
    finally:
        sys.path.remove(str(where))
        for name in [m for m in sys.modules if m == PACKAGE or m.startswith(PACKAGE + ".")]:
            del sys.modules[name]


def _module(name: str) -> Any:
    return importlib.import_module(f"{PACKAGE}.{name}")


def test_a_generated_client_registers_builds_a_tree_and_journals_a_session(
    stack: Stack, client_package: ModuleType
) -> None:
    models = _module("models")
    email = f"sdk-{uuid.uuid4().hex[:10]}@example.com"
    anonymous = client_package.Client(base_url=stack.gateway_url, raise_on_unexpected_status=True, timeout=30)

    register = _module("api.auth.auth_register")
    registered = register.sync(client=anonymous, body=models.RegisterRequest.from_dict(
        {"email": email, "password": PASSWORD, "full_name": "Sdk User", "account_name": f"Team {email}"}))
    assert isinstance(registered, models.RegisterResponse), registered
    assert registered.user.email == email and registered.user.role == "admin"

    tokens = _module("api.auth.auth_login_json").sync(
        client=anonymous, body=models.LoginRequest.from_dict({"email": email, "password": PASSWORD}))
    assert isinstance(tokens, models.TokenPair), tokens
    client = client_package.AuthenticatedClient(
        base_url=stack.gateway_url, token=tokens.access_token, raise_on_unexpected_status=True, timeout=30)

    me = _module("api.auth.auth_me").sync(client=client)
    assert isinstance(me, models.MeRead) and me.id == registered.user.id

    tree = _module("api.trees.trees_create").sync(client=client, body=models.TreeCreate.from_dict(tree_body()))
    assert isinstance(tree, models.TreeRead), tree
    assert tree.version == 1 and tree.root_node_id == "q1"

    session = _module("api.sessions.sessions_start").sync(
        client=client, body=models.SessionCreate.from_dict({"tree_id": str(tree.id), "title": "Printer on floor 3"}))
    assert isinstance(session, models.SessionRead), session
    assert session.tree_id == tree.id and session.current_node_id == "q1" and session.status == "active"

    step = _module("api.sessions.sessions_add_step").sync(
        session.id, client=client,
        body=models.StepCreate.from_dict({"kind": "note", "content": "Cable replugged", "node_id": "q1"}))
    assert isinstance(step, models.StepRead), step
    assert step.session_id == session.id and step.recorded_by == registered.user.id

    journal = _module("api.sessions.sessions_list_steps").sync(session.id, client=client)
    assert isinstance(journal, models.StepPage), journal
    assert [(s.id, s.kind, s.content) for s in journal.items] == [(step.id, "note", "Cable replugged")]
    assert journal.total == 1

    again = _module("api.sessions.sessions_get").sync(session.id, client=client)
    assert isinstance(again, models.SessionRead) and again.id == session.id
