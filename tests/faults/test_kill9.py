"""kill -9 against the running system: what the gateway acknowledged is reflected exactly once, whatever died.

The stack is real processes (tests/faults/processes.py): four uvicorn services and a Kafka broker of the module's
own. Every write goes through the gateway's public API; what each read model must show is computed from the
acknowledged answers alone, then polled for with a deadline (no timing is asserted, only outcomes).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio

from rf_contracts import topics

from .processes import TREE, Ledger, ProcessStack, User, gateway_client, new_team, ts, wait_for

# The first test also starts the stack (a JVM and four services): on a loaded machine that alone can take minutes.
pytestmark = pytest.mark.timeout(600)

# How long each convergence may take after the last fault (a bound, not a measured expectation).
CONVERGE_S = 120.0


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, pg_server_url: str) -> Iterator[ProcessStack]:
    running = ProcessStack(Path(tmp_path_factory.mktemp("kill9")), pg_server_url)
    try:
        running.start()
        yield running
    finally:
        running.stop()


@pytest_asyncio.fixture(loop_scope="session")
async def client(stack: ProcessStack) -> AsyncIterator[httpx.AsyncClient]:
    async with gateway_client(stack) as http:
        yield http


# --- writing through the gateway ---------------------------------------------------------------------------------


async def write(
    client: httpx.AsyncClient, ledger: Ledger, user: User, path: str, expect: int, body: dict[str, Any] | None = None
) -> dict[str, Any] | None:
    """POST; the answer when acknowledged with `expect`, else None (and the failure is on the ledger)."""
    try:
        r = await client.post(path, json=body, headers=user.headers)
    except httpx.HTTPError as exc:
        ledger.failures.append(f"POST {path}: {exc!r}")
        return None
    if r.status_code != expect:
        ledger.failures.append(f"POST {path}: {r.status_code} {r.text[:300]}")
        return None
    answer: dict[str, Any] = r.json()
    return answer


async def new_tree(client: httpx.AsyncClient, user: User) -> str:
    r = await client.post("/trees", json=TREE, headers=user.headers)
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


async def step(client: httpx.AsyncClient, ledger: Ledger, user: User, session_id: str, actor: str = "human") -> None:
    body = {"kind": "note" if actor == "human" else "suggestion", "content": "checked the cable", "actor_type": actor}
    answer = await write(client, ledger, user, f"/sessions/{session_id}/steps", 201, body)
    if answer is not None:
        ledger.step(answer)


async def open_handoff(client: httpx.AsyncClient, ledger: Ledger, user: User, tree_id: str) -> str | None:
    """A session with one step, escalated: the step comes before any claim, so it never is a first action."""
    session = await write(client, ledger, user, "/sessions", 201, {"tree_id": tree_id})
    if session is None:
        return None
    await step(client, ledger, user, session["id"])
    body = {"session_id": session["id"], "reason": "needs an expert", "priority": "high"}
    handoff = await write(client, ledger, user, "/handoffs", 201, body)
    if handoff is None:
        return None
    ledger.sessions_of[handoff["id"]] = session["id"]
    return str(handoff["id"])


async def escalate_claim_act(client: httpx.AsyncClient, ledger: Ledger, user: User, tree_id: str) -> None:
    """One engineer's escalation: a session and a step, a handoff, its claim, then a human and an AI step."""
    handoff_id = await open_handoff(client, ledger, user, tree_id)
    if handoff_id is None:
        return
    claim = await write(client, ledger, user, f"/handoffs/{handoff_id}/claim", 200)
    if claim is None:
        return
    ledger.claims[handoff_id] = claim
    await step(client, ledger, user, ledger.sessions_of[handoff_id])
    await step(client, ledger, user, ledger.sessions_of[handoff_id], actor="ai")


