"""The gateway's /openapi.json describes the whole public API (docs/contract.md#the-public-rest-api) with its models."""

from __future__ import annotations

from typing import Any

import pytest

from rf_contracts.api import api_keys, handoffs, identity, sessions, trees
from rf_testsupport.gateway import Gateway

SPEC_ROUTES = {
    ("POST", "/auth/register"), ("POST", "/auth/login"), ("POST", "/auth/login/json"), ("POST", "/auth/refresh"),
    ("GET", "/auth/me"), ("POST", "/auth/logout"), ("POST", "/auth/password"),
    ("GET", "/users"), ("POST", "/users"), ("PATCH", "/users/{user_id}"), ("POST", "/users/{user_id}/password"),
    ("GET", "/trees"), ("GET", "/trees/categories"), ("GET", "/trees/search"), ("GET", "/trees/{tree_id}"),
    ("POST", "/trees"), ("PUT", "/trees/{tree_id}"), ("DELETE", "/trees/{tree_id}"),
    ("GET", "/sessions"), ("GET", "/sessions/{session_id}"), ("POST", "/sessions"), ("PUT", "/sessions/{session_id}"),
    ("GET", "/sessions/{session_id}/steps"), ("POST", "/sessions/{session_id}/steps"),
    ("POST", "/sessions/{session_id}/complete"), ("POST", "/sessions/{session_id}/export"),
    ("POST", "/handoffs"), ("GET", "/handoffs"), ("GET", "/handoffs/{handoff_id}"),
    ("POST", "/handoffs/{handoff_id}/claim"), ("POST", "/handoffs/{handoff_id}/release"),
    ("POST", "/handoffs/{handoff_id}/resolve"), ("GET", "/handoffs/stats"), ("GET", "/handoffs/queue/stream"),
    ("GET", "/handoffs/policy"), ("PUT", "/handoffs/policy"),
    ("GET", "/analytics/flowpilot/escalations"),
    ("POST", "/api-keys"), ("GET", "/api-keys"), ("DELETE", "/api-keys/{key_id}"),
    ("GET", "/analytics/flowpilot/escalations/breakdown"),
    ("GET", "/analytics/flowpilot/escalations/handoffs"), ("GET", "/analytics/flowpilot/escalations/series"),
    ("GET", "/analytics/business-hours"), ("PUT", "/analytics/business-hours"),
}


@pytest.fixture(scope="module")
def spec(gateway: Gateway) -> dict[str, Any]:
    return gateway.running.app.openapi()


def _ref(content: dict[str, Any]) -> str:
    schema = content["application/json"]["schema"]
    return (schema.get("$ref") or schema.get("items", {}).get("$ref") or "").rsplit("/", 1)[-1]


def test_every_public_route_is_described(spec: dict[str, Any]) -> None:
    described = {(method.upper(), path.removeprefix("/api/v1")) for path, ops in spec["paths"].items()
                 for method in ops}
    assert described == SPEC_ROUTES


@pytest.mark.parametrize(("method", "path", "model"), [
    ("post", "/auth/register", identity.RegisterRequest),
    ("post", "/auth/login/json", identity.LoginRequest),
    ("post", "/users", identity.UserCreate),
    ("patch", "/users/{user_id}", identity.UserUpdate),
    ("post", "/auth/password", identity.PasswordChange),
    ("post", "/users/{user_id}/password", identity.PasswordReset),
    ("post", "/trees", trees.TreeCreate),
    ("put", "/trees/{tree_id}", trees.TreeReplace),
    ("post", "/sessions", sessions.SessionCreate),
    ("put", "/sessions/{session_id}", sessions.SessionUpdate),
    ("post", "/sessions/{session_id}/steps", sessions.StepCreate),
    ("post", "/sessions/{session_id}/complete", sessions.SessionComplete),
    ("post", "/handoffs", handoffs.HandoffCreate),
    ("post", "/api-keys", api_keys.ApiKeyCreate),
])
def test_request_bodies_are_the_contract_models(spec: dict[str, Any], method: str, path: str, model: type) -> None:
    body = spec["paths"]["/api/v1" + path][method]["requestBody"]
    assert _ref(body["content"]) == model.__name__
    assert body.get("required") is True


