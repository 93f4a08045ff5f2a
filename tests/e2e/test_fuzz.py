"""Hostile input on every route of the gateway, all four services running: never a 5xx, every write readable.

Each operation of the gateway's OpenAPI is a test of its own, on an account of its own (no test depends on
another or on their order). Every field of a valid body, every query and path parameter, gets each hostile
value in turn (NaN, infinities, 1e999, lone surrogates, NUL, deep nesting, huge strings, wrong types), then
hypothesis combines them (derandomized: the same cases on every run). After that the whole account is read
back, every list, object, journal and export, and each read must be a 200: a write that was stored but cannot
be read is as much a failure as a 500.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.main import create_app
from gateway.settings import Settings
from rf_testsupport.gateway import PASSWORD

# The stack's own threads (Kafka clients' jitter) use the random module while hypothesis draws; that is not
# the strategies' doing.
pytestmark = pytest.mark.filterwarnings("ignore::hypothesis.errors.HypothesisDeprecationWarning")
API = "/api/v1"
EXAMPLES = 8  # combined cases per operation, after the field-by-field ones
TREE_BODY: dict[str, Any] = {
    "title": "Fuzz", "description": "d", "category": "c", "tags": ["t"], "root_node_id": "q",
    "nodes": [
        {"id": "q", "kind": "question", "text": "?", "options": [{"label": "ok", "next_node_id": "s"}]},
        {"id": "s", "kind": "solution", "text": "done", "options": []},
    ],
}


def _gateway_openapi() -> dict[str, Any]:
    """The gateway's OpenAPI document, from an app built only to describe itself (it is never started)."""
    app = create_app(Settings(env="test", argon2_memory_kib=8, argon2_time_cost=1, argon2_parallelism=1))
    return app.openapi()  # type: ignore[no-any-return]


OPENAPI = _gateway_openapi()
# Event streams stay open until the token expires, so "send and read the answer" does not apply to them; their
# hostile input (the resumption id) is tried in tests/e2e/test_queue_stream.py.
STREAMS = {("GET", f"{API}/handoffs/queue/stream")}
OPERATIONS = sorted((method.upper(), path) for path, item in OPENAPI["paths"].items() for method in item
                    if (method.upper(), path) not in STREAMS)


# ---- hostile values ------------------------------------------------------------------------------------------

class Raw(str):
    """JSON text that json.dumps cannot produce (1e999, integers past Python's conversion limit, 5,000 levels)."""


def _nested(depth: int) -> Raw:
    """Objects and arrays in turn, `depth` levels (as text: a Python value that deep would exhaust the stack)."""
    opening = "".join('{"a": ' if i % 2 else "[" for i in range(depth))
    closing = "".join("}" if i % 2 else "]" for i in reversed(range(depth)))
    return Raw(opening + '"x"' + closing)


HOSTILE: dict[str, Any] = {
    "nan": float("nan"),
    "infinity": float("-inf"),
    "1e999": Raw("1e999"),
    "5000 digits": Raw("1" + "0" * 5000),
    "2**63": 2**63,
    "nul": "a\x00b",
    "lone surrogates": "\udfffa\ud800",
    "unstorable keys": {"\ud800": 1, "a\x00": 2},
    "nested 40": _nested(40),
    "nested 300": _nested(300),
    "nested 5000": _nested(5000),
    "huge string": "x" * 300_000,
    "huge unicode": "\u00e9\U0001f5a8 " * 50_000,
    "empty": "",
    "null": None,
    "object": {"k": [True, -0.5]},
}
# Query and path values arrive as text: the same ideas, percent-encoded by hand (a surrogate as the UTF-8 bytes
# it would have, which are not UTF-8).
HOSTILE_TEXT: dict[str, str] = {
    "nan": "NaN", "1e999": "1e999", "2**63": str(2**63), "nul": "a%00b", "surrogate": "%ED%A0%80",
    "invalid utf-8": "%FF%FE", "huge": "x" * 20_000, "empty": "", "json": "%7B%22a%22%3A1%7D",
}