class Producer:
    """Concurrent writers of escalate_claim_act, paced by a budget: `allow(n)` lets n more escalations start.

    The budget keeps the amount written independent of how slow the machine is, while the writers still run
    across each fault (what the budget allows before a kill is written before, during and after it).
    """

    def __init__(self, client: httpx.AsyncClient, ledger: Ledger, user: User, tree_id: str) -> None:
        self.args = (client, ledger, user, tree_id)
        self.ledger = ledger
        self.allowed = 0
        self.started = 0
        self.in_flight = 0
        self.stopped = asyncio.Event()
        self.tasks: list[asyncio.Task[None]] = []

    def start(self, workers: int) -> None:
        self.tasks = [asyncio.create_task(self._work()) for _ in range(workers)]

    def allow(self, n: int) -> None:
        self.allowed += n

    async def _work(self) -> None:
        while not self.stopped.is_set():
            if self.started >= self.allowed:
                await asyncio.sleep(0.02)  # waiting for budget, not for an outcome
                continue
            self.started += 1
            self.in_flight += 1
            try:
                await escalate_claim_act(*self.args)
            finally:
                self.in_flight -= 1

    @property
    def idle(self) -> bool:
        """The whole budget is written (or failed): no more claims will come without allow()."""
        return self.started >= self.allowed and self.in_flight == 0

    async def until_claims(self, n: int, timeout_s: float = 120.0) -> None:
        """Waits until `n` claims are acknowledged (or the budget is spent: then there will be no more)."""

        async def reached() -> str | None:
            if len(self.ledger.claims) >= n or self.idle:
                return None
            return f"{len(self.ledger.claims)} claims acknowledged; failures {self.ledger.failures[:3]}"

        await wait_for(reached, timeout_s=timeout_s, what=f"{n} acknowledged claims", interval_s=0.05)

    async def drain(self, timeout_s: float = 120.0) -> None:
        """Waits until the budget is written, then stops the writers."""

        async def drained() -> str | None:
            return None if self.idle else f"{self.allowed - self.started} to start, {self.in_flight} in flight"

        try:
            await wait_for(drained, timeout_s=timeout_s, what="the writes allowed", interval_s=0.05)
        finally:
            await self.stop()

    async def stop(self) -> None:
        self.stopped.set()
        await asyncio.gather(*self.tasks)


# --- what must be reflected ----------------------------------------------------------------------------------------


@asynccontextmanager
async def writing(client: httpx.AsyncClient) -> AsyncIterator[tuple[User, Ledger, Producer]]:
    """A new team's admin, the ledger of what is acknowledged, and a producer writing with three workers (stopped
    on the way out)."""
    team = await new_team(client)
    ledger = Ledger(team.admin.account_id)
    producer = Producer(client, ledger, team.admin, await new_tree(client, team.admin))
    producer.start(workers=3)
    try:
        yield team.admin, ledger, producer
    finally:
        await producer.stop()


