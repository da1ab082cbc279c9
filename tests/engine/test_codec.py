"""The codec path run by the denoise workers: Opus payloads in, (Opus packet, PCM) frames out, losses concealed."""

from __future__ import annotations

import numpy as np
import pytest
from aiortc.rtp import RtpPacket

from audio_engine.codec import OpusPacketEncoder, OutboundTimeline, PacketDecoder, PassthroughCodec
from audio_engine.framing import MAX_CONCEALED_GAP_SAMPLES
from audio_engine.jitter import LossTolerantJitterBuffer, PayloadTap
from audio_engine.opus import ENCODER_COMPLEXITY, OpusDecoder, OpusEncoder, OpusError
from audio_engine.worker_protocol import OutputFrame, decode_frames, encode_frames

FRAME = 960


def tone(samples: int, level: float = 0.5) -> np.ndarray:
    return (level * np.sin(2 * np.pi * 440 * np.arange(samples) / 48_000)).astype(np.float32)


def rms(samples: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(samples, dtype=np.float64))))


@pytest.fixture(scope="module")
def payloads() -> list[bytes]:
    return [bytes(packet) for packet in OpusPacketEncoder().encode(tone(50 * FRAME))]


def test_decoder_gives_mono_at_full_level(payloads):
    decoder = PacketDecoder()
    out = np.concatenate([decoder.decode(index * FRAME, payload) for index, payload in enumerate(payloads)])
    assert out.dtype == np.float32 and len(out) == len(payloads) * FRAME
    assert abs(20 * np.log10(rms(out[10 * FRAME :]) / rms(tone(FRAME)))) < 1.0


def test_lost_packets_are_concealed_to_keep_the_timeline(payloads):
    decoder = PacketDecoder()
    kept = [index for index in range(len(payloads)) if index not in (20, 21, 22)]
    out = [decoder.decode(index * FRAME, payloads[index]) for index in kept]
    assert sum(map(len, out)) == len(payloads) * FRAME  # same duration as what was sent
    assert decoder.concealed_samples == 3 * FRAME
    concealed = out[kept.index(23)][: 3 * FRAME]
    assert rms(concealed[:FRAME]) > 0.1 * rms(tone(FRAME))  # PLC continues the sound, not a click to silence


def test_a_new_timeline_or_a_long_pause_is_not_filled(payloads):
    decoder = PacketDecoder()
    assert len(decoder.decode(0, payloads[0])) == FRAME
    assert len(decoder.decode(123_456, payloads[1], new_timeline=True)) == FRAME
    pause = MAX_CONCEALED_GAP_SAMPLES + FRAME
    assert len(decoder.decode(123_456 + FRAME + pause, payloads[2])) == FRAME
    assert decoder.concealed_samples == 0


def test_a_corrupt_or_empty_packet_counts_as_lost(payloads):
    decoder = PacketDecoder()
    decoder.decode(0, payloads[0])
    with pytest.raises(OpusError):
        OpusDecoder().decode(b"")
    assert len(decoder.decode(FRAME, b"\x03")) == 0  # code-3 packet without its frame count byte
    assert len(decoder.decode(2 * FRAME, payloads[2])) == 2 * FRAME  # the corrupt one is concealed
    assert decoder.concealed_samples == FRAME


def test_the_listeners_encoder_runs_at_the_measured_complexity_not_libopus_default():
    assert ENCODER_COMPLEXITY < 10
    assert OpusEncoder(64_000).complexity == ENCODER_COMPLEXITY


def test_passthrough_codec_makes_one_frame_per_20ms_whatever_the_packet_size():
    encoder = OpusEncoder(64_000)
    signal = tone(20 * FRAME)
    short_packets = [encoder.encode(signal[start : start + 480]) for start in range(0, len(signal), 480)]
    codec = PassthroughCodec(64_000)
    outputs = [codec.push(index * 480, payload) for index, payload in enumerate(short_packets)]
    assert [len(frames) for frames in outputs] == [0, 1] * 20
    frames = [frame for frames in outputs for frame in frames]
    assert all(pcm.dtype == np.int16 and len(pcm) == FRAME and 0 < len(opus) < 400 for opus, pcm in frames)
    decoded = np.concatenate(
        [OpusDecoder().decode(opus) for opus, _ in frames[:1]] + [pcm / 32768 for _, pcm in frames[1:]]
    )
    assert abs(20 * np.log10(rms(decoded[5 * FRAME :]) / rms(tone(FRAME)))) < 1.0


def test_outbound_timeline_stamps_20ms_packets_and_skips_whole_frames():
    timeline = OutboundTimeline()
    assert [timeline.packet(b"x").pts for _ in range(2)] == [0, FRAME]
    timeline.skip(0.05)  # 2.5 frames: whole frames only
    assert timeline.packet(b"x").pts == 4 * FRAME


def test_worker_reply_frames_round_trip():
    frames = [OutputFrame(b"abc", np.arange(FRAME, dtype=np.int16), True),
              OutputFrame(b"", np.zeros(FRAME, dtype=np.int16), False)]
    decoded = decode_frames(encode_frames(frames))
    assert [(frame.opus, frame.denoised) for frame in decoded] == [(b"abc", True), (b"", False)]
    assert all(np.array_equal(a.pcm, b.pcm) for a, b in zip(frames, decoded, strict=True))
    assert decode_frames(encode_frames([])) == []


def rtp(sequence: int, payload: bytes) -> RtpPacket:
    packet = RtpPacket(payload_type=111, sequence_number=sequence, timestamp=sequence * FRAME)
    packet._data = payload
    return packet


def test_payload_tap_hands_in_order_payloads_over_instead_of_frames():
    received: list[tuple[int, bytes]] = []
    tap = PayloadTap(LossTolerantJitterBuffer(prefetch=1), lambda ts, data: received.append((ts, data)))
    answers = [tap.add(rtp(sequence, bytes([sequence]))) for sequence in (0, 2, 1, 4, 5, 6)]
    assert all(answer == (False, None) for answer in answers)  # nothing for aiortc's decoder
    # 1 arrives late but within prefetch (2, waiting behind it, goes with it); 3 is skipped once 2 later packets
    # are waiting, and nothing stays held after that.
    assert received == [
        (0, b"\x00"), (960, b"\x01"), (1920, b"\x02"), (3840, b"\x04"), (4800, b"\x05"), (5760, b"\x06")
    ]
