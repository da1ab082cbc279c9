"""Runs the denoising of live streams in supervised worker processes, without ever blocking the asyncio loop.

Why worker processes (`python -m bench.denoise_placement`, bench/RESULTS.md): the model holds the GIL, so in
the loop (or a thread) it stalls the loop and gets no extra core; processes do.

Design: `workers` processes (default one per core). Each owns the codec path of the streams placed on it
(Opus decode -> denoise backend -> Opus encode, audio_engine.denoise_worker) and advances all of them once per
20 ms tick, so a batched backend gets its batch. Packets go over the worker's stdin as (stream id, RTP
timestamp, Opus payload); everything queued in one loop iteration goes out in one non-blocking write. Replies
(Opus packet + int16 PCM per 20 ms frame) are read with loop.add_reader and handed to the stream's output
callback: one worker, one encoder per stream, so a stream's output is always in input order on one timeline.
Streams without denoising run there too, passed through on the model's timeline with no model open, so that
`DenoiseStream.set_denoise` can switch any stream either way while live (a crossfade, like the overload
switches below); each output frame says whether it was denoised, which the recording counts.

Overload: each tick reports its cost and how long its frames waited; per worker a ModePolicy
(audio_engine.denoise_policy) switches whole streams to pass-through when the worker falls behind, and back
when its measured costs say there is room again, at most once per hysteresis period each; the worker
crossfades (ModeCrossfade). The stream's `on_mode_change` says so.

Supervision: a worker must report ready within `start_timeout_s` (else DenoiserUnavailable at start, or a
restart later), and must keep replying (a tick report at least every HEARTBEAT_S) or it is treated as hung,
killed and restarted after `hang_timeout_s`; its streams re-open on the new process (fresh model state).
Restarts are counted per worker over a time window (RestartBudget); a worker beyond its budget is given up.
While a stream's worker is not ready, its packets are decoded and re-encoded in the loop undenoised, as a
whole, so a crash never stops the audio or the server.
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

from audio_engine.codec import PassthroughCodec
from audio_engine.denoise import DenoiseSettings
from audio_engine.denoise_policy import HYSTERESIS_S, MAX_WAIT_S, ModePolicy, RestartBudget, StreamMode, WorkerLoad
from audio_engine.framing import FRAME_SAMPLES, SAMPLE_RATE
from audio_engine.stats import (
    FALLBACK_BUSY,
    FALLBACK_MODEL_UNAVAILABLE,
    FALLBACK_WORKER_UNAVAILABLE,
    TICK_SECONDS_BUCKETS,
    WAIT_SECONDS_BUCKETS,
    BucketCounts,
    DenoiseWorkerStats,
)
from audio_engine.worker_protocol import (
    OP_CLOSE,
    OP_CLOSED,
    OP_FAILED,
    OP_FRAME,
    OP_MODE,
    OP_OPEN,
    OP_READY,
    OP_TICK,
    TickReport,
    decode_frames,
    encode_message,
    encode_mode_request,
    encode_packet_request,
    split_messages,
)

logger = logging.getLogger(__name__)

# Called with (Opus packet, its 20 ms of int16 PCM) per output frame.
OutputCallback = Callable[[bytes, np.ndarray], None]
# Called with True (denoised) or False (passed through) when what the stream's listeners hear changes.
ModeCallback = Callable[[bool], None]

# A worker that leaves this much of our input unread is treated as hung.
MAX_PENDING_INPUT_BYTES = 256 * 1024
START_TIMEOUT_S = 30.0
HANG_TIMEOUT_S = 3.0
RESTARTS_PER_WINDOW = 5
RESTART_WINDOW_S = 300.0
MONITOR_INTERVAL_S = 0.25


class DenoiserUnavailable(RuntimeError):
    """The denoise workers could not start (the model cannot be loaded, or they did not start in time)."""


class DenoiseStream:
    """One stream's handle on the pool: submit its in-order Opus payloads, receive (Opus packet, PCM) frames
    through `on_output`, in order, on the loop. `set_denoise` changes whether its session wants denoising;
    `on_mode_change` reports only what the server changes on its own (busy, or a worker restarting)."""

    def __init__(self, pool: DenoiseWorkerPool, mode: StreamMode, on_output: OutputCallback,
                 on_mode_change: ModeCallback | None) -> None:
        self._pool = pool
        self.mode = mode
        self._on_output = on_output
        self._on_mode_change = on_mode_change
        self.worker: _Worker | None = None
        self._fallback: PassthroughCodec | None = None
        self._reported_denoised = mode.denoised
        self._closed: asyncio.Future[None] | None = None
        self.frames_out = 0
        self.denoised_frames_out = 0

    @property
    def denoised_s(self) -> float:
        """Seconds of this stream's output that were denoised (counted from the frames the worker marked)."""
        return self.denoised_frames_out * FRAME_SAMPLES / SAMPLE_RATE

    @property
    def stream_id(self) -> int:
        return self.mode.stream_id

    @property
    def denoised(self) -> bool:
        """Whether the stream's output is (being switched to) denoised."""
        return self.worker is not None and self.worker.ready and self.mode.denoised

    def submit(self, timestamp: int, payload: bytes, new_timeline: bool = False) -> None:
        """The next packet of the stream (RTP timestamp, Opus payload); `new_timeline`: timestamps start over."""
        worker = self.worker
        if worker is not None and worker.ready:
            if self._fallback is not None:  # back from the loop: the worker's decoder starts afresh anyway
                self._fallback.close()
                self._fallback = None
            worker.send(encode_packet_request(self.stream_id, timestamp, payload, new_timeline))
        else:
            if self._fallback is None:
                self._fallback = PassthroughCodec(self._pool.opus_bitrate)
            for opus, pcm in self._fallback.push(timestamp, payload, new_timeline):
                self.frames_out += 1
                self._on_output(opus, pcm)
        self.report_mode()

    def set_denoise(self, on: bool) -> None:
        """The session's wish: denoised (True) or passed through. The worker crossfades the whole stream on its
        timeline, opening the stream's model when it is first denoised. Whether there is room for one more
        denoised stream is the caller's decision; a worker that then falls behind sheds streams as usual."""
        mode = self.mode
        if mode.wanted == on:
            return  # already wished so (a stream shed for load comes back by the policy, not by repeating)
        mode.wanted = mode.denoised = on
        mode.switched_at = self._pool.clock()  # the policy leaves a stream the person just switched alone a while
        self._reported_denoised = on  # the person's own switch is no news to them; a worker not ready still is
        if self.worker is not None:
            self.worker.send(encode_mode_request(OP_MODE, self.stream_id, on))
        logger.info("denoise stream %d: %s by request", self.stream_id, "denoised" if on else "passed through")
        self.report_mode()

    def report_mode(self) -> None:
        denoised = self.denoised
        if denoised != self._reported_denoised:
            self._reported_denoised = denoised
            logger.info("denoise stream %d: %s", self.stream_id, "denoised" if denoised else "passed through")
            if not denoised:
                self._pool.count_fallback(self._fallback_reason())
            if self._on_mode_change is not None:
                self._on_mode_change(denoised)

    def _fallback_reason(self) -> str:
        """Why the server passes this stream through although it was reported denoised."""
        if self.worker is None or not self.worker.ready:
            return FALLBACK_WORKER_UNAVAILABLE
        if self.mode.wanted:
            return FALLBACK_BUSY  # shed by the worker's ModePolicy
        return FALLBACK_MODEL_UNAVAILABLE  # OP_FAILED: no model could be opened for it

    def _deliver(self, payload: bytes) -> None:
        for frame in decode_frames(payload):
            self.frames_out += 1
            self.denoised_frames_out += frame.denoised
            self._on_output(frame.opus, frame.pcm)

    def _finished(self) -> None:
        if self._closed is not None and not self._closed.done():
            self._closed.set_result(None)

    async def close(self, drain_timeout_s: float = 0.5) -> None:
        """Let the worker send the frames it still has (briefly), then release the stream's model."""
        worker = self.worker
        if worker is not None and worker.ready:
            self._closed = asyncio.get_running_loop().create_future()
            worker.send(encode_message(OP_CLOSE, self.stream_id))
            try:
                await asyncio.wait_for(self._closed, drain_timeout_s)
            except TimeoutError:
                logger.warning("denoise stream %d: last frames not returned in time", self.stream_id)
        if worker is not None:
            worker.streams.pop(self.stream_id, None)
        self.worker = None
        if self._fallback is not None:
            self._fallback.close()


