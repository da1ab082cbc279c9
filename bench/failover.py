"""How long after a server process dies do the friends of a broadcaster it held see her stream end?

Run:  .venv/bin/python -m bench.failover

Two server processes (as `make run` starts them) behind the committed nginx config, sharing a redis-server this
starts and an SQLite database. Each round alice goes live on process A with a real aiortc publisher, bob watches
her stream through process B, A is killed with SIGKILL, and the figure is the time from the kill to bob's
`stream_ended` (`server_lost`) arriving; A is then restarted (`recover_streams`, then Daphne) for the next round.
Beside each figure is the bound the settings promise: MEDIA_HOST_DEAD_SECONDS after the last heartbeat, plus at
most one STREAM_DEADLINE_CHECK_SECONDS for a survivor's sweep to notice.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path

from audio_engine.client import PacedAudioTrack, connect_publisher
from bench.common import fixture, throwaway_redis_server
from quietcast_cli.api import QuietcastApi
from tests.live_server import PASSWORD, free_port, seed_code
from tests.nginx_proxy import Site, running_site

SEED = seed_code(("alice", "bob"), friends=(("alice", "bob"),))
A, B = 0, 1
# (label, heartbeat s, dead after s, sweep every s, rounds)
CONFIGURATIONS = [
    ("defaults", 2.0, 10.0, 1.0, 3),
    ("short (as the failover test)", 0.5, 3.0, 0.5, 5),
]


async def one_round(site: Site, bob_token: str, audio) -> float:
    async with site.client(A) as alice_http, site.client(B) as bob_http:
        alice = QuietcastApi(site.proxy.url, alice_http)
        await alice.login("alice", PASSWORD)
        socket_url = site.proxy.url.replace("https://", "wss://") + "/ws/stream/alice/"
        async with bob_http.ws_connect(socket_url, headers={"Authorization": f"Token {bob_token}"}) as watching:
            await watching.receive(timeout=5)  # stream_status
            await alice.start_stream(denoise=False)
            track = PacedAudioTrack(audio)
            publisher = await connect_publisher(track, alice.send_publisher_offer, [])
            while track.seconds_sent < 1.0:
                await asyncio.sleep(0.05)
            site.kill(A)
            killed_at = time.perf_counter()
            while True:
                message = json.loads((await watching.receive(timeout=60)).data)
                if message["type"] == "stream_ended":
                    break
            detected_after = time.perf_counter() - killed_at
            assert message["reason"] == "server_lost", message
            await publisher.close()
    await asyncio.to_thread(site.start, A)
    return detected_after


async def rounds(site: Site, count: int) -> list[float]:
    async with site.client(B) as http:
        response = await http.post(f"{site.proxy.url}/api/auth/token/", json={"username": "bob", "password": PASSWORD})
        token = (await response.json())["token"]
    audio = fixture("speech_noisy.wav")
    return [await one_round(site, token, audio) for _ in range(count)]


def main() -> None:
    port = free_port()
    results = []
    with throwaway_redis_server(port) as redis_url:
        with tempfile.TemporaryDirectory() as tmp:
            for database, (label, heartbeat, dead, sweep, count) in enumerate(CONFIGURATIONS):
                workdir = Path(tmp) / label.split()[0]
                with running_site(
                    workdir, processes=2, seed=SEED, database_url=f"sqlite:///{workdir / 'db.sqlite3'}",
                    redis_url=f"{redis_url}/{database}", DENOISE_WORKERS="1",
                    MEDIA_HOST_HEARTBEAT_SECONDS=str(heartbeat), MEDIA_HOST_DEAD_SECONDS=str(dead),
                    STREAM_DEADLINE_CHECK_SECONDS=str(sweep),
                ) as site:
                    results.append((label, heartbeat, dead, sweep, asyncio.run(rounds(site, count))))
    print("SIGKILL of the process holding a stream -> the friend's stream_ended (server_lost), through nginx\n")
    print("| settings | heartbeat s | dead after s | sweep s | bound s | rounds | median s | max s |")
    print("|---|---|---|---|---|---|---|---|")
    for label, heartbeat, dead, sweep, delays in results:
        print(f"| {label} | {heartbeat:g} | {dead:g} | {sweep:g} | {dead + sweep:g} | {len(delays)} "
              f"| {statistics.median(delays):.2f} | {max(delays):.2f} |")


if __name__ == "__main__":
    main()
