"""The escalation metric endpoint over real Kafka and PostgreSQL: the API cases and the delivery cases."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest

from rf_contracts import HandoffClaimed, StepCreated, dlq, topics
from rf_contracts.api.analytics import EscalationMetricRead
from rf_testsupport import read_topic
from rfkit.consumer import DLQ_REASON_HEADER

URL = "/api/v1/analytics/flowpilot/escalations"


def now() -> datetime:
    return datetime.now(UTC)


# ---- the API ----


async def test_claim_then_step_reports_the_seconds_to_first_action(env, history) -> None:
    acc = history()
    session, handoff = uuid.uuid4(), uuid.uuid4()
    claimed_at = now() - timedelta(hours=1)
    events = [
        acc.requested(handoff, session, claimed_at - timedelta(minutes=5)),
        acc.claimed(handoff, session, claimed_at, version=2),
        acc.step(session, claimed_at + timedelta(seconds=30)),
        acc.step(session, claimed_at + timedelta(seconds=90)),
    ]
    await env.publish(events)
    await env.settle()

    before = now()
    r = await env.running.client.get(URL, params={"period": "7d"}, headers=env.caller(acc.account_id).headers)
    assert r.status_code == 200
    body = EscalationMetricRead.model_validate(r.json())
    assert body.period == "7d"
    assert body.n_handoffs_claimed == 1
    assert body.n_handoffs_with_action == 1
    assert body.avg_seconds == body.median_seconds == body.p95_seconds == 30.0
    assert before <= body.window_end <= now()
    assert body.window_end - body.window_start == timedelta(days=7)
    assert body.data_as_of == max(e.occurred_at for e in events)
    assert "not" in body.metric_definition and "time saved" in body.metric_definition


async def test_account_without_data_has_zero_counts_and_null_statistics(env, history) -> None:
    body = await env.metric(history().account_id, "90d")
    assert body["n_handoffs_claimed"] == 0
    assert body["n_handoffs_with_action"] == 0
    assert body["avg_seconds"] is None and body["median_seconds"] is None and body["p95_seconds"] is None
    assert body["data_as_of"] is None
    assert body["metric_definition"]


async def test_claimed_handoff_without_a_step_counts_as_claimed_only(env, history) -> None:
    acc = history()
    session, handoff = uuid.uuid4(), uuid.uuid4()
    claimed_at = now() - timedelta(hours=2)
    # A step long before the claim is no action on it.
    body = await env.metric_after(
        acc.account_id,
        [acc.step(session, claimed_at - timedelta(hours=1)), acc.claimed(handoff, session, claimed_at, version=2)],
    )
    assert (body["n_handoffs_claimed"], body["n_handoffs_with_action"]) == (1, 0)
    assert body["avg_seconds"] is None and body["median_seconds"] is None and body["p95_seconds"] is None


async def test_period_counts_only_claims_inside_its_window(env, history) -> None:
    acc = history()
    events = []
    for days, delta in ((3, 10), (20, 20), (60, 30), (100, 40)):
        session, handoff = uuid.uuid4(), uuid.uuid4()
        claimed_at = now() - timedelta(days=days)
        events += [
            acc.claimed(handoff, session, claimed_at, version=2),
            acc.step(session, claimed_at + timedelta(seconds=delta)),
        ]
    await env.publish(events)
    await env.settle()
    seen = {p: await env.metric(acc.account_id, p) for p in ("7d", "30d", "90d")}
    assert [seen[p]["n_handoffs_claimed"] for p in ("7d", "30d", "90d")] == [1, 2, 3]
    assert [seen[p]["avg_seconds"] for p in ("7d", "30d", "90d")] == [10.0, 15.0, 20.0]
    assert seen["90d"]["median_seconds"] == 20.0
    assert seen["90d"]["p95_seconds"] == 29.0  # 20 + 0.9 * (30 - 20)


async def test_statistics_over_many_handoffs_use_linear_interpolation(env, history, spec) -> None:
    acc = history()
    rng = random.Random(6)
    deltas = [round(rng.uniform(0, 3600), 3) for _ in range(57)] + [0.0, 0.0]
    events = []
    for delta in deltas:
        session, handoff = uuid.uuid4(), uuid.uuid4()
        claimed_at = now() - timedelta(days=rng.uniform(0.1, 6), microseconds=rng.randrange(10**6))
        events += [
            acc.claimed(handoff, session, claimed_at, version=2),
            acc.step(session, claimed_at + timedelta(seconds=delta)),
        ]
    # Claims without an action do not enter the statistics.
    for _ in range(5):
        events.append(acc.claimed(uuid.uuid4(), uuid.uuid4(), now() - timedelta(days=1), version=2))
    body = await env.metric_after(acc.account_id, events)
    assert body["n_handoffs_claimed"] == len(deltas) + 5
    assert body["n_handoffs_with_action"] == len(deltas)
    assert abs(body["avg_seconds"] - sum(deltas) / len(deltas)) < 1e-6
    assert abs(body["median_seconds"] - spec.percentile(deltas, 0.5)) < 1e-6
    assert abs(body["p95_seconds"] - spec.percentile(deltas, 0.95)) < 1e-6


async def test_each_account_sees_only_its_own_handoffs_and_steps(env, history) -> None:
    a, b = history(), history()
    session_a, session_b = uuid.uuid4(), uuid.uuid4()
    t = now() - timedelta(hours=3)
    await env.publish(
        [
            a.claimed(uuid.uuid4(), session_a, t, version=2),
            a.step(session_a, t + timedelta(seconds=100)),
            b.claimed(uuid.uuid4(), session_b, t, version=2),
            b.step(session_b, t + timedelta(seconds=7)),
            b.claimed(uuid.uuid4(), uuid.uuid4(), t, version=2),
            # A step that claims to be of account b on a's session is no action on a's handoff.
            b.step(session_a, t + timedelta(seconds=1)),
        ]
    )
    await env.settle()
    body_a, body_b = await env.metric(a.account_id), await env.metric(b.account_id)
    assert (body_a["n_handoffs_claimed"], body_a["avg_seconds"]) == (1, 100.0)
    assert (body_b["n_handoffs_claimed"], body_b["n_handoffs_with_action"], body_b["avg_seconds"]) == (2, 1, 7.0)
    assert body_a["data_as_of"] != body_b["data_as_of"]


async def test_viewer_is_refused_and_anonymous_is_unauthorized(env, history) -> None:
    account = history().account_id
    viewer = env.caller(account, role="viewer")
    r = await env.running.client.get(URL, params={"period": "7d"}, headers=viewer.headers)
    assert r.status_code == 403
    assert "detail" in r.json()
    r = await env.running.client.get(URL, params={"period": "7d"})
    assert r.status_code == 401
    admin = env.caller(account, role="admin")
    r = await env.running.client.get(URL, params={"period": "30d"}, headers=admin.headers)
    assert r.status_code == 200


async def test_period_other_than_7d_30d_90d_is_422(env, history) -> None:
    headers = env.caller(history().account_id).headers
    for params in ({"period": "1d"}, {"period": "7"}, {"period": "7D"}, {"period": "365d"}, {"period": ""}, {}):
        r = await env.running.client.get(URL, params=params, headers=headers)
        assert r.status_code == 422, (params, r.text)
        assert "detail" in r.json()


# ---- delivery: order, duplicates, versions ----


async def test_step_delivered_before_its_claim_is_found_when_the_claim_arrives(env, history) -> None:
    acc = history()
    session, handoff = uuid.uuid4(), uuid.uuid4()
    claimed_at = now() - timedelta(minutes=30)
    await env.publish([acc.step(session, claimed_at + timedelta(seconds=42))])
    await env.settle()
    assert (await env.metric(acc.account_id))["n_handoffs_claimed"] == 0
    body = await env.metric_after(acc.account_id, [acc.claimed(handoff, session, claimed_at, version=2)])
    assert (body["n_handoffs_with_action"], body["avg_seconds"]) == (1, 42.0)


async def test_a_later_delivered_earlier_step_moves_the_first_action_earlier(env, history) -> None:
    acc = history()
    session, handoff = uuid.uuid4(), uuid.uuid4()
    claimed_at = now() - timedelta(minutes=30)
    await env.publish(
        [acc.claimed(handoff, session, claimed_at, version=2), acc.step(session, claimed_at + timedelta(seconds=50))]
    )
    await env.settle()
    await env.publish([acc.step(session, claimed_at + timedelta(seconds=5))])
    await env.settle()
    assert (await env.metric(acc.account_id))["avg_seconds"] == 5.0


# One handoff's events in batches, each applied before the next is sent: every case builds its batches for a new
# account, a session and a handoff id, and names the answer's fields it is about.


def the_same_events_delivered_twice_count_once(acc, session, handoff):
    claimed_at = now() - timedelta(minutes=30)
    events = [
        acc.claimed(handoff, session, claimed_at, version=2),
        acc.step(session, claimed_at + timedelta(seconds=12)),
    ]
    return [events + events, events]  # redelivered much later, in another batch


def a_stale_version_arriving_after_a_newer_one_changes_nothing(acc, session, handoff):
    first, second = now() - timedelta(hours=2), now() - timedelta(hours=1)
    newer = [acc.claimed(handoff, session, second, version=4), acc.step(session, second + timedelta(seconds=8))]
    # Late: the first claim (v2) and its release (v3), both older than the re-claim (v4).
    late = [
        acc.claimed(handoff, session, first, version=2),
        acc.step(session, first + timedelta(seconds=1)),
        acc.released(handoff, session, first + timedelta(minutes=1), version=3),
    ]
    return [newer, late]


def a_reclaim_replaces_claimed_at(acc, session, handoff):
    first, second = now() - timedelta(hours=2), now() - timedelta(hours=1)
    released = [
        acc.claimed(handoff, session, first, version=2),
        acc.step(session, first + timedelta(seconds=3)),
        acc.released(handoff, session, first + timedelta(minutes=5), version=3),
    ]
    return [
        released,
        [acc.claimed(handoff, session, second, version=4), acc.step(session, second + timedelta(seconds=20))],
    ]


def a_claim_the_system_released_as_stale_no_longer_counts(acc, session, handoff):
    t = now() - timedelta(hours=2)
    # v3 was the handoff.stale mark (not an event analytics reads); v4 the system's release, released_by null.
    return [
        [
            acc.claimed(handoff, session, t, version=2),
            acc.released(handoff, session, t + timedelta(minutes=15), version=4, by_system=True),
            acc.step(session, t + timedelta(minutes=20)),  # a late step changes nothing
        ]
    ]


def a_step_exactly_at_claimed_at_is_an_action_of_zero_seconds(acc, session, handoff):
    claimed_at = now() - timedelta(minutes=10)
    return [[acc.step(session, claimed_at), acc.claimed(handoff, session, claimed_at, version=2)]]


def a_step_just_before_the_claim_is_not_an_action(acc, session, handoff):
    claimed_at = now() - timedelta(minutes=10)
    return [
        [acc.claimed(handoff, session, claimed_at, version=2)],
        [acc.step(session, claimed_at - timedelta(microseconds=1))],
    ]


# Each case (named by its builder) and the answer's fields it is about.
ONE_HANDOFF = [
    (
        the_same_events_delivered_twice_count_once,
        {"n_handoffs_claimed": 1, "n_handoffs_with_action": 1, "avg_seconds": 12.0},
    ),
    (a_stale_version_arriving_after_a_newer_one_changes_nothing, {"n_handoffs_claimed": 1, "avg_seconds": 8.0}),
    (a_reclaim_replaces_claimed_at, {"n_handoffs_claimed": 1, "n_handoffs_with_action": 1, "avg_seconds": 20.0}),
    (a_claim_the_system_released_as_stale_no_longer_counts, {"n_handoffs_claimed": 0, "n_handoffs_with_action": 0}),
    (
        a_step_exactly_at_claimed_at_is_an_action_of_zero_seconds,
        {"n_handoffs_with_action": 1, "avg_seconds": 0.0, "p95_seconds": 0.0},
    ),
    (a_step_just_before_the_claim_is_not_an_action, {"n_handoffs_claimed": 1, "n_handoffs_with_action": 0}),
]


@pytest.mark.parametrize(("batches", "expected"), ONE_HANDOFF, ids=[case.__name__ for case, _ in ONE_HANDOFF])
async def test_one_handoff_delivered_in_batches(env, history, batches, expected) -> None:
    acc = history()
    body = await env.metric_after(acc.account_id, *batches(acc, uuid.uuid4(), uuid.uuid4()))
    assert {name: body[name] for name in expected} == expected, body


async def test_a_release_without_a_later_claim_removes_the_handoff(env, history) -> None:
    acc = history()
    session, handoff, other, other_session = uuid.uuid4(), uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    t = now() - timedelta(hours=2)
    # The release (v3) is delivered before the claim it undoes (v2).
    body = await env.metric_after(
        acc.account_id,
        [acc.released(handoff, session, t + timedelta(minutes=1), version=3)],
        [
            acc.claimed(handoff, session, t, version=2),
            acc.step(session, t + timedelta(seconds=3)),
            # Resolving keeps the claim.
            acc.claimed(other, other_session, t, version=2),
            acc.resolved(other, other_session, t + timedelta(hours=1), version=3),
        ],
    )
    assert (body["n_handoffs_claimed"], body["n_handoffs_with_action"]) == (1, 0)


async def test_invalid_messages_are_dead_lettered_and_consumption_goes_on(env, history) -> None:
    acc = history()
    session, handoff = uuid.uuid4(), uuid.uuid4()
    claimed_at = now() - timedelta(minutes=10)
    good = acc.claimed(handoff, session, claimed_at, version=2)
    wrong_key = acc.step(session, claimed_at + timedelta(seconds=1))
    body = await env.metric_after(
        acc.account_id,
        [
            (topics.HANDOFF_CLAIMED, str(session).encode(), b"{not json"),
            (topics.STEP_CREATED, str(uuid.uuid4()).encode(), wrong_key.to_json()),
            good,
            acc.step(session, claimed_at + timedelta(seconds=9)),
        ],
    )
    assert (body["n_handoffs_claimed"], body["avg_seconds"]) == (1, 9.0)
    dead = await read_topic(env.bootstrap, env.prefix + dlq(topics.HANDOFF_CLAIMED), expect=1)
    assert any(r.value == b"{not json" and DLQ_REASON_HEADER in dict(r.headers) for r in dead)
    dead = await read_topic(env.bootstrap, env.prefix + dlq(topics.STEP_CREATED), expect=1)
    assert any(r.value == wrong_key.to_json() for r in dead)


async def test_an_event_the_database_cannot_hold_is_dead_lettered_and_does_not_stall_consumption(env, history) -> None:
    acc = history()
    session, handoff = uuid.uuid4(), uuid.uuid4()
    claimed_at = now() - timedelta(minutes=10)
    # Beyond what PostgreSQL holds (a version past bigint, a time past year 9999 in UTC): the contract refuses
    # them, so they are built without validation, as a broken producer would send them.
    valid = acc.claimed(uuid.uuid4(), uuid.uuid4(), claimed_at, version=2)
    huge_version = HandoffClaimed.model_construct(**{**dict(valid), "version": 2**70})
    step = acc.step(uuid.uuid4(), claimed_at)
    beyond_utc = StepCreated.model_construct(
        **{**dict(step), "created_at": datetime(9999, 12, 31, 23, tzinfo=timezone(timedelta(hours=-14)))}
    )
    body = await env.metric_after(
        acc.account_id,
        [
            huge_version,
            beyond_utc,
            acc.claimed(handoff, session, claimed_at, version=2),
            acc.step(session, claimed_at + timedelta(seconds=4)),
        ],
    )
    assert (body["n_handoffs_claimed"], body["avg_seconds"]) == (1, 4.0)
    dead = await read_topic(env.bootstrap, env.prefix + dlq(topics.HANDOFF_CLAIMED), expect=1)
    reasons = {r.value: dict(r.headers)[DLQ_REASON_HEADER].decode() for r in dead}
    assert "less than or equal to 9223372036854775807" in reasons[huge_version.to_json()]
    dead = await read_topic(env.bootstrap, env.prefix + dlq(topics.STEP_CREATED), expect=1)
    reasons = {r.value: dict(r.headers)[DLQ_REASON_HEADER].decode() for r in dead}
    assert "created_at" in reasons[beyond_utc.to_json()] and "out of range" in reasons[beyond_utc.to_json()]


# ---- section 7: first actor and exclusions ----


async def test_first_action_per_actor_type_is_the_earliest_step_of_that_kind_after_the_claim(env, history) -> None:
    acc = history()
    t = now() - timedelta(hours=2)
    s1, h1, s2, h2 = uuid.uuid4(), uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    events = [
        acc.requested(h1, s1, t - timedelta(minutes=1)),
        acc.claimed(h1, s1, t, version=2),
        acc.step(s1, t - timedelta(seconds=5), actor_type="ai"),  # before the claim: no action of any kind
        acc.step(s1, t + timedelta(seconds=10), actor_type="ai"),
        acc.step(s1, t + timedelta(seconds=40), actor_type="human"),
        acc.step(s1, t + timedelta(seconds=50), actor_type="ai"),
        acc.requested(h2, s2, t - timedelta(minutes=1)),
        acc.claimed(h2, s2, t, version=2),
        acc.step(s2, t + timedelta(seconds=20), actor_type="human"),
    ]
    delivered = events + events[2:5]
    random.Random(15).shuffle(delivered)
    await env.publish(delivered)
    await env.settle()

    body = await env.metric(acc.account_id, "7d")
    assert body["n_handoffs_with_action"] == 2 and body["avg_seconds"] == 15.0
    assert body["by_first_actor"]["human"] == {
        "n_handoffs_with_action": 2,
        "avg_seconds": 30.0,
        "median_seconds": 30.0,
        "p95_seconds": 39.0,
    }
    assert body["by_first_actor"]["ai"] == {
        "n_handoffs_with_action": 1,
        "avg_seconds": 10.0,
        "median_seconds": 10.0,
        "p95_seconds": 10.0,
    }
    assert body["excluded"] == {"unclaimed": 0, "released": 0}


async def test_no_action_of_a_kind_gives_null_statistics_for_it(env, history) -> None:
    acc = history()
    session, handoff = uuid.uuid4(), uuid.uuid4()
    t = now() - timedelta(hours=1)
    body = await env.metric_after(
        acc.account_id,
        [acc.claimed(handoff, session, t, version=2), acc.step(session, t + timedelta(seconds=3), actor_type="ai")],
        period="7d",
    )
    assert body["by_first_actor"]["human"] == {
        "n_handoffs_with_action": 0,
        "avg_seconds": None,
        "median_seconds": None,
        "p95_seconds": None,
    }
    assert body["by_first_actor"]["ai"]["n_handoffs_with_action"] == 1


async def test_handoffs_requested_in_the_window_without_a_current_claim_are_excluded(env, history) -> None:
    acc = history()
    t = now() - timedelta(days=2)
    waiting, released, reclaimed, resolved, old = (uuid.uuid4() for _ in range(5))
    session = uuid.uuid4()
    events = [
        acc.requested(waiting, session, t),  # never claimed
        acc.requested(released, session, t),
        acc.claimed(released, session, t + timedelta(minutes=1), version=2),
        acc.released(released, session, t + timedelta(minutes=2), version=3),
        acc.requested(reclaimed, session, t),  # released, then claimed again: counts, not excluded
        acc.claimed(reclaimed, session, t + timedelta(minutes=1), version=2),
        acc.released(reclaimed, session, t + timedelta(minutes=2), version=3),
        acc.claimed(reclaimed, session, t + timedelta(minutes=3), version=4),
        acc.requested(resolved, session, t),  # resolving keeps the claim
        acc.claimed(resolved, session, t + timedelta(minutes=1), version=2),
        acc.resolved(resolved, session, t + timedelta(minutes=5), version=3),
        acc.requested(old, session, now() - timedelta(days=8)),  # requested before the 7d window
        acc.claimed(old, session, now() - timedelta(days=6), version=2),
        acc.released(old, session, now() - timedelta(days=5), version=3),
    ]
    delivered = events + events[1:4]
    random.Random(7).shuffle(delivered)
    await env.publish(delivered)
    await env.settle()

    week = await env.metric(acc.account_id, "7d")
    assert week["n_handoffs_claimed"] == 2
    assert week["excluded"] == {"unclaimed": 2, "released": 1}
    month = await env.metric(acc.account_id, "30d")
    assert month["excluded"] == {"unclaimed": 3, "released": 2}
