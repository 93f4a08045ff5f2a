"""Gateway overhead: an authenticated GET forwarded by the gateway against the same GET sent straight to sessions.

`uv run python -m bench.gateway_overhead`. The sessions service and the gateway run as their own uvicorn
processes on real PostgreSQL; a user registered through the gateway starts one session, then the same
`GET /api/v1/sessions/{id}` with the same token is sent by 16 concurrent workers, a fixed number of times,
directly to sessions and through the gateway, in alternating rounds of the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import statistics
import subprocess
import time
import uuid

import httpx

from bench._support import TREE, bench_infra, new_account, serve, wait_ready
from rf_devstack.postgres import ensure_databases, url_with_database
from rf_testsupport import free_port
from rfkit.auth import generate_keypair

COMMAND = "uv run python -m bench.gateway_overhead"
GATEWAY_PORT, SESSIONS_PORT = free_port(), free_port()
async def load(url: str, path: str, headers: dict[str, str], *, requests: int, concurrency: int) -> dict[str, float]:
    """`requests` GETs by `concurrency` workers over one pooled client; throughput and latency percentiles."""
    latencies: list[float] = []
    remaining = requests

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            began = time.perf_counter()
            r = await client.get(path, headers=headers)
            latencies.append((time.perf_counter() - began) * 1000)
            if r.status_code != 200:
                raise RuntimeError(f"{url}{path}: {r.status_code} {r.text}")

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30) as client:
        began = time.perf_counter()
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
        elapsed = time.perf_counter() - began
    latencies.sort()
    return {
        "rps": requests / elapsed,
        "p50_ms": statistics.median(latencies),
        "p99_ms": latencies[min(len(latencies) - 1, round(0.99 * (len(latencies) - 1)))],
    }


def cpu_seconds(pid: int | None = None) -> float:
    """CPU time (user + system) a process has used so far; this process when `pid` is None."""
    if pid is None:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _merge(rounds: list[dict[str, float]]) -> dict[str, float]:
    return {key: statistics.median(r[key] for r in rounds) for key in rounds[0]}


async def run(requests: int, concurrency: int, rounds: int, sequential: int) -> dict[str, object]:
    infra = await bench_infra()
    procs: list[subprocess.Popen[bytes]] = []
    try:
        suffix = uuid.uuid4().hex[:8]
        names = {"sessions": f"bench_gw_sessions_{suffix}", "gateway": f"bench_gw_gateway_{suffix}"}
        await ensure_databases(infra.database_url, list(names.values()))
        private_pem, public_pem = generate_keypair()
        common = {"RF_KAFKA_BOOTSTRAP": infra.kafka_bootstrap, "RF_LOG_LEVEL": "WARNING", "RF_ENV": "test",
                  "RF_TOPIC_PREFIX": f"bench{suffix}."}
        sessions_url = f"http://127.0.0.1:{SESSIONS_PORT}"
        gateway_url = f"http://127.0.0.1:{GATEWAY_PORT}"
        procs.append(serve("sessions", SESSIONS_PORT, {
            **common, "RF_DATABASE_URL": url_with_database(infra.database_url, names["sessions"]),
            "RF_JWT_PUBLIC_KEY": public_pem}))
        procs.append(serve("gateway", GATEWAY_PORT, {
            **common, "RF_DATABASE_URL": url_with_database(infra.database_url, names["gateway"]),
            "RF_JWT_PRIVATE_KEY": private_pem, "RF_SESSIONS_URL": sessions_url}))
        await asyncio.gather(wait_ready(sessions_url), wait_ready(gateway_url))

        async with httpx.AsyncClient(base_url=gateway_url + "/api/v1", timeout=30) as api:
            headers = await new_account(api, "Bench")
            tree = (await api.post("/trees", json=TREE, headers=headers)).raise_for_status().json()
            session = (await api.post("/sessions", json={"tree_id": tree["id"]}, headers=headers)).raise_for_status()
        path = f"/api/v1/sessions/{session.json()['id']}"

        for url in (sessions_url, gateway_url):  # warm: connections, prepared statements, caches
            await load(url, path, headers, requests=500, concurrency=concurrency)
        direct_rounds: list[dict[str, float]] = []
        gateway_rounds: list[dict[str, float]] = []
        sessions_pid, gateway_pid = procs[0].pid, procs[1].pid
        cpu = {"direct": [0.0, 0.0, 0.0], "gateway": [0.0, 0.0, 0.0]}  # client, sessions, gateway (ms/request)
        for i in range(rounds):
            for key, url, out in (("direct", sessions_url, direct_rounds), ("gateway", gateway_url, gateway_rounds)):
                before = (cpu_seconds(), cpu_seconds(sessions_pid), cpu_seconds(gateway_pid))
                out.append(await load(url, path, headers, requests=requests, concurrency=concurrency))
                after = (cpu_seconds(), cpu_seconds(sessions_pid), cpu_seconds(gateway_pid))
                for j in range(3):
                    cpu[key][j] += (after[j] - before[j]) * 1000 / (requests * rounds)
            print(f"round {i + 1}: direct {direct_rounds[-1]['rps']:7.0f} rps p50 {direct_rounds[-1]['p50_ms']:.2f} ms"
                  f" | via gateway {gateway_rounds[-1]['rps']:7.0f} rps p50 {gateway_rounds[-1]['p50_ms']:.2f} ms")
        direct, via = _merge(direct_rounds), _merge(gateway_rounds)
        for name, m in (("direct to sessions", direct), ("via the gateway", via)):
            print(f"{name:>20}: {m['rps']:7.0f} rps  p50 {m['p50_ms']:6.2f} ms  p99 {m['p99_ms']:6.2f} ms")
        print(f"{requests} requests x {rounds} rounds, concurrency {concurrency}, GET /api/v1/sessions/{{id}}"
              " (medians over rounds)")
        for key, (client_ms, sessions_ms, gateway_ms) in cpu.items():
            print(f"CPU per request, {key:>7}: bench client {client_ms:.2f} ms, sessions {sessions_ms:.2f} ms,"
                  f" gateway {gateway_ms:.2f} ms (PostgreSQL not counted)")
        # One request at a time: the latency the extra hop adds when nothing queues for the CPU.
        seq_direct: list[dict[str, float]] = []
        seq_via: list[dict[str, float]] = []
        for _ in range(rounds):
            seq_direct.append(await load(sessions_url, path, headers, requests=sequential, concurrency=1))
            seq_via.append(await load(gateway_url, path, headers, requests=sequential, concurrency=1))
        one_direct, one_via = _merge(seq_direct), _merge(seq_via)
        print(f"one at a time ({sequential} x {rounds}): direct p50 {one_direct['p50_ms']:.2f} ms"
              f" p99 {one_direct['p99_ms']:.2f} ms | via gateway p50 {one_via['p50_ms']:.2f} ms"
              f" p99 {one_via['p99_ms']:.2f} ms")
        return {
            "bench": "gateway_overhead",
            "direct_rps": round(direct["rps"], 1),
            "via_gateway_rps": round(via["rps"], 1),
            # Per round pair, then the median: a pair ran back to back, under the same outside load.
            "ratio": round(statistics.median(v["rps"] / d["rps"] for d, v in zip(direct_rounds, gateway_rounds,
                                                                                  strict=True)), 3),
            "added_p50_ms": round(statistics.median(v["p50_ms"] - d["p50_ms"] for d, v in zip(
                direct_rounds, gateway_rounds, strict=True)), 2),
            "direct_p50_ms": round(direct["p50_ms"], 2),
            "direct_p99_ms": round(direct["p99_ms"], 2),
            "via_gateway_p50_ms": round(via["p50_ms"], 2),
            "via_gateway_p99_ms": round(via["p99_ms"], 2),
            "gateway_cpu_ms_per_request": round(cpu["gateway"][2], 2),
            "sessions_cpu_ms_per_request": round(cpu["direct"][1], 2),
            "added_p50_ms_c1": round(statistics.median(v["p50_ms"] - d["p50_ms"] for d, v in zip(
                seq_direct, seq_via, strict=True)), 2),
            "direct_p50_ms_c1": round(one_direct["p50_ms"], 2),
            "via_gateway_p50_ms_c1": round(one_via["p50_ms"], 2),
            "requests": requests,
            "rounds": rounds,
            "concurrency": concurrency,
            "command": COMMAND,
        }
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=20)
        await asyncio.to_thread(infra.stop)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.gateway_overhead", description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1500, help="requests per round and target")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--sequential", type=int, default=300, help="one-at-a-time requests per round")
    args = parser.parse_args()
    print(json.dumps(asyncio.run(run(args.requests, args.concurrency, args.rounds, args.sequential))))


if __name__ == "__main__":
    main()
