"""MediaEngine: WebRTC in from a publisher, denoise, record, and fan out to listeners."""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from aiortc import RTCConfiguration, RTCIceServer, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from aiortc.rtcrtpsender import RTCRtpSender

from audio_engine.codec import OutboundTimeline, PassthroughCodec
from audio_engine.config import EngineConfig, EngineEvents, InvalidOffer, PublisherExists, StreamNotFound
from audio_engine.denoise_pool import DenoiseStream, DenoiseWorkerPool, OutputCallback
from audio_engine.fanout import EncodedPacketFanout, ListenerTrack
from audio_engine.jitter import install_receive_jitter_buffer
from audio_engine.recorder import RecordingResult, WavRecorder

logger = logging.getLogger(__name__)

WATCHDOG_INTERVAL_S = 1.0
_GONE_CONNECTION_STATES = ("failed", "closed")


class _PassthroughStage:
    """In-loop codec path for streams published without denoising (same shape as DenoiseStream): decoding
    and re-encoding keeps one outbound format and the recorder's PCM for every stream."""

    def __init__(self, on_output: OutputCallback, opus_bitrate: int) -> None:
        self._codec = PassthroughCodec(opus_bitrate)
        self._on_output = on_output

    def submit(self, timestamp: int, payload: bytes, new_timeline: bool = False) -> None:
        for opus, pcm in self._codec.push(timestamp, payload, new_timeline):
            self._on_output(opus, pcm)

    async def close(self) -> None:
        self._codec.close()


class _PublisherLink:
    """One publisher connection of a session. A reloaded broadcaster page replaces it with a new link; the
    session (recorder, denoiser, outbound timeline, listeners) stays. Events of a replaced link are ignored."""

    def __init__(self, broadcast: _Broadcast, configuration: RTCConfiguration) -> None:
        self.broadcast = broadcast
        self.pc = RTCPeerConnection(configuration)
        # Each connection has its own RTP timeline: its first packet says so, so that the jump from the
        # previous connection's timestamps is not mistaken for lost packets.
        self._new_timeline = True
        self.inbound_task: asyncio.Task | None = None
        self.connected_at: float | None = None
        self.last_audio_at: float | None = None
        self.gone = False
        self.pc.on("track", self._on_track)
        self.pc.on("connectionstatechange", self._on_state)

    @property
    def is_current(self) -> bool:
        return self.broadcast.publisher is self

    def on_payload(self, timestamp: int, payload: bytes) -> None:
        """An in-order Opus payload from the receive jitter buffer (aiortc does not decode it)."""
        if not self.is_current:
            return  # answered but not (or no longer) the session's publisher
        now = time.monotonic()
        if self.last_audio_at is None:
            self.broadcast.resume_audio(now)
        self.last_audio_at = now
        self.broadcast.stage.submit(timestamp, payload, self._new_timeline)
        self._new_timeline = False

    def _on_track(self, track: MediaStreamTrack) -> None:
        if track.kind == "audio" and self.inbound_task is None:
            self.inbound_task = asyncio.create_task(self._watch_track_end(track))

    async def _watch_track_end(self, track: MediaStreamTrack) -> None:
        """The audio comes through on_payload; the track only tells when the receiver stopped."""
        try:
            while True:
                await track.recv()
        except MediaStreamError:
            self.report_gone("publisher track ended")

    def _on_state(self) -> None:
        state = self.pc.connectionState
        if state == "connected" and self.connected_at is None:
            self.connected_at = time.monotonic()
        elif state in _GONE_CONNECTION_STATES:
            self.report_gone(f"publisher connection {state}")

    def report_gone(self, reason: str) -> None:
        if self.gone:
            return
        self.gone = True
        broadcast = self.broadcast
        if self.is_current and not broadcast.ending:
            logger.info("session %s: %s", broadcast.session_id, reason)
            broadcast.engine.events.publisher_gone(broadcast.session_id)

    def check_media_timeout(self, now: float) -> None:
        if self.connected_at is None:
            return
        last = self.last_audio_at or self.connected_at
        if now - last > self.broadcast.engine.config.media_timeout_s:
            self.report_gone("no audio from the publisher")

    async def close(self) -> None:
        self.gone = True
        if self.inbound_task is not None:
            self.inbound_task.cancel()
        await self.pc.close()


