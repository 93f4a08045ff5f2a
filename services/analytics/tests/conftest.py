"""Fixtures of the analytics tests: a running service on real Kafka and PostgreSQL, event builders, waiting."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any, Literal
from zoneinfo import ZoneInfo

import pytest
import pytest_asyncio

from analytics.consumers import TOPICS
from analytics.main import create_app
from analytics.progress import OffsetProbe
from analytics.settings import Settings
from rf_contracts import (
    Event,
    HandoffClaimed,
    HandoffReleased,
    HandoffRequested,
    HandoffResolved,
    SessionStarted,
    StepCreated,
)
from rf_testsupport import Caller, RunningApp, new_database, produce, unique_prefix, wait_until
from rfkit.auth import generate_keypair
from rfkit.topics import ensure_topics


def utcnow() -> datetime:
    return datetime.now(UTC)


class History:
    """Builds the contract events of one account, as the sessions and handoffs services would publish them."""

    def __init__(self, account_id: uuid.UUID | None = None) -> None:
        self.account_id = account_id or uuid.uuid4()

    def _common(self, session_id: uuid.UUID, occurred_at: datetime | None) -> dict[str, Any]:
        return {
            "event_id": uuid.uuid4(),
            "occurred_at": occurred_at or utcnow(),
            "account_id": self.account_id,
            "session_id": session_id,
        }

    def step(
        self,
        session_id: uuid.UUID,
        created_at: datetime,
        *,
        occurred_at: datetime | None = None,
        actor_type: Literal["human", "ai"] = "human",
    ) -> StepCreated:
        return StepCreated(
            **self._common(session_id, occurred_at or created_at),
            step_id=uuid.uuid4(),
            created_at=created_at,
            kind="action",
            actor_type=actor_type,
            actor_id=uuid.uuid4() if actor_type == "human" else None,
        )

    def started(
        self,
        session_id: uuid.UUID,
        tree_id: uuid.UUID,
        at: datetime,
        *,
        title: str | None = "a tree",
        category: str | None = "general",
    ) -> SessionStarted:
        return SessionStarted(
            **self._common(session_id, at),
            tree_id=tree_id,
            tree_version=1,
            started_by=uuid.uuid4(),
            started_at=at,
            tree_title=title,
            tree_category=category,
        )

    def requested(
        self,
        handoff_id: uuid.UUID,
        session_id: uuid.UUID,
        at: datetime,
        *,
        version: int = 1,
        priority: Literal["low", "normal", "high", "urgent"] = "normal",
    ) -> HandoffRequested:
        return HandoffRequested(
            **self._common(session_id, at),
            handoff_id=handoff_id,
            version=version,
            requested_by=uuid.uuid4(),
            requested_at=at,
            priority=priority,
            reason="needs an expert",
        )

    def claimed(
        self,
        handoff_id: uuid.UUID,
        session_id: uuid.UUID,
        claimed_at: datetime,
        *,
        version: int,
        occurred_at: datetime | None = None,
        by: uuid.UUID | None = None,
    ) -> HandoffClaimed:
        return HandoffClaimed(
            **self._common(session_id, occurred_at or claimed_at),
            handoff_id=handoff_id,
            version=version,
            claimed_by=by or uuid.uuid4(),
            claimed_at=claimed_at,
        )

    def released(
        self, handoff_id: uuid.UUID, session_id: uuid.UUID, at: datetime, *, version: int, by_system: bool = False
    ) -> HandoffReleased:
        return HandoffReleased(
            **self._common(session_id, at),
            handoff_id=handoff_id,
            version=version,
            # The system releases a stale claim (auto_release) with released_by null.
            released_by=None if by_system else uuid.uuid4(),
            released_at=at,
        )

    def resolved(self, handoff_id: uuid.UUID, session_id: uuid.UUID, at: datetime, *, version: int) -> HandoffResolved:
        return HandoffResolved(
            **self._common(session_id, at),
            handoff_id=handoff_id,
            version=version,
            resolved_by=uuid.uuid4(),
            resolved_at=at,
        )


@dataclass
class AnalyticsEnv:
    """One running analytics service with its database, topic prefix and key pair."""

    bootstrap: str
    prefix: str
    database_url: str
    private_pem: str
    public_pem: str
    running: RunningApp
    probe: OffsetProbe
    published: list[Event] = field(default_factory=list)

    def settings(self, **over: Any) -> Settings:
        return make_settings(self.bootstrap, self.prefix, self.database_url, self.public_pem, **over)

    @property
    def group(self) -> str:
        return self.settings().group(self.settings().consumer_group)

    def caller(self, account_id: uuid.UUID, role: str = "engineer") -> Caller:
        return Caller(self.private_pem, role=role, account_id=account_id)

    async def publish(self, events: Sequence[Event | tuple[str, bytes | None, bytes]]) -> None:
        """Send events (or raw (topic, key, value) messages) to the prefixed topics, in order per topic."""
        await publish(self.bootstrap, self.prefix, events)
        self.published.extend(e for e in events if not isinstance(e, tuple))

    async def settle(self, group: str | None = None) -> None:
        """Wait until the consumer group has committed everything on the topics (applied and committed)."""
        await settle(self.probe, group or self.group)

    async def metric_after(
        self, account_id: uuid.UUID, *batches: Sequence[Event], period: str = "7d"
    ) -> dict[str, Any]:
        """Deliver each batch in turn (the next only once the consumer applied the one before), then the answer."""
        for batch in batches:
            await self.publish(batch)
            await self.settle()
        return await self.metric(account_id, period)

    async def metric(self, account_id: uuid.UUID, period: str = "7d", *, client: Any = None) -> dict[str, Any]:
        r = await (client or self.running.client).get(
            "/api/v1/analytics/flowpilot/escalations",
            params={"period": period},
            headers=self.caller(account_id).headers,
        )
        assert r.status_code == 200, r.text
        return r.json()


def make_settings(bootstrap: str, prefix: str, database_url: str, public_pem: str, **over: Any) -> Settings:
    return Settings(
        database_url=database_url,
        kafka_bootstrap=bootstrap,
        topic_prefix=prefix,
        jwt_public_key=public_pem,
        env="test",
        **over,
    )


async def publish(bootstrap: str, prefix: str, events: Sequence[Event | tuple[str, bytes | None, bytes]]) -> None:
    by_topic: dict[str, list[tuple[bytes | None, bytes]]] = {}
    for item in events:
        if isinstance(item, tuple):
            topic, key, value = item
        else:
            topic, key, value = item.TOPIC, item.key(), item.to_json()
        by_topic.setdefault(prefix + topic, []).append((key, value))
    for topic, messages in by_topic.items():
        await produce(bootstrap, topic, messages)


async def settle(probe: OffsetProbe, group: str, timeout_s: float = 60.0) -> None:
    async def caught_up() -> bool:
        return await probe.lag(group) == 0

    await wait_until(caught_up, timeout_s=timeout_s, interval_s=0.1)


@pytest.fixture(scope="module")
def keypair() -> tuple[str, str]:
    return generate_keypair()


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def env(
    kafka_bootstrap: str, make_session_database: Any, keypair: tuple[str, str]
) -> AsyncIterator[AnalyticsEnv]:
    """The analytics service running on a fresh database and fresh prefixed topics, for one test module."""
    prefix = unique_prefix()
    url = await new_database(make_session_database)
    private_pem, public_pem = keypair
    await ensure_topics(kafka_bootstrap, prefix)
    settings = make_settings(kafka_bootstrap, prefix, url, public_pem)
    async with (
        RunningApp(create_app(settings)) as running,
        OffsetProbe(kafka_bootstrap, [prefix + t for t in TOPICS]) as probe,
    ):
        yield AnalyticsEnv(kafka_bootstrap, prefix, url, private_pem, public_pem, running, probe)


def percentile(values: Sequence[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default, PostgreSQL's percentile_cont)."""
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (rank - low) * (ordered[high] - ordered[low])