def encode(value: Any) -> bytes:
    """JSON text with whatever a hostile client would write: NaN and Infinity bare, lone surrogates escaped."""
    raws: dict[str, str] = {}

    def mark(item: Any) -> Any:
        if isinstance(item, Raw):
            key = f"\x01raw{len(raws)}\x01"
            raws[json.dumps(key)] = str(item)
            return key
        if isinstance(item, dict):
            return {k: mark(v) for k, v in item.items()}
        if isinstance(item, list):
            return [mark(v) for v in item]
        return item

    text = json.dumps(mark(value), ensure_ascii=True, allow_nan=True)
    for quoted, raw in raws.items():
        text = text.replace(quoted, raw)
    return text.encode()


def leaves(value: Any, loc: tuple[str | int, ...] = ()) -> Iterator[tuple[str | int, ...]]:
    """Every place of a body a value can be put: each field, item and container, the body itself first."""
    yield loc
    if isinstance(value, dict):
        for key, item in value.items():
            yield from leaves(item, (*loc, key))
    elif isinstance(value, list) and value:  # its first item stands for the others
        yield from leaves(value[0], (*loc, 0))


def replaced(value: Any, loc: tuple[str | int, ...], new: Any) -> Any:
    if not loc:
        return new
    copy = dict(value) if isinstance(value, dict) else list(value)
    copy[loc[0]] = replaced(value[loc[0]], loc[1:], new)  # type: ignore[index]
    return copy


# ---- one account and what it holds ---------------------------------------------------------------------------

# Set when the account is made, so that GET /analytics/business-hours and clock=business answer 200.
BUSINESS_HOURS = {"timezone": "Europe/Paris", "week": {"mon": [["09:00", "17:00"]]}, "holidays": ["2026-12-25"]}


