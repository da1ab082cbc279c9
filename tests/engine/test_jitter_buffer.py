"""The loss-tolerant receive jitter buffer."""

from __future__ import annotations

import pytest
from aiortc.rtp import RtpPacket

from audio_engine.jitter import LossTolerantJitterBuffer, PayloadTap, has_receive_hook


def packet(sequence: int) -> RtpPacket:
    rtp = RtpPacket(payload_type=111, sequence_number=sequence & 0xFFFF, timestamp=(sequence * 960) & 0xFFFFFFFF)
    rtp._data = sequence.to_bytes(4, "big", signed=True)
    return rtp


def decode(data: bytes) -> int:
    return int.from_bytes(data, "big", signed=True)


def released(buffer: LossTolerantJitterBuffer, sequences: list[int]) -> list[int | None]:
    out = []
    for sequence in sequences:
        _pli, frame = buffer.add(packet(sequence))
        out.append(None if frame is None else int.from_bytes(frame.data, "big", signed=True))
    return out


def test_in_order_packets_are_released_immediately():
    assert released(LossTolerantJitterBuffer(prefetch=1), [10, 11, 12, 13]) == [10, 11, 12, 13]


def test_reordered_packet_is_waited_for_within_prefetch():
    assert released(LossTolerantJitterBuffer(prefetch=1), [1, 3, 2, 4]) == [1, None, 2, 3]


def test_lost_packet_costs_one_frame_and_latency_stays_bounded():
    buffer = LossTolerantJitterBuffer(prefetch=1)
    sequence = list(range(0, 200))
    lost = set(range(5, 200, 10))  # 10 % loss
    out = released(buffer, [s for s in sequence if s not in lost])
    frames = [value for value in out if value is not None]
    assert frames == [s for s in sequence if s not in lost][: len(frames)]
    # At most `prefetch` packets are ever held back: latency does not grow with the number of losses.
    assert len(sequence) - len(lost) - len(frames) <= 1
    assert buffer.skipped_packets == len(lost)


def test_prefetch_zero_never_waits():
    assert released(LossTolerantJitterBuffer(prefetch=0), [1, 3, 4]) == [1, 3, 4]


def test_sequence_numbers_wrap_around():
    assert released(LossTolerantJitterBuffer(prefetch=1), [65534, 65535, 65536, 65537]) == [65534, 65535, 65536, 65537]


def test_late_packet_after_skip_is_dropped():
    assert released(LossTolerantJitterBuffer(prefetch=1), [1, 3, 4, 2, 5]) == [1, None, 3, None, 4]


def test_after_a_lost_packet_the_next_ones_are_released_on_arrival_again():
    """Skipping a hole must not leave one packet held back (+20 ms) for the rest of the stream."""
    delivered: list[list[int]] = []
    tap = PayloadTap(LossTolerantJitterBuffer(prefetch=1), lambda _ts, data: delivered[-1].append(decode(data)))
    for sequence in [1, 2, 4, 5, 6, 7, 9, 10, 11]:  # 3 and 8 are lost
        delivered.append([])
        tap.add(packet(sequence))
    assert delivered == [[1], [2], [], [4, 5], [6], [7], [], [9, 10], [11]]


def test_the_server_refuses_to_start_without_the_receive_hook(monkeypatch):
    from aiortc.rtcrtpreceiver import RTCRtpReceiver

    from audio_engine import EngineConfig, EngineUnsupported, MediaEngine

    assert has_receive_hook()

    def handle_packet_without_the_buffer(self, packet):
        return None

    monkeypatch.setattr(RTCRtpReceiver, "_handle_rtp_packet", handle_packet_without_the_buffer)
    assert not has_receive_hook()
    with pytest.raises(EngineUnsupported):
        MediaEngine(EngineConfig(denoise_workers=1), events=None)
