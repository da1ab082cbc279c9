"""Runs DeepFilterNet for live streams in worker processes, without ever blocking the asyncio loop.

Why worker processes (measured with `python -m bench.denoise_placement`, 2-core machine, 8 streams of 20 ms
frames, lateness of a 1 ms timer on the loop; see bench/RESULTS.md):
- process_chunk costs ~1.1 ms per 20 ms frame here (real-time factor ~0.04-0.06 per stream) and HOLDS THE
  GIL: a pure-Python thread next to a thread calling process_chunk gets 0.46-0.47 of its solo throughput.
- in the loop thread: p99 lateness 16 ms, max 21-43 ms at only 8 streams (every frame period the loop is
  blocked for streams x ~1 ms; at 40 streams that is the whole 20 ms period).
- in one dedicated thread: p99 10-11 ms, max 12-13 ms: the loop still waits for the GIL, and the model gets no
  extra core; a processor also cannot move between threads (PanicException).
- in worker processes: p99 1.1 ms with float frames on the pipes, 2.2 ms (max 4.6) now that the workers also
  decode and encode Opus (the loop writes ~150 bytes per packet); the model runs on the other core.

Design: `workers` processes (default one per core), each owning the codec path of the streams assigned to it
(least-loaded first): Opus decode -> DeepFilterNet -> Opus encode (audio_engine.codec.StreamCodec). Packets go
over the worker's stdin as (stream id, RTP timestamp, Opus payload) messages; the packets of all streams
submitted in one loop iteration are written together with one non-blocking write, and the worker answers
everything it read in one write, so a pipe round-trip carries a batch of streams, not one packet. Replies
(Opus packet + int16 PCM per 20 ms frame) are read with loop.add_reader and handed to the stream's output
callback, in order.
A worker that dies is restarted and its streams re-open on the new one (their model state restarts); while a
worker is unavailable or behind, or after repeated crashes, the affected streams are decoded and re-encoded in
the loop undenoised (the same StreamCodec with a pass-through denoiser), so a crash never stops the audio or
the server.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Callable
from itertools import count
from pathlib import Path

import numpy as np

from audio_engine.codec import StreamCodec
from audio_engine.denoise import DenoiseSettings, PassthroughDenoiser
from audio_engine.worker_protocol import (
    MESSAGE_HEADER,
    OP_CLOSE,
    OP_FAILED,
    OP_FRAME,
    OP_OPEN,
    OP_READY,
    decode_frames,
    encode_message,
    encode_packet_request,
)

logger = logging.getLogger(__name__)

# Called with (Opus packet, its 20 ms of int16 PCM) per output frame.
OutputCallback = Callable[[bytes, np.ndarray], None]

# A stream with this many packets at its worker (200 ms), or a worker with this much unsent input, is not
# keeping up: the stream's packets are passed through instead of queuing (queuing would add latency
# without bound).
MAX_IN_FLIGHT_PACKETS = 10
MAX_PENDING_INPUT_BYTES = 64 * 1024
MAX_RESTARTS_PER_WORKER = 5
READY_TIMEOUT_S = 30.0


class DenoiserUnavailable(RuntimeError):
    """The denoise workers could not start (e.g. the model file cannot be loaded)."""


class DenoiseStream:
    """One stream's handle on the pool: submit its in-order Opus payloads, receive (Opus packet, PCM) frames
    via the callback.

    Output arrives on the event loop, in order. If the stream's worker is unavailable or behind, the packet is
    decoded and re-encoded in the loop without denoising (through the same callback), so audio keeps
    flowing; packets that were at a worker when it died are lost (a few tens of ms).
    """

    def __init__(self, pool: DenoiseWorkerPool, stream_id: int, on_output: OutputCallback) -> None:
        self._pool = pool
        self.stream_id = stream_id
        self._on_output = on_output
        self.worker: _Worker | None = None
        self.in_flight = 0
        self.failed = False
        self._drained: asyncio.Future[None] | None = None
        self._fallback: StreamCodec | None = None
        self._passing_through = False

    def submit(self, timestamp: int, payload: bytes, new_timeline: bool = False) -> None:
        """The next packet of the stream (RTP timestamp, Opus payload); `new_timeline`: timestamps start over."""
        worker = self.worker
        if (self.failed or worker is None or self.in_flight >= MAX_IN_FLIGHT_PACKETS
                or not worker.accepts_packets):
            # Each decoder only sees some of the packets: its next one after a switch starts a new timeline,
            # or it would conceal the packets the other one decoded.
            switching, self._passing_through = not self._passing_through, True
            if self._fallback is None:
                self._fallback = StreamCodec(PassthroughDenoiser(), self._pool.opus_bitrate)
            self._pool.chunks_passed_through += 1
            for opus, pcm in self._fallback.push(timestamp, payload, new_timeline or switching):
                self._on_output(opus, pcm)
            return
        worker.send_packet(self.stream_id, timestamp, payload, new_timeline or self._passing_through)
        self._passing_through = False
        self.in_flight += 1

    def _deliver(self, payload: bytes) -> None:
        self.in_flight -= 1
        self._pool.chunks_denoised += 1
        for opus, pcm in decode_frames(payload):
            self._on_output(opus, pcm)
        if self.in_flight == 0 and self._drained is not None and not self._drained.done():
            self._drained.set_result(None)

    def _lose_in_flight(self) -> None:
        self.in_flight = 0
        if self._drained is not None and not self._drained.done():
            self._drained.set_result(None)

    async def close(self, drain_timeout_s: float = 0.25) -> None:
        """Wait (briefly) for packets still at the worker, then release the stream's model."""
        if self.in_flight and self.worker is not None:
            self._drained = asyncio.get_running_loop().create_future()
            try:
                await asyncio.wait_for(self._drained, drain_timeout_s)
            except TimeoutError:
                logger.warning("denoise stream %d: %d packets not returned", self.stream_id, self.in_flight)
        self._pool._release(self)
        if self._fallback is not None:
            self._fallback.close()


