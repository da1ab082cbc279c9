"""Do streams that join disturb a stream that is already running? A running stream's listener measures the gaps
between the packets it receives while 10 more denoised streams start within one second.

Run:  .venv/bin/python -m bench.joining [--backend batched rs] [--joining 10] [--within 1.0] [--workers N]
                                        [--joiner-nice N]

Three processes, as in bench.capacity: the server (`bench.capacity serve`: one MediaEngine with its denoise
workers), this process (the running stream's publisher and its one listener, which timestamps every packet it
receives and does nothing else), and a joiner process that starts the other streams' publishers spread over
`--within` seconds (offer, answer, ICE, DTLS, then real-time audio: the whole cost of a join). Every stream is
denoised. A listener receives a packet every 20 ms; what a join could cost it is a stall of the server's loop or
of the stream's denoise worker (opening a model), heard as a gap. Gaps are taken between the kernel's receive
times of the packets (on loopback, the server's send times), so the listener's own waits for a core do not count;
the times its process read them are reported beside. Reported: the largest gap and the gaps over 30 ms in the
4 s from the first join, beside the same figures for the 4 s before it (the reference: what the machine's
scheduling alone does), and whether the RTP timestamps stayed contiguous (no frame skipped).
The joiners share the server's two cores; `--joiner-nice 10` lowers their priority, standing in for browsers on
other machines: the server still does all of its side of every join at its own priority.
"""

from __future__ import annotations

import argparse
import asyncio
import fcntl
import functools
import os
import struct
import subprocess
import sys
import time

import numpy as np
from aiohttp import ClientSession
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.rtp import RtpPacket, is_rtcp

from audio_engine import EngineConfig
from audio_engine.client import connect_publisher
from audio_engine.codec import OpusPacketEncoder
from audio_engine.framing import FRAME_SAMPLES
from bench.capacity import PreEncodedTrack
from bench.common import REPO_ROOT, fixture

GAP_LIMIT_MS = 30.0
WINDOW_S = 4.0
SIOCGSTAMPNS = 0x8907  # Linux: the kernel's receive time of the last datagram read from a socket (timespec)


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


def stamp_rtp_on_arrival(listener: RTCPeerConnection, arrivals: list[tuple[float, float, int]]) -> None:
    """Record (kernel receive time, time this process read it, RTP timestamp) for every RTP datagram of the
    listener, as its socket hands it over: before SRTP, DTLS and aiortc's queues, so this process's own scheduling
    shows only in the second time. On loopback the kernel's receive time is the server's send time, which is what
    a listener on another machine gets (less its network's jitter). The RTP header is not encrypted by SRTP."""
    ice_connection = listener.getReceivers()[0].transport.transport._connection
    for protocol in ice_connection._protocols:
        sock = protocol.transport.get_extra_info("socket")
        handle = protocol.datagram_received

        def stamped(data: bytes, addr: tuple, sock=sock, handle=handle) -> None:
            read_at = time.time()
            if len(data) >= 12 and 128 <= data[0] < 192 and not is_rtcp(data):
                seconds, nanoseconds = struct.unpack("qq", fcntl.ioctl(sock.fileno(), SIOCGSTAMPNS, bytes(16)))
                arrivals.append((seconds + nanoseconds / 1e9, read_at, RtpPacket.parse(data).timestamp))
            handle(data, addr)

        protocol.datagram_received = stamped


async def measure(port: int, joining: int, within_s: float, joiner_nice: int) -> dict:
    payloads = looped_payloads()
    arrivals: list[tuple[float, float, int]] = []
    async with ClientSession() as http:
        base = f"http://127.0.0.1:{port}"
        publisher = await connect_publisher(PreEncodedTrack(payloads),
                                            functools.partial(post_offer, http, base + "/publish/running"))
        listener = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        listener.addTransceiver("audio", direction="recvonly")
        await listener.setLocalDescription(await listener.createOffer())
        answer = await post_offer(http, base + "/listen/running", listener.localDescription.sdp)
        await listener.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
        stamp_rtp_on_arrival(listener, arrivals)
        await asyncio.sleep(2.0 + WINDOW_S)  # connect, settle, then the reference window
        joined_at = time.time()
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
    sent = [(kernel, ts) for kernel, _, ts in arrivals]
    read = [(read_at, ts) for _, read_at, ts in arrivals]
    return {"before": gaps_ms(sent, joined_at - WINDOW_S, joined_at),
            "during": gaps_ms(sent, joined_at, joined_at + WINDOW_S),
            "read_before": gaps_ms(read, joined_at - WINDOW_S, joined_at),
            "read_during": gaps_ms(read, joined_at, joined_at + WINDOW_S),
            "joined": joined_line}


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
    print("Gaps are between the kernel's receive times of the listener's packets (on loopback, the server's send "
          "times); the last columns are the same packets as the listener's process read them, which adds that "
          "process's own waits for a core.")
    print()
    print("| backend | largest gap ms: before / during joins | gaps > 30 ms: before / during | RTP timestamp jumps "
          "during | as read: largest gap before / during | as read: gaps > 30 ms before / during | joins |")
    print("|---|---|---|---|---|---|---|")
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
        (read_max_before, read_over_before, _), (read_max_during, read_over_during, _) = (r["read_before"],
                                                                                        r["read_during"])
        print(f"| {backend} | {max_before:.1f} / {max_during:.1f} | {over_before} / {over_during} | {jumps} | "
              f"{read_max_before:.1f} / {read_max_during:.1f} | {read_over_before} / {read_over_during} | "
              f"{r['joined']} |", flush=True)


if __name__ == "__main__":
    main()
