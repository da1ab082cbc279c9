"""Denoise worker process: owns the codec path (Opus decode -> DeepFilterNet -> Opus encode, see
audio_engine.codec.StreamCodec) of the streams assigned to it.

Started by DenoiseWorkerPool as `python -m audio_engine.denoise_worker '<settings json>' <opus bitrate>`. It
reads requests from stdin and writes replies to stdout (message format: audio_engine.worker_protocol).

Everything runs on this process's main thread: a processor must stay on the thread that created it.
"""

from __future__ import annotations

import json
import os
import sys
import time
import traceback

from audio_engine.worker_protocol import (
    FLAG_NEW_TIMELINE,
    MESSAGE_HEADER,
    OP_CLOSE,
    OP_FAILED,
    OP_FRAME,
    OP_OPEN,
    OP_PACKET,
    OP_READY,
    PACKET_HEADER,
    encode_frames,
    encode_message,
)

# Replies of a batch are held back at most this long, so that a large batch adds little latency to the first
# streams in it.
MAX_REPLY_HOLD_S = 0.004


def _requests(fd: int):
    """Yield lists of (op, stream_id, payload): every complete request available after each blocking read,
    so that the frames of several streams are answered together."""
    buffer = bytearray()
    header_size = MESSAGE_HEADER.size
    while data := os.read(fd, 1 << 20):
        buffer += data
        batch, offset = [], 0
        while len(buffer) - offset >= header_size:
            size, op, stream_id = MESSAGE_HEADER.unpack_from(buffer, offset)
            end = offset + header_size + size
            if end > len(buffer):
                break
            batch.append((op, stream_id, bytes(buffer[offset + header_size : end])))
            offset = end
        del buffer[:offset]
        if batch:
            yield batch


def serve(settings_json: str, opus_bitrate: int) -> None:
    from audio_engine.codec import StreamCodec
    from audio_engine.denoise import DeepFilterDenoiser, DenoiseSettings

    # Replies go to a private copy of stdout; fd 1 then points at stderr so that stray output from
    # libraries cannot corrupt the protocol.
    reply_fd = os.dup(1)
    os.dup2(2, 1)

    def send(data: bytes) -> None:
        try:
            while data:
                data = data[os.write(reply_fd, data):]
        except BrokenPipeError:
            raise SystemExit(0) from None  # the server is gone

    def reply(op: int, stream_id: int, payload: bytes = b"") -> None:
        send(encode_message(op, stream_id, payload))

    settings = DenoiseSettings(**json.loads(settings_json))
    try:
        DeepFilterDenoiser(settings).close()
    except BaseException as exc:  # pyo3 panics are BaseExceptions
        reply(OP_READY, 0, f"cannot load the denoise model: {exc}".encode())
        return
    reply(OP_READY, 0)

    streams: dict[int, StreamCodec] = {}
    packet_header_size = PACKET_HEADER.size
    for batch in _requests(sys.stdin.fileno()):
        replies = bytearray()
        replies_since = time.perf_counter()
        for op, stream_id, payload in batch:
            if replies and time.perf_counter() - replies_since > MAX_REPLY_HOLD_S:
                send(bytes(replies))
                replies.clear()
                replies_since = time.perf_counter()
            try:
                if op == OP_PACKET:
                    stream = streams.get(stream_id)
                    if stream is not None:
                        timestamp, flags = PACKET_HEADER.unpack_from(payload)
                        frames = stream.push(timestamp, payload[packet_header_size:], bool(flags & FLAG_NEW_TIMELINE))
                        replies += encode_message(OP_FRAME, stream_id, encode_frames(frames))
                elif op == OP_OPEN:
                    streams[stream_id] = StreamCodec(DeepFilterDenoiser(settings), opus_bitrate)
                elif op == OP_CLOSE:
                    stream = streams.pop(stream_id, None)
                    if stream is not None:
                        stream.close()
            except BaseException as exc:  # a panic in one stream must not end the others
                if isinstance(exc, KeyboardInterrupt | SystemExit):
                    raise
                traceback.print_exc()
                streams.pop(stream_id, None)
                replies += encode_message(OP_FAILED, stream_id, str(exc).encode())
        send(bytes(replies))


if __name__ == "__main__":
    serve(sys.argv[1], int(sys.argv[2]))
