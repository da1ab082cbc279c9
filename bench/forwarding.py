"""What does forwarding a listener's offer to the process holding the stream cost?

Run:  .venv/bin/python -m bench.forwarding [--rounds 30]

Two real Daphne servers on loopback sharing a redis-server and one SQLite database. The broadcaster goes live on
process A (her media is held there) and sends real audio; a listener then posts offers, alternately to A (answered
by its own engine: the reference, measured in the same run) and to B (checked there, forwarded over Redis to A,
answered by A's engine, the answer relayed back). Timed: from sending `POST /api/stream/listener/alice/offer/` to
its answer (the client's ICE gathering is done before). Each answered connection is closed at once.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

import aiohttp
import numpy as np
from aiortc import RTCPeerConnection

from audio_engine.client import PacedAudioTrack, connect_publisher
from bench.common import fixture, percentile, throwaway_redis_server
from quietcast_cli.api import QuietcastApi
from tests.live_server import PASSWORD, free_port, prepare_database, running_daphne, seed_code, server_environment

SEED = seed_code(("alice", "bob"), friends=(("alice", "bob"),))


async def timed_offer(listener: QuietcastApi) -> float:
    pc = RTCPeerConnection()
    pc.addTransceiver("audio", direction="recvonly")
    await pc.setLocalDescription(await pc.createOffer())
    started = time.perf_counter()
    await listener.send_listener_offer("alice", pc.localDescription.sdp)
    elapsed_ms = (time.perf_counter() - started) * 1000
    await pc.close()
    return elapsed_ms


async def measure(server_a: str, server_b: str, rounds: int) -> dict[str, list[float]]:
    async with aiohttp.ClientSession() as http:
        alice, bob_on_a, bob_on_b = (QuietcastApi(url, http) for url in (server_a, server_a, server_b))
        for api, name in ((alice, "alice"), (bob_on_a, "bob"), (bob_on_b, "bob")):
            await api.login(name, PASSWORD)
        await alice.start_stream(False)
        track = PacedAudioTrack(np.tile(fixture("speech_noisy.wav"), 8))  # long enough for every round
        publisher = await connect_publisher(track, alice.send_publisher_offer, [])
        await timed_offer(bob_on_a)  # warm-up: the first offer of each process loads what it needs
        await timed_offer(bob_on_b)
        times: dict[str, list[float]] = {"same process (A answers)": [], "forwarded (B -> Redis -> A)": []}
        for _ in range(rounds):
            times["same process (A answers)"].append(await timed_offer(bob_on_a))
            times["forwarded (B -> Redis -> A)"].append(await timed_offer(bob_on_b))
        await alice.stop_stream()
        await publisher.close()
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        workdir = Path(tmp)
        port = free_port()
        redis_url = stack.enter_context(throwaway_redis_server(port))
        env = server_environment(
            workdir, REDIS_URL=f"{redis_url}/0", DENOISE_WORKERS="1", MAX_LISTENER_CONNECTIONS_PER_USER="0"
        )
        prepare_database(env, SEED)
        server_a = stack.enter_context(running_daphne(env, workdir / "a.log"))
        server_b = stack.enter_context(running_daphne(env, workdir / "b.log"))
        times = asyncio.run(measure(server_a.url, server_b.url, args.rounds))
    reference = percentile(times["same process (A answers)"], 50)
    print(f"Listener offer -> answer, {args.rounds} offers each, alternating, loopback; the broadcaster's media on A\n")
    print("| listener's offer sent to | p50 ms | p95 ms | p50 / same process |")
    print("|---|---|---|---|")
    for label, values in times.items():
        print(f"| {label} | {percentile(values, 50):.1f} | {percentile(values, 95):.1f} | "
              f"{percentile(values, 50) / reference:.2f} |")


if __name__ == "__main__":
    main()
