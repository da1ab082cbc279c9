"""Messages between the server and its denoise worker processes (same framing in both directions).

Each message is MESSAGE_HEADER = (payload_bytes: u32, op: u8, stream_id: u32) followed by the payload.

Requests: OP_OPEN (MODE = (denoised: u8); the stream's model is opened when it is first denoised),
          OP_PACKET (PACKET_HEADER = (RTP timestamp: u32, flags: u8), then one Opus payload as received),
          OP_MODE (MODE: switch the stream to denoised or pass-through), OP_CLOSE (no payload).
Replies:  OP_READY (once at start-up; payload = JSON: {"error": text} when the backend cannot start, else the
          start-up calibration {"model_s": s, "codec_s": s} per stream and 20 ms frame),
          OP_FRAME (per stream and tick with output: the 20 ms frames, in order, each FRAME_HEADER = (Opus
          bytes: u16, denoised: u8 (the frame is mostly the model's output)), FRAME_PCM_BYTES of int16 PCM for
          the recorder, the Opus packet for the listeners),
          OP_TICK (stream_id 0, TICK_REPORT after every tick with output, and at least every
          HEARTBEAT_S when idle: the server's sign that the worker is alive and its cost figures),
          OP_FAILED (payload = error text; the stream's model could not be opened: it stays pass-through),
          OP_CLOSED (the stream's last frames have been sent).

A request is ~100-200 bytes, a reply usually one frame, ~2.1 KB (more frames after concealed packet loss).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np

from audio_engine.framing import FRAME_SAMPLES

MESSAGE_HEADER = struct.Struct("<IBI")
PACKET_HEADER = struct.Struct("<IB")
MODE = struct.Struct("<B")
FRAME_HEADER = struct.Struct("<HB")
TICK_REPORT = struct.Struct("<IIIddd")
FRAME_PCM_BYTES = FRAME_SAMPLES * 2
# OP_PACKET flag: the timestamps start over (new publisher connection, or packets the worker did not see).
FLAG_NEW_TIMELINE = 1
HEARTBEAT_S = 0.25

OP_READY = 0
OP_OPEN = 1
OP_FRAME = 2
OP_CLOSE = 3
OP_FAILED = 4
OP_PACKET = 5
OP_MODE = 6
OP_TICK = 7
OP_CLOSED = 8


@dataclass(frozen=True)
class TickReport:
    """What one worker tick did: `frames` stream-frames out (all its streams, every round), `denoised_frames` of
    them through the model, in `rounds` frame periods (more than one when catching up), `busy_s` of wall time
    of which `model_s` in the backend; `max_wait_s`: the longest a frame waited, from its packet's decoding to
    its round (grows without bound when the worker cannot keep up)."""

    frames: int
    denoised_frames: int
    rounds: int
    busy_s: float
    model_s: float
    max_wait_s: float = 0.0

    def encode(self) -> bytes:
        return TICK_REPORT.pack(self.frames, self.denoised_frames, self.rounds, self.busy_s, self.model_s,
                                self.max_wait_s)

    @classmethod
    def decode(cls, payload: bytes) -> TickReport:
        return cls(*TICK_REPORT.unpack(payload))


def encode_message(op: int, stream_id: int, payload: bytes = b"") -> bytes:
    return MESSAGE_HEADER.pack(len(payload), op, stream_id) + payload


def encode_packet_request(stream_id: int, timestamp: int, payload: bytes, new_timeline: bool) -> bytes:
    return encode_message(OP_PACKET, stream_id,
                          PACKET_HEADER.pack(timestamp, FLAG_NEW_TIMELINE if new_timeline else 0) + payload)


def encode_mode_request(op: int, stream_id: int, denoised: bool) -> bytes:
    return encode_message(op, stream_id, MODE.pack(denoised))


@dataclass(frozen=True)
class OutputFrame:
    """One 20 ms frame of a stream's output: its Opus packet, its int16 PCM, and whether it was denoised."""

    opus: bytes
    pcm: np.ndarray
    denoised: bool


def encode_frames(frames: list[OutputFrame]) -> bytes:
    """OP_FRAME payload for frames of FRAME_SAMPLES."""
    return b"".join(FRAME_HEADER.pack(len(f.opus), f.denoised) + f.pcm.tobytes() + f.opus for f in frames)


def decode_frames(payload: bytes) -> list[OutputFrame]:
    frames, offset = [], 0
    while offset < len(payload):
        opus_bytes, denoised = FRAME_HEADER.unpack_from(payload, offset)
        offset += FRAME_HEADER.size
        pcm = np.frombuffer(payload, dtype=np.int16, count=FRAME_SAMPLES, offset=offset)
        offset += FRAME_PCM_BYTES
        frames.append(OutputFrame(payload[offset : offset + opus_bytes], pcm, bool(denoised)))
        offset += opus_bytes
    return frames


def split_messages(buffer: bytearray) -> list[tuple[int, int, bytes]]:
    """Take the complete messages (op, stream_id, payload) off the front of `buffer`; a partial one stays."""
    messages, offset = [], 0
    header_size = MESSAGE_HEADER.size
    while len(buffer) - offset >= header_size:
        size, op, stream_id = MESSAGE_HEADER.unpack_from(buffer, offset)
        end = offset + header_size + size
        if end > len(buffer):
            break
        messages.append((op, stream_id, bytes(buffer[offset + header_size : end])))
        offset = end
    del buffer[:offset]
    return messages
