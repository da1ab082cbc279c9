"""Denoise backends for tests, chosen by name ("tests.engine.fake_backends:Class") like the real ones."""

from __future__ import annotations

import os
import time
from collections.abc import Mapping

import numpy as np

from audio_engine.denoise import DFN3_DELAY_SAMPLES, DenoiseSettings
from audio_engine.framing import HOP_SAMPLES

# Seconds each stream's hop costs SlowHalvingBackend (read by the worker process at start).
SLOWNESS_VARIABLE = "QUIETCAST_TEST_BACKEND_HOP_SECONDS"


class SlowHalvingBackend:
    """Halves the audio, late by DeepFilterNet3's delay, and takes its time: a model too slow for many streams
    whose output is easy to tell from the pass-through (twice as loud, same timeline)."""

    delay_samples = DFN3_DELAY_SAMPLES

    def __init__(self, settings: DenoiseSettings) -> None:
        self._hop_s = float(os.environ.get(SLOWNESS_VARIABLE, "0"))
        self._history: dict[int, np.ndarray] = {}

    def open(self, stream_id: int) -> None:
        self._history[stream_id] = np.zeros(self.delay_samples, dtype=np.float32)

    def process(self, hops: Mapping[int, np.ndarray]) -> dict[int, np.ndarray]:
        time.sleep(self._hop_s * sum(len(samples) for samples in hops.values()) / HOP_SAMPLES)
        out = {}
        for stream_id, hop in hops.items():
            joined = np.concatenate([self._history[stream_id], hop])
            self._history[stream_id] = joined[len(hop) :]
            out[stream_id] = 0.5 * joined[: len(hop)]
        return out

    def close(self, stream_id: int) -> None:
        self._history.pop(stream_id, None)


class NeverReadyBackend:
    """A model that never finishes loading."""

    def __init__(self, settings: DenoiseSettings) -> None:
        time.sleep(3600)
