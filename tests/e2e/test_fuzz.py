"""Schemathesis fuzzes every operation of the gateway's OpenAPI, with a valid token: no answer is a 5xx."""

from __future__ import annotations

import uuid
import zlib
from collections import Counter
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from gateway.main import create_app
from gateway.settings import Settings
from gateway.testing import PASSWORD

MAX_EXAMPLES = 10
# (operation, status) -> how many times it was answered so.
ANSWERS: Counter[tuple[str, int]] = Counter()
pytestmark = pytest.mark.filterwarnings("ignore::hypothesis.errors.HypothesisDeprecationWarning")


@dataclass
class Fuzzer:
    base_url: str
    headers: dict[str, str]
    ids: dict[str, str]  # path parameter -> an id of the fuzzer's own account


@pytest.fixture(scope="module")
def fuzzer(stack: Any) -> Fuzzer:
    """An admin of a fresh account (every operation open to them) with one tree, session and handoff."""
    base = stack.urls["gateway"]
    email = f"fuzz-{uuid.uuid4().hex[:10]}@example.com"
    with httpx.Client(base_url=base + "/api/v1", timeout=30) as client:
        client.post("/auth/register", json={
            "email": email, "password": PASSWORD, "full_name": "Fuzz", "account_name": "Fuzz"}).raise_for_status()
        tokens = client.post("/auth/login/json", json={"email": email, "password": PASSWORD}).json()
        headers = {"Authorization": f"Bearer {tokens['access_token']}"}
        me = client.get("/auth/me", headers=headers).json()
        tree = client.post("/trees", headers=headers, json={
            "title": "Fuzz", "root_node_id": "q", "nodes": [
                {"id": "q", "kind": "question", "text": "?", "options": [{"label": "ok", "next_node_id": "s"}]},
                {"id": "s", "kind": "solution", "text": "done"}]})
        tree.raise_for_status()
        session = client.post("/sessions", headers=headers, json={"tree_id": tree.json()["id"]})
        session.raise_for_status()
        handoff = client.post("/handoffs", headers=headers, json={
            "session_id": session.json()["id"], "reason": "fuzz", "priority": "low"})
        handoff.raise_for_status()
        assert client.get(base + "/openapi.json").json() == OPENAPI
    ids = {"tree_id": tree.json()["id"], "session_id": session.json()["id"], "handoff_id": handoff.json()["id"],
           "user_id": me["id"]}
    return Fuzzer(base, headers, ids)


def _gateway_openapi() -> dict[str, Any]:
    """The gateway's OpenAPI document, from an app built only to describe itself (it is never started)."""
    app = create_app(Settings(env="test", argon2_memory_kib=8, argon2_time_cost=1, argon2_parallelism=1))
    return app.openapi()  # type: ignore[no-any-return]


# Loaded at collection (schemathesis' lazy fixture loader does not work with pytest 9); `fuzzer` checks that
# the running gateway serves this very document.
OPENAPI = _gateway_openapi()
# Logging out would revoke the fuzzer's own token and turn every later case into a 401.
schema = schemathesis.openapi.from_dict(OPENAPI).exclude(path="/api/v1/auth/logout")


@schema.parametrize()
@settings(max_examples=MAX_EXAMPLES, deadline=None, database=None,
          suppress_health_check=list(HealthCheck))
def test_no_operation_answers_with_a_server_error(case: Any, fuzzer: Fuzzer) -> None:
    # Half of the cases aim at real objects of the account (deeper code paths than a 404 for a random id).
    if case.path_parameters and zlib.crc32(repr(case.body).encode()) % 2 == 0:
        for name in list(case.path_parameters):
            if name in fuzzer.ids and name != "user_id":  # never PATCH the fuzzer itself (it could demote itself)
                case.path_parameters[name] = fuzzer.ids[name]
    response = case.call(base_url=fuzzer.base_url, headers=fuzzer.headers, timeout=30)
    ANSWERS[(case.operation.label, response.status_code)] += 1
    case.validate_response(response, checks=[not_a_server_error])


def test_the_fuzzer_got_past_authentication_into_the_services() -> None:
    # Guards the test above against passing vacuously (say, every case answered 401 by the gateway).
    assert sum(ANSWERS.values()) >= len(OPENAPI["paths"]) * 5
    succeeded = {label for (label, status), _ in ANSWERS.items() if 200 <= status < 300}
    for area in ("/trees", "/sessions", "/handoffs", "/analytics", "/auth", "/users"):
        assert any(area in label for label in succeeded), (area, sorted(ANSWERS.items()))
