"""Denoising whole audio files (uploads), away from live streams.

One worker process (`python -m audio_engine.file_denoise`), started on the first file and kept, runs at a lower
CPU priority (os.nice) than the server and its live denoise workers, so a file never slows a live stream: the
kernel gives the live processes the cores first. It decodes any file PyAV reads (WAV, FLAC, Ogg/Opus, MP3,
WebM/Opus from MediaRecorder) to 48 kHz mono, refuses one that is not audio, empty or too long, denoises it with
the same backend and settings as live streams (one stream, hop by hop, its 30 ms delay removed) or leaves it as
it is, and writes a 48 kHz mono 16-bit WAV.

    denoiser = FileDenoiser(settings, "batched", max_jobs=4, niceness=10, scratch_dir=Path(...))
    job = denoiser.submit(upload_path, owner="42", denoise=True, max_seconds=600)  # raises FileDenoiserBusy
    job.decoded.wait(timeout)     # the length is known (job.duration_s) or the file was refused (job.error)
    job.finished.wait(timeout)    # job.state "done" (job.output_path) or "failed" (job.error)
    denoiser.job(job.id)          # None once expired (job_ttl_s after it finished; its files go too)

`on_finished(job)` (optional) is called on the denoiser's reader thread when a job's output is written, before
the job says it is done and before `job.finished` is set, so that whatever it records is there for whoever polls
or waits. Jobs live in this process only.

Worker protocol: one JSON object per line. Requests on stdin: {"job", "input", "output", "denoise",
"max_seconds"}. Replies on a private copy of stdout: {"event": "ready"} or {"event": "ready", "error"} once,
then per job {"job", "event": "decoded", "seconds"}, {"job", "event": "progress", "fraction"} and
{"job", "event": "done", "seconds", "denoised_seconds"} or {"job", "event": "failed", "reason", "message"}.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import os
import subprocess
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import av
import numpy as np

from audio_engine.denoise import DenoiseBackend, DenoiseSettings, make_denoise_backend
from audio_engine.denoise_pool import worker_environment
from audio_engine.framing import HOP_SAMPLES, SAMPLE_RATE, MonoHopFramer
from audio_engine.recorder import WavRecorder

logger = logging.getLogger(__name__)

# Why a file was refused (FileRejected.reason).
UNREADABLE = "unreadable"  # corrupt, or not a format PyAV decodes
NOT_AUDIO = "not_audio"  # a container without an audio stream
EMPTY = "empty"  # no samples
TOO_LONG = "too_long"
UNAVAILABLE = "unavailable"  # the worker could not start or died: not the file's fault
# The worker reports progress every this much audio.
PROGRESS_EVERY_HOPS = 200


class FileRejected(ValueError):
    """The file cannot be turned into audio; `reason` is one of the constants above, the message is for people."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class FileDenoiserBusy(RuntimeError):
    """`max_jobs` files are already waiting or being processed."""


def decode_audio_file(path: Path, max_seconds: float) -> np.ndarray:
    """The file's first audio stream as 48 kHz mono float32; FileRejected when it has none, is empty, longer than
    `max_seconds` (decoding stops there) or cannot be decoded."""
    limit = int(max_seconds * SAMPLE_RATE)
    framer = MonoHopFramer()
    chunks: list[np.ndarray] = []
    total = 0
    try:
        with av.open(str(path)) as container:
            if not container.streams.audio:
                raise FileRejected(NOT_AUDIO, "The file has no audio in it.")
            for frame in container.decode(audio=0):
                samples = framer.push(frame)
                total += len(samples)
                if total > limit:
                    raise FileRejected(TOO_LONG, f"The audio is longer than {_minutes(max_seconds)}.")
                chunks.append(samples)
    except FileRejected:
        raise
    except (av.FFmpegError, ValueError, IndexError, OSError, EOFError) as error:
        raise FileRejected(UNREADABLE, "The file cannot be read as audio (WAV, FLAC, Ogg, MP3 or WebM).") from error
    if not total:
        raise FileRejected(EMPTY, "The file holds no audio.")
    return np.concatenate(chunks)


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:g} minutes" if seconds >= 60 else f"{seconds:g} seconds"