def reference_metric(events: Sequence[Event], account_id: uuid.UUID, start: datetime, end: datetime) -> dict[str, Any]:
    """docs/contract.md#the-escalation-metric computed naively from the whole history, any order, duplicates and all."""
    mine = list({e.event_id: e for e in events if e.account_id == account_id}.values())
    claims: dict[uuid.UUID, HandoffClaimed] = {}
    releases: dict[uuid.UUID, int] = {}
    for e in mine:
        if isinstance(e, HandoffClaimed) and (e.handoff_id not in claims or e.version > claims[e.handoff_id].version):
            claims[e.handoff_id] = e
        if isinstance(e, HandoffReleased):
            releases[e.handoff_id] = max(releases.get(e.handoff_id, 0), e.version)
    deltas: list[float] = []
    by_actor: dict[str, list[float]] = {"human": [], "ai": []}
    counted = 0
    for handoff_id, claim in claims.items():
        if releases.get(handoff_id, 0) > claim.version or not (start <= claim.claimed_at <= end):
            continue
        counted += 1
        after = [
            e
            for e in mine
            if isinstance(e, StepCreated) and e.session_id == claim.session_id and e.created_at >= claim.claimed_at
        ]
        if after:
            deltas.append(max(0.0, (min(e.created_at for e in after) - claim.claimed_at).total_seconds()))
        # Section 7: the first action of a kind is the earliest step with that actor_type at or after the claim.
        for actor, actor_deltas in by_actor.items():
            of_kind = [e.created_at for e in after if e.actor_type == actor]
            if of_kind:
                actor_deltas.append(max(0.0, (min(of_kind) - claim.claimed_at).total_seconds()))
    # Section 7's exclusions: requested in the window and no current claim; released: one of those that had
    # been claimed (and so, having no current claim, was released).
    requested = {e.handoff_id: e.requested_at for e in mine if isinstance(e, HandoffRequested)}
    unclaimed = released = 0
    for handoff_id, requested_at in requested.items():
        if not (start <= requested_at <= end):
            continue
        claim_now = handoff_id in claims and claims[handoff_id].version > releases.get(handoff_id, 0)
        if claim_now:
            continue
        unclaimed += 1
        if handoff_id in claims:
            released += 1
    return {
        **stats_of(deltas),
        "n_handoffs_claimed": counted,
        "by_first_actor": {actor: stats_of(d) for actor, d in by_actor.items()},
        "excluded": {"unclaimed": unclaimed, "released": released},
        "data_as_of": max((e.occurred_at for e in mine), default=None),
    }