class _Broadcast:
    """One published session: publisher link (Opus payloads) -> codec stage (decode, denoise, encode; in a
    worker process when denoised) -> recorder (PCM) + outbound timeline (Opus packets) -> fan-out."""

    def __init__(self, engine: MediaEngine, session_id: str, recording_path: Path) -> None:
        self.engine = engine
        self.session_id = session_id
        self.publisher = _PublisherLink(self, engine._rtc_configuration())
        self.recorder = WavRecorder(recording_path)
        self.timeline = OutboundTimeline()
        self.fanout = EncodedPacketFanout(engine.config.listener_queue_packets)
        self.stage: DenoiseStream | _PassthroughStage | None = None
        self.listeners: dict[RTCPeerConnection, _Listener] = {}
        self.replacing = False
        self.ending = False
        self._audio_paused_at: float | None = None

    def on_processed(self, opus: bytes, pcm: np.ndarray) -> None:
        self.recorder.write(pcm)
        self.fanout.publish(self.timeline.packet(opus))

    def replace_publisher(self, link: _PublisherLink) -> _PublisherLink:
        """Make `link` the publisher; returns the replaced one (to be closed)."""
        old, self.publisher = self.publisher, link
        old.gone = True
        self._audio_paused_at = old.last_audio_at
        return old

    def resume_audio(self, now: float) -> None:
        """The first audio of a replacing publisher: move the listeners' RTP timeline on by the time without
        audio, so that their jitter buffers see a pause, not packets arriving seconds late. The recording just
        continues (no silence is written for the gap)."""
        if self._audio_paused_at is not None:
            self.timeline.skip(now - self._audio_paused_at)
            self._audio_paused_at = None

    async def close(self) -> RecordingResult:
        self.ending = True
        await self.publisher.close()
        if self.stage is not None:
            await self.stage.close()
        self.fanout.close()
        listeners = list(self.listeners)
        self.listeners.clear()
        await asyncio.gather(*(pc.close() for pc in listeners), return_exceptions=True)
        if listeners:
            self.engine.events.listener_count_changed(self.session_id, 0)
        return await asyncio.to_thread(self.recorder.finalize)


@dataclass(frozen=True)
class _Listener:
    track: ListenerTrack
    key: str | None  # who is listening, in the caller's terms, so their connections can be cut off together