async def assert_analytics_reflects(stack: ProcessStack, client: httpx.AsyncClient, ledger: Ledger, user: User) -> None:
    """The escalation metric equals the one computed from the acknowledged answers, and analytics holds every
    acknowledged step and claim exactly once (and nothing else of this account)."""
    expected = ledger.expected_metric()
    expected_claims = {h: (claim["version"], ts(claim["claimed_at"])) for h, claim in ledger.claims.items()}

    async def metric_differs() -> str | None:
        try:
            r = await client.get("/analytics/flowpilot/escalations?period=7d", headers=user.headers)
        except httpx.HTTPError as exc:
            return repr(exc)
        if r.status_code != 200:
            return f"{r.status_code} {r.text[:200]}"
        got = {key: r.json()[key] for key in expected}
        return None if got == pytest.approx(expected, rel=1e-9, abs=1e-6) else f"got {got}, expected {expected}"

    async def read_model_differs() -> str | None:
        # The metric alone cannot tell: a step after a claim's first action does not move it.
        rows = await stack.fetch(
            "analytics",
            "SELECT step_id::text AS id, count(*) AS n FROM steps WHERE account_id = $1::uuid GROUP BY step_id",
            ledger.account_id,
        )
        held = {row["id"]: row["n"] for row in rows}
        if set(held) != set(ledger.steps) or any(n != 1 for n in held.values()):
            missing, unknown = set(ledger.steps) - set(held), set(held) - set(ledger.steps)
            doubled = [s for s, n in held.items() if n != 1]
            return f"steps: missing {sorted(missing)[:5]}, never acknowledged {sorted(unknown)[:5]}, doubled {doubled}"
        rows = await stack.fetch(
            "analytics",
            "SELECT handoff_id::text AS id, claim_version, claimed_at FROM handoffs"
            " WHERE account_id = $1::uuid AND claim_version IS NOT NULL",
            ledger.account_id,
        )
        claims = {row["id"]: (row["claim_version"], row["claimed_at"]) for row in rows}
        if claims != expected_claims:
            wrong = {h: (claims.get(h), want) for h, want in expected_claims.items() if claims.get(h) != want}
            return f"claims: {len(wrong)} differ, e.g. {list(wrong.items())[:3]}; {len(claims)} held"
        return None

    async def differs() -> str | None:
        return await metric_differs() or await read_model_differs()

    await wait_for(differs, timeout_s=CONVERGE_S, what="analytics")


async def assert_sessions_reflect(client: httpx.AsyncClient, ledger: Ledger, user: User) -> None:
    """Each escalated session shows its claim as the handoff-claimed event told sessions (claimer, time, version)."""
    semaphore = asyncio.Semaphore(16)

    async def view(handoff_id: str) -> str | None:
        async with semaphore:
            r = await client.get(f"/sessions/{ledger.sessions_of[handoff_id]}", headers=user.headers)
        if r.status_code != 200:
            return f"{r.status_code} {r.text[:200]}"
        seen, claim = r.json()["escalation"], ledger.claims[handoff_id]
        if seen is None:
            return f"{handoff_id}: no escalation yet"
        got = (seen["handoff_id"], seen["status"], seen["claimed_by"], seen["version"])
        if got != (handoff_id, "claimed", claim["claimed_by"], claim["version"]):
            return f"{handoff_id}: {got}"
        if ts(seen["claimed_at"]) != ts(claim["claimed_at"]):
            return f"{handoff_id}: claimed_at {seen['claimed_at']} != {claim['claimed_at']}"
        return None

    async def all_match() -> str | None:
        problems = [p for p in await asyncio.gather(*(view(h) for h in ledger.claims)) if p]
        return f"{len(problems)} differ, e.g. {problems[:3]}" if problems else None

    await wait_for(all_match, timeout_s=CONVERGE_S, what="sessions' view of the claims")


async def assert_events_once(stack: ProcessStack, ledger: Ledger) -> None:
    """On the broker: one event (one event id, redelivered copies aside) per acknowledged step and claim."""
    expected_versions = {h: claim["version"] for h, claim in ledger.claims.items()}

    async def differs() -> str | None:
        step_events: dict[str, set[str]] = defaultdict(set)
        for event in await stack.read_events(topics.STEP_CREATED):
            if event["account_id"] == ledger.account_id:
                step_events[event["step_id"]].add(event["event_id"])
        if set(step_events) != set(ledger.steps):
            missing, unknown = set(ledger.steps) - set(step_events), set(step_events) - set(ledger.steps)
            return f"step events: missing {sorted(missing)[:5]}, never acknowledged {sorted(unknown)[:5]}"
        doubled = {s: ids for s, ids in step_events.items() if len(ids) != 1}
        if doubled:
            return f"steps published as more than one event: {doubled}"
        claim_events: dict[str, set[tuple[str, int]]] = defaultdict(set)
        for event in await stack.read_events(topics.HANDOFF_CLAIMED):
            if event["account_id"] == ledger.account_id:
                claim_events[event["handoff_id"]].add((event["event_id"], event["version"]))
        versions = {h: [v for _, v in ids] for h, ids in claim_events.items()}
        if versions != {h: [v] for h, v in expected_versions.items()}:
            wrong = {h: ids for h, ids in versions.items() if ids != [expected_versions.get(h)]}
            missing = set(expected_versions) - set(versions)
            return f"claim events: missing {sorted(missing)[:5]}, more than one or another version {wrong}"
        return None

    await wait_for(differs, timeout_s=CONVERGE_S, what="the events on the broker")


