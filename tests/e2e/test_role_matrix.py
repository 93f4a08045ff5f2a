"""Every route of the public API, called through the gateway as viewer, engineer, admin and without a token."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest
import pytest_asyncio

from rf_testsupport.gateway import PASSWORD

# The helpers (Api, Account, User) come from tests/e2e/conftest.py through fixtures; test modules cannot import
# conftest, so they are typed loosely here.
Api = Account = User = Any

ROLES = ["viewer", "engineer", "admin", None]


@dataclass
class Case:
    """A route; `prepare(api, team, user)` makes the objects it acts on and returns (path, json body)."""

    method: str
    path: str
    expected: tuple[int, int, int, int]  # viewer, engineer, admin, no token
    prepare: Callable[[Api, Account, User | None], Awaitable[tuple[str, Any]]] | None = None
    body: Any = None


def _with_tree(suffix: str = "", body: Any = None) -> Callable[..., Awaitable[tuple[str, Any]]]:
    async def prepare(api: Api, team: Account, _: User | None) -> tuple[str, Any]:
        tree = await api.tree(team.admin)
        return f"/trees/{tree['id']}{suffix}", api.tree_body("replaced") if body == "tree" else body

    return prepare


def _with_session(suffix: str = "", body: Any = None) -> Callable[..., Awaitable[tuple[str, Any]]]:
    async def prepare(api: Api, team: Account, _: User | None) -> tuple[str, Any]:
        session = await api.session(team.admin)
        return f"/sessions/{session['id']}{suffix}", body

    return prepare


def _with_handoff(suffix: str = "", claimed_by_caller: bool = False) -> Callable[..., Awaitable[tuple[str, Any]]]:
    async def prepare(api: Api, team: Account, user: User | None) -> tuple[str, Any]:
        handoff = await api.handoff(team.admin)
        if claimed_by_caller:
            # The engineer acts on their own claim; the admin (and the others) on a colleague's.
            holder = user if user is not None and user.role == "engineer" else team.users["engineer2"]
            await api.ok("POST", f"/handoffs/{handoff['id']}/claim", holder)
        return f"/handoffs/{handoff['id']}{suffix}", None

    return prepare


async def _new_tree_body(api: Api, team: Account, _: User | None) -> tuple[str, Any]:
    return "/trees", api.tree_body("matrix")


async def _new_session_body(api: Api, team: Account, _: User | None) -> tuple[str, Any]:
    tree = await api.tree(team.admin)
    return "/sessions", {"tree_id": tree["id"], "title": "matrix"}


async def _new_handoff_body(api: Api, team: Account, _: User | None) -> tuple[str, Any]:
    session = await api.session(team.admin)
    return "/handoffs", {"session_id": session["id"], "reason": "stuck", "priority": "normal"}


async def _new_user_body(api: Api, team: Account, _: User | None) -> tuple[str, Any]:
    email = f"m-{uuid.uuid4().hex[:10]}@example.com"
    return "/users", {"email": email, "password": PASSWORD, "full_name": "M", "role": "viewer"}


async def _other_user(api: Api, team: Account, _: User | None) -> tuple[str, Any]:
    return f"/users/{team.users['viewer2'].id}", {"full_name": f"Renamed {uuid.uuid4().hex[:4]}"}


BUSINESS_HOURS = {"timezone": "Europe/Paris", "week": {"mon": [["09:00", "17:00"]]}, "holidays": ["2026-12-25"]}


async def _with_business_hours(api: Api, team: Account, _: User | None) -> tuple[str, Any]:
    await api.ok("PUT", "/analytics/business-hours", team.admin, json=BUSINESS_HOURS)
    return "/analytics/business-hours", None


ALL, ENGINEER_UP, ADMIN_ONLY = (200, 200, 200, 401), (403, 200, 200, 401), (403, 403, 200, 401)
CREATED = (403, 201, 201, 401)

CASES = [
    # identity
    Case("GET", "/auth/me", ALL),
    Case("GET", "/users", ADMIN_ONLY),
    Case("POST", "/users", (403, 403, 201, 401), _new_user_body),
    Case("PATCH", "/users/{id}", ADMIN_ONLY, _other_user),
    # trees
    Case("GET", "/trees", ALL),
    Case("GET", "/trees?category=hardware", ALL),
    Case("GET", "/trees/categories", ALL),
    Case("GET", "/trees/search?q=printer", ALL),
    Case("GET", "/trees/{id}", ALL, _with_tree()),
    Case("POST", "/trees", CREATED, _new_tree_body),
    Case("PUT", "/trees/{id}", ENGINEER_UP, _with_tree(body="tree")),
    Case("DELETE", "/trees/{id}", (403, 403, 204, 401), _with_tree()),
    # sessions and steps
    Case("GET", "/sessions", ALL),
    Case("GET", "/sessions?scope=account", ENGINEER_UP),
    Case("GET", "/sessions/{id}", ALL, _with_session()),
    Case("POST", "/sessions", CREATED, _new_session_body),
    Case("PUT", "/sessions/{id}", ENGINEER_UP, _with_session(body={"title": "renamed"})),
    Case("GET", "/sessions/{id}/steps", ALL, _with_session("/steps")),
    Case("POST", "/sessions/{id}/steps", CREATED, _with_session("/steps", {"kind": "note", "content": "hello"})),
    Case("POST", "/sessions/{id}/complete", ENGINEER_UP, _with_session("/complete", {"outcome": "resolved"})),
    Case("POST", "/sessions/{id}/export?format=json", ALL, _with_session("/export?format=json")),
    Case("POST", "/sessions/{id}/export?format=markdown", ALL, _with_session("/export?format=markdown")),
    # handoffs
    Case("POST", "/handoffs", CREATED, _new_handoff_body),
    Case("GET", "/handoffs", ALL),
    Case("GET", "/handoffs?status=open&mine=true", ALL),
    Case("GET", "/handoffs/stats", ALL),
    Case("GET", "/handoffs/policy", ENGINEER_UP),
    Case("PUT", "/handoffs/policy", ADMIN_ONLY, body={"stale_after_seconds": 600, "auto_release": False}),
    Case("GET", "/handoffs/{id}", ALL, _with_handoff()),
    Case("POST", "/handoffs/{id}/claim", ENGINEER_UP, _with_handoff("/claim")),
    Case("POST", "/handoffs/{id}/release", ENGINEER_UP, _with_handoff("/release", claimed_by_caller=True)),
    Case("POST", "/handoffs/{id}/resolve", ENGINEER_UP, _with_handoff("/resolve", claimed_by_caller=True)),
    # analytics
    Case("GET", "/analytics/flowpilot/escalations?period=7d", ENGINEER_UP),
    Case("GET", "/analytics/flowpilot/escalations?period=90d", ENGINEER_UP),
    Case("GET", "/analytics/flowpilot/escalations/breakdown?period=7d&by=tree", ENGINEER_UP),
    Case("GET", "/analytics/flowpilot/escalations/handoffs?period=30d&order=newest", ENGINEER_UP),
    Case("GET", "/analytics/flowpilot/escalations/handoffs?period=7d&format=csv", ENGINEER_UP),
    Case("GET", "/analytics/flowpilot/escalations/series?period=90d&tz=Europe/Paris", ENGINEER_UP),
    Case("GET", "/analytics/business-hours", ENGINEER_UP, _with_business_hours),
    Case("PUT", "/analytics/business-hours", ADMIN_ONLY, body=BUSINESS_HOURS),
]


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def team(api: Api) -> Account:
    return await api.account("viewer", "engineer", "engineer2", "viewer2")


@pytest.mark.parametrize("case", CASES, ids=[f"{c.method} {c.path}" for c in CASES])
@pytest.mark.parametrize("role", ROLES, ids=[r or "anonymous" for r in ROLES])
async def test_route_admits_exactly_the_roles_it_should(api: Api, team: Account, case: Case, role: str | None) -> None:
    user = team.role(role) if role else None
    path, body = await case.prepare(api, team, user) if case.prepare else (case.path, case.body)
    r = await api.call(case.method, path, user, json=body)
    assert r.status_code == case.expected[ROLES.index(role)], (case.method, path, role, r.text)
    if r.status_code in (401, 403):
        assert "detail" in r.json()


async def test_release_and_resolve_by_an_engineer_who_does_not_hold_the_claim_are_forbidden(
    api: Api, team: Account
) -> None:
    for action in ("release", "resolve"):
        path, _ = await _with_handoff(f"/{action}", claimed_by_caller=True)(api, team, team.users["engineer2"])
        r = await api.call("POST", path, team.users["engineer"])
        assert r.status_code == 403, r.text
