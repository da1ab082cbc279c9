"""MediaEngine: WebRTC in from a publisher, denoise, record, and fan out to listeners."""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from aiortc import RTCConfiguration, RTCIceServer, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from aiortc.rtcrtpsender import RTCRtpSender

from audio_engine.codec import OutboundTimeline, PassthroughCodec
from audio_engine.config import (
    EngineConfig,
    EngineEvents,
    InvalidOffer,
    PublisherExists,
    StreamNotFound,
    TooManyListenerConnections,
    require_complete_events,
)
from audio_engine.denoise_pool import DenoiserUnavailable, DenoiseStream, DenoiseWorkerPool, OutputCallback
from audio_engine.fanout import DropCount, EncodedPacketFanout, ListenerTrack
from audio_engine.framing import FRAME_SAMPLES
from audio_engine.jitter import install_receive_jitter_buffer, require_receive_hook
from audio_engine.opus import OpusEncoder
from audio_engine.recorder import RecordingResult, WavRecorder
from audio_engine.sdp import answer_asking_for_opus_bitrate, offer_for_aiortc
from audio_engine.stats import EngineStats

logger = logging.getLogger(__name__)

WATCHDOG_INTERVAL_S = 1.0
_GONE_CONNECTION_STATES = ("failed", "closed")


@functools.cache
def _silent_opus_frame(bitrate: int) -> bytes:
    """One 20 ms Opus packet of digital silence: what listeners get for each frame of a muted stream. Encoded once;
    every Opus decoder turns it into silence whatever came before."""
    encoder = OpusEncoder(bitrate)
    try:
        return encoder.encode(np.zeros(FRAME_SAMPLES, dtype=np.float32))
    finally:
        encoder.close()


class _PassthroughStage:
    """In-loop codec path for streams published without denoising while no denoise worker can start (same
    shape as DenoiseStream): decoding and re-encoding keeps one outbound format and the recorder's PCM for
    every stream. Such a stream cannot be switched to denoised."""

    denoised_s = 0.0
    denoised = False

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
            self.broadcast.engine.events.publisher_connected(self.broadcast.session_id)
        self.last_audio_at = now
        stage = self.broadcast.stage
        if stage is None:
            return  # not reachable: a session's stage is set before its offer is answered
        stage.submit(timestamp, payload, self._new_timeline)
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
    """One published session: publisher link (Opus payloads) -> codec stage (decode, denoise or pass through,
    encode; in a worker process) -> recorder (PCM) + outbound timeline (Opus packets) -> fan-out."""

    def __init__(
        self, engine: MediaEngine, session_id: str, recording_path: Path, denoise: bool, muted: bool = False
    ) -> None:
        self.engine = engine
        self.session_id = session_id
        self.denoise = denoise  # the session's wish; it may change while its stage is being opened
        # While muted, every processed frame goes out as silence: the same frames on the same timeline, so the
        # recording keeps its length and listeners' players keep running.
        self.muted = muted
        self.publisher = _PublisherLink(self, engine._rtc_configuration())
        self.recorder = WavRecorder(recording_path)
        self.timeline = OutboundTimeline()
        self.fanout = EncodedPacketFanout(engine.config.listener_queue_packets, engine.listener_drops)
        self.stage: DenoiseStream | _PassthroughStage | None = None
        self.listeners: dict[RTCPeerConnection, _Listener] = {}
        self.replacing = False
        self.ending = False
        self._audio_paused_at: float | None = None
        self._closed: asyncio.Task[RecordingResult] | None = None

    def on_processed(self, opus: bytes, pcm: np.ndarray) -> None:
        if self.muted:
            opus, pcm = _silent_opus_frame(self.engine.config.opus_bitrate), np.zeros_like(pcm)
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
        """Close everything and finalize the recording; a second call waits for and returns the first's result."""
        if self._closed is None:
            self._closed = asyncio.ensure_future(self._close())
        return await asyncio.shield(self._closed)

    async def _close(self) -> RecordingResult:
        self.ending = True
        await self.publisher.close()
        if self.stage is not None:
            await self.stage.close()
        self.fanout.close()
        listeners = list(self.listeners.items())
        self.listeners.clear()
        for _pc, listener in listeners:
            listener.close()
        await asyncio.gather(*(pc.close() for pc, _listener in listeners), return_exceptions=True)
        if any(listener.connected for _pc, listener in listeners):
            self.engine.events.listener_count_changed(self.session_id, 0, ())
        result = await asyncio.to_thread(self.recorder.finalize)
        if self.stage is not None:
            result = dataclasses.replace(result, denoised_s=min(result.duration_s, self.stage.denoised_s))
        if result.duration_s == 0:
            result.path.unlink(missing_ok=True)  # no audio ever arrived: nothing to keep
        return result

    @property
    def connected_listeners(self) -> int:
        return sum(1 for listener in self.listeners.values() if listener.connected)

    @property
    def connected_listener_keys(self) -> tuple[str, ...]:
        """Who listens now: the distinct keys of the connected listeners (sorted; connections without a key are
        counted but not named)."""
        return tuple(sorted({listener.key for listener in self.listeners.values()
                             if listener.connected and listener.key is not None}))

    def report_listeners(self) -> None:
        self.engine.events.listener_count_changed(
            self.session_id, self.connected_listeners, self.connected_listener_keys
        )


