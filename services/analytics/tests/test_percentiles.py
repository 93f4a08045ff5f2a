"""The section 5 answer's statistics are computed in the service from the deltas PostgreSQL sends as a binary array:
they must be PostgreSQL's count, avg and `percentile_cont` to the last bit, whatever the values, their order and
count."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import numpy as np
import pytest
import pytest_asyncio

from analytics.domain import DeltaStats, delta_stats
from analytics.repository.escalations import float8_array
from rf_devstack.postgres import asyncpg_dsn


def delta_sets() -> list[list[float]]:
    """Microsecond deltas as the read model stores them, of every size class where the closest ranks fall
    differently (1, 2, 21 values: 0.95 * 20 is a whole rank), with ties, in any order, and a few odd floats."""
    rng = random.Random(20261129)
    sets: list[list[float]] = [[0.0], [0.361506], [0.361506, 0.803408], [1.1, 1.1, 2.2], [5e-324, 3.1e9, 0.1]]
    for n in (3, 20, 21, 40, 41, 101, 1_000, 4_999, 10_000):
        sets.append([round(rng.expovariate(1 / 1800), 6) for _ in range(n)])
        sets.append([float(rng.choice((0, 1, 1, 60, 3600))) for _ in range(n)])  # many ties
        sets.append(sorted((round(rng.uniform(0, 86_400), 6) for _ in range(n)), reverse=True))
    return sets


@pytest_asyncio.fixture
async def conn(make_database: Any) -> AsyncIterator[asyncpg.Connection[Any]]:
    connection = await asyncpg.connect(asyncpg_dsn(make_database("percentiles")))
    try:
        yield connection
    finally:
        await connection.close()


async def test_the_statistics_are_postgresqls_to_the_last_bit(conn: asyncpg.Connection[Any]) -> None:
    for deltas in delta_sets():
        row = await conn.fetchrow(
            "SELECT count(x) AS n, avg(x) AS avg, percentile_cont(ARRAY[0.5, 0.95]) WITHIN GROUP (ORDER BY x) AS p,"
            " array_send(array_agg(x)) AS sent FROM unnest($1::float8[]) AS t(x)",
            deltas,
        )
        values = float8_array(row["sent"])
        assert values.tolist() == deltas  # every value, exactly, in the order PostgreSQL aggregated them
        assert delta_stats(values) == DeltaStats(row["n"], row["avg"], *row["p"]), len(deltas)
        assert delta_stats(deltas) == delta_stats(values)  # from any iterable of floats as well


async def test_no_values_are_no_percentiles(conn: asyncpg.Connection[Any]) -> None:
    sent = await conn.fetchval(
        "SELECT array_send(array_agg(x) FILTER (WHERE x IS NOT NULL)) FROM unnest($1::float8[]) AS t(x)", []
    )
    empty = await conn.fetchval("SELECT array_send('{}'::float8[])")
    assert sent is None
    assert delta_stats(float8_array(sent)) == DeltaStats(0, None, None, None)
    assert delta_stats(float8_array(empty)) == DeltaStats(0, None, None, None)


async def test_an_array_it_cannot_read_is_an_error_not_a_wrong_answer(conn: asyncpg.Connection[Any]) -> None:
    with_null = await conn.fetchval("SELECT array_send(ARRAY[1.5, NULL]::float8[])")
    of_ints = await conn.fetchval("SELECT array_send(ARRAY[1, 2]::int8[])")
    two_dims = await conn.fetchval("SELECT array_send(ARRAY[[1.5], [2.5]]::float8[])")
    whole = await conn.fetchval("SELECT array_send(ARRAY[1.5, 2.5]::float8[])")
    assert float8_array(whole).tolist() == [1.5, 2.5]
    for sent in (with_null, of_ints, two_dims, whole[:-12], whole + whole[-12:]):  # one value fewer, one more
        with pytest.raises(ValueError, match="not a float8"):
            float8_array(sent)


def test_the_percentiles_do_not_depend_on_the_order_the_values_came_in() -> None:
    rng = np.random.default_rng(7)
    values = rng.exponential(1800, 2_001).round(6)
    expected = delta_stats(np.sort(values))
    for _ in range(5):
        shuffled = delta_stats(rng.permutation(values))
        assert (shuffled.n_with_action, shuffled.median_s, shuffled.p95_s) == (
            expected.n_with_action, expected.median_s, expected.p95_s
        )
