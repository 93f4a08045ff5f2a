"""Who may call each identity route: viewer, engineer, admin, and no token at all."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import pytest
import pytest_asyncio

from rf_testsupport.gateway import API, PASSWORD, Gateway, User

ROLES = ["viewer", "engineer", "admin", None]


@dataclass
class Team:
    admin: User
    members: dict[str, User]
    target: User  # the user the PATCH matrix changes


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def team(gateway: Gateway) -> Team:
    admin, _ = await gateway.register()
    members = {role: await gateway.add_user(admin, role) for role in ("viewer", "engineer", "admin")}
    return Team(admin, members, await gateway.add_user(admin, "viewer"))


def _headers(team: Team, role: str | None) -> dict[str, str]:
    return {} if role is None else team.members[role].headers


# (method, path, body, expected status per role: viewer, engineer, admin, no token)
MATRIX = [
    ("GET", "/auth/me", None, (200, 200, 200, 401)),
    ("GET", "/users", None, (403, 403, 200, 401)),
    ("POST", "/users", "new-user", (403, 403, 201, 401)),
    ("PATCH", "/users/{target}", {"full_name": "Renamed"}, (403, 403, 200, 401)),
    ("POST", "/users/{target}/password", {"new_password": PASSWORD}, (403, 403, 204, 401)),
]


@pytest.mark.parametrize(("method", "path", "body", "expected"), MATRIX, ids=[f"{m} {p}" for m, p, _, _ in MATRIX])
@pytest.mark.parametrize("role", ROLES, ids=[r or "anonymous" for r in ROLES])
async def test_identity_route_admits_exactly_its_roles(
    gateway: Gateway, team: Team, method: str, path: str, body: object, expected: tuple[int, ...], role: str | None
) -> None:
    if body == "new-user":
        body = {"email": f"u-{uuid.uuid4().hex[:8]}@example.com", "password": PASSWORD, "full_name": "N",
                "role": "viewer"}
    r = await gateway.client.request(method, API + path.format(target=team.target.id), json=body,
                                     headers=_headers(team, role))
    assert r.status_code == expected[ROLES.index(role)], r.text


@pytest.mark.parametrize("role", ROLES, ids=[r or "anonymous" for r in ROLES])
async def test_logout_is_open_to_every_role_and_closed_without_a_token(
    gateway: Gateway, team: Team, role: str | None
) -> None:
    headers = {} if role is None else (await gateway.login(team.members[role].email)).headers
    r = await gateway.client.post(f"{API}/auth/logout", headers=headers)
    assert r.status_code == (401 if role is None else 204)


async def test_register_login_and_refresh_need_no_token(gateway: Gateway) -> None:
    email = f"open-{uuid.uuid4().hex[:8]}@example.com"
    r = await gateway.client.post(f"{API}/auth/register", json={
        "email": email, "password": PASSWORD, "full_name": "O", "account_name": "Open"})
    assert r.status_code == 201
    r = await gateway.client.post(f"{API}/auth/login", data={"username": email, "password": PASSWORD})
    assert r.status_code == 200
    r = await gateway.client.post(f"{API}/auth/login/json", json={"email": email, "password": PASSWORD})
    assert r.status_code == 200
    r = await gateway.client.post(f"{API}/auth/refresh", json={"refresh_token": r.json()["refresh_token"]})
    assert r.status_code == 200


async def test_a_role_check_comes_before_body_validation(gateway: Gateway, team: Team) -> None:
    r = await gateway.client.post(f"{API}/users", json={"nonsense": True}, headers=team.members["engineer"].headers)
    assert r.status_code == 403
