"""Property: random histories, delivered through real Kafka shuffled and duplicated, give the documented numbers
(section 5, and section 7's breakdown and daily series), on the wall clock and in business hours."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from random import Random
from typing import Any
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from analytics.business_hours import WEEKDAYS
from analytics.recompute import BusinessRecompute
from rf_contracts import Event

# A sibling test module's schedule, imported by its path from the repository root (pytest's `pythonpath`).
from services.analytics.tests.test_business_hours_api import HOLIDAYS, SCHEDULE, WEEK, ZONE


@dataclass(frozen=True)
class HandoffPlan:
    days_ago: float
    ops: tuple[tuple[str, float], ...]  # ("claim" | "release", minutes after the previous change)
    resolved: bool


@dataclass(frozen=True)
class StepPlan:
    anchor: int | None  # index of a claim of the session to place the step around, None: anywhere
    how: str  # "exact" | "just_before" | "around" | "anywhere"
    seconds: float
    actor_type: str  # "human" | "ai"


@dataclass(frozen=True)
class SessionPlan:
    handoffs: tuple[HandoffPlan, ...]
    steps: tuple[StepPlan, ...]
    tree: int | None  # index into the account's trees; None: its session-started event never arrives
    priority: str
    claimer: int  # index into the account's claimers


handoff_plans = st.builds(
    HandoffPlan,
    days_ago=st.one_of(st.sampled_from([0.01, 3.0, 6.99, 7.01, 29.5, 30.5, 89.0, 91.0]), st.floats(0.001, 100)),
    ops=st.lists(
        st.tuples(st.sampled_from(["claim", "claim", "release"]), st.floats(0.5, 120)), min_size=1, max_size=4
    ).map(tuple),
    resolved=st.booleans(),
)
step_plans = st.builds(
    StepPlan,
    anchor=st.one_of(st.none(), st.integers(0, 5)),
    how=st.sampled_from(["exact", "just_before", "around", "around", "anywhere"]),
    seconds=st.floats(-3600, 3 * 3600),
    actor_type=st.sampled_from(["human", "ai"]),
)
session_plans = st.builds(
    SessionPlan,
    handoffs=st.lists(handoff_plans, max_size=2).map(tuple),
    steps=st.lists(step_plans, max_size=5).map(tuple),
    tree=st.one_of(st.none(), st.integers(0, 2)),
    priority=st.sampled_from(["low", "normal", "high", "urgent"]),
    claimer=st.integers(0, 2),
)
account_plans = st.lists(st.lists(session_plans, min_size=1, max_size=3), min_size=1, max_size=3)


def build_events(history, plans: list[list[SessionPlan]], now: datetime) -> tuple[list[Event], list[uuid.UUID]]:
    """Turn plans into the events the services would have published: versions grow by one per change."""
    events: list[Event] = []
    accounts = []
    for account_plan in plans:
        acc = history()
        accounts.append(acc.account_id)
        # Three trees (the last without a category) and three claimers per account.
        trees = [(uuid.uuid4(), f"tree {i}", ["hardware", "network", None][i]) for i in range(3)]
        claimers = [uuid.uuid4() for _ in range(3)]
        for session_plan in account_plan:
            session = uuid.uuid4()
            claim_times: list[datetime] = []
            if session_plan.tree is not None:
                tree_id, title, category = trees[session_plan.tree]
                first = min((h.days_ago for h in session_plan.handoffs), default=1.0)
                started = now - timedelta(days=first, minutes=1)
                events.append(acc.started(session, tree_id, started, title=title, category=category))
            for plan in session_plan.handoffs:
                handoff = uuid.uuid4()
                t = now - timedelta(days=plan.days_ago)
                events.append(acc.requested(handoff, session, t, priority=session_plan.priority))
                version = 1
                for op, minutes in plan.ops:
                    t += timedelta(minutes=minutes)
                    version += 1
                    if op == "claim":
                        events.append(
                            acc.claimed(handoff, session, t, version=version, by=claimers[session_plan.claimer])
                        )
                        claim_times.append(t)
                    else:
                        events.append(acc.released(handoff, session, t, version=version))
                if plan.resolved:
                    events.append(acc.resolved(handoff, session, t + timedelta(minutes=1), version=version + 1))
            for step in session_plan.steps:
                if step.how == "anywhere" or step.anchor is None or not claim_times:
                    at = now - timedelta(days=100) * (abs(step.seconds) / (3 * 3600))
                else:
                    claim = claim_times[step.anchor % len(claim_times)]
                    at = {
                        "exact": claim,
                        "just_before": claim - timedelta(microseconds=1),
                        "around": claim + timedelta(seconds=step.seconds),
                    }[step.how]
                events.append(acc.step(session, at, actor_type=step.actor_type))
    return events, accounts


PERIODS = {"7d": timedelta(days=7), "30d": timedelta(days=30), "90d": timedelta(days=90)}


async def section_7(env, account_id: uuid.UUID, path: str, **params: str) -> dict[str, Any]:
    r = await env.running.client.get(
        f"/api/v1/analytics/flowpilot/escalations{path}", params=params, headers=env.caller(account_id).headers
    )
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def assert_series_matches(
    insights,
    events,
    account_id,
    series,
    before,
    after,
    period: timedelta,
    tz: str,
    reprice: Callable[[list[Any]], list[Any]] = list,
) -> None:
    """The series answers for one instant between before and after: it matches the reference at one of them
    (`reprice`: the counted handoffs with their deltas in business seconds)."""
    candidates = []
    for t in (before, after):
        counted = reprice(insights.counted(events, account_id, t - period, t))
        candidates.append(insights.series(counted, t - period, t, tz))
    dates = [d["date"] for d in series["days"]]
    want = next((c for c in candidates if [d["date"] for d in c["days"]] == dates), None)
    assert want is not None, (dates, candidates)
    assert series["histogram"] == want["histogram"], (series, want)
    for got, exp in zip(series["days"], want["days"], strict=True):
        assert got["n_handoffs_claimed"] == exp["n_handoffs_claimed"], (got, exp)
        insights.assert_stats_match(got, exp)


@settings(
    max_examples=15,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture, HealthCheck.data_too_large],
)
@given(
    plans=account_plans,
    rng=st.randoms(use_true_random=False),
    waves=st.integers(1, 3),
    dup_rate=st.floats(0, 0.5),
    by=st.sampled_from(["tree", "category", "priority", "claimer"]),
    tz=st.sampled_from(["UTC", "America/New_York", "Asia/Kolkata", "Australia/Lord_Howe", "Pacific/Kiritimati"]),
)
async def test_any_delivery_order_and_duplicates_give_the_spec_numbers(
    env, history, spec, insights, plans, rng: Random, waves: int, dup_rate: float, by: str, tz: str
) -> None:
    events, accounts = build_events(history, plans, datetime.now(UTC))
    delivered = events + [e for e in events if rng.random() < dup_rate]
    rng.shuffle(delivered)
    # Waves delivered one after another (each consumed before the next) force cross-batch orders:
    # a step applied in an earlier transaction than its claim, a stale version after a newer one.
    cuts = sorted(rng.randrange(len(delivered) + 1) for _ in range(waves - 1))
    for lo, hi in zip([0, *cuts], [*cuts, len(delivered)], strict=True):
        await env.publish(delivered[lo:hi])
        await env.settle()
    for account_id in accounts:
        for period in ("7d", "30d", "90d"):
            answer = await env.metric(account_id, period)
            start, end = spec.window_of(answer)
            spec.assert_matches(answer, spec.reference(events, account_id, start, end))
            # Section 7 over the same history: a breakdown and the daily series with its histogram.
            breakdown = await section_7(env, account_id, "/breakdown", period=period, by=by)
            start, end = spec.window_of(breakdown)
            insights.assert_groups_match(
                breakdown["groups"], insights.breakdown(insights.counted(events, account_id, start, end), by)
            )
            before = datetime.now(UTC)
            series = await section_7(env, account_id, "/series", period=period, tz=tz)
            after = datetime.now(UTC)
            assert_series_matches(insights, events, account_id, series, before, after, PERIODS[period], tz)

    # In business hours: a schedule per account, the answers checked whatever the recompute loop has priced so far
    # (the service's loop runs), then again after a pass of our own has priced everything.
    for account_id in accounts:
        r = await env.running.client.put(
            "/api/v1/analytics/business-hours", json=SCHEDULE, headers=env.caller(account_id, "admin").headers
        )
        assert r.status_code == 200, r.text
    recompute = BusinessRecompute(env.running.app.state.runtime.db, service="analytics", interval_s=3600, batch_size=3)
    for _ in range(2):
        for account_id in accounts:
            await assert_business_answers(env, insights, events, account_id, by, tz)
        await recompute.run_once()


# The business-hours tests' schedule: whole minutes, a holiday and open hours across a DST change, in the zone that
# the histories' DST changes cross.
_ZONE = ZoneInfo(ZONE)
_HOLIDAYS = {date.fromisoformat(d) for d in HOLIDAYS}


def _open(minute: datetime) -> bool:
    local = minute.astimezone(_ZONE)
    if local.date() in _HOLIDAYS:
        return False
    clock = f"{local.hour:02d}:{local.minute:02d}"
    return any(opens <= clock < closes for opens, closes in WEEK[WEEKDAYS[local.weekday()]])


_PRICED: dict[tuple[datetime, datetime], float] = {}


def business_seconds(start: datetime, end: datetime) -> float:
    """Section 7's words, minute by minute: the part of [start, end] in each UTC minute whose local wall-clock time
    is open (the schedule's times are whole minutes, and so are the zone's offsets: a minute is open or not)."""
    if (start, end) not in _PRICED:
        total = timedelta(0)
        minute = start.replace(second=0, microsecond=0)
        while minute < end:
            following = minute + timedelta(minutes=1)
            if _open(minute):
                total += min(end, following) - max(start, minute)
            minute = following
        _PRICED[start, end] = max(0.0, total.total_seconds())
    return _PRICED[start, end]


def in_business_hours(counted: Sequence[Any]) -> list[Any]:
    return [
        replace(c, delta=None if c.first_action_at is None else business_seconds(c.claimed_at, c.first_action_at))
        for c in counted
    ]


def first_of_kind(insights: Any, events: Sequence[Event], counted: Sequence[Any], actor: str) -> list[float]:
    return [business_seconds(c.claimed_at, at) for c, at in insights.first_steps(events, counted, actor)]


async def assert_business_answers(env, insights, events, account_id, by: str, tz: str) -> None:
    for period in ("7d", "30d", "90d"):
        answer = await section_7(env, account_id, "", period=period, clock="business")
        assert (answer["clock"], answer["schedule_version"]) == ("business", 1)
        start, end = window(answer)
        counted = in_business_hours(insights.counted(events, account_id, start, end))
        assert answer["n_handoffs_claimed"] == len(counted)
        insights.assert_stats_match(answer, stats([c.delta for c in counted if c.delta is not None]))
        for actor in ("human", "ai"):
            expected = stats(first_of_kind(insights, events, counted, actor))
            insights.assert_stats_match(answer["by_first_actor"][actor], expected)
        breakdown = await section_7(env, account_id, "/breakdown", period=period, by=by, clock="business")
        start, end = window(breakdown)
        counted = in_business_hours(insights.counted(events, account_id, start, end))
        insights.assert_groups_match(breakdown["groups"], insights.breakdown(counted, by))
        before = datetime.now(UTC)
        series = await section_7(env, account_id, "/series", period=period, tz=tz, clock="business")
        after = datetime.now(UTC)
        assert_series_matches(
            insights, events, account_id, series, before, after, PERIODS[period], tz, reprice=in_business_hours
        )


def window(answer: dict[str, Any]) -> tuple[datetime, datetime]:
    return datetime.fromisoformat(answer["window_start"]), datetime.fromisoformat(answer["window_end"])


def stats(deltas: Sequence[float]) -> dict[str, Any]:
    """n, mean, and the percentiles interpolated between closest ranks (numpy's default)."""
    ordered = sorted(deltas)

    def percentile(q: float) -> float:
        rank = (len(ordered) - 1) * q
        low = int(rank)
        high = min(low + 1, len(ordered) - 1)
        return ordered[low] + (rank - low) * (ordered[high] - ordered[low])

    return {
        "n_handoffs_with_action": len(ordered),
        "avg_seconds": sum(ordered) / len(ordered) if ordered else None,
        "median_seconds": percentile(0.5) if ordered else None,
        "p95_seconds": percentile(0.95) if ordered else None,
    }