def denoise_samples(
    backend: DenoiseBackend, samples: np.ndarray, on_progress: Callable[[float], None] | None = None
) -> np.ndarray:
    """A whole signal through `backend` as one stream, hop by hop, aligned with its input (the backend's delay is
    removed: the input is followed by that much silence and the output's start dropped). Same length as input."""
    delay = backend.delay_samples
    padded_length = -(-(len(samples) + delay) // HOP_SAMPLES) * HOP_SAMPLES
    padded = np.zeros(padded_length, dtype=np.float32)
    padded[: len(samples)] = samples
    hops = padded.reshape(-1, HOP_SAMPLES)
    out = np.empty_like(padded)
    backend.open(0)
    try:
        for index, hop in enumerate(hops):
            out[index * HOP_SAMPLES : (index + 1) * HOP_SAMPLES] = backend.process({0: hop})[0]
            if on_progress is not None and index % PROGRESS_EVERY_HOPS == 0:
                on_progress(index / len(hops))
    finally:
        backend.close(0)
    return out[delay : delay + len(samples)]


# --- the worker process ----------------------------------------------------------------------------------------


def _serve(settings_json: str, backend_name: str, niceness: int) -> None:
    os.nice(niceness)
    replies = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # stray library output must not corrupt the protocol

    def reply(**message: Any) -> None:
        replies.write(json.dumps(message) + "\n")

    try:
        backend = make_denoise_backend(backend_name, DenoiseSettings(**json.loads(settings_json)))
    except BaseException as error:  # pyo3 panics are BaseExceptions
        traceback.print_exc()
        reply(event="ready", error=f"cannot load the denoise model: {error}")
        return
    reply(event="ready")
    for line in sys.stdin:
        request = json.loads(line)
        job = request["job"]
        try:
            _run_job(backend, request, functools.partial(reply, job=job))
        except FileRejected as error:
            reply(job=job, event="failed", reason=error.reason, message=str(error))
        except Exception as error:
            traceback.print_exc()
            reply(job=job, event="failed", reason=UNREADABLE, message=f"The file could not be processed: {error}")


def _run_job(backend: DenoiseBackend, request: dict[str, Any], reply: Callable[..., None]) -> None:
    samples = decode_audio_file(Path(request["input"]), float(request["max_seconds"]))
    seconds = len(samples) / SAMPLE_RATE
    reply(event="decoded", seconds=seconds)
    if request["denoise"]:
        samples = denoise_samples(backend, samples, lambda fraction: reply(event="progress", fraction=fraction))
    recorder = WavRecorder(Path(request["output"]))
    recorder.write(samples)
    result = recorder.finalize()
    reply(event="done", seconds=result.duration_s, denoised_seconds=result.duration_s if request["denoise"] else 0.0)


# --- the server side ---------------------------------------------------------------------------------------------


@dataclass
class FileJob:
    """One file's way through the worker. `state`: queued -> running -> done | failed."""

    id: str
    owner: str
    denoise: bool
    input_path: Path
    output_path: Path
    state: str = "queued"
    progress: float = 0.0
    duration_s: float | None = None  # known once decoded
    denoised_s: float = 0.0
    error: FileRejected | None = None
    finished_at: float | None = None  # monotonic
    # Whatever the caller wants to remember with the job (e.g. what to do with the result).
    extra: dict[str, Any] = field(default_factory=dict)
    decoded: threading.Event = field(default_factory=threading.Event, repr=False)
    finished: threading.Event = field(default_factory=threading.Event, repr=False)

    @property
    def done(self) -> bool:
        return self.state == "done"


class FileDenoiser:
    """Queues files for the one low-priority worker process; thread-safe (callers are request threads)."""

    def __init__(
        self,
        settings: DenoiseSettings,
        backend: str,
        *,
        max_jobs: int,
        niceness: int,
        scratch_dir: Path,
        job_ttl_s: float = 3600.0,
        on_finished: Callable[[FileJob], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._settings = settings
        self._backend = backend
        self._max_jobs = max_jobs
        self._niceness = niceness
        self.scratch_dir = scratch_dir
        self._job_ttl_s = job_ttl_s
        self._on_finished = on_finished
        self._clock = clock
        self._lock = threading.Lock()
        self._jobs: dict[str, FileJob] = {}
        self._process: subprocess.Popen | None = None

    def new_input_path(self) -> Path:
        """Where to put an upload before submitting it (the job removes it when it ends)."""
        self.scratch_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        return self.scratch_dir / f"{uuid.uuid4().hex}.upload"

    def submit(
        self, input_path: Path, *, owner: str, denoise: bool, max_seconds: float, extra: dict[str, Any] | None = None
    ) -> FileJob:
        with self._lock:
            self._expire()
            if sum(not job.finished.is_set() for job in self._jobs.values()) >= self._max_jobs:
                input_path.unlink(missing_ok=True)
                raise FileDenoiserBusy(f"{self._max_jobs} files are already waiting")
            job_id = uuid.uuid4().hex
            job = FileJob(
                id=job_id,
                owner=owner,
                denoise=denoise,
                input_path=input_path,
                output_path=self.scratch_dir / f"{job_id}.wav",
                extra=dict(extra or {}),
            )
            self._jobs[job_id] = job
            process = self._running_worker()
            request = {
                "job": job_id,
                "input": str(input_path),
                "output": str(job.output_path),
                "denoise": denoise,
                "max_seconds": max_seconds,
            }
            try:
                assert process.stdin is not None
                process.stdin.write(json.dumps(request) + "\n")
                process.stdin.flush()
            except OSError:
                self._fail(job, FileRejected(UNAVAILABLE, "Noise removal is unavailable right now. Try again later."))
        return job

    def job(self, job_id: str) -> FileJob | None:
        with self._lock:
            self._expire()
            return self._jobs.get(job_id)

    @property
    def worker_pid(self) -> int | None:
        """The worker process's id while one runs."""
        with self._lock:
            return self._process.pid if self._process is not None and self._process.poll() is None else None

    def shutdown(self) -> None:
        with self._lock:
            process, self._process = self._process, None
        if process is not None:
            if process.stdin is not None:
                process.stdin.close()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def _running_worker(self) -> subprocess.Popen:
        if self._process is not None and self._process.poll() is None:
            return self._process
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "audio_engine.file_denoise",
                json.dumps(dataclasses.asdict(self._settings)),
                self._backend,
                str(self._niceness),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            bufsize=1,
            close_fds=True,
            env=worker_environment(),
        )
        self._process = process
        assert process.stdout is not None
        threading.Thread(target=self._read_replies, args=(process, process.stdout), daemon=True).start()
        return process

    def _read_replies(self, process: subprocess.Popen, replies: IO[str]) -> None:
        for line in replies:
            try:
                message = json.loads(line)
            except ValueError:
                continue
            if message.get("event") == "ready":
                if "error" in message:
                    logger.error("file denoise worker: %s", message["error"])
                continue
            self._handle(message)
        process.wait()
        with self._lock:
            unexpected = self._process is process  # not stopped by shutdown()
            if unexpected:
                self._process = None
        if unexpected:
            logger.warning("file denoise worker exited with %s", process.returncode)
        with self._lock:
            unfinished = [job for job in self._jobs.values() if not job.finished.is_set()]
        for job in unfinished:
            self._fail(job, FileRejected(UNAVAILABLE, "Noise removal is unavailable right now. Try again later."))

    def _handle(self, message: dict[str, Any]) -> None:
        with self._lock:
            job = self._jobs.get(message.get("job", ""))
        if job is None:
            return
        event = message["event"]
        if event == "decoded":
            job.duration_s = float(message["seconds"])
            job.state = "running"
            job.decoded.set()
        elif event == "progress":
            job.progress = float(message["fraction"])
        elif event == "done":
            job.duration_s = float(message["seconds"])
            job.denoised_s = float(message["denoised_seconds"])
            job.progress = 1.0
            job.input_path.unlink(missing_ok=True)
            # Not "done" before on_finished has recorded what it records: whoever polls the job and sees it done
            # must find that (e.g. the kept recording) already there.
            if self._on_finished is not None:
                try:
                    self._on_finished(job)
                except FileRejected as error:
                    self._fail(job, error)
                    return
                except Exception:
                    logger.exception("handling finished file job %s failed", job.id)
                    self._fail(job, FileRejected(UNAVAILABLE, "The file was processed but could not be saved."))
                    return
            job.state = "done"
            job.finished_at = self._clock()
            job.decoded.set()
            job.finished.set()
        elif event == "failed":
            self._fail(job, FileRejected(message["reason"], message["message"]))

    def _fail(self, job: FileJob, error: FileRejected) -> None:
        job.state = "failed"
        job.error = error
        job.finished_at = self._clock()
        job.input_path.unlink(missing_ok=True)
        job.output_path.unlink(missing_ok=True)
        job.decoded.set()
        job.finished.set()

    def _expire(self) -> None:
        """Forget finished jobs older than the ttl, and their files. Called with the lock held."""
        now = self._clock()
        for job_id, job in list(self._jobs.items()):
            if job.finished_at is not None and now - job.finished_at > self._job_ttl_s:
                job.output_path.unlink(missing_ok=True)
                del self._jobs[job_id]


if __name__ == "__main__":
    _serve(sys.argv[1], sys.argv[2], int(sys.argv[3]))
