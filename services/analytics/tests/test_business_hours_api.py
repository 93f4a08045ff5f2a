"""Business hours through the gateway on real Kafka and PostgreSQL: the schedule's routes and `clock=business` on
every analytics answer, checked against a minute-by-minute count over a history that crosses a DST change and a
holiday."""

from __future__ import annotations

import csv
import io
import uuid
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from random import Random
from typing import Any

import pytest

from analytics import deps
from rf_contracts import Event

# Sibling test modules' helpers, imported by their path from the repository root (pytest's `pythonpath`).
from services.analytics.tests.test_business_hours import brute_force_seconds
from services.analytics.tests.test_insights import deliver, parse_item

# The request's instant, pinned (the service's `now` dependency) so the windows hold a known DST change: New York
# falls back on Sunday 2026-11-01 at 02:00 local (06:00 UTC), and Friday 2026-10-30 is a holiday.
NOW = datetime(2026, 11, 4, 15, 0, tzinfo=UTC)
ZONE = "America/New_York"
WEEK = {
    "mon": [["09:00", "12:00"], ["13:00", "17:30"]],
    "tue": [["09:00", "17:00"]],
    "wed": [["09:00", "17:00"]],
    "thu": [["09:00", "17:00"]],
    "fri": [["09:00", "17:00"]],
    "sat": [],
    # Around the fall-back: 01:00-02:00 happens twice that night and both hours are open.
    "sun": [["00:30", "03:00"]],
}
HOLIDAYS = ["2026-10-30"]
SCHEDULE = {"timezone": ZONE, "week": WEEK, "holidays": HOLIDAYS}
DST_END = datetime(2026, 11, 1, 6, 0, tzinfo=UTC)
HOLIDAY_START, HOLIDAY_END = datetime(2026, 10, 30, 4, 0, tzinfo=UTC), datetime(2026, 10, 31, 4, 0, tzinfo=UTC)


def business(start: datetime, end: datetime | None, schedule: dict[str, Any] = SCHEDULE) -> float | None:
    """Section 7's words: the seconds of [start, end] inside open hours, counted minute by minute."""
    if end is None:
        return None
    holidays = {date.fromisoformat(d) for d in schedule["holidays"]}
    return float(brute_force_seconds(schedule["timezone"], schedule["week"], holidays, start, end))


@pytest.fixture(scope="module", autouse=True)
def pinned_now(env: Any) -> Any:
    env.running.app.dependency_overrides[deps.now] = lambda: NOW
    yield
    env.running.app.dependency_overrides.pop(deps.now, None)


