"""Section 7 through the gateway on real Kafka and PostgreSQL: breakdown, drill-down (JSON, CSV), daily series."""

from __future__ import annotations

import csv
import io
import uuid
from datetime import UTC, datetime, timedelta
from random import Random
from typing import Any

import pytest

from analytics.domain import csv_document
from analytics.rebuild import rebuild
from rf_contracts import Event
from rf_testsupport import assert_same_answers

PERIOD_DAYS = {"7d": 7, "30d": 30, "90d": 90}


def now() -> datetime:
    return datetime.now(UTC)


def shuffled_twice(events: list[Event], rng: Random) -> tuple[list[Event], list[Event]]:
    """Every event once in a shuffled first wave, a shuffled duplicate of a third of them in a second wave."""
    first = list(events)
    rng.shuffle(first)
    again = [e for e in events if rng.random() < 0.35]
    rng.shuffle(again)
    return first, again


async def team_history(gateway, rng: Random) -> tuple[Any, list[Event], list[uuid.UUID]]:
    """One account: three trees (one retitled, one without category), all priorities, a few claimers, handoffs
    claimed, re-claimed and released, with and without actions, spread over 100 days; sessions of one tree
    with no session-started event at all."""
    acc = await gateway.account()
    t0 = now()
    trees = [
        (uuid.uuid4(), "Printer offline", "hardware"),
        (uuid.uuid4(), 'VPN, "drops"', None),
        (uuid.uuid4(), "Login", "access"),
    ]
    claimers = [uuid.uuid4() for _ in range(3)]
    events: list[Event] = []
    for i in range(60):
        session, handoff = uuid.uuid4(), uuid.uuid4()
        tree_id, title, category = trees[i % 3]
        started = t0 - timedelta(days=rng.uniform(0.2, 100), seconds=i)
        if i % 3 == 0:
            # The same tree retitled by a newer version: its newest sessions carry the new title.
            recent = i > 30
            started = t0 - timedelta(days=rng.uniform(0.2, 3) if recent else rng.uniform(3, 100), seconds=i)
            title = "Printer offline (v2)" if recent else title
        if i % 10 != 9:  # every tenth session's session-started event never arrives
            events.append(acc.started(session, tree_id, started, title=title, category=category))
        t = started + timedelta(minutes=rng.uniform(1, 30))
        events.append(acc.requested(handoff, session, t, priority=rng.choice(["low", "normal", "high", "urgent"])))
        version = 1
        for op in rng.choice(
            [["claim"], ["claim"], ["claim", "claim"], ["claim", "release"], ["claim", "release", "claim"]]
        ):
            version += 1
            t += timedelta(minutes=rng.uniform(1, 90))
            if op == "claim":
                events.append(acc.claimed(handoff, session, t, version=version, by=rng.choice(claimers)))
            else:
                events.append(acc.released(handoff, session, t, version=version))
        for _ in range(rng.randint(0, 3)):
            at = t + timedelta(seconds=rng.choice([-30, 0, 5, 45, 700, 4000, 90000]) + rng.uniform(0, 3))
            events.append(acc.step(session, at, actor_type=rng.choice(["human", "ai"])))
    return acc, events, claimers


async def deliver(env, events: list[Event], rng: Random) -> None:
    first, again = shuffled_twice(events, rng)
    # Session-started events held back to a later wave: steps, claims and requests arrive before them.
    late = [e for e in first if type(e).__name__ == "SessionStarted" and rng.random() < 0.5]
    await env.publish([e for e in first if e not in late])
    await env.settle()
    await env.publish(late + again)
    await env.settle()


def parse_item(item: dict[str, Any]) -> dict[str, Any]:
    out = dict(item)
    for k in ("handoff_id", "session_id", "tree_id", "claimed_by"):
        out[k] = uuid.UUID(item[k]) if item[k] else None
    for k in ("claimed_at", "first_action_at"):
        out[k] = datetime.fromisoformat(item[k]) if item[k] else None
    return out


