"""How many live streams (publisher + 1 listener each), and how many listeners on one stream, one server
process sustains in real time on this machine.

Run:  .venv/bin/python -m bench.capacity [--streams 4 8 12 16] [--listeners 25 50 100] [--seconds 10]

Three kinds of process: this orchestrator; the server (`serve`: one MediaEngine, with its denoise worker
processes, behind a tiny HTTP signalling endpoint); the load generator (`load`: the publishers and listeners,
in another process so that its work is not charged to the server). Publishers send pre-encoded Opus packets
(no encoding cost on the load side). Server CPU is measured from /proc for the server and its denoise
workers over the measurement window. A configuration is "sustained" when 95 % of the listeners receive
>= 97 % of the frames in real time; the server's event-loop responsiveness (p99 lateness of a 20 ms timer)
is reported next to it.
On a 2-core machine the load generator competes with the server for the cores: the numbers are a floor.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import av
import numpy as np
from aiohttp import ClientSession, web
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from audio_engine.client import connect_publisher
from audio_engine.framing import TIME_BASE, OpusPacketEncoder
from bench.common import REPO_ROOT, fixture, new_engine, percentile

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")


def process_cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def process_rss_mb(pid: int) -> float:
    return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE_BYTES / 2**20


# ---------------------------------------------------------------- server process


async def serve(port: int, workers: int) -> None:
    engine = new_engine(denoise_workers=workers)
    await engine.start()
    recordings = Path(tempfile.mkdtemp())
    lateness: list[float] = []

    async def watch_loop() -> None:
        while True:
            before = time.perf_counter()
            await asyncio.sleep(0.02)
            lateness.append((time.perf_counter() - before - 0.02) * 1000)

    async def publish(request: web.Request) -> web.Response:
        session_id = request.match_info["session"]
        answer = await engine.publish(session_id, await request.text(), denoise=True,
                                      recording_path=recordings / f"{session_id}.wav")
        return web.Response(text=answer)

    async def listen(request: web.Request) -> web.Response:
        return web.Response(text=await engine.listen(request.match_info["session"], await request.text()))

    async def stats(request: web.Request) -> web.Response:
        pids = [os.getpid(), *[pid for pid in engine._pool.worker_pids() if pid]]
        body = {"cpu_s": sum(process_cpu_seconds(pid) for pid in pids),
                "rss_mb": sum(process_rss_mb(pid) for pid in pids),
                "loop_p99_ms": percentile(lateness[-250:], 99)}
        return web.json_response(body)

    app = web.Application()
    app.router.add_post("/publish/{session}", publish)
    app.router.add_post("/listen/{session}", listen)
    app.router.add_get("/stats", stats)
    asyncio.create_task(watch_loop())
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    print("ready", flush=True)
    await asyncio.Event().wait()


# ---------------------------------------------------------------- load generator process


class PreEncodedTrack(MediaStreamTrack):
    """Plays pre-encoded Opus packets in real time, forever (aiortc's sender only packetizes them)."""

    kind = "audio"

    def __init__(self, payloads: list[bytes]) -> None:
        super().__init__()
        self._payloads = payloads
        self._sent = 0
        self._start: float | None = None

    async def recv(self) -> av.Packet:
        if self._start is None:
            self._start = time.perf_counter()
        await asyncio.sleep(max(0.0, self._start + self._sent * 0.02 - time.perf_counter()))
        packet = av.Packet(self._payloads[self._sent % len(self._payloads)])
        packet.pts = self._sent * 960
        packet.time_base = TIME_BASE
        self._sent += 1
        return packet


async def count_frames(track: MediaStreamTrack, counter: list[int]) -> None:
    try:
        while True:
            await track.recv()
            counter[0] += 1
    except MediaStreamError:
        pass


async def generate_load(port: int, streams: int, listeners_per_stream: int, seconds: float) -> None:
    payloads = [bytes(packet) for packet in OpusPacketEncoder().encode(fixture("speech_noisy.wav"))]
    base = f"http://127.0.0.1:{port}"
    counters: list[list[int]] = []
    peers = []
    async with ClientSession() as http:
        def signal(path: str):
            async def send(offer: str) -> str:
                async with http.post(base + path, data=offer) as reply:
                    reply.raise_for_status()
                    return await reply.text()
            return send

        for stream in range(streams):
            peers.append(await connect_publisher(PreEncodedTrack(payloads), signal(f"/publish/s{stream}")))
            for _ in range(listeners_per_stream):
                from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription

                pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
                pc.addTransceiver("audio", direction="recvonly")
                counter = [0]
                counters.append(counter)
                pc.on("track", lambda track, counter=counter: asyncio.ensure_future(count_frames(track, counter)))
                await pc.setLocalDescription(await pc.createOffer())
                answer = await signal(f"/listen/s{stream}")(pc.localDescription.sdp)
                await pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
                peers.append(pc)
        await asyncio.sleep(3.0)  # connect and settle
        async with http.get(base + "/stats") as reply:
            before = await reply.json()
        frames_before = [c[0] for c in counters]
        started = time.perf_counter()
        await asyncio.sleep(seconds)
        elapsed = time.perf_counter() - started
        async with http.get(base + "/stats") as reply:
            after = await reply.json()
        received = [c[0] - b for c, b in zip(counters, frames_before, strict=True)]
    print(json.dumps({
        "server_cpu_share": (after["cpu_s"] - before["cpu_s"]) / elapsed,
        "server_rss_mb": after["rss_mb"],
        "loop_p99_ms": after["loop_p99_ms"],
        "delivered_median": float(np.median(received)) / (elapsed * 50),
        "delivered_p5": float(np.percentile(received, 5)) / (elapsed * 50),
    }), flush=True)
    os._exit(0)  # hundreds of peers: skip the orderly teardown


# ---------------------------------------------------------------- orchestrator


def run_configuration(streams: int, listeners_per_stream: int, seconds: float, workers: int,
                      profile_dir: Path | None = None) -> dict:
    port = 18_000 + (os.getpid() + streams * 7 + listeners_per_stream) % 2000
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    baseline_rss = None
    server = subprocess.Popen([sys.executable, "-m", "bench.capacity", "serve", "--port", str(port),
                               "--workers", str(workers)], stdout=subprocess.PIPE, env=env, cwd=REPO_ROOT)
    try:
        assert server.stdout.readline().strip() == b"ready"
        baseline_rss = process_rss_mb(server.pid)
        profiler = None
        if profile_dir is not None:
            # Collapsed stacks of the server's event-loop process, sampled through set-up and measurement.
            profile_dir.mkdir(parents=True, exist_ok=True)
            profile = profile_dir / f"server-{streams}x{listeners_per_stream}.txt"
            profiler = subprocess.Popen([str(Path(sys.executable).with_name("py-spy")), "record", "--pid", str(server.pid), "--format", "raw",
                                         "--duration", str(int(seconds + 6)), "--rate", "200", "--nonblocking",
                                         "--output", str(profile)],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        load = subprocess.run([sys.executable, "-m", "bench.capacity", "load", "--port", str(port),
                               "--streams", str(streams), "--listeners", str(listeners_per_stream),
                               "--seconds", str(seconds)], capture_output=True, env=env, cwd=REPO_ROOT,
                              timeout=seconds + 180)
        result = json.loads(load.stdout.decode().strip().splitlines()[-1])
        if profiler is not None:
            profiler.wait()
    finally:
        server.kill()
        server.wait()
    result["baseline_rss_mb"] = baseline_rss
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", nargs="?", default="report", choices=["report", "serve", "load"])
    parser.add_argument("--port", type=int)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--streams", type=int, nargs="*", default=[4, 8, 12, 16])
    parser.add_argument("--listeners", type=int, nargs="*", default=[25, 50, 100])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--profile", type=Path, metavar="DIR",
                        help="write py-spy collapsed stacks of the server process per configuration to DIR")
    args = parser.parse_args()
    if args.mode == "serve":
        asyncio.run(serve(args.port, args.workers))
        return
    if args.mode == "load":
        asyncio.run(generate_load(args.port, args.streams[0], args.listeners[0], args.seconds))
        return

    print(f"Denoised streams, 1 listener each ({os.cpu_count()} cores, {args.workers} denoise worker)")
    print("| streams | server CPU (cores) | CPU per stream | RSS MB | RSS per stream MB | frames delivered "
          "(median / p5) | loop p99 ms | sustained |")
    print("|---|---|---|---|---|---|---|---|")
    for streams in args.streams:
        r = run_configuration(streams, 1, args.seconds, args.workers, args.profile)
        sustained = r["delivered_p5"] >= 0.97
        print(f"| {streams} | {r['server_cpu_share']:.2f} | {r['server_cpu_share'] / streams:.3f} | "
              f"{r['server_rss_mb']:.0f} | {(r['server_rss_mb'] - r['baseline_rss_mb']) / streams:.1f} | "
              f"{r['delivered_median']:.3f} / {r['delivered_p5']:.3f} | {r['loop_p99_ms']:.1f} | "
              f"{'yes' if sustained else 'no'} |", flush=True)
    print()
    print("Listeners on one denoised stream")
    print("| listeners | server CPU (cores) | CPU per listener | frames delivered (median / p5) | loop p99 ms | "
          "sustained |")
    print("|---|---|---|---|---|---|")
    for listeners in args.listeners:
        r = run_configuration(1, listeners, args.seconds, args.workers, args.profile)
        sustained = r["delivered_p5"] >= 0.97
        print(f"| {listeners} | {r['server_cpu_share']:.2f} | {r['server_cpu_share'] / listeners:.4f} | "
              f"{r['delivered_median']:.3f} / {r['delivered_p5']:.3f} | {r['loop_p99_ms']:.1f} | "
              f"{'yes' if sustained else 'no'} |", flush=True)


if __name__ == "__main__":
    main()
