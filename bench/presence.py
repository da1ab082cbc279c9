"""How long after a broadcaster presses Start does a friend's presence socket say so?

Run:  .venv/bin/python -m bench.presence

Real Daphne servers on loopback (as `make run` starts them), a real friend socket (aiohttp) and the real API:
the delay is from sending `POST /api/stream/start/` to the friend's `streaming_status_update` arriving.
Runs over the in-memory channel layer (one process) and, when redis-server is installed, over Redis with the
broadcaster and the friend on two different server processes.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

import aiohttp

from bench.common import percentile, throwaway_redis_server
from tests.live_server import PASSWORD, free_port, prepare_database, running_daphne, seed_code, server_environment

ROUNDS = 40
SEED = seed_code(("alice", "bob"), friends=(("alice", "bob"),))


async def token(http: aiohttp.ClientSession, base_url: str, username: str) -> dict[str, str]:
    response = await http.post(f"{base_url}/api/auth/token/", json={"username": username, "password": PASSWORD})
    return {"Authorization": f"Token {(await response.json())['token']}"}


async def measure(broadcaster_url: str, friend_url: str) -> list[float]:
    delays_ms = []
    async with aiohttp.ClientSession() as http:
        alice, bob = await token(http, broadcaster_url, "alice"), await token(http, friend_url, "bob")
        async with http.ws_connect(f"{friend_url}/ws/presence/", headers=bob) as friend_socket:
            await friend_socket.receive(timeout=5)  # all_statuses
            for _ in range(ROUNDS):
                sent_at = time.perf_counter()
                await http.post(f"{broadcaster_url}/api/stream/start/", json={"denoise": True}, headers=alice)
                while True:
                    message = json.loads((await friend_socket.receive(timeout=5)).data)
                    if message.get("is_streaming") is True:
                        break
                delays_ms.append((time.perf_counter() - sent_at) * 1000)
                await http.post(f"{broadcaster_url}/api/stream/stop/", json={}, headers=alice)
                await friend_socket.receive(timeout=5)  # is_streaming: false
    return delays_ms


def run(label: str, workdir: Path, redis_url: str | None, processes: int) -> tuple[str, list[float]]:
    env = server_environment(workdir, REDIS_URL=redis_url or "")
    prepare_database(env, SEED)
    with ExitStack() as stack:
        servers = [stack.enter_context(running_daphne(env, workdir / f"server{i}.log")) for i in range(processes)]
        return label, asyncio.run(measure(servers[0].url, servers[-1].url))


def main() -> None:
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        results.append(run("in-memory layer, one process", Path(tmp) / "memory", None, 1))
        if shutil.which("redis-server"):
            with throwaway_redis_server(free_port()) as redis_url:
                url = f"{redis_url}/0"
                results.append(run("Redis layer, one process", Path(tmp) / "redis1", url, 1))
                results.append(run("Redis layer, two processes", Path(tmp) / "redis2", url, 2))
    print(f"Start -> friend notified ({ROUNDS} rounds each, loopback)\n")
    print("| channel layer | p50 ms | p95 ms | max ms |")
    print("|---|---|---|---|")
    for label, delays in results:
        print(f"| {label} | {percentile(delays, 50):.1f} | {percentile(delays, 95):.1f} | {max(delays):.1f} |")


if __name__ == "__main__":
    main()