class _Worker:
    """The loop-side end of one worker process."""

    def __init__(self, pool: DenoiseWorkerPool, index: int) -> None:
        self._pool = pool
        self.index = index
        self.streams: dict[int, DenoiseStream] = {}
        self.state = "stopped"  # starting -> ready -> (lost -> starting ...) or given-up
        self.ready_result: asyncio.Future[str | None] | None = None
        self.load: WorkerLoad | None = None
        self.policy = ModePolicy(pool.hysteresis_s, max_wait_s=pool.max_wait_s)
        self.budget = RestartBudget(pool.restarts_per_window, pool.restart_window_s, pool.clock)
        self._process: subprocess.Popen[bytes] | None = None
        self._stdin_fd = self._stdout_fd = -1  # the process's pipes, while it runs
        self._unsent = bytearray()
        self._flush_scheduled = False
        self._writer_registered = False
        self._received = bytearray()
        self._running_loop: asyncio.AbstractEventLoop | None = None
        self.started_at = 0.0
        self.last_reply_at = 0.0
        # For monitoring (DenoiseWorkerPool.worker_stats): per tick with output, and per restart.
        self.tick_seconds = BucketCounts(TICK_SECONDS_BUCKETS)
        self.wait_seconds = BucketCounts(WAIT_SECONDS_BUCKETS)
        self.restarts = 0

    @property
    def ready(self) -> bool:
        return self.state == "ready"

    @property
    def _loop(self) -> asyncio.AbstractEventLoop:
        """The loop the worker was started on (set by start(), before anything can need it)."""
        assert self._running_loop is not None, "worker used before start()"
        return self._running_loop

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def start(self) -> None:
        self._running_loop = asyncio.get_running_loop()
        pool = self._pool
        process = self._process = subprocess.Popen(
            [sys.executable, "-m", "audio_engine.denoise_worker", json.dumps(dataclasses.asdict(pool.settings)),
             pool.backend, str(pool.opus_bitrate)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            bufsize=0,
            close_fds=True,
            env=worker_environment(),
        )
        assert process.stdin is not None and process.stdout is not None  # both asked for as pipes above
        self._stdin_fd, self._stdout_fd = process.stdin.fileno(), process.stdout.fileno()
        os.set_blocking(self._stdin_fd, False)
        os.set_blocking(self._stdout_fd, False)
        self._unsent.clear()
        self._flush_scheduled = self._writer_registered = False
        self._received.clear()
        self.ready_result = self._loop.create_future()
        self.state = "starting"
        self.started_at = self.last_reply_at = pool.clock()
        self._loop.add_reader(self._stdout_fd, self._on_readable)
        for stream in self.streams.values():
            self.send(encode_mode_request(OP_OPEN, stream.stream_id, stream.mode.denoised and stream.mode.wanted))

    def open_stream(self, stream: DenoiseStream) -> None:
        self.streams[stream.stream_id] = stream
        stream.worker = self
        if self.state in ("starting", "ready"):
            self.send(encode_mode_request(OP_OPEN, stream.stream_id, stream.mode.denoised))

    def streams_denoised(self) -> tuple[int, int]:
        modes = [stream.mode for stream in self.streams.values()]
        return len(modes), sum(mode.denoised for mode in modes)

    def send(self, message: bytes) -> None:
        """Queue a message; everything queued during this loop iteration goes out in one write."""
        if self.state not in ("starting", "ready"):
            return
        self._unsent += message
        if len(self._unsent) > MAX_PENDING_INPUT_BYTES:
            self.lose("does not read its input")
        elif not self._flush_scheduled and not self._writer_registered:
            self._flush_scheduled = True
            self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        if self.state not in ("starting", "ready") or not self._unsent:
            return
        try:
            written = os.write(self._stdin_fd, self._unsent)
        except BlockingIOError:
            written = 0
        except OSError:
            self.lose("closed its input")
            return
        del self._unsent[:written]
        if self._unsent and not self._writer_registered:
            self._writer_registered = True
            self._loop.add_writer(self._stdin_fd, self._flush)
        elif not self._unsent and self._writer_registered:
            self._writer_registered = False
            self._loop.remove_writer(self._stdin_fd)

    def _on_readable(self) -> None:
        try:
            data = os.read(self._stdout_fd, 1 << 16)
        except BlockingIOError:
            return
        if not data:
            self.lose("exited")
            return
        self.last_reply_at = self._pool.clock()
        self._received += data
        for op, stream_id, payload in split_messages(self._received):
            self._dispatch(op, stream_id, payload)
            if self.state not in ("starting", "ready"):
                return

    def _dispatch(self, op: int, stream_id: int, payload: bytes) -> None:
        if op == OP_FRAME:
            stream = self.streams.get(stream_id)
            if stream is not None:
                stream._deliver(payload)
        elif op == OP_TICK:
            if self.load is not None:
                report = TickReport.decode(payload)
                self.load.add(report)
                if report.frames:  # not an idle heartbeat
                    self.tick_seconds.observe(report.busy_s)
                    self.wait_seconds.observe(report.max_wait_s)
                self._pool._on_tick(self)
        elif op == OP_CLOSED:
            stream = self.streams.pop(stream_id, None)
            if stream is not None:
                stream._finished()
        elif op == OP_READY:
            answer = json.loads(payload)
            ready_result = self.ready_result
            assert ready_result is not None  # start() created it before the process could answer
            if "error" in answer:
                ready_result.set_result(answer["error"])  # the worker exits by itself
                return
            self.load = WorkerLoad(answer["model_s"], answer["codec_s"], answer["model_fixed_s"])
            self.state = "ready"
            ready_result.set_result(None)
            for stream in self.streams.values():
                stream.report_mode()
        elif op == OP_FAILED:
            stream = self.streams.get(stream_id)
            if stream is not None:
                logger.error("no denoise model for stream %d, passing its audio through: %s", stream_id,
                             payload.decode(errors="replace"))
                stream.mode.wanted = stream.mode.denoised = False
                stream.report_mode()

    def check(self, now: float) -> None:
        """Supervision: a worker that does not start in time, or whose replies stopped, is replaced."""
        if self.state == "starting" and now - self.started_at > self._pool.start_timeout_s:
            self.lose(f"did not start within {self._pool.start_timeout_s:g} s")
        elif self.state == "ready" and now - self.last_reply_at > self._pool.hang_timeout_s:
            self.lose(f"sent nothing for {now - self.last_reply_at:.1f} s (hung)")

    def lose(self, reason: str) -> None:
        """The process is unusable: stop it, and restart it within the restart budget."""
        if self.state not in ("starting", "ready"):
            return
        self.stop()
        self._pool._worker_lost(self, reason)

    def stop(self) -> None:
        was_running = self.state in ("starting", "ready")
        self.state = "stopped"
        if self.ready_result is not None and not self.ready_result.done():
            self.ready_result.set_result("denoise worker exited during start-up")
        if self._process is None:
            return
        if was_running:
            self._loop.remove_reader(self._stdout_fd)
            if self._writer_registered:
                self._loop.remove_writer(self._stdin_fd)
            self._writer_registered = False
            for pipe in (self._process.stdin, self._process.stdout):
                if pipe is not None:
                    pipe.close()
        if self._process.poll() is None:
            self._process.kill()
        self._process.wait()
        for stream in self.streams.values():
            stream._finished()


def worker_environment() -> dict[str, str]:
    """The parent's environment, with this package importable whatever the working directory (for every worker
    process the engine starts)."""
    package_root = str(Path(__file__).resolve().parent.parent)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root, env.get("PYTHONPATH")]))
    return env