@dataclass
class World:
    """A fresh account: its admin (who fuzzes), a user to PATCH, a user to log out, a tree, sessions, a handoff."""

    client: httpx.Client
    admin: dict[str, str] = field(default_factory=dict)
    ids: dict[str, str] = field(default_factory=dict)
    leaver_email: str = ""
    leaver_refresh: str = ""

    def call(self, method: str, url: str, *, token: str | None = None, body: bytes | None = None,
             content_type: str = "json") -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        if body is not None:
            headers["content-type"] = "application/json" if content_type == "json" else content_type
        return self.client.request(method, url, headers=headers, content=body)

    def ok(self, method: str, path: str, body: Any = None, *, token: str | None = None) -> Any:
        r = self.call(method, API + path, token=token or self.admin["access_token"],
                      body=None if body is None else json.dumps(body).encode())
        assert r.status_code < 300, (method, path, r.status_code, r.text[:300])
        return r.json() if r.content else None

    def login(self, email: str) -> dict[str, str]:
        return self.ok("POST", "/auth/login/json", {"email": email, "password": PASSWORD}, token="-")  # type: ignore

    @classmethod
    def create(cls, client: httpx.Client) -> World:
        world = cls(client)
        email = f"fuzz-{uuid.uuid4().hex[:10]}@example.com"
        world.ok("POST", "/auth/register", {"email": email, "password": PASSWORD, "full_name": "Fuzz",
                                            "account_name": "Fuzz"}, token="-")
        world.admin = world.login(email)
        target = world.ok("POST", "/users", {"email": f"t-{email}", "password": PASSWORD, "full_name": "T",
                                             "role": "engineer"})
        world.leaver_email = f"l-{email}"
        world.ok("POST", "/users", {"email": world.leaver_email, "password": PASSWORD, "full_name": "L",
                                    "role": "engineer"})
        world.leaver_refresh = world.login(world.leaver_email)["refresh_token"]
        tree = world.ok("POST", "/trees", TREE_BODY)
        session = world.ok("POST", "/sessions", {"tree_id": tree["id"]})
        spare = world.ok("POST", "/sessions", {"tree_id": tree["id"]})
        handoff = world.ok("POST", "/handoffs", {"session_id": session["id"], "reason": "fuzz", "priority": "low"})
        world.ok("POST", f"/handoffs/{handoff['id']}/claim")
        key = world.ok("POST", "/api-keys", {"name": "fuzz", "role": "viewer"})
        world.ok("PUT", "/analytics/business-hours", BUSINESS_HOURS)
        world.ids = {"tree_id": tree["id"], "session_id": session["id"], "handoff_id": handoff["id"],
                     "user_id": target["id"], "spare_session_id": spare["id"], "key_id": key["id"]}
        return world

    def seed(self, method: str, path: str) -> Any:
        """A valid body for the operation (None: it takes none)."""
        seeds: dict[tuple[str, str], Any] = {
            ("POST", "/auth/register"): {"email": f"r-{uuid.uuid4().hex[:10]}@example.com", "password": PASSWORD,
                                         "full_name": "R", "account_name": "R"},
            ("POST", "/auth/login/json"): {"email": self.leaver_email, "password": PASSWORD},
            ("POST", "/auth/login"): {"username": self.leaver_email, "password": PASSWORD},
            ("POST", "/auth/refresh"): {"refresh_token": self.leaver_refresh},
            ("POST", "/auth/logout"): {"refresh_token": self.leaver_refresh},
            ("POST", "/users"): {"email": f"u-{uuid.uuid4().hex[:10]}@example.com", "password": PASSWORD,
                                 "full_name": "U", "role": "viewer"},
            ("PATCH", "/users/{user_id}"): {"full_name": "Renamed", "role": "engineer", "is_active": True},
            # The admin's own password, changed to itself: the admin's token stays valid (this session is kept).
            ("POST", "/auth/password"): {"current_password": PASSWORD, "new_password": PASSWORD},
            ("POST", "/users/{user_id}/password"): {"new_password": PASSWORD},
            ("POST", "/trees"): TREE_BODY,
            ("PUT", "/trees/{tree_id}"): TREE_BODY,
            ("POST", "/sessions"): {"tree_id": self.ids["tree_id"], "title": "t", "context": {"ticket": "T-1"}},
            ("PUT", "/sessions/{session_id}"): {"title": "t", "notes": "n",
                                                "answer": {"node_id": "q", "option_label": "ok"}},
            ("POST", "/sessions/{session_id}/steps"): {"kind": "note", "content": "c", "node_id": "q",
                                                       "actor_type": "human"},
            ("POST", "/sessions/{session_id}/complete"): {"outcome": "resolved", "summary": "s"},
            ("POST", "/handoffs"): {"session_id": self.ids["spare_session_id"], "reason": "r", "priority": "high"},
            ("POST", "/handoffs/{handoff_id}/resolve"): {"resolution_note": "n"},
            ("POST", "/api-keys"): {"name": "k", "role": "viewer", "expires_at": "2999-01-01T00:00:00Z"},
            ("PUT", "/handoffs/policy"): {"stale_after_seconds": 600, "auto_release": False},
            ("PUT", "/analytics/business-hours"): BUSINESS_HOURS,
        }
        return seeds.get((method, path.removeprefix(API)))

    def token_for(self, method: str, path: str) -> str:
        if path == f"{API}/auth/logout":  # logging out revokes the token: a fresh one of the user who leaves
            return self.login(self.leaver_email)["access_token"]
        return self.admin["access_token"]

    def read_everything(self) -> int:
        """Reads back every object of the account, every list and export; returns how many reads were made."""
        reads = 0

        def get(path: str) -> Any:
            nonlocal reads
            reads += 1
            r = self.call("GET" if not path.endswith(("=json", "=markdown")) else "POST", API + path,
                          token=self.admin["access_token"])
            assert r.status_code == 200, (path, r.status_code, r.text[:300])
            return r.json() if r.headers.get("content-type", "").startswith("application/json") else r.text

        def pages(path: str) -> Iterator[dict[str, Any]]:
            offset, sep = 0, "&" if "?" in path else "?"
            while True:
                page = get(f"{path}{sep}limit=200&offset={offset}")
                yield from page["items"]
                offset += len(page["items"])
                if not page["items"] or offset >= page["total"]:
                    return

        get("/auth/me")
        for user in pages("/users"):
            assert user["account_id"] == self.admin_account
        for tree in pages("/trees"):
            for version in range(1, tree["version"] + 1):
                get(f"/trees/{tree['id']}?version={version}")
        get("/trees/categories")
        get("/trees/search?q=fuzz")
        for session in pages("/sessions?scope=account"):
            get(f"/sessions/{session['id']}")
            list(pages(f"/sessions/{session['id']}/steps"))
            get(f"/sessions/{session['id']}/export?format=json")
            get(f"/sessions/{session['id']}/export?format=markdown")
        for status in ("open", "claimed", "released", "resolved"):
            for handoff in pages(f"/handoffs?status={status}"):
                get(f"/handoffs/{handoff['id']}")
        get("/handoffs/stats")
        get("/analytics/flowpilot/escalations?period=7d")
        for key in pages("/api-keys"):
            assert "secret" not in key
        get("/analytics/flowpilot/escalations/breakdown?period=7d&by=tree")
        get("/analytics/flowpilot/escalations/handoffs?period=7d")
        get("/analytics/flowpilot/escalations/series?period=7d")
        get("/analytics/business-hours")
        get("/analytics/flowpilot/escalations?period=7d&clock=business")
        get("/analytics/flowpilot/escalations/handoffs?period=7d&clock=business")
        return reads

    @property
    def admin_account(self) -> str:
        return self.ok("GET", "/auth/me")["account_id"]  # type: ignore[no-any-return]


