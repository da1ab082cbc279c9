"""Direct libopus bindings (ctypes) for the per-stream codec work done in the denoise workers.

Why not PyAV here: its decoder cannot conceal a lost packet (libopus does when asked to decode "no data"),
and each PyAV call builds frame/packet objects that cost more than the codec call itself at 50 frames per
second per stream. The library is the libopus that PyAV ships (av.libs), else the system's.

Audio is 48 kHz mono float32 throughout: the decoder downmixes a stereo stream itself.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import importlib.util
from pathlib import Path

import numpy as np

from audio_engine.framing import FRAME_SAMPLES, SAMPLE_RATE

# The longest Opus packet (120 ms): the decode buffer must hold it.
MAX_PACKET_SAMPLES = 5760
MAX_ENCODED_BYTES = 1500
_APPLICATION_VOIP = 2048
_SET_BITRATE_REQUEST = 4002
_SET_COMPLEXITY_REQUEST = 4010
_GET_COMPLEXITY_REQUEST = 4011
# libopus's default is 10. At the listeners' 64 kbit/s, 5 costs 25-30 % less per frame and scores the same
# PESQ-WB within 0.05 on clean, noisy and denoised speech, while 3 and below lose 0.4-0.7 on clean speech
# (`bench.opus_complexity`). Every stream pays its encoding 50 times a second on a denoise worker.
ENCODER_COMPLEXITY = 5


def _find_libopus() -> str:
    spec = importlib.util.find_spec("av")
    if spec is not None and spec.origin is not None:
        bundled = sorted((Path(spec.origin).parent.parent / "av.libs").glob("libopus*.so*"))
        if bundled:
            return str(bundled[0])
    system = ctypes.util.find_library("opus")
    if system is None:
        raise OSError("libopus not found (neither PyAV's bundled copy nor a system library)")
    return system


def _load() -> ctypes.CDLL:
    lib = ctypes.CDLL(_find_libopus())
    int_p = ctypes.POINTER(ctypes.c_int)
    lib.opus_decoder_create.restype = ctypes.c_void_p
    lib.opus_decoder_create.argtypes = [ctypes.c_int32, ctypes.c_int, int_p]
    lib.opus_decoder_destroy.argtypes = [ctypes.c_void_p]
    lib.opus_decode_float.restype = ctypes.c_int
    lib.opus_decode_float.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int32, ctypes.c_void_p,
                                      ctypes.c_int, ctypes.c_int]
    lib.opus_encoder_create.restype = ctypes.c_void_p
    lib.opus_encoder_create.argtypes = [ctypes.c_int32, ctypes.c_int, ctypes.c_int, int_p]
    lib.opus_encoder_destroy.argtypes = [ctypes.c_void_p]
    lib.opus_encode_float.restype = ctypes.c_int32
    lib.opus_encode_float.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int, ctypes.c_char_p,
                                      ctypes.c_int32]
    lib.opus_strerror.restype = ctypes.c_char_p
    lib.opus_strerror.argtypes = [ctypes.c_int]
    return lib


_lib: ctypes.CDLL | None = None


def _libopus() -> ctypes.CDLL:
    global _lib
    if _lib is None:
        _lib = _load()
    return _lib


class OpusError(RuntimeError):
    pass


def _check(code: int) -> int:
    if code < 0:
        raise OpusError(_libopus().opus_strerror(code).decode())
    return code


class OpusDecoder:
    """Decodes one stream's Opus packets to 48 kHz mono float32; `conceal` synthesizes lost audio (PLC)."""

    def __init__(self) -> None:
        lib = _libopus()
        error = ctypes.c_int(0)
        self._state = lib.opus_decoder_create(SAMPLE_RATE, 1, ctypes.byref(error))
        _check(error.value)
        self._decode = lib.opus_decode_float
        self._pcm = np.empty(MAX_PACKET_SAMPLES, dtype=np.float32)
        self._pcm_address = self._pcm.ctypes.data

    def decode(self, payload: bytes) -> np.ndarray:
        """The packet's samples (a new array); raises OpusError for a corrupt or empty packet."""
        if not payload:  # libopus would answer "no data" with 120 ms of concealment
            raise OpusError("empty packet")
        count = _check(self._decode(self._state, payload, len(payload), self._pcm_address, MAX_PACKET_SAMPLES, 0))
        return self._pcm[:count].copy()

    def conceal(self, samples: int) -> np.ndarray:
        """`samples` of concealment audio for lost packets: whole 20 ms steps by PLC (libopus takes multiples of
        2.5 ms), any rest as silence."""
        out = np.zeros(samples, dtype=np.float32)
        for start in range(0, samples - FRAME_SAMPLES + 1, FRAME_SAMPLES):
            count = _check(self._decode(self._state, None, 0, self._pcm_address, FRAME_SAMPLES, 0))
            out[start : start + count] = self._pcm[:count]
        return out

    def close(self) -> None:
        if self._state:
            _libopus().opus_decoder_destroy(self._state)
            self._state = None

    def __del__(self) -> None:
        self.close()


class OpusEncoder:
    """Encodes 48 kHz mono float32 frames (2.5-60 ms each; the engine uses 20 ms) into Opus packets."""

    def __init__(self, bitrate: int, complexity: int = ENCODER_COMPLEXITY) -> None:
        lib = _libopus()
        error = ctypes.c_int(0)
        self._state = lib.opus_encoder_create(SAMPLE_RATE, 1, _APPLICATION_VOIP, ctypes.byref(error))
        _check(error.value)
        # Variadic: every argument needs its ctypes type (a bare int would be passed as a 32-bit int).
        _check(lib.opus_encoder_ctl(ctypes.c_void_p(self._state), ctypes.c_int(_SET_BITRATE_REQUEST),
                                    ctypes.c_int32(bitrate)))
        _check(lib.opus_encoder_ctl(ctypes.c_void_p(self._state), ctypes.c_int(_SET_COMPLEXITY_REQUEST),
                                    ctypes.c_int32(complexity)))
        self._encode = lib.opus_encode_float
        self._out = ctypes.create_string_buffer(MAX_ENCODED_BYTES)

    @property
    def complexity(self) -> int:
        value = ctypes.c_int32(0)
        _check(_libopus().opus_encoder_ctl(ctypes.c_void_p(self._state), ctypes.c_int(_GET_COMPLEXITY_REQUEST),
                                           ctypes.byref(value)))
        return value.value

    def encode(self, frame: np.ndarray) -> bytes:
        frame = np.ascontiguousarray(frame, dtype=np.float32)
        count = _check(self._encode(self._state, frame.ctypes.data, len(frame), self._out, MAX_ENCODED_BYTES))
        return self._out.raw[:count]

    def close(self) -> None:
        if self._state:
            _libopus().opus_encoder_destroy(self._state)
            self._state = None

    def __del__(self) -> None:
        self.close()