class _Worker:
    """The loop-side end of one worker process."""

    def __init__(self, pool: DenoiseWorkerPool, index: int) -> None:
        self._pool = pool
        self.index = index
        self.streams: dict[int, DenoiseStream] = {}
        self.restarts = 0
        self.ready: asyncio.Future[str] | None = None
        self._process: subprocess.Popen | None = None
        self._unsent = bytearray()
        self._flush_scheduled = False
        self._writer_registered = False
        self._received = bytearray()
        self._loop: asyncio.AbstractEventLoop | None = None
        self.alive = False
        self.started_at = 0.0

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        settings_json = json.dumps(dataclasses.asdict(self._pool.settings))
        self._process = subprocess.Popen(
            [sys.executable, "-m", "audio_engine.denoise_worker", settings_json, str(self._pool.opus_bitrate)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            bufsize=0,
            close_fds=True,
            env=_worker_environment(),
        )
        os.set_blocking(self._process.stdin.fileno(), False)
        os.set_blocking(self._process.stdout.fileno(), False)
        self._unsent.clear()
        self._flush_scheduled = self._writer_registered = False
        self._received.clear()
        self.ready = self._loop.create_future()
        self.alive = True
        self.started_at = time.monotonic()
        self._loop.add_reader(self._process.stdout.fileno(), self._on_readable)
        for stream_id in self.streams:
            self._send(encode_message(OP_OPEN, stream_id))

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    @property
    def accepts_packets(self) -> bool:
        return self.alive and len(self._unsent) <= MAX_PENDING_INPUT_BYTES

    def send_packet(self, stream_id: int, timestamp: int, payload: bytes, new_timeline: bool) -> None:
        self._send(encode_packet_request(stream_id, timestamp, payload, new_timeline))

    def open_stream(self, stream: DenoiseStream) -> None:
        self.streams[stream.stream_id] = stream
        stream.worker = self
        if self.alive:
            self._send(encode_message(OP_OPEN, stream.stream_id))

    def close_stream(self, stream: DenoiseStream) -> None:
        self.streams.pop(stream.stream_id, None)
        stream.worker = None
        if self.alive:
            self._send(encode_message(OP_CLOSE, stream.stream_id))

    def _send(self, message: bytes) -> None:
        """Queue a message; everything queued during this loop iteration goes out in one write."""
        self._unsent += message
        if not self._flush_scheduled and not self._writer_registered:
            self._flush_scheduled = True
            self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        if not self.alive or not self._unsent:
            return
        try:
            written = os.write(self._process.stdin.fileno(), self._unsent)
        except BlockingIOError:
            written = 0
        except OSError:
            self._on_exit()
            return
        del self._unsent[:written]
        if self._unsent and not self._writer_registered:
            self._writer_registered = True
            self._loop.add_writer(self._process.stdin.fileno(), self._on_writable)
        elif not self._unsent and self._writer_registered:
            self._writer_registered = False
            self._loop.remove_writer(self._process.stdin.fileno())

    def _on_writable(self) -> None:
        self._flush()

    def _on_readable(self) -> None:
        try:
            data = os.read(self._process.stdout.fileno(), 1 << 16)
        except BlockingIOError:
            return
        if not data:
            self._on_exit()
            return
        self._received += data
        offset = 0
        header_size = MESSAGE_HEADER.size
        while len(self._received) - offset >= header_size:
            size, op, stream_id = MESSAGE_HEADER.unpack_from(self._received, offset)
            end = offset + header_size + size
            if end > len(self._received):
                break
            payload = bytes(self._received[offset + header_size : end])
            offset = end
            self._dispatch(op, stream_id, payload)
        del self._received[:offset]

    def _dispatch(self, op: int, stream_id: int, payload: bytes) -> None:
        if op == OP_FRAME:
            stream = self.streams.get(stream_id)
            if stream is not None:
                stream._deliver(payload)
        elif op == OP_READY:
            if not self.ready.done():
                self.ready.set_result(payload.decode(errors="replace"))
        elif op == OP_FAILED:
            stream = self.streams.pop(stream_id, None)
            if stream is not None:
                logger.error("denoiser failed for stream %d, passing audio through: %s", stream_id,
                             payload.decode(errors="replace"))
                stream.failed = True
                stream.worker = None
                stream._lose_in_flight()

    def _detach(self) -> None:
        """Stop watching the worker's pipes and close them."""
        self.alive = False
        self._loop.remove_reader(self._process.stdout.fileno())
        self._loop.remove_writer(self._process.stdin.fileno())
        for pipe in (self._process.stdin, self._process.stdout):
            pipe.close()

    def _on_exit(self) -> None:
        if not self.alive:
            return
        self._detach()
        self._process.poll()
        if not self.ready.done():
            self.ready.set_result("denoise worker exited during start-up")
        for stream in self.streams.values():
            stream._lose_in_flight()
        self._pool._worker_exited(self)

    def stop(self) -> None:
        if self._process is None:
            return
        if self.alive:
            self._detach()
        if self._process.poll() is None:
            self._process.kill()
        self._process.wait()


def _worker_environment() -> dict[str, str]:
    """The parent's environment, with this package importable whatever the working directory."""
    package_root = str(Path(__file__).resolve().parent.parent)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root, env.get("PYTHONPATH")]))
    return env