def stats_of(deltas: Sequence[float]) -> dict[str, Any]:
    return {
        "n_handoffs_with_action": len(deltas),
        "avg_seconds": sum(deltas) / len(deltas) if deltas else None,
        "median_seconds": percentile(deltas, 0.5) if deltas else None,
        "p95_seconds": percentile(deltas, 0.95) if deltas else None,
    }


def assert_stats_match(answer: dict[str, Any], expected: dict[str, Any]) -> None:
    assert answer["n_handoffs_with_action"] == expected["n_handoffs_with_action"], (answer, expected)
    for key in ("avg_seconds", "median_seconds", "p95_seconds"):
        if expected[key] is None:
            assert answer[key] is None, (key, answer, expected)
        else:
            assert answer[key] == pytest.approx(expected[key], rel=1e-9, abs=1e-6), (key, answer, expected)


def assert_metric_matches(answer: dict[str, Any], expected: dict[str, Any]) -> None:
    """Counts exactly, floats to 1e-6, data_as_of as an instant; the first-actor statistics and exclusions too."""
    assert answer["n_handoffs_claimed"] == expected["n_handoffs_claimed"], (answer, expected)
    assert_stats_match(answer, expected)
    assert set(answer["by_first_actor"]) == {"human", "ai"}, answer
    for actor in ("human", "ai"):
        assert_stats_match(answer["by_first_actor"][actor], expected["by_first_actor"][actor])
    assert answer["excluded"] == expected["excluded"], (answer, expected)
    as_of = answer["data_as_of"]
    assert (datetime.fromisoformat(as_of) if as_of else None) == expected["data_as_of"], (answer, expected)