class DenoiseWorkerPool:
    """A fixed set of supervised denoise worker processes shared by all streams of one MediaEngine.

    backend: a name for audio_engine.denoise.make_denoise_backend. clock: monotonic seconds, for the mode
    hysteresis, the supervision deadlines and the restart window. hysteresis_s, max_wait_s: see ModePolicy.
    """

    def __init__(self, workers: int, settings: DenoiseSettings, opus_bitrate: int = 64_000, *,
                 backend: str = "rs", clock: Callable[[], float] = time.monotonic,
                 start_timeout_s: float = START_TIMEOUT_S, hang_timeout_s: float = HANG_TIMEOUT_S,
                 restarts_per_window: int = RESTARTS_PER_WINDOW, restart_window_s: float = RESTART_WINDOW_S,
                 hysteresis_s: float = HYSTERESIS_S, max_wait_s: float = MAX_WAIT_S) -> None:
        self.settings = settings
        self.opus_bitrate = opus_bitrate
        self.backend = backend
        self.clock = clock
        self.start_timeout_s = start_timeout_s
        self.hang_timeout_s = hang_timeout_s
        self.restarts_per_window = restarts_per_window
        self.restart_window_s = restart_window_s
        self.hysteresis_s = hysteresis_s
        self.max_wait_s = max_wait_s
        self._workers = [_Worker(self, index) for index in range(max(1, workers))]
        self._stream_ids = count(1)
        self._closing = False
        self._monitor: asyncio.Task | None = None
        self._fallbacks: dict[str, int] = {}

    async def start(self) -> None:
        """Start the workers and wait until each has loaded its backend; raises DenoiserUnavailable (and leaves
        no worker running) if one cannot, or does not within start_timeout_s."""
        for worker in self._workers:
            worker.start()
        try:
            starting = [w.ready_result for w in self._workers if w.ready_result is not None]
            errors = await asyncio.wait_for(asyncio.gather(*starting), self.start_timeout_s)
        except TimeoutError:
            errors = [f"the denoise workers did not start within {self.start_timeout_s:g} s"]
        if any(errors):
            await self.close()
            raise DenoiserUnavailable(next(e for e in errors if e))
        self._monitor = asyncio.create_task(self._supervise())

    async def _supervise(self) -> None:
        while True:
            await asyncio.sleep(MONITOR_INTERVAL_S)
            now = self.clock()
            for worker in self._workers:
                worker.check(now)

    def open_stream(self, on_output: OutputCallback, on_mode_change: ModeCallback | None = None, *,
                    denoised: bool = True) -> DenoiseStream:
        """A new stream, denoised or passed through (until `set_denoise(True)`), on the worker with the most
        headroom."""
        stream_id = next(self._stream_ids)
        stream = DenoiseStream(self, StreamMode(stream_id, order=stream_id, wanted=denoised, denoised=denoised),
                               on_output, on_mode_change)
        candidates = [w for w in self._workers if w.state != "given-up"] or self._workers
        worker = max(candidates, key=lambda w: (w.ready, self._worker_headroom(w), -len(w.streams)))
        worker.open_stream(stream)
        return stream

    def _on_tick(self, worker: _Worker) -> None:
        if worker.load is None:
            return
        modes = [stream.mode for stream in worker.streams.values()]
        load = worker.load
        share_before = load.load(len(modes), sum(mode.denoised for mode in modes))
        for mode in worker.policy.decide(load, modes, self.clock()):
            logger.info("denoise worker %d: stream %d %s (frames wait %.0f ms; %d streams, %.0f %% of real time "
                        "by the measured costs)", worker.index, mode.stream_id,
                        "resumed" if mode.denoised else "shed", load.wait_s * 1000, len(modes), 100 * share_before)
            worker.send(encode_mode_request(OP_MODE, mode.stream_id, mode.denoised))
            worker.streams[mode.stream_id].report_mode()

    def _worker_lost(self, worker: _Worker, reason: str) -> None:
        for stream in worker.streams.values():
            stream.report_mode()
        if self._closing or self._monitor is None:
            return  # shutting down, or start() is failing
        if not worker.budget.allow():
            worker.state = "given-up"
            logger.error("denoise worker %d %s, and was restarted %d times within %g s: giving up; its streams "
                         "pass audio through", worker.index, reason, self.restarts_per_window, self.restart_window_s)
            return
        logger.error("denoise worker %d (pid %s) %s; restarting it with its %d streams",
                     worker.index, worker.pid, reason, len(worker.streams))
        worker.restarts += 1
        try:
            worker.start()
        except OSError:
            logger.exception("denoise worker %d cannot be restarted; its streams pass audio through", worker.index)
            worker.state = "given-up"

    @staticmethod
    def _worker_headroom(worker: _Worker) -> int:
        if not worker.ready or worker.load is None:
            return 0
        return worker.load.headroom(*worker.streams_denoised())

    def headroom(self) -> int:
        """How many more denoised streams the workers can take now, from their measured costs: the spare
        room under the target load, less the streams waiting in pass-through for room."""
        waiting = sum(1 for w in self._workers for s in w.streams.values() if s.mode.wanted and not s.mode.denoised)
        return max(0, sum(self._worker_headroom(w) for w in self._workers) - waiting)

    def count_fallback(self, reason: str) -> None:
        self._fallbacks[reason] = self._fallbacks.get(reason, 0) + 1

    def pass_through_fallbacks(self) -> dict[str, int]:
        """How many times the server switched a denoised stream to pass-through, per reason (stats.FALLBACK_*)."""
        return dict(self._fallbacks)

    def worker_stats(self) -> tuple[DenoiseWorkerStats, ...]:
        return tuple(DenoiseWorkerStats(w.index, w.state, w.restarts, w.tick_seconds.snapshot(),
                                        w.wait_seconds.snapshot()) for w in self._workers)

    def worker_pids(self) -> list[int | None]:
        return [worker.pid for worker in self._workers]

    async def close(self) -> None:
        self._closing = True
        if self._monitor is not None:
            self._monitor.cancel()
        for worker in self._workers:
            worker.stop()