# --- the scenarios -------------------------------------------------------------------------------------------------


async def test_analytics_killed_five_times_while_writing_misses_and_doubles_nothing(
    stack: ProcessStack, client: httpx.AsyncClient
) -> None:
    async with writing(client) as (admin, ledger, producer):
        began = time.monotonic()
        for kill in range(1, 6):
            # Writes acknowledged since it came back are being consumed when it dies; a supervisor restarts it
            # at once, and the rest of this cycle's writes go on meanwhile (a backlog for the next start).
            producer.allow(12)
            await producer.until_claims(len(ledger.claims) + 4)
            await asyncio.to_thread(stack.kill, "analytics")
            await asyncio.to_thread(stack.restart, "analytics")
            print(f"\nanalytics back after kill {kill} at {time.monotonic() - began:.0f}s", end="")
        await producer.drain()
    written = time.monotonic()
    assert ledger.failures == [], "writes do not involve analytics, so none may fail"
    assert ledger.claims, "the scenario wrote nothing"
    await assert_analytics_reflects(stack, client, ledger, admin)
    await assert_sessions_reflect(client, ledger, admin)
    print(
        f"\nanalytics x5: {len(ledger.claims)} claims, {len(ledger.steps)} steps reflected exactly once "
        f"(writes and kills {written - began:.0f}s, checks {time.monotonic() - written:.0f}s)"
    )


# Long enough for every client of the broker (outbox relays, consumer groups) to lose it and back off several times.
BROKER_DOWN_S = 15.0


async def test_broker_killed_during_writes_loses_and_doubles_nothing(
    stack: ProcessStack, client: httpx.AsyncClient
) -> None:
    async with writing(client) as (admin, ledger, producer):
        began = time.monotonic()
        producer.allow(20)
        await producer.until_claims(8)
        await asyncio.to_thread(stack.kill_broker)
        claims_before = len(ledger.claims)
        producer.allow(20)
        await asyncio.sleep(BROKER_DOWN_S)  # the outage itself: writes keep going through the outboxes
        claims_during = len(ledger.claims) - claims_before
        await asyncio.to_thread(stack.restart_broker)
        restarted = time.monotonic()
        producer.allow(10)
        await producer.drain()
    written = time.monotonic()

    assert ledger.failures == [], "writes go to the databases (the outboxes), never to Kafka, so none may fail"
    assert claims_during > 0, "nothing was acknowledged while the broker was down"
    await assert_analytics_reflects(stack, client, ledger, admin)
    await assert_sessions_reflect(client, ledger, admin)
    await assert_events_once(stack, ledger)
    print(
        f"\nbroker down {BROKER_DOWN_S:.0f}s: {claims_during} claims acknowledged during the outage; "
        f"{len(ledger.claims)} claims, {len(ledger.steps)} steps reflected exactly once (writes before the "
        f"restart {restarted - began:.0f}s, after {written - restarted:.0f}s, checks {time.monotonic() - written:.0f}s)"
    )


HANDOFFS = 50
CLAIMERS = 3  # engineers racing for every handoff: 150 concurrent claims


