"""Messages between the server and its denoise worker processes (same framing in both directions).

Each message is MESSAGE_HEADER = (payload_bytes: u32, op: u8, stream_id: u32) followed by the payload.

Requests: OP_OPEN (no payload), OP_PACKET (PACKET_HEADER = (RTP timestamp: u32, flags: u8), then one Opus
          payload as received), OP_CLOSE (no payload).
Replies:  OP_READY (once at start-up; payload = error text, empty when the model loaded),
          OP_FRAME (one per OP_PACKET, in order: the 20 ms output frames it completed, zero or more, each
          FRAME_HEADER = (Opus bytes: u16), FRAME_PCM_BYTES of int16 PCM for the recorder, the Opus packet
          for the listeners),
          OP_FAILED (payload = error text; the worker dropped the stream, the server passes its audio through).

A request is ~100-200 bytes, a reply usually one frame, ~2.1 KB (more frames after concealed packet loss).
"""

from __future__ import annotations

import struct

import numpy as np

from audio_engine.framing import FRAME_SAMPLES

MESSAGE_HEADER = struct.Struct("<IBI")
PACKET_HEADER = struct.Struct("<IB")
FRAME_HEADER = struct.Struct("<H")
FRAME_PCM_BYTES = FRAME_SAMPLES * 2
# OP_PACKET flag: the timestamps start over (new publisher connection, or packets the worker did not see).
FLAG_NEW_TIMELINE = 1

OP_READY = 0
OP_OPEN = 1
OP_FRAME = 2
OP_CLOSE = 3
OP_FAILED = 4
OP_PACKET = 5


def encode_message(op: int, stream_id: int, payload: bytes = b"") -> bytes:
    return MESSAGE_HEADER.pack(len(payload), op, stream_id) + payload


def encode_packet_request(stream_id: int, timestamp: int, payload: bytes, new_timeline: bool) -> bytes:
    return encode_message(OP_PACKET, stream_id,
                          PACKET_HEADER.pack(timestamp, FLAG_NEW_TIMELINE if new_timeline else 0) + payload)


def encode_frames(frames: list[tuple[bytes, np.ndarray]]) -> bytes:
    """OP_FRAME payload for (Opus packet, int16 PCM of FRAME_SAMPLES) frames."""
    return b"".join(FRAME_HEADER.pack(len(opus)) + pcm.tobytes() + opus for opus, pcm in frames)


def decode_frames(payload: bytes) -> list[tuple[bytes, np.ndarray]]:
    frames, offset = [], 0
    while offset < len(payload):
        (opus_bytes,) = FRAME_HEADER.unpack_from(payload, offset)
        offset += FRAME_HEADER.size
        pcm = np.frombuffer(payload, dtype=np.int16, count=FRAME_SAMPLES, offset=offset)
        offset += FRAME_PCM_BYTES
        frames.append((payload[offset : offset + opus_bytes], pcm))
        offset += opus_bytes
    return frames