# ---- the cases -----------------------------------------------------------------------------------------------

FORM = "application/x-www-form-urlencoded"
FORM_OPERATIONS = {("POST", f"{API}/auth/login")}


@dataclass
class Case:
    what: str
    path_params: dict[str, str]
    query: dict[str, str]
    body: bytes | None
    content_type: str = "json"


def form(fields: dict[str, str]) -> bytes:
    """A form body; values already percent-encoded where they hold what no text can (a surrogate's bytes)."""
    return "&".join(f"{k}={v if '%' in v else quote(v, safe='')}" for k, v in fields.items()).encode()


def _parameters(path: str, method: str) -> list[dict[str, Any]]:
    return OPENAPI["paths"][path][method.lower()].get("parameters", [])  # type: ignore[no-any-return]


def _valid_params(world: World, path: str, method: str) -> tuple[dict[str, str], dict[str, str]]:
    path_params, query = {}, {}
    for p in _parameters(path, method):
        if p["in"] == "path":
            path_params[p["name"]] = world.ids[p["name"]]
        elif p["in"] == "query" and p.get("required"):
            query[p["name"]] = {"q": "fuzz", "period": "7d", "by": "tree"}[p["name"]]
    return path_params, query


def field_cases(world: World, method: str, path: str) -> Iterator[Case]:
    """Each hostile value in each place: every field of the body, every parameter."""
    path_params, query = _valid_params(world, path, method)
    seed = world.seed(method, path)
    if (method, path) in FORM_OPERATIONS:
        for key in seed:
            for name, text in HOSTILE_TEXT.items():
                yield Case(f"form {key} = {name}", path_params, query, form({**seed, key: text}), FORM)
        yield Case("form body = JSON", path_params, query, encode(HOSTILE["nested 40"]), FORM)
    elif seed is not None:
        for loc in leaves(seed):
            for name, value in HOSTILE.items():
                yield Case(f"body{list(loc)} = {name}", path_params, query, encode(replaced(seed, loc, value)))
            yield Case(f"body{list(loc)} + extra key", path_params, query,
                       encode(replaced(seed, loc, {"\ud800": float("nan")})))
    for p in _parameters(path, method):
        for name, text in HOSTILE_TEXT.items():
            if p["in"] == "path":
                yield Case(f"{p['name']} = {name}", {**path_params, p["name"]: text}, query, encode(seed))
            elif p["in"] == "query":
                yield Case(f"?{p['name']} = {name}", path_params, {**query, p["name"]: text},
                           None if seed is None else encode(seed))
    if seed is None and method != "GET":  # a body where none is expected
        for name, value in HOSTILE.items():
            yield Case(f"unexpected body = {name}", path_params, query, encode(value))


