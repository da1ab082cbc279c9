"""Load bookkeeping, mode decisions, restart budget and the crossfade between modes: pure logic, controlled time."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from audio_engine.denoise import CROSSFADE_SAMPLES, WARMUP_SAMPLES, ModeCrossfade
from audio_engine.denoise_policy import (
    BEHIND_FOR_S,
    FRAME_S,
    TARGET_LOAD,
    ModePolicy,
    RestartBudget,
    StreamMode,
    WorkerLoad,
)
from audio_engine.worker_protocol import TickReport

FRAME = 960
DELAY = 1440


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def streams(count: int, denoised: bool = True) -> list[StreamMode]:
    return [StreamMode(stream_id=i, order=i, denoised=denoised) for i in range(1, count + 1)]


def test_load_follows_the_measured_cost_per_stream_frame():
    load = WorkerLoad(model_s=0.004, codec_s=0.0002)
    assert load.load(streams=2, denoised=2) == pytest.approx(2 * 0.0042 / FRAME_S)
    for _ in range(200):  # the model turns out twice as slow on this machine
        load.add(TickReport(frames=4, denoised_frames=4, rounds=1, busy_s=4 * 0.0082, model_s=4 * 0.008))
    assert load.model_s == pytest.approx(0.008, rel=1e-3) and load.codec_s == pytest.approx(0.0002, rel=1e-3)
    # 0.7 * 20 ms = 14 ms: one stream costs 8.2 ms, so one fits and a second does not.
    assert load.headroom(streams=0, denoised=0) == 1
    assert load.headroom(streams=1, denoised=1) == 0
    # A stream of 16 ms is past the 14 ms target, but an idle worker keeps up with it: it takes that one.
    slow = WorkerLoad(model_s=0.016, codec_s=0.0)
    assert slow.headroom(streams=0, denoised=0) == 1 and slow.headroom(streams=1, denoised=1) == 0
    assert WorkerLoad(model_s=0.025, codec_s=0.0).headroom(streams=0, denoised=0) == 0


def test_the_wait_follows_a_worker_that_reports_rarely_as_fast_as_one_that_reports_every_frame():
    every_frame, rarely = WorkerLoad(model_s=0.004, codec_s=0.0), WorkerLoad(model_s=0.004, codec_s=0.0)
    for _ in range(10):  # 200 ms of frames, waiting 0.5 s: one report per frame, or one for all ten rounds
        every_frame.add(TickReport(frames=1, denoised_frames=1, rounds=1, busy_s=0.004, model_s=0.004, max_wait_s=0.5))
    rarely.add(TickReport(frames=10, denoised_frames=10, rounds=10, busy_s=0.04, model_s=0.04, max_wait_s=0.5))
    assert rarely.wait_s == pytest.approx(every_frame.wait_s) and rarely.wait_s > 0.45


def test_a_batched_model_costs_a_fixed_part_per_call_and_a_small_part_per_stream():
    # Shaped like the batched DeepFilterNet3: 4 ms per call whatever the batch, 0.5 ms more per stream.
    load = WorkerLoad(model_s=0.0005, codec_s=0.0, model_fixed_s=0.004)
    assert load.load(streams=1, denoised=1) == pytest.approx(0.0045 / FRAME_S)
    assert load.load(streams=16, denoised=16) == pytest.approx(0.012 / FRAME_S)
    assert load.load(streams=3, denoised=0) == 0.0  # no model call at all
    # 14 ms target: the first stream brings the fixed 4 ms, then 0.5 ms each: 20 from idle.
    assert load.headroom(streams=0, denoised=0) == 20
    assert load.headroom(streams=16, denoised=16) == 4
    # A per-stream average (0.75 ms at 16) would have said 2, and from idle 18.
    for _ in range(300):  # the machine turns out twice as slow: both parts double, the shape stays
        load.add(TickReport(frames=16, denoised_frames=16, rounds=1, busy_s=0.024, model_s=0.024))
    assert load.model_fixed_s == pytest.approx(0.008, rel=1e-3) and load.model_s == pytest.approx(0.001, rel=1e-3)
    assert load.headroom(streams=0, denoised=0) == 6


def test_when_falling_behind_a_batched_worker_sheds_what_brings_it_back_to_the_target():
    policy = ModePolicy(hysteresis_s=5.0, settle_s=1.0, behind_for_s=0.0)
    load = WorkerLoad(model_s=0.001, codec_s=0.0, model_fixed_s=0.004)  # 20 streams: 24 ms per 20 ms
    load.wait_s = 0.2
    modes = streams(20)
    shed = policy.decide(load, modes, now=0.0)
    # Back to 14 ms: 10 ms of per-stream cost, 10 streams (a per-stream average of 1.2 ms would shed 9 and stay
    # over the target).
    assert [m.stream_id for m in shed] == list(range(20, 10, -1))
    assert load.load(20, 10) == pytest.approx(TARGET_LOAD)


def test_a_worker_sheds_at_most_half_of_its_denoised_streams_at_once():
    policy = ModePolicy(hysteresis_s=5.0, settle_s=1.0, behind_for_s=0.0)
    load = WorkerLoad(model_s=0.008, codec_s=0.0, model_fixed_s=0.004)  # 4 streams: 36 ms, 1.8x real time
    load.wait_s = 0.2
    modes = streams(4)
    assert [m.stream_id for m in policy.decide(load, modes, now=0.0)] == [4, 3]  # 3 would reach the target
    assert policy.decide(load, modes, now=0.5) == []  # settling
    # Still behind after settling: the next half of what is left.
    assert [m.stream_id for m in policy.decide(load, modes, now=1.0)] == [2]


def test_overload_moves_the_newest_streams_to_pass_through_and_resumes_after_the_hysteresis():
    policy = ModePolicy(hysteresis_s=5.0, settle_s=1.0, behind_for_s=0.0)
    load = WorkerLoad(model_s=0.006, codec_s=0.0)  # 4 streams = 24 ms: more than the 20 ms they last
    load.wait_s = 0.2  # so frames wait longer and longer
    modes = streams(4)
    shed = policy.decide(load, modes, now=0.0)
    # Back under TARGET_LOAD: 0.7 * 20 ms fits 2 streams of 6 ms.
    assert [m.stream_id for m in shed] == [4, 3] and [m.denoised for m in modes] == [True, True, False, False]
    assert load.load(4, 2) <= TARGET_LOAD
    load.wait_s = 0.01  # caught up

    # Stream 1 ends: room for one more, but only once stream 3 has been passed through for 5 s.
    modes = modes[1:]
    assert policy.decide(load, modes, now=4.9) == []
    resumed = policy.decide(load, modes, now=5.0)
    assert [m.stream_id for m in resumed] == [3] and resumed[0].switched_at == 5.0
    # Stream 4 stays: with 2 denoised there is no room for a third.
    assert policy.decide(load, modes, now=20.0) == []


def test_a_stream_switches_at_most_once_per_hysteresis_period_even_when_load_swings():
    policy = ModePolicy(hysteresis_s=5.0, settle_s=1.0, behind_for_s=0.0)
    modes = streams(3)
    switches: dict[int, list[float]] = {m.stream_id: [] for m in modes}
    heavy, light = WorkerLoad(model_s=0.008, codec_s=0.0), WorkerLoad(model_s=0.001, codec_s=0.0)
    heavy.wait_s = 0.2
    for tick in range(3000):  # 60 s of ticks, the model's cost flipping every 0.5 s
        now = tick * FRAME_S
        for mode in policy.decide(heavy if (tick // 25) % 2 else light, modes, now):
            switches[mode.stream_id].append(now)
    assert sum(len(times) for times in switches.values()) >= 6  # it did react
    for times in switches.values():
        assert all(later - earlier >= 5.0 for earlier, later in zip(times, times[1:], strict=False))


def test_streams_are_shed_when_frames_wait_too_long_and_the_costs_explain_it():
    policy = ModePolicy(hysteresis_s=5.0, settle_s=0.0, behind_for_s=0.0)
    load = WorkerLoad(model_s=0.012, codec_s=0.0)  # 2 streams: 1.2x real time by the smoothed costs
    modes = streams(2)
    assert policy.decide(load, modes, now=0.0) == []  # yet the frames do not wait: it keeps up
    load.wait_s = 0.2
    assert [m.stream_id for m in policy.decide(load, modes, now=1.0)] == [2]
    # Frames that wait while the costs fit are a backlog being caught up, until the wait is far too long: then
    # one stream at a time is shed.
    load = WorkerLoad(model_s=0.002, codec_s=0.0)
    load.wait_s = 0.2
    modes = streams(3)
    assert ModePolicy(behind_for_s=0.0).decide(load, modes, now=0.0) == []
    load.wait_s = 0.7
    assert [m.stream_id for m in ModePolicy(behind_for_s=0.0).decide(load, modes, now=0.0)] == [3]


def ticks_driver(policy: ModePolicy, load: WorkerLoad, modes: list[StreamMode]):
    """run(wait_s, start, end): a tick report every 20 ms from `start` to `end`, with the frames' wait constant
    or a function of the time; returns (time, stream) of each switch."""

    def run(wait_s: float | Callable[[float], float], start: float, end: float) -> list[tuple[float, int]]:
        switched = []
        for tick in range(round((end - start) / FRAME_S)):
            now = start + tick * FRAME_S
            load.wait_s = wait_s(now) if callable(wait_s) else wait_s
            switched += [(now, mode.stream_id) for mode in policy.decide(load, modes, now)]
        return switched

    return run


def test_only_frames_that_go_on_waiting_shed_a_stream_not_a_backlog_being_caught_up():
    load = WorkerLoad(model_s=0.002, codec_s=0.0)  # 3 streams: 6 ms per 20 ms, the costs fit
    modes = streams(3)
    run = ticks_driver(ModePolicy(hysteresis_s=5.0, settle_s=1.0), load, modes)

    # The machine stopped the worker for a moment: its frames waited far too long, then it caught up.
    assert run(1.0, start=0.0, end=BEHIND_FOR_S - 0.1) == []
    assert run(0.01, start=BEHIND_FOR_S - 0.1, end=1.0) == []
    # Frames that go on waiting: the newest stream is shed once they have waited for BEHIND_FOR_S on end.
    shed = run(1.0, start=1.0, end=2.0)
    assert [stream_id for _, stream_id in shed] == [3] and shed[0][0] == pytest.approx(1.0 + BEHIND_FOR_S)
    # Caught up, with room again: the stream comes back once its hysteresis period is over (at 6.5 s), but not
    # while frames wait, however briefly.
    assert run(0.01, start=2.0, end=6.4) == []
    assert run(1.0, start=6.4, end=6.4 + BEHIND_FOR_S - 0.1) == []
    assert run(0.01, start=6.8, end=8.0) == [(pytest.approx(6.8), 3)]


def test_a_backlog_worked_off_after_a_shed_sheds_nothing_more_while_its_wait_falls():
    load = WorkerLoad(model_s=0.012, codec_s=0.0)  # 2 streams: 1.2x real time; 1 stream: 0.6x
    run = ticks_driver(ModePolicy(hysteresis_s=5.0, settle_s=1.0), load, streams(2))

    assert [stream_id for _, stream_id in run(0.2, start=0.0, end=0.6)] == [2]
    # The frames that queued while it was behind: far past the limit at first (1.2 s), and past it for 1.4 s
    # more, but falling: the stream left fits.
    assert run(lambda now: 1.2 - 0.4 * (now - 0.6), start=0.6, end=2.0) == []
    # A wait that stops falling is a worker still behind: the next stream goes within BEHIND_FOR_S.
    shed = run(0.7, start=2.0, end=3.0)
    assert [stream_id for _, stream_id in shed] == [1] and shed[0][0] <= 2.0 + BEHIND_FOR_S


def test_a_stream_without_a_model_is_never_resumed():
    policy = ModePolicy(hysteresis_s=0.0, settle_s=0.0)
    mode = StreamMode(stream_id=1, order=1, wanted=False, denoised=False)
    assert policy.decide(WorkerLoad(model_s=0.001, codec_s=0.0), [mode], now=10.0) == []


def test_restart_budget_counts_restarts_over_a_sliding_window():
    clock = Clock()
    budget = RestartBudget(restarts=2, window_s=60.0, clock=clock)
    assert budget.allow()
    clock.now += 30.0
    assert budget.allow()
    clock.now += 29.0
    assert not budget.allow()  # a third within the minute
    clock.now += 1.0
    assert budget.allow()  # the first one has left the window
    assert not budget.allow()  # the second has not


def ramp_input(frames: int) -> list[np.ndarray]:
    samples = np.arange(frames * FRAME, dtype=np.float32) / (frames * FRAME) + 0.5
    return list(samples.reshape(frames, FRAME))


def delayed(frames: list[np.ndarray], delay: int) -> np.ndarray:
    joined = np.concatenate(frames)
    return np.concatenate([np.zeros(delay, dtype=np.float32), joined])[: len(joined)]


def run_crossfade(mode: ModeCrossfade, frames: list[np.ndarray], switch_at: dict[int, bool]) -> tuple:
    """Feed `frames`; the model 'denoises' by halving the delayed input. Returns the output and the frames on
    which the model was fed."""
    history = np.zeros(DELAY, dtype=np.float32)
    out, fed = [], []
    for index, frame in enumerate(frames):
        if index in switch_at:
            mode.set_denoised(switch_at[index])
        joined = np.concatenate([history, frame])
        history = joined[FRAME:]
        model_out = 0.5 * joined[:FRAME] if mode.uses_model else None
        if model_out is not None:
            fed.append(index)
        out.append(mode.mix(frame, model_out))
    return np.concatenate(out), fed


def test_switching_modes_crossfades_on_one_timeline_and_freezes_the_model_while_passed_through():
    frames = ramp_input(60)
    out, fed = run_crossfade(ModeCrossfade(DELAY, denoised=True), frames, {10: False, 30: True})
    reference = delayed(frames, DELAY)
    valid = reference > 0
    gain = np.ones_like(out)
    gain[valid] = out[valid] / reference[valid]
    # Always the input on its one timeline, scaled between the denoised (0.5) and passed-through (1.0) level.
    assert np.all((gain[valid] > 0.5 - 1e-5) & (gain[valid] < 1 + 1e-5))
    # Crossfades, never jumps: the gain moves at most 0.5 / CROSSFADE_SAMPLES per sample.
    assert np.max(np.abs(np.diff(gain[DELAY:]))) <= 0.5 / CROSSFADE_SAMPLES + 1e-5
    switch_off, switch_on = 10 * FRAME, 30 * FRAME
    assert np.allclose(gain[DELAY:switch_off], 0.5) and np.allclose(gain[switch_off + CROSSFADE_SAMPLES : switch_on], 1)
    # Back on: the model runs unheard for the warm-up, then fades in.
    heard_again = switch_on + WARMUP_SAMPLES
    assert np.allclose(gain[switch_on:heard_again], 1.0)
    assert np.allclose(gain[heard_again + CROSSFADE_SAMPLES :], 0.5)
    # The model is not fed once faded out, until the switch back.
    off_frames = set(range(10 + CROSSFADE_SAMPLES // FRAME, 30))
    assert off_frames and not off_frames & set(fed) and {10, 30, 59} <= set(fed)