def window_of(answer: dict[str, Any]) -> tuple[datetime, datetime]:
    return datetime.fromisoformat(answer["window_start"]), datetime.fromisoformat(answer["window_end"])


@pytest.fixture(scope="session")
def spec() -> SimpleNamespace:
    """The test's own reading of docs/contract.md#the-escalation-metric, handed to test modules."""
    return SimpleNamespace(
        percentile=percentile, reference=reference_metric, assert_matches=assert_metric_matches, window_of=window_of
    )


@pytest.fixture(scope="session")
def history() -> type[History]:
    """The event builder: `history()` is a new account, `history(account_id)` an existing one."""
    return History


# ---- Section 7 through the gateway --------------------------------------------------------------------------


@dataclass
class Gateway:
    """The public gateway in front of the module's analytics service (over real HTTP), with real users: the gateway
    accepts only tokens of users it knows."""

    kit: Any  # rf_testsupport.gateway.Gateway
    env: AnalyticsEnv
    _headers: dict[tuple[uuid.UUID, str], dict[str, str]] = field(default_factory=dict)

    @property
    def client(self) -> Any:
        return self.kit.client

    async def account(self) -> History:
        """A new account registered through the gateway, with an admin, an engineer and a viewer."""
        admin, body = await self.kit.register()
        account_id = uuid.UUID(body["account"]["id"])
        self._headers[account_id, "admin"] = admin.headers
        for role in ("engineer", "viewer"):
            self._headers[account_id, role] = (await self.kit.add_user(admin, role)).headers
        return History(account_id)

    def headers(self, account_id: uuid.UUID, role: str = "engineer") -> dict[str, str]:
        return self._headers[account_id, role]

    async def get(self, path: str, account_id: uuid.UUID, *, role: str = "engineer", **params: Any) -> Any:
        return await self.client.get(
            f"/api/v1/analytics/flowpilot/escalations{path}", params=params, headers=self.headers(account_id, role)
        )

    async def ok(self, path: str, account_id: uuid.UUID, **params: Any) -> dict[str, Any]:
        r = await self.get(path, account_id, **params)
        assert r.status_code == 200, r.text
        body: dict[str, Any] = r.json()
        return body


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def gateway(env: AnalyticsEnv, make_session_database: Any) -> AsyncIterator[Gateway]:
    from sqlalchemy.ext.asyncio import create_async_engine

    from gateway.main import create_app as gateway_app
    from rf_testsupport import Served
    from rf_testsupport.gateway import Gateway as GatewayKit
    from rf_testsupport.gateway import gateway_settings

    # The module's analytics app (lifespan already running) also served on a socket: the gateway forwards over HTTP.
    async with Served(env.running.app, lifespan="off") as served:
        url = await new_database(make_session_database)
        settings = gateway_settings(url, env.bootstrap, env.private_pem, analytics_url=served.url)
        engine = create_async_engine(url)
        try:
            async with RunningApp(gateway_app(settings)) as running:
                yield Gateway(GatewayKit(running, env.private_pem, env.public_pem, settings, engine), env)
        finally:
            await engine.dispose()


@dataclass(frozen=True)
class Counted:
    """One handoff that counts (section 5), with what section 7 says about it."""

    handoff_id: uuid.UUID
    session_id: uuid.UUID
    claimed_at: datetime
    claimed_by: uuid.UUID
    first_action_at: datetime | None
    first_actor_type: str | None
    delta: float | None
    tree_id: uuid.UUID | None
    tree_title: str | None
    tree_category: str | None
    tree_label: str | None  # the title of the account's newest session started on that tree
    priority: str | None