def assert_items_match(
    got: list[dict[str, Any]], want: list[dict[str, Any]], before: datetime, after: datetime
) -> None:
    """Exact but for waiting time, which is measured at the request's own instant (between before and after)."""
    assert len(got) == len(want), (got, want)
    for g, w in zip(got, want, strict=True):
        g = parse_item(g)
        for k in w:
            if k == "waiting_seconds" and w[k] is not None:
                assert g["claimed_at"] + timedelta(seconds=g[k]) >= before - timedelta(milliseconds=1), (g, w)
                assert g["claimed_at"] + timedelta(seconds=g[k]) <= after + timedelta(milliseconds=1), (g, w)
            elif k == "delta_seconds" and w[k] is not None:
                assert g[k] == pytest.approx(w[k], abs=1e-6), (k, g, w)
            else:
                assert g[k] == w[k], (k, g, w)


# ---- breakdown ----


@pytest.mark.parametrize("by", ["tree", "category", "priority", "claimer"])
async def test_breakdown_matches_the_reference_on_a_shuffled_duplicated_history(
    env, gateway, history, insights, by
) -> None:
    rng = Random(f"breakdown-{by}")
    acc, events, _ = await team_history(gateway, rng)
    await deliver(env, events, rng)
    for period in ("7d", "30d", "90d"):
        body = await gateway.ok("/breakdown", acc.account_id, period=period, by=by)
        assert body["period"] == period and body["by"] == by
        start, end = datetime.fromisoformat(body["window_start"]), datetime.fromisoformat(body["window_end"])
        assert end - start == timedelta(days=PERIOD_DAYS[period])
        expected = insights.breakdown(insights.counted(events, acc.account_id, start, end), by)
        insights.assert_groups_match(body["groups"], expected)
        assert datetime.fromisoformat(body["data_as_of"]) == max(e.occurred_at for e in events)
    ninety = await gateway.ok("/breakdown", acc.account_id, period="90d", by=by)
    assert len(ninety["groups"]) >= 3
    if by in ("tree", "category"):
        # The sessions whose session-started never came, and (category) the tree without one.
        assert ninety["groups"][-1]["key"] is None or any(g["key"] is None for g in ninety["groups"])
    if by == "tree":
        assert "Printer offline (v2)" in {g["label"] for g in ninety["groups"]}


async def test_a_session_started_after_its_claims_and_steps_moves_its_handoffs_into_their_tree(
    env, gateway, history
) -> None:
    acc = await gateway.account()
    session, handoff, tree = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    claimed_at = now() - timedelta(hours=2)
    await env.publish(
        [
            acc.step(session, claimed_at + timedelta(seconds=20)),
            acc.claimed(handoff, session, claimed_at, version=2),
        ]
    )
    await env.settle()
    body = await gateway.ok("/breakdown", acc.account_id, period="7d", by="tree")
    assert [(g["key"], g["label"], g["n_handoffs_claimed"]) for g in body["groups"]] == [(None, None, 1)]
    body = await gateway.ok("/breakdown", acc.account_id, period="7d", by="priority")
    assert [(g["key"], g["n_handoffs_claimed"]) for g in body["groups"]] == [(None, 1)]

    await env.publish(
        [
            acc.started(session, tree, claimed_at - timedelta(minutes=10), title="Wi-Fi", category=None),
            acc.requested(handoff, session, claimed_at - timedelta(minutes=5), priority="urgent"),
        ]
    )
    await env.settle()
    body = await gateway.ok("/breakdown", acc.account_id, period="7d", by="tree")
    assert body["groups"] == [
        {
            "key": str(tree),
            "label": "Wi-Fi",
            "n_handoffs_claimed": 1,
            "n_handoffs_with_action": 1,
            "avg_seconds": 20.0,
            "median_seconds": 20.0,
            "p95_seconds": 20.0,
        }
    ]
    category = await gateway.ok("/breakdown", acc.account_id, period="7d", by="category")
    assert [(g["key"], g["label"]) for g in category["groups"]] == [(None, None)]
    priority = await gateway.ok("/breakdown", acc.account_id, period="7d", by="priority")
    assert [(g["key"], g["label"]) for g in priority["groups"]] == [("urgent", "urgent")]


