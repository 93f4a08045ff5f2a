"""make compose-test's own reasoning: the metric it expects is PostgreSQL's, and it starts compose.yaml in order."""

from __future__ import annotations

from typing import Any

import asyncpg
import httpx
import pytest
import yaml

from rf_devstack import compose
from rf_devstack._paths import repo_root
from rf_devstack.postgres import asyncpg_dsn

# Deltas as the API's microsecond timestamps give them, in awkward binary fractions and orders.
DELTA_SETS = [
    [0.361506],
    [0.361506, 0.803408],
    [0.803408, 0.361506, 0.000001, 12.5, 3.141593],
    [1.1, 1.1, 2.2],
    [86399.999999, 0.1, 7.7, 0.3, 0.2, 19.000001, 4.4],
]


@pytest.mark.parametrize("deltas", DELTA_SETS)
async def test_the_expected_metric_is_what_postgresql_computes(make_database: Any, deltas: list[float]) -> None:
    # Analytics answers avg() and percentile_cont() over float8 deltas: the test must agree to the last bit.
    conn = await asyncpg.connect(asyncpg_dsn(make_database("composemetric")))
    try:
        row = await conn.fetchrow(
            "SELECT count(x) AS n, avg(x) AS avg, percentile_cont(ARRAY[0.5, 0.95]) WITHIN GROUP (ORDER BY x) AS p"
            " FROM unnest($1::float8[]) AS t(x)",
            deltas,
        )
    finally:
        await conn.close()
    assert compose.expected_metric(deltas) == {
        "n_handoffs_claimed": row["n"], "n_handoffs_with_action": row["n"],
        "avg_seconds": row["avg"], "median_seconds": row["p"][0], "p95_seconds": row["p"][1],
    }


def test_every_service_starts_after_what_it_depends_on() -> None:
    services = yaml.safe_load((repo_root() / "compose.yaml").read_text())["services"]
    order = compose.dependency_order(services)
    assert sorted(order) == sorted(services)
    for name, spec in services.items():
        for dependency in compose.depends_on(spec):
            assert order.index(dependency) < order.index(name), (dependency, name)


def test_a_dependency_cycle_is_an_error_not_a_hang() -> None:
    services = {"a": {"depends_on": {"b": {"condition": "service_healthy"}}}, "b": {"depends_on": ["a"]}}
    with pytest.raises(compose.ComposeTestError, match="cycle"):
        compose.dependency_order(services)


def test_without_an_engine_it_fails_and_says_how_to_get_one(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    monkeypatch.setattr(compose, "docker_engine_available", lambda: False)
    monkeypatch.setenv("PATH", str(tmp_path))  # no podman (nor docker) to find
    with pytest.raises(compose.ComposeTestError, match=r"apt-get install -y podman runc debootstrap"):
        compose.find_engine(repo_root())


def test_a_post_with_an_unknown_outcome_is_sent_again_with_the_same_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(compose.Client, "RETRY_AFTER_S", 0.0)
    seen: list[str | None] = []
    answers = iter([
        httpx.Response(504, json={"code": "upstream_timeout"}),
        httpx.Response(409, json={"code": "idempotency_in_progress"}),
        httpx.Response(201, json={"id": "t1"}),
    ])

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("idempotency-key"))
        return next(answers)

    with httpx.Client(transport=httpx.MockTransport(handler), base_url="http://gateway") as http:
        assert compose.Client(http).call("POST", "/trees", 201, json={}) == {"id": "t1"}
    assert len(seen) == 3 and seen[0] is not None and len(set(seen)) == 1


def test_a_post_that_never_answers_fails_and_other_errors_are_not_retried(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(compose.Client, "RETRY_AFTER_S", 0.0)
    calls: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request.method)
        return httpx.Response(504 if request.method == "POST" and request.url.path.endswith("/slow") else 500, json={})

    with httpx.Client(transport=httpx.MockTransport(handler), base_url="http://gateway") as http:
        client = compose.Client(http)
        with pytest.raises(compose.ComposeTestError, match="expected 201, got 504"):
            client.call("POST", "/slow", 201, json={})
        assert len(calls) == compose.Client.POST_ATTEMPTS
        calls.clear()
        with pytest.raises(compose.ComposeTestError, match="expected 201, got 500"):
            client.call("POST", "/broken", 201, json={})
        with pytest.raises(compose.ComposeTestError, match="expected 200, got 500"):
            client.call("GET", "/slow")
        assert calls == ["POST", "GET"]


def test_the_scenario_waits_until_each_service_answers_through_the_gateway(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    now = [0.0]  # time passes only while the client sleeps between tries
    monkeypatch.setattr(compose.time, "monotonic", lambda: now[0])
    monkeypatch.setattr(compose.time, "sleep", lambda s: now.__setitem__(0, now[0] + s))
    asked: list[str] = []
    # sessions: two timeouts first, then an answer; analytics at once.
    answers = {"/api/v1/trees": [504, 504, 200], "/api/v1/analytics/x": [200]}

    def handler(request: httpx.Request) -> httpx.Response:
        asked.append(request.url.path)
        assert request.headers["authorization"] == "Bearer tok"
        return httpx.Response(answers[request.url.path].pop(0), json={})

    with httpx.Client(transport=httpx.MockTransport(handler), base_url="http://gateway") as http:
        client = compose.Client(http)
        client.token = "tok"
        client.wait_reachable({"sessions": "/trees", "analytics": "/analytics/x"}, timeout=60)
    assert asked == ["/api/v1/trees"] * 3 + ["/api/v1/analytics/x"]
    out = capsys.readouterr().out
    assert "sessions answered through the gateway after 2s (last refusal: 504 {})" in out
    assert "analytics answered" not in out


def test_a_service_that_never_answers_through_the_gateway_fails_the_run(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(compose.time, "sleep", lambda _: None)

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(504, json={"code": "upstream_timeout"})

    with httpx.Client(transport=httpx.MockTransport(handler), base_url="http://gateway") as http:
        with pytest.raises(compose.ComposeTestError, match=r"sessions to answer through the gateway\nlast: 504"):
            compose.Client(http).wait_reachable({"sessions": "/trees"}, timeout=0)


def test_a_gateway_that_drops_the_connection_is_waited_for_as_well(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(compose.time, "sleep", lambda _: None)
    answers: list[httpx.Response | Exception] = [httpx.RemoteProtocolError("dropped"), httpx.Response(200, json={})]

    def handler(request: httpx.Request) -> httpx.Response:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    with httpx.Client(transport=httpx.MockTransport(handler), base_url="http://gateway") as http:
        compose.Client(http).wait_reachable({"sessions": "/trees"}, timeout=60)
    assert answers == []
