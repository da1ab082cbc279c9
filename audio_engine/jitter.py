"""A small, loss-tolerant receive jitter buffer for inbound audio.

aiortc's receiver holds 4 packets (80 ms) before releasing audio (JitterBuffer(capacity=16, prefetch=4)),
and handles loss badly: a lost packet blocks the buffer until it overflows, dropping several good frames and
leaving latency higher afterwards. For Opus every RTP packet is a complete 20 ms frame, so this buffer
releases each packet as soon as it is the next in sequence. A missing packet is waited for only while at most
`prefetch` later packets have arrived; then the hole is skipped (one lost frame per lost packet, which the
framer fills with silence). Latency: zero while packets arrive in order, at most `prefetch` packets after
reordering or loss.

It is installed on aiortc's RTCRtpReceiver by `install_receive_jitter_buffer` (aiortc 1.16 has no public hook;
the receiver only calls `add(packet) -> (pli_flag, JitterFrame | None)`).
"""

from __future__ import annotations

import logging

from aiortc.jitterbuffer import JitterFrame
from aiortc.rtcrtpreceiver import RTCRtpReceiver
from aiortc.rtp import RtpPacket

logger = logging.getLogger(__name__)

# A sequence number further ahead than this (2 s of 20 ms packets) means the sender restarted: start over.
MAX_SEQUENCE_JUMP = 100
_HALF_SEQUENCE_SPACE = 1 << 15


class LossTolerantJitterBuffer:
    def __init__(self, prefetch: int = 1) -> None:
        self.prefetch = max(0, prefetch)
        self._next_sequence: int | None = None
        self._waiting: dict[int, RtpPacket] = {}
        self.skipped_packets = 0

    def add(self, packet: RtpPacket) -> tuple[bool, JitterFrame | None]:
        sequence = packet.sequence_number
        if self._next_sequence is None:
            self._next_sequence = sequence
        ahead = (sequence - self._next_sequence) & 0xFFFF
        if ahead >= _HALF_SEQUENCE_SPACE:
            return False, None  # late: its slot was already skipped or played
        if ahead > MAX_SEQUENCE_JUMP:
            self._waiting.clear()
            self._next_sequence = sequence
        self._waiting[sequence] = packet

        released = self._waiting.pop(self._next_sequence, None)
        if released is None and len(self._waiting) > self.prefetch:
            oldest = min(self._waiting, key=lambda seq: (seq - self._next_sequence) & 0xFFFF)
            self.skipped_packets += (oldest - self._next_sequence) & 0xFFFF
            released = self._waiting.pop(oldest)
        if released is None:
            return False, None
        self._next_sequence = (released.sequence_number + 1) & 0xFFFF
        return False, JitterFrame(data=released._data, timestamp=released.timestamp)


def install_receive_jitter_buffer(receiver: RTCRtpReceiver, prefetch: int) -> None:
    """Replace an audio receiver's jitter buffer; call before media flows (e.g. right after
    setRemoteDescription)."""
    attribute = "_RTCRtpReceiver__jitter_buffer"
    if not hasattr(receiver, attribute):
        logger.warning("this aiortc version has no replaceable jitter buffer; keeping its own")
        return
    setattr(receiver, attribute, LossTolerantJitterBuffer(prefetch))