async def test_groups_are_ordered_by_count_then_key(env, gateway, history) -> None:
    acc = await gateway.account()
    base = now() - timedelta(days=1)
    events: list[Event] = []
    # normal: 2 handoffs, high and low: 1 each (ties broken by key: "high" < "low"), urgent: none.
    for i, priority in enumerate(["low", "normal", "high", "normal"]):
        session, handoff = uuid.uuid4(), uuid.uuid4()
        events += [
            acc.requested(handoff, session, base + timedelta(minutes=i), priority=priority),  # type: ignore[arg-type]
            acc.claimed(handoff, session, base + timedelta(minutes=i, seconds=30), version=2),
        ]
    await env.publish(events)
    await env.settle()
    body = await gateway.ok("/breakdown", acc.account_id, period="7d", by="priority")
    assert [(g["key"], g["n_handoffs_claimed"]) for g in body["groups"]] == [("normal", 2), ("high", 1), ("low", 1)]
    assert all(g["avg_seconds"] is None and g["n_handoffs_with_action"] == 0 for g in body["groups"])


# ---- drill-down ----


@pytest.mark.parametrize("order", ["slowest", "newest"])
async def test_drill_down_pages_through_every_counted_handoff_in_order(env, gateway, history, insights, order) -> None:
    rng = Random(f"drill-{order}")
    acc, events, _ = await team_history(gateway, rng)
    await deliver(env, events, rng)
    pages: list[dict[str, Any]] = []
    before = now()
    offset = 0
    while True:
        body = await gateway.ok("/handoffs", acc.account_id, period="90d", order=order, limit=7, offset=offset)
        assert body["limit"] == 7 and body["offset"] == offset
        pages += body["items"]
        offset += 7
        if offset >= body["total"]:
            break
    after = now()
    expected = insights.items(
        insights.counted(events, acc.account_id, before - timedelta(days=90), before), order, before
    )
    assert body["total"] == len(expected) == len(pages)
    assert any(i["delta_seconds"] is None for i in pages) and any(i["delta_seconds"] is not None for i in pages)
    assert any(i["first_actor_type"] == "ai" for i in pages) and any(i["first_actor_type"] == "human" for i in pages)
    assert_items_match(pages, expected, before, after)
    beyond = await gateway.ok("/handoffs", acc.account_id, period="90d", order=order, offset=10_000)
    assert beyond["items"] == [] and beyond["total"] == len(expected)


async def test_drill_down_defaults_to_slowest_fifty(env, gateway, history) -> None:
    acc = await gateway.account()
    base = now() - timedelta(hours=5)
    events: list[Event] = []
    for i in range(55):
        session, handoff = uuid.uuid4(), uuid.uuid4()
        events += [
            acc.claimed(handoff, session, base + timedelta(seconds=i), version=2),
            acc.step(session, base + timedelta(seconds=i + i * 10)),
        ]
    await env.publish(events)
    await env.settle()
    body = await gateway.ok("/handoffs", acc.account_id, period="7d")
    assert body["total"] == 55 and body["limit"] == 50 and body["offset"] == 0
    assert [i["delta_seconds"] for i in body["items"]] == [float(d * 10) for d in range(54, 4, -1)]


async def test_csv_download_has_every_row_quoted_per_rfc_4180_with_an_attachment_header(
    env, gateway, history, insights
) -> None:
    rng = Random("csv")
    acc, events, _ = await team_history(gateway, rng)
    await deliver(env, events, rng)
    before = now()
    as_param = await gateway.get(
        "/handoffs", acc.account_id, period="90d", order="newest", format="csv", limit=3, offset=2
    )
    r = await gateway.client.get(
        "/api/v1/analytics/flowpilot/escalations/handoffs",
        params={"period": "90d", "order": "newest", "limit": 5},
        headers={**gateway.headers(acc.account_id), "Accept": "text/csv"},
    )
    after = now()
    expected = insights.items(
        insights.counted(events, acc.account_id, before - timedelta(days=90), before), "newest", before
    )
    for answer in (as_param, r):
        assert answer.status_code == 200, answer.text
        assert answer.headers["content-type"].startswith("text/csv")
        assert answer.headers["content-disposition"].startswith("attachment")
        assert answer.text.endswith("\r\n") and "\n" not in answer.text.replace("\r\n", "")
        rows = list(csv.reader(io.StringIO(answer.text, newline="")))
        assert rows[0] == list(expected[0].keys())
        assert len(rows) - 1 == len(expected) > 5  # every row: limit and offset ignored
        as_json = [{k: (v if v != "" else None) for k, v in zip(rows[0], row, strict=True)} for row in rows[1:]]
        for item in as_json:
            for k in ("delta_seconds", "waiting_seconds"):
                item[k] = float(item[k]) if item[k] is not None else None
        assert_items_match(as_json, expected, before, after)


