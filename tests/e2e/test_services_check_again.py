"""Past the gateway (inside the cluster), each service still refuses a request without a valid token or role."""

from __future__ import annotations

import asyncio
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


async def _refused_directly(direct: httpx.AsyncClient, user: Any, path: str, detail: str) -> None:
    """Polls a service directly with the user's token until it answers 401 naming `detail` (a 30 s deadline)."""
    deadline = asyncio.get_running_loop().time() + 30
    while True:
        r = await direct.get(path, headers=user.headers)
        if r.status_code == 401:
            assert r.json()["detail"] == f"invalid token: {detail}"
            return
        assert r.status_code == 200, r.text
        assert asyncio.get_running_loop().time() < deadline, f"{path} still accepts the token"
        await asyncio.sleep(0.1)


# A read each service answers for any role: the token is all that is checked.
READS = {"sessions": "/api/v1/sessions", "handoffs": "/api/v1/handoffs", "analytics": None}


@pytest.mark.parametrize("service", ["sessions", "handoffs", "analytics"])
async def test_a_service_called_directly_refuses_a_logged_out_token(api: Any, stack: Any, service: str) -> None:
    team = await api.account("engineer")
    engineer = team.users["engineer"]
    path = READS[service] or "/api/v1/analytics/flowpilot/escalations?period=7d"
    async with httpx.AsyncClient(base_url=stack.urls[service], timeout=30) as direct:
        assert (await direct.get(path, headers=engineer.headers)).status_code == 200
        await api.ok("POST", "/auth/logout", engineer, 204)
        await _refused_directly(direct, engineer, path, "revoked")


async def test_a_service_called_directly_refuses_a_deactivated_users_token(api: Any, stack: Any) -> None:
    team = await api.account("engineer")
    engineer = team.users["engineer"]
    async with httpx.AsyncClient(base_url=stack.urls["sessions"], timeout=30) as direct:
        assert (await direct.get("/api/v1/sessions", headers=engineer.headers)).status_code == 200
        await api.ok("PATCH", f"/users/{engineer.id}", team.admin, json={"is_active": False})
        await _refused_directly(direct, engineer, "/api/v1/sessions", "user deactivated")


async def test_a_service_called_directly_refuses_a_demoted_users_old_token(api: Any, stack: Any) -> None:
    team = await api.account("engineer")
    engineer = team.users["engineer"]
    async with httpx.AsyncClient(base_url=stack.urls["analytics"], timeout=30) as direct:
        path = "/api/v1/analytics/flowpilot/escalations?period=7d"
        assert (await direct.get(path, headers=engineer.headers)).status_code == 200
        await api.ok("PATCH", f"/users/{engineer.id}", team.admin, json={"role": "viewer"})
        await _refused_directly(direct, engineer, path, "role changed, refresh the token")
        # The refreshed token carries the new role: accepted, and refused where the role is too low.
        r = await api.client.post("/api/v1/auth/refresh", json={"refresh_token": engineer.refresh})
        assert r.status_code == 200, r.text
        fresh = {"Authorization": f"Bearer {r.json()['access_token']}"}
        assert (await direct.get(path, headers=fresh)).status_code == 403
        async with httpx.AsyncClient(base_url=stack.urls["sessions"], timeout=30) as sessions:
            assert (await sessions.get("/api/v1/sessions", headers=fresh)).status_code == 200
