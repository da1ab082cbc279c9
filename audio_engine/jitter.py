"""A small, loss-tolerant receive jitter buffer for inbound audio.

aiortc's receiver holds 4 packets (80 ms) before releasing audio (JitterBuffer(capacity=16, prefetch=4)),
and handles loss badly: a lost packet blocks the buffer until it overflows, dropping several good frames and
leaving latency higher afterwards. For Opus every RTP packet is a complete 20 ms frame, so this buffer
releases each packet as soon as it is the next in sequence. A missing packet is waited for only while at most
`prefetch` later packets have arrived; then the hole is skipped (one lost frame per lost packet, which the
framer fills with silence). Latency: zero while packets arrive in order, at most `prefetch` packets after
reordering or loss.

It is installed on aiortc's RTCRtpReceiver by `install_receive_jitter_buffer` (aiortc 1.16 has no public hook;
the receiver only calls `add(packet) -> (pli_flag, JitterFrame | None)`). With `on_payload`, the in-order
payloads go straight to the engine instead of aiortc's decoder thread (PayloadTap): the server decodes Opus in
its denoise workers, and skips aiortc's per-frame thread hand-off to the loop.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Protocol

from aiortc.jitterbuffer import JitterFrame
from aiortc.rtcrtpreceiver import RTCRtpReceiver
from aiortc.rtp import RtpPacket

from audio_engine.config import EngineUnsupported

logger = logging.getLogger(__name__)

# A sequence number further ahead than this (2 s of 20 ms packets) means the sender restarted: start over.
MAX_SEQUENCE_JUMP = 100
_HALF_SEQUENCE_SPACE = 1 << 15

# Called with (RTP timestamp, payload) for each released packet, in order.
PayloadCallback = Callable[[int, bytes], None]


class ReceiveJitterBuffer(Protocol):
    def add(self, packet: RtpPacket) -> tuple[bool, JitterFrame | None]: ...


class LossTolerantJitterBuffer:
    def __init__(self, prefetch: int = 1) -> None:
        self.prefetch = max(0, prefetch)
        self._next_sequence: int | None = None
        self._waiting: dict[int, RtpPacket] = {}
        self.skipped_packets = 0

    def add(self, packet: RtpPacket) -> tuple[bool, JitterFrame | None]:
        sequence = packet.sequence_number
        expected = sequence if self._next_sequence is None else self._next_sequence
        ahead = (sequence - expected) & 0xFFFF
        if ahead >= _HALF_SEQUENCE_SPACE:
            return False, None  # late: its slot was already skipped or played
        if ahead > MAX_SEQUENCE_JUMP:
            self._waiting.clear()
            expected = sequence
        self._next_sequence = expected
        self._waiting[sequence] = packet

        released = self._waiting.pop(expected, None)
        if released is None and len(self._waiting) > self.prefetch:
            oldest = min(self._waiting, key=lambda seq: (seq - expected) & 0xFFFF)
            self.skipped_packets += (oldest - expected) & 0xFFFF
            released = self._waiting.pop(oldest)
        if released is None:
            return False, None
        return False, self._release(released)

    def pop_ready(self) -> JitterFrame | None:
        """The next packet if it is already here. After a hole is skipped, the packets that arrived behind it
        are in sequence: releasing them at once (not one per later arrival) keeps the buffer from holding one
        packet back for the rest of the stream."""
        if self._next_sequence is None:
            return None
        ready = self._waiting.pop(self._next_sequence, None)
        return None if ready is None else self._release(ready)

    def _release(self, packet: RtpPacket) -> JitterFrame:
        self._next_sequence = (packet.sequence_number + 1) & 0xFFFF
        # aiortc's receiver puts the depacketized payload in `_data` before it reaches the jitter buffer.
        return JitterFrame(data=packet._data, timestamp=packet.timestamp)  # type: ignore[attr-defined]


class PayloadTap:
    """Wraps a jitter buffer: hands what it releases to `on_payload` and nothing to aiortc's decoder, whose
    thread then stays idle (the receiver's track still ends, with MediaStreamError, when the receiver stops)."""

    def __init__(self, inner: ReceiveJitterBuffer, on_payload: PayloadCallback) -> None:
        self.inner = inner
        self._on_payload = on_payload

    def add(self, packet: RtpPacket) -> tuple[bool, None]:
        pli_flag, frame = self.inner.add(packet)
        pop_ready = getattr(self.inner, "pop_ready", None)
        while frame is not None:
            self._on_payload(frame.timestamp, frame.data)
            frame = pop_ready() if pop_ready is not None else None
        return pli_flag, None


_RECEIVER_BUFFER_ATTRIBUTE = "_RTCRtpReceiver__jitter_buffer"


def has_receive_hook() -> bool:
    """Whether this aiortc's RTCRtpReceiver keeps its jitter buffer where it can be replaced (read from the
    receiver's code, without making a connection)."""
    return all(
        _RECEIVER_BUFFER_ATTRIBUTE in method.__code__.co_names
        for method in (RTCRtpReceiver.__init__, RTCRtpReceiver._handle_rtp_packet)
    )


def require_receive_hook() -> None:
    """Raise EngineUnsupported unless the receive hook exists (checked once, when the engine is created)."""
    if not has_receive_hook():
        raise EngineUnsupported(
            "this aiortc version has no replaceable receive jitter buffer; install the version pyproject.toml pins"
        )


def install_receive_jitter_buffer(receiver: RTCRtpReceiver, prefetch: int | None,
                                  on_payload: PayloadCallback | None = None) -> None:
    """Replace an audio receiver's jitter buffer (prefetch None keeps aiortc's own) and, with `on_payload`,
    take its payloads instead of aiortc's decoder. Call before media flows (e.g. right after
    setRemoteDescription). Raises EngineUnsupported if this aiortc version has no replaceable buffer."""
    require_receive_hook()
    buffer = getattr(receiver, _RECEIVER_BUFFER_ATTRIBUTE) if prefetch is None else LossTolerantJitterBuffer(prefetch)
    setattr(receiver, _RECEIVER_BUFFER_ATTRIBUTE, buffer if on_payload is None else PayloadTap(buffer, on_payload))