@pytest.mark.parametrize(("method", "path", "status", "model"), [
    ("post", "/auth/register", "201", identity.RegisterResponse),
    ("post", "/auth/login", "200", identity.TokenPair),
    ("get", "/auth/me", "200", identity.MeRead),
    ("get", "/users", "200", identity.UserPage),
    ("get", "/trees", "200", trees.TreePage),
    ("get", "/trees/categories", "200", trees.TreeCategory),
    ("get", "/trees/{tree_id}", "200", trees.TreeRead),
    ("post", "/sessions", "201", sessions.SessionRead),
    ("get", "/sessions/{session_id}/steps", "200", sessions.StepPage),
    ("get", "/handoffs/{handoff_id}", "200", handoffs.HandoffDetail),
    ("get", "/handoffs/stats", "200", handoffs.HandoffStats),
    ("get", "/handoffs/policy", "200", handoffs.StalePolicy),
    ("put", "/handoffs/policy", "200", handoffs.StalePolicy),
    ("post", "/handoffs/{handoff_id}/claim", "200", handoffs.HandoffRead),
    ("post", "/api-keys", "201", api_keys.ApiKeyCreated),
    ("get", "/api-keys", "200", api_keys.ApiKeyPage),
])
def test_success_answers_are_the_contract_models(
    spec: dict[str, Any], method: str, path: str, status: str, model: type
) -> None:
    responses = spec["paths"]["/api/v1" + path][method]["responses"]
    assert _ref(responses[status]["content"]) == model.__name__


def test_protected_routes_declare_bearer_auth_and_public_ones_do_not(spec: dict[str, Any]) -> None:
    public = {("post", "/auth/register"), ("post", "/auth/login"), ("post", "/auth/login/json"),
              ("post", "/auth/refresh")}
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            secured = bool(op.get("security"))
            assert secured is ((method, path.removeprefix("/api/v1")) not in public), (method, path)


def test_forwarded_routes_document_the_gateways_own_failures(spec: dict[str, Any]) -> None:
    for path, ops in spec["paths"].items():
        if path.startswith(("/api/v1/auth", "/api/v1/users", "/api/v1/api-keys")):
            continue
        for op in ops.values():
            assert {"401", "502", "503", "504"} <= set(op["responses"]), path


@pytest.mark.parametrize(("method", "path", "status", "code"), [
    ("post", "/auth/register", "403", "registration_closed"),
    ("post", "/auth/password", "403", "wrong_password"),
    ("post", "/auth/password", "403", "api_key_not_allowed"),
    ("get", "/auth/me", "403", "api_key_not_allowed"),
    ("post", "/auth/logout", "403", "api_key_not_allowed"),
    ("delete", "/api-keys/{key_id}", "404", "api_key_not_found"),
])
def test_coded_errors_document_their_code(spec: dict[str, Any], method: str, path: str, status: str, code: str) -> None:
    answer = spec["paths"]["/api/v1" + path][method]["responses"][status]
    schema = answer["content"]["application/json"]["schema"]
    assert code in schema["properties"]["code"]["enum"]
    assert set(schema["required"]) == {"detail", "code"}


def test_a_new_keys_422_documents_its_code_besides_the_field_list(spec: dict[str, Any]) -> None:
    schema = spec["paths"]["/api/v1/api-keys"]["post"]["responses"]["422"]["content"]["application/json"]["schema"]
    # With the Idempotency-Key's own 422s, which every POST can answer.
    assert set(schema["properties"]["code"]["enum"]) == {"api_key_expiry_in_past", "validation_failed",
                                                         "idempotency_key_invalid", "idempotency_key_reused"}
    assert set(schema["required"]) == {"detail", "code"}


# 409: a repeat of a POST whose Idempotency-Key is still being processed (every POST).
@pytest.mark.parametrize(("method", "path", "statuses"), [
    ("post", "/auth/password", {"204", "401", "403", "409", "422", "429"}),
    ("post", "/users/{user_id}/password", {"204", "401", "403", "404", "409", "422"}),
])
def test_password_routes_document_their_answers(
    spec: dict[str, Any], method: str, path: str, statuses: set[str]
) -> None:
    assert set(spec["paths"]["/api/v1" + path][method]["responses"]) == statuses


async def test_the_document_is_served_at_openapi_json(gateway: Gateway) -> None:
    r = await gateway.client.get("/openapi.json")
    assert r.status_code == 200
    assert r.json()["paths"].keys() == gateway.running.app.openapi()["paths"].keys()