def counted_handoffs(events: Sequence[Event], account_id: uuid.UUID, start: datetime, end: datetime) -> list[Counted]:
    """Section 7's reading of which handoffs count and what each carries, straight from the whole history."""
    mine = list({e.event_id: e for e in events if e.account_id == account_id}.values())
    newest_claim: dict[uuid.UUID, HandoffClaimed] = {}
    newest_release: dict[uuid.UUID, int] = {}
    priority: dict[uuid.UUID, str] = {}
    started: dict[uuid.UUID, SessionStarted] = {}
    for e in mine:
        if isinstance(e, HandoffClaimed):
            if e.handoff_id not in newest_claim or e.version > newest_claim[e.handoff_id].version:
                newest_claim[e.handoff_id] = e
        elif isinstance(e, HandoffReleased):
            newest_release[e.handoff_id] = max(e.version, newest_release.get(e.handoff_id, 0))
        elif isinstance(e, HandoffRequested):
            priority[e.handoff_id] = e.priority
        elif isinstance(e, SessionStarted):
            started[e.session_id] = e
    # Section 7: the label of a tree is its title; a tree keeps its id across versions and a version may retitle it,
    # so the title is the one the newest session started on that tree carried.
    newest_start: dict[uuid.UUID, SessionStarted] = {}
    for e in started.values():
        known = newest_start.get(e.tree_id)
        if known is None or (e.started_at, str(e.session_id)) > (known.started_at, str(known.session_id)):
            newest_start[e.tree_id] = e
    out = []
    for handoff_id, claim in newest_claim.items():
        if newest_release.get(handoff_id, 0) > claim.version:
            continue  # released after its newest claim: unclaimed
        if not start <= claim.claimed_at <= end:
            continue
        later = sorted(
            (e.created_at, e.actor_type != "human", e.actor_type)
            for e in mine
            if isinstance(e, StepCreated) and e.session_id == claim.session_id and e.created_at >= claim.claimed_at
        )
        first_at, actor = (later[0][0], later[0][2]) if later else (None, None)
        tree = started.get(claim.session_id)
        out.append(
            Counted(
                handoff_id=handoff_id,
                session_id=claim.session_id,
                claimed_at=claim.claimed_at,
                claimed_by=claim.claimed_by,
                first_action_at=first_at,
                first_actor_type=actor,
                delta=max(0.0, (first_at - claim.claimed_at).total_seconds()) if first_at else None,
                tree_id=tree.tree_id if tree else None,
                tree_title=tree.tree_title if tree else None,
                tree_category=tree.tree_category if tree else None,
                tree_label=newest_start[tree.tree_id].tree_title if tree else None,
                priority=priority.get(handoff_id),
            )
        )
    return out


def _group_key(c: Counted, by: str) -> str | None:
    if by == "tree":
        return str(c.tree_id) if c.tree_id else None
    if by == "category":
        return c.tree_category
    if by == "priority":
        return c.priority
    return str(c.claimed_by)


def reference_breakdown(counted: Sequence[Counted], by: str) -> list[dict[str, Any]]:
    """Groups as section 7 words them: each group's section 5 statistics, most claimed first, then by key."""
    groups: dict[str | None, list[Counted]] = {}
    for c in counted:
        groups.setdefault(_group_key(c, by), []).append(c)
    out = []
    for key, members in groups.items():
        label = members[0].tree_label if by == "tree" else key
        deltas = [c.delta for c in members if c.delta is not None]
        out.append({"key": key, "label": label, "n_handoffs_claimed": len(members), **stats_of(deltas)})
    return sorted(out, key=lambda g: (-g["n_handoffs_claimed"], g["key"] is None, g["key"] or ""))


