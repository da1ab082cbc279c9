"""Conversions between aiortc audio frames and the engine's internal audio.

Internal audio is 48 kHz mono float32 in [-1, 1], handled in whole 10 ms hops (HOP_SAMPLES = 480, the
DeepFilterNet hop). The server itself never sees decoded aiortc frames (it decodes Opus payloads in its
workers, see audio_engine.codec); these conversions serve the client side (listeners, tests, benchmarks).
Frames decoded by aiortc are normally s16 packed stereo, 48 kHz, 20 ms (960 samples): they take a numpy-only
fast path; any other format, layout or rate goes through libswresample.

Raw frames handed to aiortc's own encoder must be stereo: aiortc upmixes mono frames at -3 dB
(stereo_frame_from_mono). Mono Opus (what the server sends) is decoded by a stereo receiver at full level.
"""

from __future__ import annotations

import fractions

import av
import numpy as np

SAMPLE_RATE = 48_000
HOP_SAMPLES = 480
FRAME_SAMPLES = 960
TIME_BASE = fractions.Fraction(1, SAMPLE_RATE)
# Gaps in the received timeline (lost packets) longer than this are not filled with silence: they mean the
# sender paused or restarted, not that packets were lost.
MAX_CONCEALED_GAP_SAMPLES = SAMPLE_RATE // 2

_INT16_SCALE = 32768.0


def float_to_int16(samples: np.ndarray) -> np.ndarray:
    return np.clip(samples * _INT16_SCALE, -32768, 32767).astype(np.int16)


def int16_to_float(samples: np.ndarray) -> np.ndarray:
    return samples.astype(np.float32) * np.float32(1 / _INT16_SCALE)


class MonoHopFramer:
    """Turns received AudioFrames (any format, layout, rate) into 48 kHz mono float32 whole hops.

    `push` returns the samples that complete whole hops (possibly none) and keeps the remainder for the
    next call. Lost packets show up as jumps in frame pts; short jumps are filled with silence so that the
    recording and the outbound timeline keep wall-clock duration.
    """

    def __init__(self) -> None:
        self._remainder = np.zeros(0, dtype=np.float32)
        self._resampler: av.AudioResampler | None = None
        self._resampler_input: tuple[str, str, int] | None = None
        self._expected_pts: int | None = None

    def push(self, frame: av.AudioFrame) -> np.ndarray:
        mono = self._to_mono_48k(frame)
        gap = self._gap_before(frame, len(mono))
        if gap:
            mono = np.concatenate([np.zeros(gap, dtype=np.float32), mono])
        if len(self._remainder):
            mono = np.concatenate([self._remainder, mono])
        whole = len(mono) - len(mono) % HOP_SAMPLES
        self._remainder = mono[whole:]
        return mono[:whole]

    def _gap_before(self, frame: av.AudioFrame, samples: int) -> int:
        if frame.pts is None or frame.time_base is None or frame.sample_rate != SAMPLE_RATE:
            return 0
        pts = int(frame.pts * frame.time_base * SAMPLE_RATE)
        expected, self._expected_pts = self._expected_pts, pts + samples
        if expected is None:
            return 0
        gap = pts - expected
        return gap if 0 < gap <= MAX_CONCEALED_GAP_SAMPLES else 0

    def _to_mono_48k(self, frame: av.AudioFrame) -> np.ndarray:
        channels = len(frame.layout.channels)
        if frame.format.name == "s16" and frame.sample_rate == SAMPLE_RATE:
            interleaved = frame.to_ndarray().reshape(-1, channels)
            if channels == 1:
                return int16_to_float(interleaved[:, 0])
            # Average the channels: a browser microphone sends the same signal on both.
            if channels == 2:  # the usual case; ndarray.mean costs several times more per frame
                mono = interleaved[:, 0].astype(np.float32)
                mono += interleaved[:, 1]
                mono *= np.float32(0.5 / _INT16_SCALE)
                return mono
            return interleaved.mean(axis=1, dtype=np.float32) * np.float32(1 / _INT16_SCALE)
        return self._resample(frame, channels)

    def _resample(self, frame: av.AudioFrame, channels: int) -> np.ndarray:
        key = (frame.format.name, frame.layout.name, frame.sample_rate)
        if self._resampler is None or self._resampler_input != key:
            # Keep the channel layout: libswresample's own downmix would change the level.
            self._resampler = av.AudioResampler(format="fltp", layout=frame.layout.name, rate=SAMPLE_RATE)
            self._resampler_input = key
        planes = [converted.to_ndarray() for converted in self._resampler.resample(frame)]
        if not planes:
            return np.zeros(0, dtype=np.float32)
        return np.concatenate(planes, axis=1).mean(axis=0, dtype=np.float32)


def stereo_frame_from_mono(samples: np.ndarray, pts: int) -> av.AudioFrame:
    """A 48 kHz s16 packed stereo AudioFrame carrying `samples` (mono float32) on both channels.

    Use this for frames given to aiortc's encoder, which would upmix a mono frame at -3 dB.
    """
    pcm = float_to_int16(samples)
    frame = av.AudioFrame.from_ndarray(np.repeat(pcm, 2)[None, :], format="s16", layout="stereo")
    frame.sample_rate = SAMPLE_RATE
    frame.pts = pts
    frame.time_base = TIME_BASE
    return frame