def minute(rng: Random, lo: datetime, hi: datetime) -> datetime:
    return lo + timedelta(minutes=rng.randrange(int((hi - lo).total_seconds() // 60)))


def business_history(acc: Any, rng: Random) -> list[Event]:
    """Whole-minute times only: claims over the last 80 days, most in the week around the DST end and the holiday,
    re-claims and releases, human and ai steps before and after claims, some never acted on; two trees, priorities."""
    trees = [(uuid.uuid4(), "Printer", "hardware"), (uuid.uuid4(), "VPN", None)]
    events: list[Event] = []
    for i in range(40):
        session, handoff = uuid.uuid4(), uuid.uuid4()
        tree_id, title, category = trees[i % 2]
        recent = i % 4 != 0
        lo = datetime(2026, 10, 28, tzinfo=UTC) if recent else NOW - timedelta(days=80)
        t = minute(rng, lo, NOW - timedelta(hours=1))
        if i % 7 != 6:  # some sessions' session-started never arrives: the null tree and category
            events.append(acc.started(session, tree_id, t - timedelta(minutes=30), title=title, category=category))
        events.append(acc.requested(handoff, session, t - timedelta(minutes=20), priority=rng.choice(["low", "high"])))
        version = 1
        for op in rng.choice([["claim"], ["claim"], ["claim", "claim"], ["claim", "release"]]):
            version += 1
            t += timedelta(minutes=rng.randint(1, 40))
            if op == "claim":
                events.append(acc.claimed(handoff, session, t, version=version))
            else:
                events.append(acc.released(handoff, session, t, version=version))
        if i % 5 == 4:
            continue  # never acted on: its waiting time counts up to now
        for _ in range(rng.randint(1, 3)):
            at = t + timedelta(minutes=rng.choice([-30, 0, 7, 300, 1500, 3000, 5000]))
            events.append(acc.step(session, at, actor_type=rng.choice(["human", "ai"])))
    return events


def reference(
    events: list[Event], acc: Any, insights: Any, start: datetime, end: datetime, schedule: dict[str, Any] = SCHEDULE
) -> list[Any]:
    """The counted handoffs (section 5/7's own reading), each delta replaced by its business seconds."""
    counted = insights.counted(events, acc, start, end)
    return [replace(c, delta=business(c.claimed_at, c.first_action_at, schedule)) for c in counted]


def by_actor(
    events: list[Event], counted: list[Any], actor: str, insights: Any, schedule: dict[str, Any] = SCHEDULE
) -> list[float | None]:
    return [business(c.claimed_at, at, schedule) for c, at in insights.first_steps(events, counted, actor)]


def reference_items(
    counted: list[Any], order: str, insights: Any, schedule: dict[str, Any] = SCHEDULE
) -> list[dict[str, Any]]:
    """The drill-down rows with an open claim's waiting time in open seconds up to NOW."""
    return insights.items(counted, order, NOW, waiting=lambda claimed_at: business(claimed_at, NOW, schedule))


async def put_schedule(gateway: Any, account_id: uuid.UUID, body: dict[str, Any], role: str = "admin") -> Any:
    return await gateway.client.put(
        "/api/v1/analytics/business-hours", json=body, headers=gateway.headers(account_id, role)
    )


async def get_schedule(gateway: Any, account_id: uuid.UUID, role: str = "engineer") -> Any:
    return await gateway.client.get("/api/v1/analytics/business-hours", headers=gateway.headers(account_id, role))


async def test_every_answer_in_business_hours_matches_a_minute_by_minute_count(env, gateway, insights) -> None:
    rng = Random("business-hours")
    acc = await gateway.account()
    events = business_history(acc, rng)
    await deliver(env, events, rng)
    r = await put_schedule(gateway, acc.account_id, SCHEDULE)
    assert r.status_code == 200, r.text
    version = r.json()["version"]

    counted_30 = reference(events, acc.account_id, insights, NOW - timedelta(days=30), NOW)
    # The history really crosses the DST end and the holiday: spans of counted handoffs contain both.
    spans = [(c.claimed_at, c.first_action_at or NOW) for c in counted_30]
    assert any(a < DST_END < b for a, b in spans)
    assert any(a < HOLIDAY_START and HOLIDAY_END < b for a, b in spans)
    assert sum(c.delta is not None and c.delta > 0 for c in counted_30) >= 5
    assert sum(c.first_action_at is None for c in counted_30) >= 3

    await check_business_answers(gateway, insights, acc.account_id, events, version)


async def check_business_answers(
    gateway: Any,
    insights: Any,
    account_id: uuid.UUID,
    events: list[Event],
    version: int,
    schedule: dict[str, Any] = SCHEDULE,
) -> None:
    """Every clock=business answer (section 5 at each period, every breakdown, both drill-down orders page by page
    and as CSV, the series in two zones) against the minute-by-minute count with `schedule`, named `version`."""
    counted_30 = reference(events, account_id, insights, NOW - timedelta(days=30), NOW, schedule)
    # Section 5 answer, every period.
    for period, days in (("7d", 7), ("30d", 30), ("90d", 90)):
        body = await gateway.ok("", account_id, period=period, clock="business")
        assert (body["clock"], body["schedule_version"]) == ("business", version)
        assert datetime.fromisoformat(body["window_end"]) == NOW
        counted = reference(events, account_id, insights, NOW - timedelta(days=days), NOW, schedule)
        assert body["n_handoffs_claimed"] == len(counted)
        insights.assert_stats_match(body, _stats([c.delta for c in counted if c.delta is not None]))
        for actor in ("human", "ai"):
            expected = _stats(by_actor(events, counted, actor, insights, schedule))
            insights.assert_stats_match(body["by_first_actor"][actor], expected)
        wall = await gateway.ok("", account_id, period=period)
        assert (wall["clock"], wall["schedule_version"]) == ("wall", None)
        assert body["avg_seconds"] < wall["avg_seconds"]  # nights, weekends and the holiday are not counted
        assert body["excluded"] == wall["excluded"]
        assert body["data_as_of"] == wall["data_as_of"]

    # Breakdown, every grouping.
    for by in ("tree", "category", "priority", "claimer"):
        body = await gateway.ok("/breakdown", account_id, period="30d", by=by, clock="business")
        assert (body["clock"], body["schedule_version"]) == ("business", version)
        insights.assert_groups_match(body["groups"], insights.breakdown(counted_30, by))

    # Drill-down: both orders, every page, and the CSV.
    for order in ("slowest", "newest"):
        want = reference_items(counted_30, order, insights, schedule)
        got: list[dict[str, Any]] = []
        for offset in range(0, len(want) + 1, 7):
            page = await gateway.ok(
                "/handoffs", account_id, period="30d", order=order, limit=7, offset=offset, clock="business"
            )
            assert (page["clock"], page["schedule_version"], page["total"]) == ("business", version, len(want))
            got += page["items"]
        assert [parse_item(g) for g in got] == want
        r = await gateway.get("/handoffs", account_id, period="30d", order=order, format="csv", clock="business")
        assert r.status_code == 200, r.text
        rows = list(csv.DictReader(io.StringIO(r.text)))
        assert [row["handoff_id"] for row in rows] == [str(w["handoff_id"]) for w in want]
        for row, w in zip(rows, want, strict=True):
            for key in ("delta_seconds", "waiting_seconds"):
                assert (float(row[key]) if row[key] else None) == w[key], (key, row, w)

    # Series in the schedule's zone and another, with the histogram of business deltas.
    for tz in (ZONE, "Asia/Tokyo"):
        body = await gateway.ok("/series", account_id, period="30d", tz=tz, clock="business")
        assert (body["clock"], body["schedule_version"]) == ("business", version)
        expected = insights.series(counted_30, NOW - timedelta(days=30), NOW, tz)
        assert [d["date"] for d in body["days"]] == [d["date"] for d in expected["days"]]
        for got_day, want_day in zip(body["days"], expected["days"], strict=True):
            assert got_day["n_handoffs_claimed"] == want_day["n_handoffs_claimed"], (got_day, want_day)
            insights.assert_stats_match(got_day, want_day)
        assert body["histogram"] == expected["histogram"]



def _stats(deltas: list[Any]) -> dict[str, Any]:
    values = sorted(deltas)
    return {
        "n_handoffs_with_action": len(values),
        "avg_seconds": sum(values) / len(values) if values else None,
        "median_seconds": insights_percentile(values, 0.5) if values else None,
        "p95_seconds": insights_percentile(values, 0.95) if values else None,
    }


def insights_percentile(values: list[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default), written again here from the words."""
    rank = (len(values) - 1) * q
    low = int(rank)
    high = min(low + 1, len(values) - 1)
    return values[low] + (rank - low) * (values[high] - values[low])


async def test_a_schedule_change_applies_to_the_next_answer_with_its_version(env, gateway, history) -> None:
    acc = await gateway.account()
    session, handoff = uuid.uuid4(), uuid.uuid4()
    claimed_at = datetime(2026, 11, 2, 13, 0, tzinfo=UTC)  # Monday 08:00 in New York
    action_at = claimed_at + timedelta(hours=5)  # 13:00 local
    await env.publish([acc.claimed(handoff, session, claimed_at, version=2), acc.step(session, action_at)])
    await env.settle()

    first = await put_schedule(gateway, acc.account_id, SCHEDULE)
    assert first.status_code == 200, first.text
    assert first.json()["version"] == 1
    body = await gateway.ok("", acc.account_id, period="7d", clock="business")
    assert (body["avg_seconds"], body["schedule_version"]) == (business(claimed_at, action_at), 1)
    assert body["avg_seconds"] == 3 * 3600.0  # 09:00-12:00 (lunch 12:00-13:00 closed)

    changed = {**SCHEDULE, "week": {**WEEK, "mon": [["08:00", "18:00"]]}}
    second = await put_schedule(gateway, acc.account_id, changed)
    assert second.status_code == 200, second.text
    assert second.json()["version"] == 2
    body = await gateway.ok("", acc.account_id, period="7d", clock="business")
    assert (body["avg_seconds"], body["schedule_version"]) == (5 * 3600.0, 2)
    assert body["avg_seconds"] == business(claimed_at, action_at, changed)
    # The wall clock is untouched by any of it.
    wall = await gateway.ok("", acc.account_id, period="7d")
    assert (wall["avg_seconds"], wall["clock"], wall["schedule_version"]) == (5 * 3600.0, "wall", None)

    read = await get_schedule(gateway, acc.account_id)
    assert read.status_code == 200, read.text
    stored = read.json()
    assert (stored["version"], stored["timezone"], stored["holidays"]) == (2, ZONE, HOLIDAYS)
    assert stored["week"]["mon"] == [["08:00", "18:00"]] and stored["week"]["sat"] == []
    assert datetime.fromisoformat(stored["updated_at"]).tzinfo is not None


async def test_roles_on_the_schedule(env, gateway) -> None:
    acc = await gateway.account()
    for role in ("viewer", "engineer"):
        r = await put_schedule(gateway, acc.account_id, SCHEDULE, role=role)
        assert r.status_code == 403, (role, r.text)
    r = await get_schedule(gateway, acc.account_id, role="viewer")
    assert r.status_code == 403, r.text
    r = await get_schedule(gateway, acc.account_id, role="engineer")
    assert (r.status_code, r.json()["code"]) == (404, "business_hours_not_set"), r.text
    assert (await put_schedule(gateway, acc.account_id, SCHEDULE)).status_code == 200
    for role in ("engineer", "admin"):
        r = await get_schedule(gateway, acc.account_id, role=role)
        assert (r.status_code, r.json()["version"]) == (200, 1), r.text
    # Tenancy: another account has no schedule for all that.
    other = await gateway.account()
    r = await get_schedule(gateway, other.account_id)
    assert r.status_code == 404, r.text


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"week": {"mon": [["09:00", "12:00"], ["11:00", "13:00"]]}}, "overlap"),
        ({"week": {"tue": [["17:00", "09:00"]]}}, "inverted"),
        ({"week": {"wed": [["10:00", "10:00"]]}}, "empty or inverted"),
        ({"timezone": "Mars/Olympus_Mons"}, "unknown time zone"),
        ({"holidays": ["2026-02-30"]}, "not a date"),
    ],
)
async def test_an_invalid_schedule_is_refused_with_its_reason(env, gateway, change, reason) -> None:
    acc = await gateway.account()
    r = await put_schedule(gateway, acc.account_id, {**SCHEDULE, **change})
    assert r.status_code == 422, r.text
    assert r.json()["code"] == "invalid_business_hours" and reason in r.json()["detail"], r.text
    # Nothing was stored.
    assert (await get_schedule(gateway, acc.account_id)).status_code == 404


@pytest.mark.parametrize(
    "body",
    [
        {**SCHEDULE, "week": {"mon": [["9:00", "17:00"]]}},  # not HH:MM
        {**SCHEDULE, "week": {"monday": [["09:00", "17:00"]]}},  # unknown weekday
        {**SCHEDULE, "holidays": ["25/12/2026"]},
        {"week": WEEK},  # no timezone
    ],
)
async def test_a_malformed_schedule_is_refused(env, gateway, body) -> None:
    acc = await gateway.account()
    r = await put_schedule(gateway, acc.account_id, body)
    assert r.status_code == 422, r.text


ENDPOINTS = [
    ("", {}),
    ("/breakdown", {"by": "tree"}),
    ("/handoffs", {}),
    ("/handoffs", {"format": "csv"}),
    ("/series", {"tz": "Europe/Paris"}),
]


@pytest.mark.parametrize(("path", "params"), ENDPOINTS)
async def test_clock_business_without_a_schedule_is_409_and_a_bad_clock_422(env, gateway, path, params) -> None:
    acc = await gateway.account()
    r = await gateway.get(path, acc.account_id, period="7d", clock="business", **params)
    assert (r.status_code, r.json()["code"]) == (409, "business_hours_not_set"), r.text
    for bad in ("calendar", "Business", ""):
        r = await gateway.get(path, acc.account_id, period="7d", clock=bad, **params)
        assert r.status_code == 422, (bad, r.text)
    r = await gateway.get(path, acc.account_id, period="7d", clock="business", role="viewer", **params)
    assert r.status_code == 403, r.text
    r = await gateway.get(path, acc.account_id, period="7d", clock="wall", **params)
    assert r.status_code == 200, r.text


@pytest.mark.parametrize(("path", "params"), ENDPOINTS + [("/breakdown", {"by": b}) for b in ("category", "priority",
                                                                                                  "claimer")])
async def test_clock_business_over_an_empty_window_answers_empty(env, gateway, path, params) -> None:
    # Found by schemathesis: a breakdown by tree of an account with a schedule and no handoff was a 500.
    acc = await gateway.account()
    assert (await put_schedule(gateway, acc.account_id, SCHEDULE)).status_code == 200
    r = await gateway.get(path, acc.account_id, period="7d", clock="business", **params)
    assert r.status_code == 200, r.text
    if params.get("format") == "csv":
        assert len(r.text.strip().splitlines()) == 1  # the header row only
        return
    body = r.json()
    assert body.get("schedule_version", 1) == 1
    if path == "/breakdown":
        assert body["groups"] == []
    elif path == "/handoffs":
        assert (body["items"], body["total"]) == ([], 0)
    elif path == "/series":
        assert all(day["n_handoffs_claimed"] == 0 for day in body["days"]) and sum(body["histogram"]["counts"]) == 0
    else:
        assert (body["n_handoffs_claimed"], body["avg_seconds"]) == (0, None)
