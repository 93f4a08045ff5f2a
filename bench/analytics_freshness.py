"""Analytics freshness: from the gateway's 201 for the first step after a claim to the metric including it.

`uv run python -m bench.analytics_freshness [--samples 50] [--gateway-url URL]`. Without --gateway-url the
four services run as their own uvicorn processes (fresh databases, a fresh topic prefix) on infrastructure
from rf_devstack; with it, a running stack (`make start`) is used. Each sample: start a session, escalate it,
claim the handoff, record a step (the clock starts when the gateway answers 201), then poll the metric through
the gateway until `n_handoffs_with_action` has grown by one. The path measured: sessions' outbox -> Kafka ->
analytics' consumer -> its database -> the metric query (the claim travels handoffs' outbox -> Kafka meanwhile).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time

import httpx

from bench._support import TREE, four_services, new_account, percentile

COMMAND = "uv run python -m bench.analytics_freshness"
METRIC = "/analytics/flowpilot/escalations"


async def with_actions(api: httpx.AsyncClient, headers: dict[str, str]) -> int:
    r = await api.get(METRIC, params={"period": "7d"}, headers=headers)
    return int(r.raise_for_status().json()["n_handoffs_with_action"])


async def sample(api: httpx.AsyncClient, headers: dict[str, str], tree_id: str, before: int) -> float:
    """Milliseconds from the step's 201 to the first metric answer that includes it."""
    session = (await api.post("/sessions", json={"tree_id": tree_id}, headers=headers)).raise_for_status().json()
    handoff = (await api.post("/handoffs", json={"session_id": session["id"], "reason": "bench", "priority": "high"},
                              headers=headers)).raise_for_status().json()
    (await api.post(f"/handoffs/{handoff['id']}/claim", headers=headers)).raise_for_status()
    step = await api.post(f"/sessions/{session['id']}/steps",
                          json={"kind": "action", "content": "first action", "actor_type": "human"}, headers=headers)
    answered = time.perf_counter()
    if step.status_code != 201:
        raise RuntimeError(f"step: {step.status_code} {step.text}")
    deadline = answered + 30
    while await with_actions(api, headers) <= before:
        if time.perf_counter() > deadline:
            raise RuntimeError("the metric did not include the step within 30 s")
        await asyncio.sleep(0.002)
    return (time.perf_counter() - answered) * 1000


async def measure(gateway_url: str, samples: int) -> list[float]:
    async with httpx.AsyncClient(base_url=gateway_url + "/api/v1", timeout=30) as api:
        headers = await new_account(api, "Bench freshness")
        tree_id = (await api.post("/trees", json=TREE, headers=headers)).raise_for_status().json()["id"]
        await sample(api, headers, tree_id, 0)  # warm: connections, prepared statements, consumer assignment
        results = []
        for _ in range(samples):
            results.append(await sample(api, headers, tree_id, await with_actions(api, headers)))
        return results


async def run(samples: int, gateway_url: str | None) -> dict[str, object]:
    async with four_services(gateway_url) as (url, _):
        results = sorted(await measure(url, samples))
    p50 = statistics.median(results)
    p95 = percentile(results, 0.95)
    print(f"{samples} samples: p50 {p50:.1f} ms  p95 {p95:.1f} ms  min {results[0]:.1f}  max {results[-1]:.1f}")
    return {"bench": "analytics_freshness", "samples": samples, "p50_ms": round(p50, 1), "p95_ms": round(p95, 1),
            "command": COMMAND}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.analytics_freshness", description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=50)
    parser.add_argument("--gateway-url", default=None, help="a running stack's gateway (default: start one)")
    args = parser.parse_args()
    print(json.dumps(asyncio.run(run(args.samples, args.gateway_url))))


if __name__ == "__main__":
    main()
