"""How many live streams (publisher + 1 listener each), and how many listeners on one stream, one server
process sustains in real time on this machine.

Run:  .venv/bin/python -m bench.capacity [--streams 8 16 24] [--listeners 100 200 500] [--seconds 10]
      [--workers 2] [--load-processes 2] [--profile DIR]

Three kinds of process: this orchestrator; the server (`serve`: one MediaEngine, with its denoise worker
processes, behind a tiny HTTP signalling endpoint); the load generators (`load`: the publishers and listeners,
split over --load-processes processes so that their work is not charged to the server). Publishers send
pre-encoded Opus packets (no encoding cost on the load side); listeners count the RTP packets they receive
without decrypting or decoding them. Server CPU is measured from /proc for the server and its denoise workers
over the measurement window. A configuration is "sustained" when 95 % of the listeners receive >= 97 % of the
packets in real time AND >= 99 % of the audio was denoised (the pool passes audio through undenoised when
its workers cannot keep up, which would otherwise hide an overload); the server's event-loop
responsiveness (p99 lateness of a 20 ms timer) is reported next to it. --profile writes py-spy collapsed
stacks of the server process (all its threads) for each configuration.
On a 2-core machine the load generators compete with the server for the cores: the numbers are a floor.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import av
import numpy as np
from aiohttp import ClientSession, web
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamTrack

from audio_engine.client import connect_publisher
from audio_engine.codec import OpusPacketEncoder
from audio_engine.framing import TIME_BASE
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
                "loop_p99_ms": percentile(lateness[-250:], 99),
                "denoised_streams": sum(1 for b in engine._broadcasts.values() if b.stage.denoised),
                "streams": len(engine._broadcasts)}
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


def count_rtp_packets(pc: RTCPeerConnection, counter: list[int]) -> None:
    """Count the RTP packets a listener peer receives without decrypting or decoding them: the load
    generator only checks that the server delivers, and must stay cheap enough to simulate hundreds of
    listeners next to the server on the same cores."""
    transport = pc.getReceivers()[0].transport

    async def count(data: bytes, arrival_time_ms: int) -> None:
        counter[0] += 1

    transport._handle_rtp_data = count


async def generate_load(port: int, streams: int, listeners_per_stream: int, seconds: float,
                        share: int, shares: int) -> None:
    """One of `shares` load processes: publishes the streams s with s % shares == share, then connects the
    listeners with a global index i with i % shares == share. Driven by the orchestrator over stdin/stdout:
    "publish" -> "published", "listen" -> "listening", "go" -> a JSON line of per-listener packet counts."""
    payloads = [bytes(packet) for packet in OpusPacketEncoder().encode(fixture("speech_noisy.wav"))]
    base = f"http://127.0.0.1:{port}"
    counters: list[list[int]] = []
    peers = []
    loop = asyncio.get_running_loop()

    async def command() -> str:
        return (await loop.run_in_executor(None, sys.stdin.readline)).strip()

    def reply(line: str) -> None:
        print(line, flush=True)

    async with ClientSession() as http:
        async def signal(path: str, offer: str) -> str:
            async with http.post(base + path, data=offer) as response:
                response.raise_for_status()
                return await response.text()

        assert await command() == "publish"
        for stream in range(share, streams, shares):
            peers.append(await connect_publisher(PreEncodedTrack(payloads),
                                                 functools.partial(signal, f"/publish/s{stream}")))
        reply("published")
        assert await command() == "listen"
        for index in range(share, streams * listeners_per_stream, shares):
            pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
            pc.addTransceiver("audio", direction="recvonly")
            await pc.setLocalDescription(await pc.createOffer())
            answer = await signal(f"/listen/s{index // listeners_per_stream}", pc.localDescription.sdp)
            await pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
            counter = [0]
            count_rtp_packets(pc, counter)
            counters.append(counter)
            peers.append(pc)
        reply("listening")
        assert await command() == "go"
        before = [c[0] for c in counters]
        started = time.perf_counter()
        await asyncio.sleep(seconds)
        elapsed = time.perf_counter() - started
        reply(json.dumps({"received": [c[0] - b for c, b in zip(counters, before, strict=True)],
                          "elapsed": elapsed}))
    os._exit(0)  # hundreds of peers: skip the orderly teardown


# ---------------------------------------------------------------- orchestrator


def server_stats(port: int) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/stats") as response:
        return json.loads(response.read())


def run_configuration(streams: int, listeners_per_stream: int, seconds: float, workers: int,
                      load_processes: int, profile_dir: Path | None = None) -> dict:
    port = 18_000 + (os.getpid() + streams * 7 + listeners_per_stream) % 2000
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    server = subprocess.Popen([sys.executable, "-m", "bench.capacity", "serve", "--port", str(port),
                               "--workers", str(workers)], stdout=subprocess.PIPE, env=env, cwd=REPO_ROOT)
    loads: list[subprocess.Popen] = []
    profiler = None
    try:
        assert server.stdout.readline().strip() == b"ready"
        baseline_rss = process_rss_mb(server.pid)
        shares = max(1, min(load_processes, streams * listeners_per_stream))
        loads = [subprocess.Popen([sys.executable, "-m", "bench.capacity", "load", "--port", str(port),
                                   "--streams", str(streams), "--listeners", str(listeners_per_stream),
                                   "--seconds", str(seconds), "--share", str(share), "--shares", str(shares)],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env,
                                  cwd=REPO_ROOT)
                 for share in range(shares)]

        def step(command: str, expected: str | None) -> list[str]:
            for load in loads:
                load.stdin.write(command + "\n")
                load.stdin.flush()
            replies = [load.stdout.readline().strip() for load in loads]
            if expected is not None and any(r != expected for r in replies):
                raise RuntimeError(f"load generator answered {replies} to {command}")
            return replies

        step("publish", "published")
        step("listen", "listening")
        time.sleep(3.0)  # connect and settle
        if profile_dir is not None:
            # Collapsed stacks of the server's event-loop process during the measurement window.
            profile_dir.mkdir(parents=True, exist_ok=True)
            profiler = subprocess.Popen(
                [str(Path(sys.executable).with_name("py-spy")), "record", "--pid", str(server.pid),
                 "--format", "raw", "--duration", str(int(seconds)), "--rate", "200", "--nonblocking",
                 "--output", str(profile_dir / f"server-{streams}x{listeners_per_stream}.txt")],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        before = server_stats(port)
        started = time.perf_counter()
        results = [json.loads(line) for line in step("go", None)]
        elapsed = time.perf_counter() - started
        after = server_stats(port)
        if profiler is not None:
            profiler.wait()
    finally:
        for process in [*loads, server]:
            process.kill()
            process.wait()
    received = [count / (r["elapsed"] * 50) for r in results for count in r["received"]]
    return {
        "server_cpu_share": (after["cpu_s"] - before["cpu_s"]) / elapsed,
        "server_rss_mb": after["rss_mb"],
        "baseline_rss_mb": baseline_rss,
        "loop_p99_ms": after["loop_p99_ms"],
        "delivered_median": float(np.median(received)),
        "delivered_p5": float(np.percentile(received, 5)),
        "denoised_share": after["denoised_streams"] / after["streams"] if after["streams"] else 0.0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", nargs="?", default="report", choices=["report", "serve", "load"])
    parser.add_argument("--port", type=int)
    parser.add_argument("--workers", type=int, default=2, help="denoise worker processes of the server")
    parser.add_argument("--load-processes", type=int, default=2, help="load generator processes")
    parser.add_argument("--share", type=int, default=0)
    parser.add_argument("--shares", type=int, default=1)
    parser.add_argument("--streams", type=int, nargs="*", default=[8, 16, 24])
    parser.add_argument("--listeners", type=int, nargs="*", default=[100, 200, 500])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--profile", type=Path, metavar="DIR",
                        help="write py-spy collapsed stacks of the server process per configuration to DIR")
    args = parser.parse_args()
    if args.mode == "serve":
        asyncio.run(serve(args.port, args.workers))
        return
    if args.mode == "load":
        asyncio.run(generate_load(args.port, args.streams[0], args.listeners[0], args.seconds,
                                  args.share, args.shares))
        return

    def measure(streams: int, listeners: int) -> dict:
        return run_configuration(streams, listeners, args.seconds, args.workers, args.load_processes,
                                 args.profile)

    def delivery(r: dict) -> str:
        sustained = r["delivered_p5"] >= 0.97 and r["denoised_share"] >= 0.99
        return (f"{r['delivered_median']:.3f} / {r['delivered_p5']:.3f} | {r['denoised_share']:.3f} | "
                f"{r['loop_p99_ms']:.1f} | {'yes' if sustained else 'no'} |")

    print(f"Denoised streams, 1 listener each ({os.cpu_count()} cores, {args.workers} denoise workers, "
          f"{args.load_processes} load processes)")
    print("| streams | server CPU (cores) | CPU per stream | RSS MB | RSS per stream MB | packets delivered "
          "(median / p5) | denoised share | loop p99 ms | sustained |")
    print("|---|---|---|---|---|---|---|---|---|")
    for streams in args.streams:
        r = measure(streams, 1)
        print(f"| {streams} | {r['server_cpu_share']:.2f} | {r['server_cpu_share'] / streams:.3f} | "
              f"{r['server_rss_mb']:.0f} | {(r['server_rss_mb'] - r['baseline_rss_mb']) / streams:.1f} | "
              f"{delivery(r)}", flush=True)
    print()
    print("Listeners on one denoised stream")
    print("| listeners | server CPU (cores) | CPU per listener | packets delivered (median / p5) | denoised share | "
          "loop p99 ms | sustained |")
    print("|---|---|---|---|---|---|---|")
    for listeners in args.listeners:
        r = measure(1, listeners)
        print(f"| {listeners} | {r['server_cpu_share']:.2f} | {r['server_cpu_share'] / listeners:.4f} | "
              f"{delivery(r)}", flush=True)


if __name__ == "__main__":
    main()
