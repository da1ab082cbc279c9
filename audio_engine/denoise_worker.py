"""Denoise worker process: owns the DeepFilterNet processors of the streams assigned to it.

Started by DenoiseWorkerPool as `python -m audio_engine.denoise_worker '<settings json>'`. It reads requests
from stdin and writes replies to stdout (message format: audio_engine.worker_protocol).

Everything runs on this process's main thread: a processor must stay on the thread that created it.
"""

from __future__ import annotations

import json
import os
import sys
import traceback

import numpy as np

from audio_engine.worker_protocol import (
    MESSAGE_HEADER,
    OP_CLOSE,
    OP_FAILED,
    OP_FRAME,
    OP_OPEN,
    OP_READY,
    encode_message,
)


def _read_exact(stream, size: int) -> bytes | None:
    data = stream.read(size)
    return data if len(data) == size else None


def serve(settings_json: str) -> None:
    from audio_engine.denoise import DeepFilterDenoiser, DenoiseSettings

    requests = sys.stdin.buffer
    # Replies go to a private copy of stdout; fd 1 then points at stderr so that stray output from
    # libraries cannot corrupt the protocol.
    reply_fd = os.dup(1)
    os.dup2(2, 1)

    def reply(op: int, stream_id: int, payload: bytes = b"") -> None:
        data = encode_message(op, stream_id, payload)
        try:
            while data:
                data = data[os.write(reply_fd, data):]
        except BrokenPipeError:
            raise SystemExit(0) from None  # the server is gone

    settings = DenoiseSettings(**json.loads(settings_json))
    try:
        DeepFilterDenoiser(settings).close()
    except BaseException as exc:  # pyo3 panics are BaseExceptions
        reply(OP_READY, 0, f"cannot load the denoise model: {exc}".encode())
        return
    reply(OP_READY, 0)

    denoisers: dict[int, DeepFilterDenoiser] = {}
    while (header := _read_exact(requests, MESSAGE_HEADER.size)) is not None:
        size, op, stream_id = MESSAGE_HEADER.unpack(header)
        payload = _read_exact(requests, size) if size else b""
        if payload is None:
            break
        try:
            if op == OP_FRAME:
                denoiser = denoisers.get(stream_id)
                if denoiser is not None:
                    samples = np.frombuffer(payload, dtype=np.float32)
                    reply(OP_FRAME, stream_id, denoiser.process(samples).tobytes())
            elif op == OP_OPEN:
                denoisers[stream_id] = DeepFilterDenoiser(settings)
            elif op == OP_CLOSE:
                denoiser = denoisers.pop(stream_id, None)
                if denoiser is not None:
                    denoiser.close()
        except BaseException as exc:  # a panic in one stream must not end the others
            if isinstance(exc, KeyboardInterrupt | SystemExit):
                raise
            traceback.print_exc()
            denoisers.pop(stream_id, None)
            reply(OP_FAILED, stream_id, str(exc).encode())


if __name__ == "__main__":
    serve(sys.argv[1])
