"""When a denoise worker ticks: its streams' frames go out as soon as they are all in, a stream whose frame comes a
little late does not miss its tick, and a joining stream or a backlog does not hold the others up.

A real Worker (Opus in, a fake model, Opus out) driven by its TickSchedule on a controlled clock: packets are
handed to it at chosen times, and each frame's output is stamped with the clock when the worker sends it.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from audio_engine.denoise import DenoiseSettings
from audio_engine.denoise_worker import LATE_FRAME_GRACE_S, TICK_S, TickSchedule, Worker
from audio_engine.framing import FRAME_SAMPLES
from audio_engine.opus import OpusEncoder
from audio_engine.worker_protocol import (
    OP_FRAME,
    OP_OPEN,
    decode_frames,
    encode_mode_request,
    encode_packet_request,
    split_messages,
)
from tests.engine.fake_backends import SlowHalvingBackend

BITRATE = 32_000
MS = 0.001


def opus_frames(count: int) -> list[bytes]:
    encoder = OpusEncoder(BITRATE)
    noise = 0.05 * np.random.default_rng(1).standard_normal((count, FRAME_SAMPLES)).astype(np.float32)
    return [encoder.encode(frame) for frame in noise]


class ClockedWorker:
    """A Worker and its TickSchedule, run on a simulated clock."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sent_at: dict[int, list[float]] = defaultdict(list)  # stream -> when each output frame went out
        self.sends: list[list[tuple[int, int, int]]] = []  # per write: (op, stream, frames)
        self.worker = Worker(SlowHalvingBackend(DenoiseSettings()), BITRATE, self._send)
        self.schedule = TickSchedule(self.now)
        self._events: list[tuple[float, int, bytes]] = []

    def _send(self, data: bytes) -> None:
        write = []
        for op, stream_id, payload in split_messages(bytearray(data)):
            frames = len(decode_frames(payload)) if op == OP_FRAME else 0
            self.sent_at[stream_id].extend([self.now] * frames)
            write.append((op, stream_id, frames))
        self.sends.append(write)

    def open_at(self, at: float, stream_id: int) -> None:
        self._events.append((at, stream_id, encode_mode_request(OP_OPEN, stream_id, True)))

    def packets_at(self, times: list[float], stream_id: int) -> None:
        for index, (at, payload) in enumerate(zip(times, opus_frames(len(times)), strict=True)):
            self._events.append((at, stream_id, encode_packet_request(stream_id, index * FRAME_SAMPLES, payload,
                                                                      index == 0)))

    def run(self, until: float) -> None:
        """What the worker's serve loop does: read what has come, tick when the schedule says so."""
        events = sorted(self._events, key=lambda event: event[0])
        while self.now < until:
            if events and events[0][0] <= self.schedule.deadline:
                self.now = events[0][0]
                while events and events[0][0] == self.now:  # what has come by now is read in one go
                    _, _, message = events.pop(0)
                    for op, stream_id, payload in split_messages(bytearray(message)):
                        self.worker.handle(op, stream_id, payload)
            else:
                self.now = self.schedule.deadline
            all_ready = self.worker.all_streams_ready()
            if self.schedule.due(self.now, all_ready):
                self.worker.tick()
                self.schedule.ticked(self.now, all_ready)


def every_frame(phase: float, count: int, start: float = 0.0) -> list[float]:
    return [start + phase + index * TICK_S for index in range(count)]


def gaps(times: list[float]) -> np.ndarray:
    return np.diff(np.asarray(times))


def test_a_lone_stream_is_ticked_the_moment_its_frame_is_in() -> None:
    clocked = ClockedWorker()
    clocked.open_at(0.0, 1)
    arrivals = every_frame(3 * MS, 50)
    clocked.packets_at(arrivals, 1)
    clocked.run(until=1.1)
    assert clocked.sent_at[1] == arrivals


def test_a_frame_that_comes_a_little_late_still_makes_its_tick() -> None:
    """Stream 2 is the last in every round, and every other frame of it comes 5 ms late: without a grace the
    late frame would miss its tick and wait a whole frame, a 40 ms gap for its listeners."""
    clocked = ClockedWorker()
    clocked.open_at(0.0, 1)
    clocked.open_at(0.0, 2)
    clocked.packets_at(every_frame(2 * MS, 100), 1)
    clocked.packets_at([at + (5 * MS if index % 2 else 0.0) for index, at in enumerate(every_frame(15 * MS, 100))], 2)
    clocked.run(until=2.1)
    for stream_id in (1, 2):
        assert len(clocked.sent_at[stream_id]) == 100
        assert gaps(clocked.sent_at[stream_id]).max() <= TICK_S + LATE_FRAME_GRACE_S + 1e-9


def test_a_joining_stream_does_not_hold_up_the_running_one() -> None:
    """Stream 2 is opened at 200 ms but sends its first frame only at 413 ms (ICE and DTLS take their time), at
    a phase 13 ms after stream 1's: until then stream 1 goes out the moment it comes in, and after it stream 1
    waits for stream 2 at most that phase, without a gap beyond the grace."""
    clocked = ClockedWorker()
    clocked.open_at(0.0, 1)
    running = every_frame(0.0, 50)
    clocked.packets_at(running, 1)
    clocked.open_at(0.2, 2)
    clocked.packets_at(every_frame(13 * MS, 20, start=0.4), 2)
    clocked.run(until=1.1)
    sent = np.asarray(clocked.sent_at[1])
    waited = sent - np.asarray(running)
    before_first_frame = np.asarray(running) < 0.413
    assert np.all(waited[before_first_frame] == 0.0)
    assert waited.max() <= 13 * MS + 1e-9
    assert gaps(sent).max() <= TICK_S + LATE_FRAME_GRACE_S + 1e-9
    assert len(clocked.sent_at[2]) == 20


def test_a_stream_with_a_backlog_does_not_delay_the_others_frames() -> None:
    """Three frames of stream 1 arrive in one burst with one of stream 2: the first round (one frame of each) is
    written before the model runs the backlog."""
    clocked = ClockedWorker()
    clocked.open_at(0.0, 1)
    clocked.open_at(0.0, 2)
    clocked.packets_at([0.001, 0.001, 0.001], 1)
    clocked.packets_at([0.001], 2)
    clocked.run(until=0.002)
    first_write = [(op, stream_id, frames) for op, stream_id, frames in clocked.sends[0]]
    assert first_write == [(OP_FRAME, 1, 1), (OP_FRAME, 2, 1)]
    assert len(clocked.sent_at[1]) == 3 and len(clocked.sent_at[2]) == 1
