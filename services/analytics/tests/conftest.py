"""Fixtures of the analytics tests: a running service on real Kafka and PostgreSQL, event builders, waiting."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

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

    def requested(
        self, handoff_id: uuid.UUID, session_id: uuid.UUID, at: datetime, *, version: int = 1
    ) -> HandoffRequested:
        return HandoffRequested(
            **self._common(session_id, at),
            handoff_id=handoff_id,
            version=version,
            requested_by=uuid.uuid4(),
            requested_at=at,
            priority="normal",
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
    ) -> HandoffClaimed:
        return HandoffClaimed(
            **self._common(session_id, occurred_at or claimed_at),
            handoff_id=handoff_id,
            version=version,
            claimed_by=uuid.uuid4(),
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


class Spec:
    """The test's own reading of docs/contract.md#the-escalation-metric, handed to test modules as a fixture."""

    percentile = staticmethod(percentile)
    reference = staticmethod(reference_metric)
    assert_matches = staticmethod(assert_metric_matches)
    window_of = staticmethod(window_of)


@pytest.fixture(scope="session")
def spec() -> type[Spec]:
    return Spec


@pytest.fixture(scope="session")
def history() -> type[History]:
    """The event builder: `history()` is a new account, `history(account_id)` an existing one."""
    return History