async def test_handoffs_killed_under_concurrent_claims_keeps_one_winner_each(
    stack: ProcessStack, client: httpx.AsyncClient
) -> None:
    team = await new_team(client, engineers=CLAIMERS)
    ledger = Ledger(team.admin.account_id)
    tree_id = await new_tree(client, team.admin)
    semaphore = asyncio.Semaphore(8)

    async def opened() -> str | None:
        async with semaphore:
            return await open_handoff(client, ledger, team.admin, tree_id)

    handoff_ids = [h for h in await asyncio.gather(*(opened() for _ in range(HANDOFFS))) if h]
    assert ledger.failures == [] and len(handoff_ids) == HANDOFFS, ledger.failures[:3]

    wins: dict[str, list[dict[str, Any]]] = defaultdict(list)  # handoff id -> every 200 answer to a claim
    answered = 0
    enough = asyncio.Event()

    async def claim(handoff_id: str, engineer: User) -> None:
        nonlocal answered
        try:
            r = await client.post(f"/handoffs/{handoff_id}/claim", headers=engineer.headers)
        except httpx.HTTPError as exc:
            ledger.failures.append(repr(exc))
            return
        finally:
            answered += 1
            if answered >= HANDOFFS * CLAIMERS // 6:
                enough.set()
        if r.status_code == 200:
            wins[handoff_id].append(r.json())
        elif r.status_code != 409:
            ledger.failures.append(f"{r.status_code} {r.text[:200]}")

    began = time.monotonic()
    race = [(h, engineer) for h in handoff_ids for engineer in team.engineers]
    random.shuffle(race)
    wave = [asyncio.create_task(claim(h, engineer)) for h, engineer in race]
    await asyncio.wait_for(enough.wait(), timeout=120)
    await asyncio.to_thread(stack.kill, "handoffs")  # a sixth answered, the rest in flight
    await asyncio.gather(*wave)
    interrupted = len(ledger.failures)
    await asyncio.to_thread(stack.restart, "handoffs")
    restarted = time.monotonic()

    # A client whose claim got no answer asks again: the holder's repeat is a no-op 200, anyone else's a 409.
    async def everyone_retried() -> str | None:
        pending = [h for h in handoff_ids if not wins[h]]
        await asyncio.gather(*(claim(h, engineer) for h in pending for engineer in team.engineers))
        return f"{len(pending)} handoffs without an acknowledged claim" if pending else None

    await wait_for(everyone_retried, timeout_s=CONVERGE_S, what="a winner for every handoff")

    for handoff_id, answers in wins.items():
        winners = {(a["claimed_by"], ts(a["claimed_at"]), a["version"]) for a in answers}
        assert len(winners) == 1, f"{handoff_id} has two winners: {winners}"
        ledger.claims[handoff_id] = answers[0]

    # The handoffs service's own state: the winner, once in the history.
    for handoff_id, claim_answer in ledger.claims.items():
        r = await client.get(f"/handoffs/{handoff_id}", headers=team.admin.headers)
        assert r.status_code == 200, r.text
        detail = r.json()
        assert (detail["status"], detail["claimed_by"], detail["version"]) == (
            "claimed",
            claim_answer["claimed_by"],
            claim_answer["version"],
        )
        assert ts(detail["claimed_at"]) == ts(claim_answer["claimed_at"])
        assert [e["action"] for e in detail["history"]].count("claimed") == 1, detail["history"]

    # Each winner acts on the session it claimed: the first action the metric measures.
    by_id = {engineer.id: engineer for engineer in team.engineers}
    steps_before = ledger.failures[:]
    await asyncio.gather(
        *(step(client, ledger, by_id[c["claimed_by"]], ledger.sessions_of[h]) for h, c in ledger.claims.items())
    )
    assert ledger.failures == steps_before, "sessions was not killed: no step may fail"

    written = time.monotonic()
    await assert_analytics_reflects(stack, client, ledger, team.admin)
    await assert_sessions_reflect(client, ledger, team.admin)
    await assert_events_once(stack, ledger)
    print(
        f"\nhandoffs killed under {len(race)} concurrent claims: {interrupted} claims failed (5xx or no answer); "
        f"{len(ledger.claims)} handoffs with one winner each, reflected exactly once (claims and restart "
        f"{restarted - began:.0f}s, retries and steps {written - restarted:.0f}s, "
        f"checks {time.monotonic() - written:.0f}s)"
    )
