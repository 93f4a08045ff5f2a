"""The gateway declares each forwarded route exactly as its owning service does: params, body, success answer."""

from __future__ import annotations

from typing import Any

import pytest

from analytics.main import create_app as analytics_app
from analytics.settings import Settings as AnalyticsSettings
from gateway.main import create_app as gateway_app
from gateway.settings import Settings as GatewaySettings
from handoffs.main import create_app as handoffs_app
from handoffs.settings import Settings as HandoffsSettings
from sessions.main import create_app as sessions_app
from sessions.settings import Settings as SessionsSettings

# Words that only document; everything else about a parameter must agree.
_PROSE = ("description", "title")
# Where the gateway is deliberately stricter than the service, and why. Each entry is checked to still differ,
# so it goes away as soon as the service agrees.
# Parameters the gateway deliberately checks more strictly than the owning service (none at the moment; the
# fuzz test once found an unbounded handoffs `offset` that overflowed PostgreSQL's bigint, now capped in both).
STRICTER_AT_GATEWAY: dict[tuple[str, str, str], dict[str, Any]] = {}


def _specs() -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    gateway = gateway_app(GatewaySettings(env="test", argon2_memory_kib=8, argon2_time_cost=1,
                                          argon2_parallelism=1)).openapi()
    services = {
        "sessions": sessions_app(SessionsSettings(env="test")).openapi(),
        "handoffs": handoffs_app(HandoffsSettings(env="test")).openapi(),
        "analytics": analytics_app(AnalyticsSettings(env="test")).openapi(),
    }
    return gateway, services


GATEWAY, SERVICES = _specs()
OPERATIONS = [(name, path, method) for name, spec in SERVICES.items() for path, ops in spec["paths"].items()
              for method in ops]


def _strip(schema: Any) -> Any:
    if isinstance(schema, dict):
        return {k: _strip(v) for k, v in schema.items() if k not in _PROSE}
    if isinstance(schema, list):
        return [_strip(v) for v in schema]
    return schema


def _params(op: dict[str, Any]) -> dict[tuple[str, str], Any]:
    return {(p["name"], p["in"]): (p.get("required", False), _strip(p["schema"])) for p in op.get("parameters", [])}


def test_the_gateway_routes_every_service_operation_and_nothing_else() -> None:
    served = {(path, method) for _, path, method in OPERATIONS}
    forwarded = {(path, method) for path, ops in GATEWAY["paths"].items() for method in ops
                 if not path.startswith(("/api/v1/auth", "/api/v1/users", "/api/v1/api-keys"))}
    assert forwarded == served


@pytest.mark.parametrize(("service", "path", "method"), OPERATIONS,
                         ids=[f"{m.upper()} {p}" for _, p, m in OPERATIONS])
def test_gateway_declares_the_operation_as_its_service_does(service: str, path: str, method: str) -> None:
    theirs = SERVICES[service]["paths"][path][method]
    ours = GATEWAY["paths"][path][method]
    # Path parameters may be named differently (they are positional); query parameters must match exactly.
    our_query = {k: v for k, v in _params(ours).items() if k[1] == "query"}
    their_query = {k: v for k, v in _params(theirs).items() if k[1] == "query"}
    for (name, where), (required, schema) in list(their_query.items()):
        stricter = STRICTER_AT_GATEWAY.get((path, method, name))
        if stricter:
            assert not stricter.items() <= schema.items(), f"the service now agrees: drop {name} from the list"
            their_query[(name, where)] = (required, {**schema, **stricter})
    assert our_query == their_query
    assert ours["operationId"] == theirs["operationId"], "one rule (rfkit.web.operation_id), the same route name"
    assert ours["tags"] == theirs["tags"]
    assert ours.get("requestBody") == theirs.get("requestBody")
    for status, answer in theirs["responses"].items():
        if status.startswith("2"):
            assert ours["responses"].get(status, {}).get("content") == answer.get("content"), status


def test_shared_models_have_one_schema() -> None:
    for spec in SERVICES.values():
        for name, schema in spec["components"]["schemas"].items():
            if name in GATEWAY["components"]["schemas"]:
                assert GATEWAY["components"]["schemas"][name] == schema, name
