"""Past the gateway (inside the cluster), each service still refuses a request without a valid token or role."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from rfkit.auth import generate_keypair, issue_access_token

# (service, method, path) of routes that need more than the viewer role.
ROUTES = [
    ("sessions", "POST", "/api/v1/trees"),
    ("sessions", "DELETE", f"/api/v1/trees/{uuid.uuid4()}"),
    ("handoffs", "POST", f"/api/v1/handoffs/{uuid.uuid4()}/claim"),
    ("analytics", "GET", "/api/v1/analytics/flowpilot/escalations?period=7d"),
]


@pytest.mark.parametrize(("service", "method", "path"), ROUTES, ids=[f"{s} {m} {p[:28]}" for s, m, p in ROUTES])
async def test_a_service_called_directly_checks_token_and_role(
    api: Any, stack: Any, service: str, method: str, path: str
) -> None:
    team = await api.account("viewer")
    forged = issue_access_token(generate_keypair()[0], user_id=uuid.UUID(team.admin.id),
                                account_id=uuid.UUID(team.id), role="admin", issuer="resolutionflow-gateway",
                                audience="resolutionflow")
    async with httpx.AsyncClient(base_url=stack.urls[service], timeout=30) as direct:
        assert (await direct.request(method, path, json={})).status_code == 401
        r = await direct.request(method, path, json={}, headers={"Authorization": f"Bearer {forged}"})
        assert r.status_code == 401
        r = await direct.request(method, path, json={}, headers=team.users["viewer"].headers)
        assert r.status_code == 403, r.text
