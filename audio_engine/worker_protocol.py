"""Messages between the server and its denoise worker processes (same format in both directions).

Each message is MESSAGE_HEADER = (payload_bytes: u32, op: u8, stream_id: u32) followed by the payload.

Requests: OP_OPEN (no payload), OP_FRAME (float32 samples), OP_CLOSE (no payload).
Replies:  OP_READY (once at start-up; payload = error text, empty when the model loaded),
          OP_FRAME (denoised float32 samples, same length as the request),
          OP_FAILED (payload = error text; the worker dropped the stream, the server passes its audio through).

A 20 ms frame message is 3,849 bytes: below PIPE_BUF, so a pipe write of one message is atomic.
"""

from __future__ import annotations

import struct

MESSAGE_HEADER = struct.Struct("<IBI")
OP_READY = 0
OP_OPEN = 1
OP_FRAME = 2
OP_CLOSE = 3
OP_FAILED = 4


def encode_message(op: int, stream_id: int, payload: bytes = b"") -> bytes:
    return MESSAGE_HEADER.pack(len(payload), op, stream_id) + payload
