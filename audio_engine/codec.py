"""A stream's codec path: in-order Opus payloads in, (Opus packet, 16-bit PCM) per 20 ms frame out.

The server does not let aiortc decode inbound audio: the receive jitter buffer hands the in-order payloads to
the engine (audio_engine.jitter), which sends them, ~100-200 bytes each, to the stream's denoise worker. The
worker decodes (FrameDecoder), denoises and encodes (encode_frame) and returns the Opus packet for the
listeners and the PCM for the recorder. This keeps the codec work and the decoder-thread hand-off of aiortc off
the event loop, and the pipe carries a fifth of the bytes that float samples took.

Lost packets: the jitter buffer skips a hole after `prefetch` later packets; the RTP timestamp then jumps and
PacketDecoder fills the gap with libopus concealment, so the recording and the outbound timeline keep
wall-clock duration. A jump longer than MAX_CONCEALED_GAP_SAMPLES is a pause or a restarted sender: not filled.
"""

from __future__ import annotations

import av
import numpy as np

from audio_engine.framing import FRAME_SAMPLES, MAX_CONCEALED_GAP_SAMPLES, SAMPLE_RATE, TIME_BASE, float_to_int16
from audio_engine.opus import OpusDecoder, OpusEncoder, OpusError

# (Opus packet, its 20 ms of int16 PCM) for one output frame.
EncodedFrame = tuple[bytes, np.ndarray]
_TIMESTAMP_MASK = 0xFFFFFFFF
_EMPTY = np.zeros(0, dtype=np.float32)


def _whole_frames(pending: np.ndarray, samples: np.ndarray) -> tuple[list[np.ndarray], np.ndarray]:
    """Split `pending + samples` into whole 20 ms frames and the rest (kept for the next call)."""
    if len(pending):
        samples = np.concatenate([pending, samples])
    whole = len(samples) - len(samples) % FRAME_SAMPLES
    return [samples[start : start + FRAME_SAMPLES] for start in range(0, whole, FRAME_SAMPLES)], samples[whole:]


class PacketDecoder:
    """Decodes one stream's in-order Opus payloads into continuous 48 kHz mono float32 audio."""

    def __init__(self) -> None:
        self._decoder = OpusDecoder()
        self._expected_timestamp: int | None = None
        self.concealed_samples = 0

    def decode(self, timestamp: int, payload: bytes, new_timeline: bool = False) -> np.ndarray:
        """The packet's audio, preceded by concealment for the packets lost before it. `new_timeline` says
        that the timestamps start over (a new connection, or packets that another decoder handled)."""
        concealed = _EMPTY
        if self._expected_timestamp is not None and not new_timeline:
            gap = (timestamp - self._expected_timestamp) & _TIMESTAMP_MASK
            if 0 < gap <= MAX_CONCEALED_GAP_SAMPLES:
                concealed = self._decoder.conceal(gap)
                self.concealed_samples += gap
        try:
            samples = self._decoder.decode(payload)
        except OpusError:
            # A corrupt packet counts as lost: the next packet's timestamp gap conceals it.
            return concealed
        self._expected_timestamp = (timestamp + len(samples)) & _TIMESTAMP_MASK
        return np.concatenate([concealed, samples]) if len(concealed) else samples

    def close(self) -> None:
        self._decoder.close()


class FrameDecoder:
    """A stream's in-order Opus payloads -> whole 20 ms frames of 48 kHz mono float32 (whatever the packet
    size: the rest waits for the next packet)."""

    def __init__(self) -> None:
        self._decoder = PacketDecoder()
        self._pending = _EMPTY

    def push(self, timestamp: int, payload: bytes, new_timeline: bool = False) -> list[np.ndarray]:
        frames, self._pending = _whole_frames(self._pending, self._decoder.decode(timestamp, payload, new_timeline))
        return frames

    def close(self) -> None:
        self._decoder.close()


def encode_frame(encoder: OpusEncoder, samples: np.ndarray) -> EncodedFrame:
    """The frame as listeners get it (Opus) and as the recorder writes it (int16)."""
    return encoder.encode(samples), float_to_int16(samples)


class PassthroughCodec:
    """decode -> encode for one stream, one frame out per 20 ms in: the in-loop path of streams published
    without denoising, and of denoised ones while no denoise worker can take them."""

    def __init__(self, bitrate: int) -> None:
        self._decoder = FrameDecoder()
        self._encoder = OpusEncoder(bitrate)

    def push(self, timestamp: int, payload: bytes, new_timeline: bool = False) -> list[EncodedFrame]:
        return [encode_frame(self._encoder, frame) for frame in self._decoder.push(timestamp, payload, new_timeline)]

    def close(self) -> None:
        self._encoder.close()
        self._decoder.close()


class OutboundTimeline:
    """Stamps a stream's outbound Opus packets (one per 20 ms) as av.Packets for aiortc's senders, which only
    packetize pre-encoded input; every listener's sender shares the same packet objects."""

    def __init__(self) -> None:
        self._next_pts = 0

    def skip(self, seconds: float) -> None:
        """Leave a gap of `seconds` (in whole frames), e.g. while a publisher was away."""
        self._next_pts += max(0, int(seconds * SAMPLE_RATE)) // FRAME_SAMPLES * FRAME_SAMPLES

    def packet(self, payload: bytes) -> av.Packet:
        packet = av.Packet(payload)
        packet.pts = self._next_pts
        packet.time_base = TIME_BASE
        self._next_pts += FRAME_SAMPLES
        return packet


class OpusPacketEncoder:
    """48 kHz mono float32 audio of any length -> 20 ms Opus av.Packets (pts from zero). For clients, tests
    and benchmarks; the server encodes in its workers (encode_frame)."""

    def __init__(self, bitrate: int = 64_000) -> None:
        self._encoder = OpusEncoder(bitrate)
        self._timeline = OutboundTimeline()
        self._pending = _EMPTY

    def encode(self, samples: np.ndarray) -> list[av.Packet]:
        frames, self._pending = _whole_frames(self._pending, np.asarray(samples, dtype=np.float32))
        return [self._timeline.packet(self._encoder.encode(frame)) for frame in frames]
