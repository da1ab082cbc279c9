"""What the engine counts for monitoring, read on demand (`MediaEngine.stats()`), in plain numbers: the web layer
turns a snapshot into whatever an exporter wants when it is scraped.

Nothing here runs per packet: the engine's gauges are counted from its sessions when asked, listener queue
drops are counted only when a packet is dropped, tick figures once per denoise worker tick (50 a second at
most), pass-through fallbacks and restarts when they happen.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from dataclasses import dataclass, field

# Upper bounds of the tick-time buckets (seconds): a worker has 20 ms per tick for all its streams.
TICK_SECONDS_BUCKETS = (0.001, 0.002, 0.005, 0.01, 0.015, 0.02, 0.03, 0.05, 0.1, 0.25)
# Upper bounds of the frame-wait buckets (seconds): about 20 ms when a worker keeps up; a worker whose frames
# keep waiting over 150 ms passes streams through (audio_engine.denoise_policy.MAX_WAIT_S).
WAIT_SECONDS_BUCKETS = (0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0)

# Why a denoised stream was switched to pass-through by the server (not by its owner).
FALLBACK_BUSY = "busy"  # its worker fell behind and shed it
FALLBACK_WORKER_UNAVAILABLE = "worker_unavailable"  # its worker crashed, hung, is restarting or was given up
FALLBACK_MODEL_UNAVAILABLE = "model_unavailable"  # its worker could not open a model for it


class BucketCounts:
    """Observations counted into buckets by upper bound, with their sum: the shape of a Prometheus histogram."""

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self._bounds = bounds
        self._counts = [0] * (len(bounds) + 1)  # the last one: above every bound
        self._sum = 0.0

    def observe(self, value: float) -> None:
        self._counts[bisect_left(self._bounds, value)] += 1  # bounds are inclusive, as Prometheus' `le`
        self._sum += value

    def snapshot(self) -> HistogramSnapshot:
        cumulative, total = [], 0
        for bound, count in zip((*self._bounds, math.inf), self._counts, strict=True):
            total += count
            cumulative.append((bound, total))
        return HistogramSnapshot(tuple(cumulative), self._sum)


@dataclass(frozen=True)
class HistogramSnapshot:
    """Cumulative counts per upper bound (the last bound is infinity) and the sum of the observations."""

    buckets: tuple[tuple[float, int], ...]
    sum: float

    @property
    def count(self) -> int:
        return self.buckets[-1][1]


@dataclass(frozen=True)
class DenoiseWorkerStats:
    """One denoise worker: `state` (starting, ready, stopped, given-up), how often it was restarted, and per tick
    with output: its wall time (`tick_seconds`) and the longest a frame of it waited (`wait_seconds`)."""

    index: int
    state: str
    restarts: int
    tick_seconds: HistogramSnapshot
    wait_seconds: HistogramSnapshot


@dataclass(frozen=True)
class EngineStats:
    """A snapshot of one engine. `live_streams`: sessions it holds; `denoised_streams`: those whose audio is
    being denoised now; `listeners`: connected listener connections; `listener_dropped_packets`: packets
    dropped from full listener queues since the engine started; `denoise_headroom`: see
    MediaEngine.denoise_headroom; `pass_through_fallbacks`: streams switched to pass-through by the server, per
    reason (FALLBACK_*)."""

    live_streams: int
    denoised_streams: int
    listeners: int
    listener_dropped_packets: int
    denoise_headroom: int | None
    denoise_workers: tuple[DenoiseWorkerStats, ...] = ()
    pass_through_fallbacks: dict[str, int] = field(default_factory=dict)