@dataclass
class _Listener:
    """One listener connection: offered (answered, not yet connected, hears nothing and is not counted), then
    connected (admitted, attached to the stream's audio), or closed."""

    track: ListenerTrack
    key: str | None  # who is listening, in the caller's terms, so their connections can be cut off together
    connected: bool = False
    connect_timer: asyncio.TimerHandle | None = None

    def close(self) -> None:
        if self.connect_timer is not None:
            self.connect_timer.cancel()
        self.track.stop()


class MediaEngine:
    """See audio_engine/__init__.py for the contract."""

    def __init__(self, config: EngineConfig, events: EngineEvents) -> None:
        require_receive_hook()  # fail when the server starts, not on a broadcaster's first offer
        require_complete_events(events)
        self.config = config
        self.events = events
        self._broadcasts: dict[str, _Broadcast] = {}
        self._pool: DenoiseWorkerPool | None = None
        self._pool_lock = asyncio.Lock()
        self._watchdog: asyncio.Task | None = None
        self._tasks: set[asyncio.Future[None]] = set()
        self.listener_drops = DropCount()  # every session's listener queues, for stats()

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

    async def publish(
        self, session_id: str, offer_sdp: str, *, denoise: bool, recording_path: Path, muted: bool = False
    ) -> str:
        if session_id in self._broadcasts:
            return await self._replace_publisher(self._broadcasts[session_id], offer_sdp)
        self._start_watchdog()
        # Registered before the first await, so that end() during the denoise workers' start finds the session
        # and a second offer meanwhile is refused as a second publisher.
        broadcast = _Broadcast(self, session_id, Path(recording_path), denoise, muted)
        self._broadcasts[session_id] = broadcast
        try:
            await self._accept_offer(broadcast.publisher, offer_sdp)  # a bad offer costs no denoise worker
            broadcast.stage = await self._open_stage(broadcast)
            answer = await self._answer(broadcast.publisher)
            if broadcast.ending:
                raise StreamNotFound(session_id)
            return answer
        except BaseException:
            # A first publish that fails leaves nothing behind: no session, no worker slot, no file.
            if self._broadcasts.get(session_id) is broadcast:
                del self._broadcasts[session_id]
            await broadcast.close()
            broadcast.recorder.partial_path.unlink(missing_ok=True)
            broadcast.recorder.path.unlink(missing_ok=True)
            raise

    async def _open_stage(self, broadcast: _Broadcast) -> DenoiseStream | _PassthroughStage:
        """Every stream goes to a denoise worker, denoised or not: one Opus encoder and, from its first frame,
        the model's timeline (pass-through is delayed like the model's output), so that `set_denoise` is a
        crossfade inside the worker whichever way the stream started. Moving a stream between the loop and a
        worker later would change its encoder and shift its audio by the model's delay (30 ms), which listeners
        would hear. A stream without denoising stays in the loop only when the workers cannot start."""
        try:
            pool = await self._denoise_pool()
        except DenoiserUnavailable:
            if broadcast.denoise:
                raise
            logger.warning("session %s: denoise workers unavailable; its audio is passed through in the loop",
                           broadcast.session_id)
            return _PassthroughStage(broadcast.on_processed, self.config.opus_bitrate)
        if broadcast.ending:  # ended while the workers were starting
            raise StreamNotFound(broadcast.session_id)
        return pool.open_stream(broadcast.on_processed,
                                functools.partial(self.events.denoise_mode_changed, broadcast.session_id),
                                denoised=broadcast.denoise)

    def set_denoise(self, session_id: str, on: bool) -> None:
        """Change a live session's wish for denoising; the stream switches as a whole with a crossfade on its
        timeline (same encoder; listeners' audio never stops). Raises StreamNotFound for an unknown session, and
        DenoiserUnavailable when switching on a stream the denoise workers never took."""
        broadcast = self._broadcasts.get(session_id)
        if broadcast is None or broadcast.ending:
            raise StreamNotFound(session_id)
        stage = broadcast.stage
        if stage is None:  # its first offer is being answered: the stage opens with the new wish
            broadcast.denoise = on
            return
        if isinstance(stage, _PassthroughStage):
            if on:
                raise DenoiserUnavailable("the denoise workers could not start for this stream")
            return
        broadcast.denoise = on
        stage.set_denoise(on)

    def set_muted(self, session_id: str, muted: bool) -> None:
        """Mute or unmute a live session: while muted, listeners and the recording get silence in place of its
        audio, frame for frame (the stream goes on; its timeline and the recording's length stay true). Raises
        StreamNotFound for an unknown session."""
        broadcast = self._broadcasts.get(session_id)
        if broadcast is None or broadcast.ending:
            raise StreamNotFound(session_id)
        broadcast.muted = muted

    def is_muted(self, session_id: str) -> bool:
        broadcast = self._broadcasts.get(session_id)
        return broadcast is not None and broadcast.muted

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
        await self._accept_offer(link, offer_sdp)
        return await self._answer(link)

    async def _accept_offer(self, link: _PublisherLink, offer_sdp: str) -> None:
        pc = link.pc
        try:
            await pc.setRemoteDescription(RTCSessionDescription(sdp=offer_for_aiortc(offer_sdp), type="offer"))
            audio = [t for t in pc.getTransceivers() if t.kind == "audio"]
            if not audio:
                raise InvalidOffer("the offer has no audio")
            # The session's audio is the first audio track (as when its frames were read from the track).
            install_receive_jitter_buffer(audio[0].receiver, self.config.receive_prefetch, link.on_payload)
        except InvalidOffer:
            raise
        except Exception as exc:
            raise InvalidOffer(str(exc)) from exc

    async def _answer(self, link: _PublisherLink) -> str:
        pc = link.pc
        try:
            await pc.setLocalDescription(await pc.createAnswer())
        except Exception as exc:
            raise InvalidOffer(str(exc)) from exc
        if self.config.broadcaster_opus_bitrate is None:
            return pc.localDescription.sdp
        return answer_asking_for_opus_bitrate(pc.localDescription.sdp, self.config.broadcaster_opus_bitrate)

    async def listen(
        self,
        session_id: str,
        offer_sdp: str,
        *,
        listener_key: str | None = None,
        admit: Callable[[], Awaitable[bool]] | None = None,
    ) -> str:
        """Answer a listener's offer. The connection hears nothing and is not counted until it connects; then
        `admit` (if given) is asked once more whether it may listen. One that does not connect within
        `listener_connect_timeout_s` is closed. Raises TooManyListenerConnections when `listener_key` already
        has `max_connections_per_listener` connections (offered or connected) to the session."""
        broadcast = self._broadcasts.get(session_id)
        if broadcast is None or broadcast.ending:
            raise StreamNotFound(session_id)
        limit = self.config.max_connections_per_listener
        if listener_key is not None and limit is not None:
            open_connections = sum(1 for listener in broadcast.listeners.values() if listener.key == listener_key)
            if open_connections >= limit:
                raise TooManyListenerConnections(session_id, listener_key, limit)
        pc = RTCPeerConnection(self._rtc_configuration())
        listener = _Listener(broadcast.fanout.new_track(), listener_key)
        broadcast.listeners[pc] = listener  # counts towards the key's limit while it is being answered
        try:
            await pc.setRemoteDescription(RTCSessionDescription(sdp=offer_for_aiortc(offer_sdp), type="offer"))
            audio = [t for t in pc.getTransceivers() if t.kind == "audio"]
            if not audio:
                raise InvalidOffer("the offer has no audio")
            # The packets are Opus: only Opus may be negotiated.
            opus = [c for c in RTCRtpSender.getCapabilities("audio").codecs if c.mimeType.lower() == "audio/opus"]
            audio[0].setCodecPreferences(opus)
            pc.addTrack(listener.track)
            await pc.setLocalDescription(await pc.createAnswer())
        except Exception as exc:
            broadcast.listeners.pop(pc, None)
            listener.close()
            await pc.close()
            if isinstance(exc, InvalidOffer):
                raise
            raise InvalidOffer(str(exc)) from exc
        if broadcast.ending or self._broadcasts.get(session_id) is not broadcast or pc not in broadcast.listeners:
            listener.close()
            await pc.close()
            raise StreamNotFound(session_id)

        @pc.on("connectionstatechange")
        async def on_listener_state() -> None:
            if pc.connectionState == "connected":
                await self._attach_listener(session_id, broadcast, pc, admit)
            elif pc.connectionState in _GONE_CONNECTION_STATES:
                await self._drop_listener(session_id, broadcast, pc)

        listener.connect_timer = asyncio.get_running_loop().call_later(
            self.config.listener_connect_timeout_s, self._drop_unconnected_listener, session_id, broadcast, pc
        )
        return pc.localDescription.sdp

    async def _attach_listener(
        self,
        session_id: str,
        broadcast: _Broadcast,
        pc: RTCPeerConnection,
        admit: Callable[[], Awaitable[bool]] | None,
    ) -> None:
        listener = broadcast.listeners.get(pc)
        if listener is None or listener.connected:
            return
        if listener.connect_timer is not None:
            listener.connect_timer.cancel()
        allowed = True if admit is None else await admit()
        if broadcast.listeners.get(pc) is not listener:
            return  # dropped (cut off, timed out, or the session ended) while admission was checked
        if not allowed:
            logger.info("session %s: listener %s no longer admitted at connect", session_id, listener.key)
            await self._drop_listener(session_id, broadcast, pc)
            return
        listener.connected = True
        broadcast.fanout.attach(listener.track)
        broadcast.report_listeners()

    def _drop_unconnected_listener(self, session_id: str, broadcast: _Broadcast, pc: RTCPeerConnection) -> None:
        listener = broadcast.listeners.get(pc)
        if listener is not None and not listener.connected:
            logger.info("session %s: listener %s did not connect in time", session_id, listener.key)
            task = asyncio.ensure_future(self._drop_listener(session_id, broadcast, pc))
            self._tasks.add(task)  # referenced until done: the loop keeps only weak references to tasks
            task.add_done_callback(self._tasks.discard)

    async def _drop_listener(self, session_id: str, broadcast: _Broadcast, pc: RTCPeerConnection) -> None:
        listener = broadcast.listeners.pop(pc, None)
        if listener is None:
            return
        listener.close()
        if listener.connected:
            broadcast.report_listeners()
        await pc.close()

    async def disconnect_listeners(self, session_id: str, listener_key: str) -> int:
        """Close every listener connection of the session that was opened with `listener_key` (connected or
        not yet); returns how many."""
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
        """Connected listeners (offers still connecting are not counted)."""
        broadcast = self._broadcasts.get(session_id)
        return broadcast.connected_listeners if broadcast else 0

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

    def stats(self) -> EngineStats:
        """What the engine carries now and has counted since it started (see audio_engine.stats), for
        monitoring: counted from the sessions when asked, nothing on the per-packet paths."""
        broadcasts = list(self._broadcasts.values())
        pool = self._pool
        return EngineStats(
            live_streams=len(broadcasts),
            denoised_streams=sum(1 for b in broadcasts if b.stage is not None and b.stage.denoised),
            listeners=sum(b.connected_listeners for b in broadcasts),
            listener_dropped_packets=self.listener_drops.packets,
            denoise_headroom=self.denoise_headroom(),
            denoise_workers=pool.worker_stats() if pool is not None else (),
            pass_through_fallbacks=pool.pass_through_fallbacks() if pool is not None else {},
        )

    async def shutdown(self) -> list[RecordingResult]:
        results = [result for session_id in list(self._broadcasts)
                   if (result := await self.end(session_id)) is not None]
        if self._watchdog is not None:
            self._watchdog.cancel()
        if self._pool is not None:
            await self._pool.close()
            self._pool = None
        return results
