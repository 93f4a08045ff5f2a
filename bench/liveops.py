"""Live operations: stale-claim detection delay, and the live queue's fan-out to 500 open streams, on one stack.

`uv run python -m bench.liveops [--samples 20] [--streams 500] [--gateway-url URL]`. The stale half is below; the
SSE half (claim's 200 to its event on every open stream, gateway KiB per stream) is bench._liveops_sse.
Without --gateway-url the four services run
as their own uvicorn processes (fresh databases, a fresh topic prefix) as in bench.analytics_freshness; with it,
a running stack is used. The account's policy is set to the shortest the API allows (60 s, no auto-release),
`samples` handoffs are claimed, and the queue is polled through the gateway every 20 ms: each sample is the
time from `stale_since` (= claimed_at + 60 s, the deadline) to the first answer that shows the claim stale.
It takes a little over a minute, as the deadline cannot be shorter. The detector's pass interval
(RF_STALE_CHECK_INTERVAL_S, 1 s) bounds the delay from above, plus the commit and the poll.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from datetime import UTC, datetime

import httpx

from bench._liveops_sse import liveops_arguments, sse_measure
from bench._support import TREE, four_services, new_account, percentile

COMMAND = "uv run python -m bench.liveops"
STALE_AFTER_S = 60


async def claimed_handoffs(api: httpx.AsyncClient, headers: dict[str, str], tree_id: str, n: int) -> set[str]:
    ids = set()
    for _ in range(n):
        session = (await api.post("/sessions", json={"tree_id": tree_id}, headers=headers)).raise_for_status().json()
        handoff = (await api.post("/handoffs", json={"session_id": session["id"], "reason": "bench"},
                                  headers=headers)).raise_for_status().json()
        (await api.post(f"/handoffs/{handoff['id']}/claim", headers=headers)).raise_for_status()
        ids.add(handoff["id"])
    return ids


async def measure(gateway_url: str, samples: int) -> list[float]:
    """Milliseconds from each claim's deadline to the first queue answer showing it stale."""
    async with httpx.AsyncClient(base_url=gateway_url + "/api/v1", timeout=30) as api:
        headers = await new_account(api, "Bench liveops")
        (await api.put("/handoffs/policy", json={"stale_after_seconds": STALE_AFTER_S, "auto_release": False},
                       headers=headers)).raise_for_status()
        tree_id = (await api.post("/trees", json=TREE, headers=headers)).raise_for_status().json()["id"]
        waiting = await claimed_handoffs(api, headers, tree_id, samples)
        delays: list[float] = []
        give_up = time.monotonic() + STALE_AFTER_S + 60
        while waiting:
            if time.monotonic() > give_up:
                raise RuntimeError(f"{len(waiting)} claims were not found stale within a minute of their deadline")
            page = (await api.get("/handoffs", params={"status": "claimed", "limit": 200},
                                  headers=headers)).raise_for_status().json()
            seen = datetime.now(UTC)
            for item in page["items"]:
                if item["id"] in waiting and item["stale"]:
                    waiting.discard(item["id"])
                    delays.append((seen - datetime.fromisoformat(item["stale_since"])).total_seconds() * 1000)
            await asyncio.sleep(0.02)
        return delays


async def run(samples: int, gateway_url: str | None, streams: int = 500) -> dict[str, object]:
    async with four_services(gateway_url) as (url, gateway_pid):
        results = sorted(await measure(url, samples))
        p50 = statistics.median(results)
        p95 = percentile(results, 0.95)
        print(f"stale detection, {samples} claims: p50 {p50:.0f} ms  p95 {p95:.0f} ms  "
              f"min {results[0]:.0f}  max {results[-1]:.0f}")
        sse = await sse_measure(url, streams, samples, gateway_pid)
    return {"bench": "liveops", "stale_samples": samples, "stale_p50_ms": round(p50, 1),
            "stale_p95_ms": round(p95, 1), **sse, "command": COMMAND}


def main() -> None:
    args = liveops_arguments("python -m bench.liveops", __doc__)
    print(json.dumps(asyncio.run(run(args.samples, args.gateway_url, args.streams))))


if __name__ == "__main__":
    main()