def reference_items(
    counted: Sequence[Counted], order: str, now: datetime, waiting: Callable[[datetime], float] | None = None
) -> list[dict[str, Any]]:
    """The drill-down rows in section 7's order: an open claim's waiting time is `waiting(claimed_at)`, by default
    the wall seconds up to `now` (clock=business passes the open seconds instead)."""

    def waited(claimed_at: datetime) -> float:
        return waiting(claimed_at) if waiting else (now - claimed_at).total_seconds()

    def row(c: Counted) -> dict[str, Any]:
        return {
            "handoff_id": c.handoff_id,
            "session_id": c.session_id,
            "tree_id": c.tree_id,
            "priority": c.priority,
            "claimed_by": c.claimed_by,
            "claimed_at": c.claimed_at,
            "first_action_at": c.first_action_at,
            "first_actor_type": c.first_actor_type,
            "delta_seconds": c.delta,
            "waiting_seconds": waited(c.claimed_at) if c.delta is None else None,
        }

    rows = [row(c) for c in counted]
    if order == "newest":
        rows.sort(key=lambda r: r["handoff_id"])
        rows.sort(key=lambda r: r["claimed_at"], reverse=True)
    else:
        rows.sort(key=lambda r: r["handoff_id"])
        rows.sort(
            key=lambda r: r["delta_seconds"] if r["delta_seconds"] is not None else r["waiting_seconds"], reverse=True
        )
    return rows


def first_steps(events: Sequence[Event], counted: Sequence[Counted], actor: str) -> list[tuple[Counted, datetime]]:
    """Each counted handoff with its first step by that kind of actor at or after the claim (those with none left
    out): what `by_first_actor` measures."""
    out = []
    for c in counted:
        times = [
            e.created_at
            for e in events
            if isinstance(e, StepCreated) and e.session_id == c.session_id and e.created_at >= c.claimed_at
            and e.actor_type == actor
        ]
        if times:
            out.append((c, min(times)))
    return out


HISTOGRAM_BOUNDS = [0, 10, 30, 60, 120, 300, 600, 1800, 3600, 14400, 86400]


def reference_series(counted: Sequence[Counted], start: datetime, end: datetime, tz: str) -> dict[str, Any]:
    """Every local calendar day from that of start to that of end, oldest first, and the histogram."""
    zone = ZoneInfo(tz)
    first, last = start.astimezone(zone).date(), end.astimezone(zone).date()
    days = []
    day = first
    while day <= last:
        members = [c for c in counted if c.claimed_at.astimezone(zone).date() == day]
        deltas = [c.delta for c in members if c.delta is not None]
        days.append({"date": day.isoformat(), "n_handoffs_claimed": len(members), **stats_of(deltas)})
        day += timedelta(days=1)
    counts = [0] * len(HISTOGRAM_BOUNDS)
    for c in counted:
        if c.delta is not None:
            i = max(i for i, bound in enumerate(HISTOGRAM_BOUNDS) if c.delta >= bound)
            counts[i] += 1
    return {"days": days, "histogram": {"bounds_seconds": HISTOGRAM_BOUNDS, "counts": counts}}


def assert_groups_match(answer: list[dict[str, Any]], expected: list[dict[str, Any]]) -> None:
    assert [(g["key"], g["label"], g["n_handoffs_claimed"]) for g in answer] == [
        (g["key"], g["label"], g["n_handoffs_claimed"]) for g in expected
    ], (answer, expected)
    for got, want in zip(answer, expected, strict=True):
        assert_stats_match(got, want)


@pytest.fixture(scope="session")
def insights() -> SimpleNamespace:
    """The tests' own reading of section 7, handed to test modules."""
    return SimpleNamespace(
        counted=counted_handoffs, breakdown=reference_breakdown, items=reference_items, first_steps=first_steps,
        series=reference_series, assert_groups_match=assert_groups_match, assert_stats_match=assert_stats_match,
    )