async def test_csv_cells_with_separators_quotes_and_line_breaks_are_quoted() -> None:
    async def rows():
        for row in (
            ["a,b", 'say "hi"', "two\nlines", None, 1.5],
            ["plain", "", None, 0, datetime(2026, 1, 2, tzinfo=UTC)],
        ):
            yield row

    text = "".join([chunk async for chunk in csv_document(["a", "b", "c", "d", "e"], rows())])
    assert text == ('a,b,c,d,e\r\n"a,b","say ""hi""","two\nlines",,1.5\r\nplain,,,0,2026-01-02T00:00:00+00:00\r\n')


# ---- series and histogram ----


@pytest.mark.parametrize("tz", ["UTC", "America/New_York", "Asia/Kathmandu", "Pacific/Chatham"])
async def test_series_matches_the_reference_in_any_zone_zero_filled(env, gateway, history, insights, tz) -> None:
    rng = Random(f"series-{tz}")
    acc, events, _ = await team_history(gateway, rng)
    # Claims around local midnights, on the day of the 2026-11-01 change of New York's clock among them.
    for day in range(1, 40):
        session, handoff = uuid.uuid4(), uuid.uuid4()
        at = now() - timedelta(days=day, minutes=rng.uniform(-90, 90))
        events += [acc.claimed(handoff, session, at, version=2), acc.step(session, at + timedelta(seconds=day))]
    await deliver(env, events, rng)
    for period in ("7d", "90d"):
        before = now()
        body = await gateway.ok("/series", acc.account_id, period=period, tz=tz)
        after = now()
        assert body["period"] == period and body["tz"] == tz
        # The answer is for one instant between before and after: it matches the reference at one of them.
        candidates = []
        for t in (before, after):
            start = t - timedelta(days=PERIOD_DAYS[period])
            candidates.append(insights.series(insights.counted(events, acc.account_id, start, t), start, t, tz))
        want = next(
            (c for c in candidates if [d["date"] for d in c["days"]] == [d["date"] for d in body["days"]]), None
        )
        assert want is not None, ([d["date"] for d in body["days"]], candidates)
        assert body["histogram"] == want["histogram"]
        for got, exp in zip(body["days"], want["days"], strict=True):
            assert got["n_handoffs_claimed"] == exp["n_handoffs_claimed"], (got, exp)
            insights.assert_stats_match(got, exp)
        assert any(d["n_handoffs_claimed"] == 0 and d["avg_seconds"] is None for d in body["days"]) or period == "7d"
        assert datetime.fromisoformat(body["data_as_of"]) == max(e.occurred_at for e in events)


async def test_series_defaults_to_utc_and_the_histogram_bounds_are_closed_below(env, gateway, history) -> None:
    acc = await gateway.account()
    base = now() - timedelta(hours=30)
    deltas = [0, 9.5, 10, 29.999, 30, 86399, 86400, 100000]
    events: list[Event] = []
    for i, delta in enumerate(deltas):
        session, handoff = uuid.uuid4(), uuid.uuid4()
        at = base + timedelta(minutes=i)
        events += [acc.claimed(handoff, session, at, version=2), acc.step(session, at + timedelta(seconds=delta))]
    await env.publish(events)
    await env.settle()
    body = await gateway.ok("/series", acc.account_id, period="7d")
    assert body["tz"] == "UTC"
    assert body["histogram"]["bounds_seconds"] == [0, 10, 30, 60, 120, 300, 600, 1800, 3600, 14400, 86400]
    assert body["histogram"]["counts"] == [2, 2, 1, 0, 0, 0, 0, 0, 0, 1, 2]
    assert len(body["days"]) == 8  # a 7-day window always touches 8 calendar days
    assert sum(d["n_handoffs_claimed"] for d in body["days"]) == len(deltas)


