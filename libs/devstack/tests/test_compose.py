"""make compose-test's own reasoning: the metric it expects is PostgreSQL's, and it starts compose.yaml in order."""

from __future__ import annotations

from typing import Any

import asyncpg
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
