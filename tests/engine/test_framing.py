"""Received aiortc frames to 48 kHz mono float32 hops, and back to frames/packets for sending."""

from __future__ import annotations

import fractions

import av
import numpy as np

from audio_engine.codec import OpusPacketEncoder
from audio_engine.framing import (
    HOP_SAMPLES,
    MonoHopFramer,
    float_to_int16,
    stereo_frame_from_mono,
)


def s16_frame(samples: np.ndarray, layout: str, rate: int, pts: int | None = None) -> av.AudioFrame:
    channels = 2 if layout == "stereo" else 1
    pcm = np.repeat(float_to_int16(samples), channels)[None, :]
    frame = av.AudioFrame.from_ndarray(pcm, format="s16", layout=layout)
    frame.sample_rate = rate
    if pts is not None:
        frame.pts = pts
        frame.time_base = fractions.Fraction(1, rate)
    return frame


def tone(samples: int, rate: int = 48_000, freq: float = 440.0) -> np.ndarray:
    return (0.5 * np.sin(2 * np.pi * freq * np.arange(samples) / rate)).astype(np.float32)


def test_received_stereo_20ms_frame_becomes_two_mono_hops_at_full_level():
    signal = tone(960)
    hops = MonoHopFramer().push(s16_frame(signal, "stereo", 48_000))
    assert hops.dtype == np.float32 and len(hops) == 2 * HOP_SAMPLES
    assert np.max(np.abs(hops - signal)) < 1e-4


def test_odd_sized_frames_are_regrouped_into_whole_hops():
    framer = MonoHopFramer()
    signal = tone(3 * 700)
    out = [framer.push(s16_frame(signal[i : i + 700], "mono", 48_000)) for i in range(0, len(signal), 700)]
    assert [len(chunk) for chunk in out] == [480, 480, 960]
    assert np.max(np.abs(np.concatenate(out) - signal[:1920])) < 1e-4


def test_other_rates_are_resampled_to_48k_without_level_change():
    framer = MonoHopFramer()
    signal = tone(16_000, rate=16_000)
    out = np.concatenate(
        [framer.push(s16_frame(signal[i : i + 320], "stereo", 16_000)) for i in range(0, len(signal), 320)]
    )
    assert abs(len(out) - 48_000) <= 2 * HOP_SAMPLES
    rms = np.sqrt(np.mean(out[4800:40000] ** 2))
    assert abs(20 * np.log10(rms / (0.5 / np.sqrt(2)))) < 0.5


def test_lost_packets_are_filled_with_silence_to_keep_the_timeline():
    framer = MonoHopFramer()
    first = framer.push(s16_frame(tone(960), "stereo", 48_000, pts=0))
    after_gap = framer.push(s16_frame(tone(960), "stereo", 48_000, pts=3 * 960))
    assert len(first) == 960 and len(after_gap) == 3 * 960
    assert not after_gap[: 2 * 960].any()


def test_stereo_frame_for_aiortc_carries_mono_on_both_channels():
    frame = stereo_frame_from_mono(tone(960), pts=960)
    assert (frame.format.name, frame.layout.name, frame.samples, frame.pts) == ("s16", "stereo", 960, 960)
    interleaved = frame.to_ndarray().reshape(-1, 2)
    assert np.array_equal(interleaved[:, 0], interleaved[:, 1])


def test_opus_encoder_makes_one_20ms_packet_per_frame_that_decodes_at_full_level():
    encoder = OpusPacketEncoder()
    signal = tone(48_000)
    packets = [packet for start in range(0, len(signal), 480) for packet in encoder.encode(signal[start : start + 480])]
    assert len(packets) >= 48
    assert [p.pts for p in packets[:3]] == [0, 960, 1920]
    decoder = av.CodecContext.create("libopus", "r")
    decoder.layout = "stereo"
    decoder.sample_rate = 48_000
    decoded = np.concatenate([f.to_ndarray().reshape(-1, 2) for p in packets for f in decoder.decode(p)])
    left = decoded[:, 0].astype(np.float32) / 32768
    rms = np.sqrt(np.mean(left[9600:] ** 2))
    assert abs(20 * np.log10(rms / (0.5 / np.sqrt(2)))) < 1.0  # no -3 dB upmix loss