# ---- the API's refusals ----


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/breakdown", {"period": "1d", "by": "tree"}),
        ("/breakdown", {"period": "7d", "by": "team"}),
        ("/breakdown", {"period": "7d"}),
        ("/handoffs", {"period": "7d", "order": "oldest"}),
        ("/handoffs", {"period": "7d", "limit": 0}),
        ("/handoffs", {"period": "7d", "limit": 501}),
        ("/handoffs", {"period": "7d", "offset": -1}),
        ("/handoffs", {"period": "7d", "format": "xml"}),
        ("/handoffs", {}),
        ("/series", {"period": "7d", "tz": "Mars/Olympus_Mons"}),
        ("/series", {"period": "7d", "tz": "../../etc/passwd"}),
        ("/series", {"period": "7d", "tz": ""}),
        ("/series", {"period": "365d"}),
    ],
)
async def test_bad_parameters_are_422_with_a_reason(gateway, history, path, params) -> None:
    r = await gateway.get(path, (await gateway.account()).account_id, **params)
    assert r.status_code == 422, r.text
    assert r.json()["detail"]


async def test_an_unknown_zone_names_its_code(env, gateway, history) -> None:
    r = await env.running.client.get(
        "/api/v1/analytics/flowpilot/escalations/series",
        params={"period": "7d", "tz": "Nowhere/Town"},
        headers=env.caller(history().account_id).headers,
    )
    assert r.status_code == 422
    assert "Nowhere/Town" in str(r.json()["detail"])


@pytest.mark.parametrize("path", ["/breakdown?by=tree", "/handoffs", "/handoffs?format=csv", "/series"])
async def test_viewers_are_refused_and_anonymous_callers_unauthorized(env, gateway, history, path) -> None:
    url = f"/api/v1/analytics/flowpilot/escalations{path}{'&' if '?' in path else '?'}period=7d"
    account_id = (await gateway.account()).account_id
    viewer = await gateway.client.get(url, headers=gateway.headers(account_id, "viewer"))
    assert viewer.status_code == 403
    anonymous = await gateway.client.get(url)
    assert anonymous.status_code == 401
    admin = await gateway.client.get(url, headers=gateway.headers(account_id, "admin"))
    assert admin.status_code == 200


async def test_each_account_sees_only_its_own_handoffs(env, gateway, history) -> None:
    mine, theirs = await gateway.account(), await gateway.account()
    session, handoff, tree = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    at = now() - timedelta(hours=3)
    await env.publish(
        [
            theirs.started(session, tree, at, title="secret"),
            theirs.requested(handoff, session, at, priority="high"),
            theirs.claimed(handoff, session, at, version=2),
            theirs.step(session, at + timedelta(seconds=3)),
        ]
    )
    await env.settle()
    assert (await gateway.ok("/breakdown", mine.account_id, period="7d", by="tree"))["groups"] == []
    page = await gateway.ok("/handoffs", mine.account_id, period="7d")
    assert page == {"items": [], "total": 0, "limit": 50, "offset": 0, "clock": "wall", "schedule_version": None}
    series = await gateway.ok("/series", mine.account_id, period="7d")
    assert all(d["n_handoffs_claimed"] == 0 for d in series["days"]) and sum(series["histogram"]["counts"]) == 0
    assert series["data_as_of"] is None
    csv_text = (await gateway.get("/handoffs", mine.account_id, period="7d", format="csv")).text
    assert csv_text.count("\r\n") == 1  # the header row only


# ---- rebuild ----


async def test_rebuild_reproduces_every_insight(env, gateway, history) -> None:
    rng = Random("rebuild-insights")
    acc, events, _ = await team_history(gateway, rng)
    await deliver(env, events, rng)

    async def answers() -> dict[str, Any]:
        got: dict[str, Any] = {}
        for by in ("tree", "category", "priority", "claimer"):
            body = await gateway.ok("/breakdown", acc.account_id, period="90d", by=by)
            got[by] = (body["groups"], body["data_as_of"])
        page = await gateway.ok("/handoffs", acc.account_id, period="90d", order="newest", limit=500)
        got["handoffs"] = [{k: v for k, v in i.items() if k != "waiting_seconds"} for i in page["items"]]
        series = await gateway.ok("/series", acc.account_id, period="90d", tz="Europe/Paris")
        got["series"] = (series["days"], series["histogram"])
        return got

    before = await answers()
    assert before["tree"][0] and before["handoffs"]
    report = await rebuild(env.settings(), batch_size=53)
    assert report.applied > len(events)
    assert_same_answers(await answers(), before)  # an avg summed in another row order: its last bits