def _hostile(name: str) -> Any:
    return HOSTILE[name]


_text = st.text(st.one_of(st.characters(), st.sampled_from(["\x00", "\ud800", "\udfff", "\ud83d", "\u0301"])),
                max_size=50)
_json = st.recursive(
    st.one_of(st.none(), st.booleans(), st.floats(), st.integers(), _text,
              st.sampled_from(sorted(HOSTILE)).map(_hostile)),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(_text, children, max_size=4),
    max_leaves=12,
)


def send(world: World, method: str, path: str, case: Case) -> httpx.Response:
    target = path
    for name, value in case.path_params.items():
        target = target.replace("{" + name + "}", value if "%" in value else quote(value, safe=""))
    if case.query:
        target += "?" + "&".join(f"{k}={v}" for k, v in case.query.items())
    return world.call(method, target, token=world.token_for(method, path), body=case.body,
                      content_type=case.content_type)


def check(response: httpx.Response, method: str, path: str, case: Case) -> None:
    assert response.status_code < 500, (method, path, case.what, response.status_code, response.text[:300])
    if response.status_code == 422:
        # A sentence and a code; the input's shape problems (or a tree's broken rules) listed under `errors`.
        answer = response.json()
        assert isinstance(answer["detail"], str) and answer["code"], (case.what, answer)
        assert all("input" not in error for error in answer.get("errors") or ()), (case.what, answer)


@pytest.fixture(scope="module")
def base_url(stack: Any) -> str:
    url: str = stack.urls["gateway"]
    with httpx.Client(base_url=url) as client:
        assert client.get("/openapi.json").json() == OPENAPI  # the running gateway serves this very document
    return url


@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=[f"{m} {p.removeprefix(API)}" for m, p in OPERATIONS])
def test_hostile_input_is_never_a_server_error_and_every_write_stays_readable(
    base_url: str, method: str, path: str
) -> None:
    with httpx.Client(base_url=base_url, timeout=60) as client:
        world = World.create(client)
        seed = world.seed(method, path)
        op = OPENAPI["paths"][path][method.lower()]
        assert ("requestBody" in op) == (seed is not None), "every operation with a body needs a valid seed here"
        # The valid request first: the fuzzer reaches the service (not a 401/403/404 everywhere).
        path_params, query = _valid_params(world, path, method)
        is_form = (method, path) in FORM_OPERATIONS
        body = None if seed is None else form(seed) if is_form else encode(seed)
        valid = send(world, method, path, Case("valid", path_params, query, body, FORM if is_form else "json"))
        assert valid.status_code < 300, (method, path, valid.status_code, valid.text[:300])

        cases = list(field_cases(world, method, path))
        # A few at a time: the cases of one operation are independent, and the stack serves them concurrently.
        with ThreadPoolExecutor(4) as pool:
            for case, response in zip(cases, pool.map(lambda c: send(world, method, path, c), cases), strict=True):
                check(response, method, path, case)

        @given(mutations=st.lists(st.tuples(st.integers(min_value=0), _json), min_size=1, max_size=3))
        @settings(max_examples=EXAMPLES, derandomize=True, database=None, deadline=None,
                  suppress_health_check=list(HealthCheck))
        def combined(mutations: list[tuple[int, Any]]) -> None:
            body = world.seed(method, path)
            what = f"combined {mutations!r:.200}"
            if is_form:
                fields = dict(body)
                for index, value in mutations:
                    text = value if isinstance(value, str) else json.dumps(value, allow_nan=True)
                    fields[sorted(fields)[index % len(fields)]] = quote(text.encode("utf-8", "surrogatepass"))
                case = Case(what, path_params, query, form(fields), FORM)
            else:
                if body is not None:
                    for index, value in mutations:
                        places = list(leaves(body))
                        body = replaced(body, places[index % len(places)], value)
                case = Case(what, path_params, query, None if body is None else encode(body))
            check(send(world, method, path, case), method, path, case)

        combined()
        assert len(cases) >= len(HOSTILE_TEXT) or not (seed or _parameters(path, method))
        assert world.read_everything() >= 10
