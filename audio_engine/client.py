"""Client side of a stream: publisher and listener peer connections, a paced source track, a receiving loop.

Used by the command-line client, the tests and the benchmarks (not by the server pipeline). Signalling is a
callable that sends the offer SDP and returns the answer SDP (HTTP in the CLI, the engine directly in tests).

PacedAudioTrack plays mono samples into a peer connection in real time. Frames are 20 ms s16 stereo (aiortc's
encoder would upmix mono at -3 dB). Before `play()` it sends silence (so a connection can be set up and
listeners attached before the interesting audio starts); after the samples it ends the track.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import av
import numpy as np
from aiortc import RTCConfiguration, RTCIceServer, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from audio_engine.framing import FRAME_SAMPLES, SAMPLE_RATE, MonoHopFramer, stereo_frame_from_mono
from audio_engine.jitter import install_receive_jitter_buffer

FRAME_SECONDS = FRAME_SAMPLES / SAMPLE_RATE
Signalling = Callable[[str], Awaitable[str]]
_SILENCE = np.zeros(FRAME_SAMPLES, dtype=np.float32)

# Called with (pts of the frame's first sample, perf_counter() when the frame was handed to the sender).
FrameSentCallback = Callable[[int, float], None]
# Called with (48 kHz mono float32 samples, perf_counter() when their frame arrived).
SamplesReceivedCallback = Callable[[np.ndarray, float], None]


class PacedAudioTrack(MediaStreamTrack):
    kind = "audio"

    def __init__(self, samples: np.ndarray, *, autoplay: bool = True,
                 on_frame_sent: FrameSentCallback | None = None) -> None:
        super().__init__()
        self._samples = np.asarray(samples, dtype=np.float32)
        self._playing = autoplay
        self._position = 0
        self._frames_sent = 0
        self._clock_start: float | None = None
        self._on_frame_sent = on_frame_sent
        self.finished = asyncio.Event()

    @property
    def seconds_sent(self) -> float:
        return self._frames_sent * FRAME_SECONDS

    def play(self) -> None:
        self._playing = True

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        if self._clock_start is None:
            self._clock_start = time.perf_counter()
        due = self._clock_start + self._frames_sent * FRAME_SECONDS
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        if self._playing:
            if self._position >= len(self._samples):
                self.finished.set()
                self.stop()
                raise MediaStreamError
            chunk = self._samples[self._position : self._position + FRAME_SAMPLES]
            self._position += FRAME_SAMPLES
            if len(chunk) < FRAME_SAMPLES:
                chunk = np.concatenate([chunk, _SILENCE[len(chunk):]])
        else:
            chunk = _SILENCE
        pts = self._frames_sent * FRAME_SAMPLES
        self._frames_sent += 1
        if self._on_frame_sent is not None:
            self._on_frame_sent(pts, time.perf_counter())
        return stereo_frame_from_mono(chunk, pts)


async def receive_audio(track: MediaStreamTrack, on_samples: SamplesReceivedCallback) -> None:
    """Read a received audio track until it ends, handing 48 kHz mono float32 samples to `on_samples`."""
    framer = MonoHopFramer()
    while True:
        try:
            frame = await track.recv()
        except MediaStreamError:
            return
        if not isinstance(frame, av.AudioFrame):
            continue
        samples = framer.push(frame)
        if len(samples):
            on_samples(samples, time.perf_counter())


def read_audio_file(path: Path, seconds: float | None = None) -> np.ndarray:
    """Any audio file FFmpeg can read, as 48 kHz mono float32 (at most `seconds` long)."""
    framer = MonoHopFramer()
    with av.open(str(path)) as container:
        chunks = [framer.push(frame) for frame in container.decode(audio=0)]
    samples = np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.float32)
    return samples[: int(seconds * SAMPLE_RATE)] if seconds is not None else samples


def _peer_connection(ice_servers: list[dict]) -> RTCPeerConnection:
    # Always pass the list, even empty: without it aiortc falls back to a public STUN server.
    return RTCPeerConnection(RTCConfiguration(iceServers=[RTCIceServer(**server) for server in ice_servers]))


async def connect_publisher(track: MediaStreamTrack, signal: Signalling,
                            ice_servers: list[dict] | None = None) -> RTCPeerConnection:
    """Open a send-only audio connection carrying `track`."""
    pc = _peer_connection(ice_servers or [])
    pc.addTransceiver(track, direction="sendonly")
    await pc.setLocalDescription(await pc.createOffer())
    answer = await signal(pc.localDescription.sdp)
    await pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
    return pc


async def connect_listener(signal: Signalling, on_samples: SamplesReceivedCallback,
                           ice_servers: list[dict] | None = None,
                           receive_prefetch: int | None = 2) -> tuple[RTCPeerConnection, asyncio.Task]:
    """Open a receive-only audio connection; the returned task ends when the received track ends.

    receive_prefetch: see EngineConfig.receive_prefetch (None = aiortc's stock jitter buffer).
    """
    pc = _peer_connection(ice_servers or [])
    transceiver = pc.addTransceiver("audio", direction="recvonly")
    if receive_prefetch is not None:
        install_receive_jitter_buffer(transceiver.receiver, receive_prefetch)
    loop = asyncio.get_running_loop()
    remote_track: asyncio.Future[MediaStreamTrack] = loop.create_future()

    @pc.on("track")
    def on_track(track: MediaStreamTrack) -> None:
        if not remote_track.done():
            remote_track.set_result(track)

    await pc.setLocalDescription(await pc.createOffer())
    answer = await signal(pc.localDescription.sdp)
    await pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))

    async def receive() -> None:
        await receive_audio(await remote_track, on_samples)

    return pc, asyncio.create_task(receive())
