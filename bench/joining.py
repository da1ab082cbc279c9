"""Do streams that join disturb a stream that is already running? A running stream's listener measures the gaps
between the packets it receives while 10 more denoised streams start within one second.

Run:  .venv/bin/python -m bench.joining [--backend batched rs] [--joining 10] [--within 1.0] [--workers N]
                                        [--joiner-nice N]

Three processes, as in bench.capacity: the server (`bench.capacity serve`: one MediaEngine with its denoise
workers), this process (the running stream's publisher and its one listener, which timestamps every packet it
receives and does nothing else), and a joiner process that starts the other streams' publishers spread over
`--within` seconds (offer, answer, ICE, DTLS, then real-time audio: the whole cost of a join). Every stream is
denoised. A listener receives a packet every 20 ms; what a join could cost it is a stall of the server's loop or
of the stream's denoise worker (opening a model), heard as a gap. Reported: the largest gap and the gaps over
30 ms in the 4 s from the first join, beside the same figures for the 4 s before it (the reference: what the
machine's scheduling alone does), and whether the RTP timestamps stayed contiguous (no frame skipped).
The joiners share the server's two cores; `--joiner-nice 10` lowers their priority, standing in for browsers on
other machines: the server still does all of its side of every join at its own priority.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import os
import subprocess
import sys
import time

import numpy as np
from aiohttp import ClientSession
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.rtp import RtpPacket

from audio_engine import EngineConfig
from audio_engine.client import connect_publisher
from audio_engine.codec import OpusPacketEncoder
from audio_engine.framing import FRAME_SAMPLES
from bench.capacity import PreEncodedTrack
from bench.common import REPO_ROOT, fixture

GAP_LIMIT_MS = 30.0
WINDOW_S = 4.0


def looped_payloads() -> list[bytes]:
    return [bytes(packet) for packet in OpusPacketEncoder().encode(fixture("speech_noisy.wav"))]


async def post_offer(http: ClientSession, url: str, offer: str) -> str:
    async with http.post(url, data=offer) as response:
        response.raise_for_status()
        return await response.text()


async def join(port: int, count: int, within_s: float, hold_s: float) -> None:
    """The joiner process: `count` publishers, started evenly over `within_s`, kept sending for `hold_s`."""
    payloads = looped_payloads()
    peers = []
    async with ClientSession() as http:
        started = time.perf_counter()
        for index in range(count):
            await asyncio.sleep(max(0.0, started + index * within_s / count - time.perf_counter()))
            signal = functools.partial(post_offer, http, f"http://127.0.0.1:{port}/publish/join{index}")
            peers.append(asyncio.ensure_future(connect_publisher(PreEncodedTrack(payloads), signal)))
        await asyncio.gather(*peers)
        print(f"joined {count} in {time.perf_counter() - started:.2f} s", flush=True)
        await asyncio.sleep(hold_s)
    os._exit(0)


def gaps_ms(arrivals: list[tuple[float, int]], start: float, end: float) -> tuple[float, int, int]:
    """(largest gap, gaps over GAP_LIMIT_MS, RTP timestamp jumps) among the packets that arrived in [start, end)."""
    window = [(t, ts) for t, ts in arrivals if start <= t < end]
    times = np.array([t for t, _ in window])
    steps = np.diff(times) * 1000 if len(times) > 1 else np.zeros(1)
    jumps = sum(1 for (_, a), (_, b) in zip(window, window[1:], strict=False) if (b - a) % 2**32 != FRAME_SAMPLES)
    return float(steps.max()), int(np.sum(steps > GAP_LIMIT_MS)), jumps


async def measure(port: int, joining: int, within_s: float, joiner_nice: int) -> dict:
    payloads = looped_payloads()
    arrivals: list[tuple[float, int]] = []
    async with ClientSession() as http:
        base = f"http://127.0.0.1:{port}"
        publisher = await connect_publisher(PreEncodedTrack(payloads),
                                            functools.partial(post_offer, http, base + "/publish/running"))
        listener = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        listener.addTransceiver("audio", direction="recvonly")
        await listener.setLocalDescription(await listener.createOffer())
        answer = await post_offer(http, base + "/listen/running", listener.localDescription.sdp)
        await listener.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
        transport = listener.getReceivers()[0].transport

        async def timestamp(data: bytes, arrival_time_ms: int) -> None:
            arrivals.append((time.perf_counter(), RtpPacket.parse(data).timestamp))

        # Only the arrival time and RTP timestamp: nothing else runs in this process that could delay them.
        transport._handle_rtp_data = timestamp
        await asyncio.sleep(2.0 + WINDOW_S)  # connect, settle, then the reference window
        joined_at = time.perf_counter()
        joiner = subprocess.Popen(
            ["nice", "-n", str(joiner_nice), sys.executable, "-m", "bench.joining", "join", "--port", str(port),
             "--joining", str(joining), "--within", str(within_s)],
            stdout=subprocess.PIPE, text=True, env=dict(os.environ, PYTHONPATH=str(REPO_ROOT)), cwd=REPO_ROOT)
        await asyncio.sleep(WINDOW_S + 0.5)
        assert joiner.stdout is not None
        joined_line = joiner.stdout.readline().strip()  # printed once every join has connected
        joiner.kill()
        joiner.wait()
        await listener.close()
        await publisher.close()
    before = gaps_ms(arrivals, joined_at - WINDOW_S, joined_at)
    during = gaps_ms(arrivals, joined_at, joined_at + WINDOW_S)
    return {"before": before, "during": during, "joined": joined_line}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", nargs="?", default="report", choices=["report", "join"])
    parser.add_argument("--port", type=int)
    parser.add_argument("--backend", nargs="*", default=[EngineConfig().denoise_backend, "rs"])
    parser.add_argument("--workers", type=int, default=EngineConfig().denoise_workers)
    parser.add_argument("--joining", type=int, default=10)
    parser.add_argument("--within", type=float, default=1.0)
    parser.add_argument("--joiner-nice", type=int, default=0,
                        help="niceness of the joiner process: > 0 stands in for joiners on other machines, whose "
                             "own work (their half of each handshake, their audio) then yields to the server")
    args = parser.parse_args()
    if args.mode == "join":
        asyncio.run(join(args.port, args.joining, args.within, hold_s=WINDOW_S + 2))
        return

    print(f"{args.joining} denoised streams start within {args.within:g} s beside a running one ({args.workers} "
          f"denoise workers); gaps between the packets the running stream's listener receives (20 ms apart when "
          f"nothing disturbs them), {WINDOW_S:g} s before the first join (reference) and {WINDOW_S:g} s from it; "
          f"joiner process at niceness {args.joiner_nice}")
    print()
    print("| backend | largest gap ms: before / during joins | gaps > 30 ms: before / during | RTP timestamp jumps "
          "during | joins |")
    print("|---|---|---|---|---|")
    for backend in args.backend:
        port = 19_000 + os.getpid() % 1000
        server = subprocess.Popen([sys.executable, "-m", "bench.capacity", "serve", "--port", str(port),
                                   "--workers", str(args.workers), "--backend", backend],
                                  stdout=subprocess.PIPE, env=dict(os.environ, PYTHONPATH=str(REPO_ROOT)),
                                  cwd=REPO_ROOT)
        try:
            assert server.stdout is not None and server.stdout.readline().strip() == b"ready"
            r = asyncio.run(measure(port, args.joining, args.within, args.joiner_nice))
        finally:
            server.kill()
            server.wait()
        (max_before, over_before, _), (max_during, over_during, jumps) = r["before"], r["during"]
        print(f"| {backend} | {max_before:.1f} / {max_during:.1f} | {over_before} / {over_during} | {jumps} | "
              f"{r['joined']} |", flush=True)


if __name__ == "__main__":
    main()