class MediaEngine:
    """See audio_engine/__init__.py for the contract."""

    def __init__(self, config: EngineConfig, events: EngineEvents) -> None:
        self.config = config
        self.events = events
        self._broadcasts: dict[str, _Broadcast] = {}
        self._pool: DenoiseWorkerPool | None = None
        self._pool_lock = asyncio.Lock()
        self._watchdog: asyncio.Task | None = None

    def _rtc_configuration(self) -> RTCConfiguration:
        return RTCConfiguration(iceServers=[RTCIceServer(**server) for server in self.config.ice_servers])

    async def start(self) -> None:
        """Start the denoise workers now (otherwise the first denoised publish does). Raises
        DenoiserUnavailable if the model cannot be loaded."""
        await self._denoise_pool()
        self._start_watchdog()

    async def _denoise_pool(self) -> DenoiseWorkerPool:
        async with self._pool_lock:
            if self._pool is None:
                pool = DenoiseWorkerPool(self.config.denoise_workers, self.config.denoise_settings,
                                         self.config.opus_bitrate, backend=self.config.denoise_backend,
                                         start_timeout_s=self.config.denoise_start_timeout_s)
                await pool.start()
                self._pool = pool
        return self._pool

    def _start_watchdog(self) -> None:
        if self._watchdog is None or self._watchdog.done():
            self._watchdog = asyncio.create_task(self._watch_media())

    async def _watch_media(self) -> None:
        while True:
            await asyncio.sleep(WATCHDOG_INTERVAL_S)
            now = time.monotonic()
            for broadcast in list(self._broadcasts.values()):
                broadcast.publisher.check_media_timeout(now)

    async def publish(self, session_id: str, offer_sdp: str, *, denoise: bool, recording_path: Path) -> str:
        if session_id in self._broadcasts:
            return await self._replace_publisher(self._broadcasts[session_id], offer_sdp)
        pool = await self._denoise_pool() if denoise else None
        if session_id in self._broadcasts:  # published while the pool was starting
            return await self._replace_publisher(self._broadcasts[session_id], offer_sdp)
        self._start_watchdog()
        broadcast = _Broadcast(self, session_id, Path(recording_path))
        self._broadcasts[session_id] = broadcast
        if pool is not None:
            broadcast.stage = pool.open_stream(
                broadcast.on_processed, functools.partial(self.events.denoise_mode_changed, session_id))
        else:
            broadcast.stage = _PassthroughStage(broadcast.on_processed, self.config.opus_bitrate)
        try:
            return await self._answer_publisher(broadcast.publisher, offer_sdp)
        except InvalidOffer:
            self._broadcasts.pop(session_id, None)
            await broadcast.close()
            broadcast.recorder.partial_path.unlink(missing_ok=True)
            broadcast.recorder.path.unlink(missing_ok=True)
            raise

    async def _replace_publisher(self, broadcast: _Broadcast, offer_sdp: str) -> str:
        """A new connection for a session whose publisher is gone (e.g. a reloaded broadcaster page)."""
        if broadcast.ending or broadcast.replacing or not broadcast.publisher.gone:
            raise PublisherExists(broadcast.session_id)
        link = _PublisherLink(broadcast, self._rtc_configuration())
        broadcast.replacing = True  # two tabs re-publishing at once: only the first one wins
        try:
            answer = await self._answer_publisher(link, offer_sdp)
        except InvalidOffer:
            await link.close()
            raise
        finally:
            broadcast.replacing = False
        if broadcast.ending:
            await link.close()
            raise InvalidOffer("the session ended while its offer was being answered")
        await broadcast.replace_publisher(link).close()
        logger.info("session %s: publisher replaced", broadcast.session_id)
        return answer

    async def _answer_publisher(self, link: _PublisherLink, offer_sdp: str) -> str:
        pc = link.pc
        try:
            await pc.setRemoteDescription(RTCSessionDescription(sdp=offer_sdp, type="offer"))
            audio = [t for t in pc.getTransceivers() if t.kind == "audio"]
            if not audio:
                raise InvalidOffer("the offer has no audio")
            # The session's audio is the first audio track (as when its frames were read from the track).
            if not install_receive_jitter_buffer(audio[0].receiver, self.config.receive_prefetch, link.on_payload):
                raise RuntimeError("cannot take the received audio from this aiortc version")
            await pc.setLocalDescription(await pc.createAnswer())
        except InvalidOffer:
            raise
        except Exception as exc:
            raise InvalidOffer(str(exc)) from exc
        return pc.localDescription.sdp

    async def listen(self, session_id: str, offer_sdp: str, *, listener_key: str | None = None) -> str:
        broadcast = self._broadcasts.get(session_id)
        if broadcast is None:
            raise StreamNotFound(session_id)
        pc = RTCPeerConnection(self._rtc_configuration())
        track = broadcast.fanout.add_listener()
        try:
            await pc.setRemoteDescription(RTCSessionDescription(sdp=offer_sdp, type="offer"))
            audio = [t for t in pc.getTransceivers() if t.kind == "audio"]
            if not audio:
                raise InvalidOffer("the offer has no audio")
            # The packets are Opus: only Opus may be negotiated.
            opus = [c for c in RTCRtpSender.getCapabilities("audio").codecs if c.mimeType.lower() == "audio/opus"]
            audio[0].setCodecPreferences(opus)
            pc.addTrack(track)
            await pc.setLocalDescription(await pc.createAnswer())
        except Exception as exc:
            track.stop()
            await pc.close()
            if isinstance(exc, InvalidOffer):
                raise
            raise InvalidOffer(str(exc)) from exc
        if broadcast.ending or self._broadcasts.get(session_id) is not broadcast:
            track.stop()
            await pc.close()
            raise StreamNotFound(session_id)

        @pc.on("connectionstatechange")
        async def on_listener_state() -> None:
            if pc.connectionState in _GONE_CONNECTION_STATES:
                await self._drop_listener(session_id, broadcast, pc)

        broadcast.listeners[pc] = _Listener(track, listener_key)
        self.events.listener_count_changed(session_id, len(broadcast.listeners))
        return pc.localDescription.sdp

    async def _drop_listener(self, session_id: str, broadcast: _Broadcast, pc: RTCPeerConnection) -> None:
        listener = broadcast.listeners.pop(pc, None)
        if listener is None:
            return
        listener.track.stop()
        self.events.listener_count_changed(session_id, len(broadcast.listeners))
        await pc.close()

    async def disconnect_listeners(self, session_id: str, listener_key: str) -> int:
        """Close every listener connection of the session that was opened with `listener_key`; returns how many."""
        broadcast = self._broadcasts.get(session_id)
        if broadcast is None:
            return 0
        tagged = [pc for pc, listener in broadcast.listeners.items() if listener.key == listener_key]
        for pc in tagged:
            await self._drop_listener(session_id, broadcast, pc)
        logger.info("session %s: disconnected %d listener connection(s) of %s", session_id, len(tagged), listener_key)
        return len(tagged)

    async def end(self, session_id: str) -> RecordingResult | None:
        broadcast = self._broadcasts.pop(session_id, None)
        if broadcast is None:
            return None
        return await broadcast.close()

    def listener_count(self, session_id: str) -> int:
        broadcast = self._broadcasts.get(session_id)
        return len(broadcast.listeners) if broadcast else 0

    def is_publishing(self, session_id: str) -> bool:
        return session_id in self._broadcasts

    def has_live_publisher(self, session_id: str) -> bool:
        broadcast = self._broadcasts.get(session_id)
        return broadcast is not None and not broadcast.publisher.gone

    def session_ids(self) -> list[str]:
        return list(self._broadcasts)

    def denoise_headroom(self) -> int | None:
        """How many more denoised streams this engine's workers can take now (measured; see
        DenoiseWorkerPool.headroom), or None before the denoise workers have started."""
        return self._pool.headroom() if self._pool is not None else None

    async def shutdown(self) -> list[RecordingResult]:
        results = [result for session_id in list(self._broadcasts)
                   if (result := await self.end(session_id)) is not None]
        if self._watchdog is not None:
            self._watchdog.cancel()
        if self._pool is not None:
            await self._pool.close()
            self._pool = None
        return results
