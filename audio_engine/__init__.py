"""Quietcast's media engine: receives a publisher's microphone over WebRTC, denoises it with DeepFilterNet3,
records it, and sends it to every listener. It does not import Django.

The whole interface used by the web application:

    engine = MediaEngine(EngineConfig(...), events)     # events implements EngineEvents
        # raises EngineUnsupported when the installed aiortc lacks the receive hook the engine needs
    await engine.start()                                # optional: start denoise workers now
    answer_sdp = await engine.publish(session_id, offer_sdp, denoise=True, recording_path=Path(".../x.wav"))
        # raises PublisherExists (a live publisher already publishes it), InvalidOffer,
        # DenoiserUnavailable (model cannot load)
    answer_sdp = await engine.listen(session_id, offer_sdp, listener_key="42", admit=still_allowed)
        # raises StreamNotFound, InvalidOffer, TooManyListenerConnections (config.max_connections_per_listener)
        # listener_key (optional) says who listens, so that `disconnect_listeners` can cut them off later;
        # the connection is counted and hears audio only once connected and `admit()` (optional) says yes;
        # one that does not connect within config.listener_connect_timeout_s is closed
    closed = await engine.disconnect_listeners(session_id, "42")  # e.g. they are no longer allowed to listen
    engine.set_denoise(session_id, on=False)            # while live: stop (or, on=True, start) denoising it
        # raises StreamNotFound, DenoiserUnavailable (switching on while the denoise workers cannot start)
    engine.set_muted(session_id, True)                  # while live: listeners and the recording get silence
        # in place of its audio, frame for frame on the same timeline (publish(..., muted=True) starts so);
        # raises StreamNotFound
    engine.is_muted(session_id) -> bool
    result = await engine.end(session_id)     # RecordingResult(path, duration_s, denoised_s), or None if unknown
        # (duration 0: no audio was ever recorded, and no file is kept; denoised_s: seconds of it denoised)
    engine.listener_count(session_id) -> int
    engine.is_publishing(session_id) -> bool        # the engine holds the session (until end())
    engine.has_live_publisher(session_id) -> bool   # ... and its publisher has not been reported gone
    engine.session_ids() -> list[str]               # every session the engine holds
    engine.denoise_headroom() -> int | None         # more denoised streams that fit now (None: workers not started)
    engine.stats() -> EngineStats                   # for monitoring: streams, listeners, drops, worker ticks
    results = await engine.shutdown()                   # ends every session; call on server shutdown

All methods must be called on the event loop the engine runs on (one engine per process). EngineEvents
callbacks are called on that loop, synchronously: keep them cheap and schedule any real work yourself.
`listener_count_changed(session_id, count, listener_keys)` says who listens now (the connected listeners' keys);
`publisher_connected(session_id)` says a publisher connection's first audio arrived; `publisher_gone(session_id)`
says the publisher's connection failed/closed or its audio stopped for
`media_timeout_s`; the session is NOT ended automatically: call `end(session_id)` to close the listeners and
get the recording. `denoise_mode_changed(session_id, denoised)` says a denoised session's audio is now passed
through undenoised (False: the server is too busy, or its denoise worker is restarting) or denoised again (True).

Denoise on/off while live: `set_denoise` switches the whole stream inside its worker with a short crossfade on
one timeline (the same Opus encoder, no gap for listeners); switching on first warms the model up unheard.
Every stream runs on a denoise worker, denoised or not, so any stream can be switched (one published without
denoising is passed through in the loop only when the workers cannot start: it cannot be switched on).
`denoise_mode_changed` is not called for these switches: the caller asked for them. Whether there is room for
one more denoised stream is the caller's decision (`denoise_headroom()`).

Admission: `denoise_headroom()` is measured, not configured: each denoise worker reports what every 20 ms tick
costs it (model and codec time per stream, wall time, so a busy machine counts), and the headroom is how many
more denoised streams fit under 70 % of each worker's time (an idle worker takes one it can keep up with), less
the streams already waiting in pass-through for room. Refuse a denoised start when it is 0 (DenoiserUnavailable
is for workers that cannot start at all).

Re-publishing (a reloaded or reconnecting broadcaster page): `publish()` for a session whose publisher has been
reported gone answers the new offer and replaces the publisher connection; the session goes on with the same
recording (appended, no silence for the gap), denoiser, Opus stream and listeners, who simply hear the new
audio. `denoise` and `recording_path` of the first publish stay in force (the new call's are ignored).
`publisher_gone` may then fire again for the new connection. While the publisher is live (not reported gone),
or while another re-publish of the session is being answered, `publish()` raises PublisherExists.

Recordings: 48 kHz mono 16-bit WAV written while streaming to `<name>.partial.wav` next to the requested
`<name>.wav`, renamed on end(). On start-up, repair the orphans of a killed process with
`complete_orphan_recording(partial_path)` (or `repair_partial_wav(path) -> duration_s` to fix sizes only).

Pipeline per published session (each piece has one job):
    aiortc receiver + jitter.LossTolerantJitterBuffer, whose in-order Opus payloads bypass aiortc's decoder
    -> denoise_pool.DenoiseStream: in a worker process (denoise_worker), codec.FrameDecoder decodes
       (concealing lost packets), the denoise backend (denoise.make_denoise_backend) denoises all the worker's
       denoised streams together once per 20 ms tick, denoise.ModeCrossfade switches a stream between denoised
       and pass-through as a whole, and one Opus encoder per stream encodes (in the loop, undenoised, while
       its worker is restarting, or for streams without denoising when no worker can start)
    -> recorder.WavRecorder (16-bit PCM)  and  codec.OutboundTimeline (the Opus packets as av.Packets)
    -> fanout.EncodedPacketFanout -> one fanout.ListenerTrack per listener (bounded, drops oldest).
"""

from audio_engine.config import (
    EngineConfig,
    EngineEvents,
    EngineUnsupported,
    InvalidOffer,
    PublisherExists,
    StreamNotFound,
    TooManyListenerConnections,
)
from audio_engine.denoise_pool import DenoiserUnavailable
from audio_engine.engine import MediaEngine
from audio_engine.recorder import RecordingResult, complete_orphan_recording, repair_partial_wav
from audio_engine.stats import DenoiseWorkerStats, EngineStats, HistogramSnapshot

__all__ = [
    "DenoiseWorkerStats",
    "DenoiserUnavailable",
    "EngineConfig",
    "EngineEvents",
    "EngineStats",
    "EngineUnsupported",
    "HistogramSnapshot",
    "InvalidOffer",
    "MediaEngine",
    "PublisherExists",
    "RecordingResult",
    "StreamNotFound",
    "TooManyListenerConnections",
    "complete_orphan_recording",
    "repair_partial_wav",
]