class DenoiseWorkerPool:
    """A fixed set of denoise worker processes shared by all streams of one MediaEngine."""

    def __init__(self, workers: int, settings: DenoiseSettings, opus_bitrate: int = 64_000) -> None:
        self.settings = settings
        self.opus_bitrate = opus_bitrate
        self._workers = [_Worker(self, index) for index in range(max(1, workers))]
        self._stream_ids = count(1)
        # Packets that came back denoised / were passed through because no worker could take them.
        self.chunks_denoised = 0
        self.chunks_passed_through = 0
        self._closing = False
        self.started = False

    async def start(self) -> None:
        """Start the workers and wait until each has loaded the model; raises DenoiserUnavailable."""
        for worker in self._workers:
            worker.start()
        errors = await asyncio.wait_for(asyncio.gather(*(w.ready for w in self._workers)), READY_TIMEOUT_S)
        if any(errors):
            await self.close()
            raise DenoiserUnavailable(next(e for e in errors if e))
        self.started = True

    def open_stream(self, on_output: OutputCallback) -> DenoiseStream:
        stream = DenoiseStream(self, next(self._stream_ids), on_output)
        worker = min(self._workers, key=lambda w: (not w.alive, len(w.streams)))
        worker.open_stream(stream)
        return stream

    def _release(self, stream: DenoiseStream) -> None:
        if stream.worker is not None:
            stream.worker.close_stream(stream)

    def _worker_exited(self, worker: _Worker) -> None:
        if self._closing:
            return
        if worker.restarts >= MAX_RESTARTS_PER_WORKER:
            logger.error("denoise worker %d keeps crashing; its streams pass audio through", worker.index)
            for stream in worker.streams.values():
                stream.failed = True
            return
        worker.restarts += 1
        logger.error("denoise worker %d (pid %s) exited; restarting it with its %d streams",
                     worker.index, worker.pid, len(worker.streams))
        worker.start()

    def worker_pids(self) -> list[int | None]:
        return [worker.pid for worker in self._workers]

    async def close(self) -> None:
        self._closing = True
        for worker in self._workers:
            worker.stop()
