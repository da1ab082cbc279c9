"""The engine end to end with real aiortc peers on loopback."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from audio_engine import InvalidOffer, PublisherExists, StreamNotFound
from audio_engine.client import PacedAudioTrack, connect_publisher
from tests.audio_checks import alignment_lag, level_db, longest_silence_s, pause_level_db

from .helpers import read_wav, start_listener, start_publisher, wait_until, wav_duration

pytestmark = pytest.mark.slow

FRAME = 960


async def test_listener_hears_denoised_audio_and_recording_matches(
    engine, events, noisy_speech, clean_speech, tmp_path
):
    sessions = {"denoised": True, "raw": False}
    publishers, listeners = {}, {}
    for name, denoise in sessions.items():
        publishers[name] = await start_publisher(
            engine, name, noisy_speech, denoise=denoise, recording_path=tmp_path / f"{name}.wav"
        )
        listeners[name] = await start_listener(engine, name)
    await wait_until(lambda: all(len(listener.chunks) > 10 for listener in listeners.values()))
    for _pc, track in publishers.values():
        track.play()
    await asyncio.wait_for(asyncio.gather(*(track.finished.wait() for _pc, track in publishers.values())), 20)
    await asyncio.sleep(0.3)

    results = {name: await engine.end(name) for name in sessions}
    for listener in listeners.values():
        await asyncio.wait_for(listener.task, 5)  # ending the stream ends the listener's track

    denoised_pause = pause_level_db(listeners["denoised"].audio, clean_speech)
    raw_pause = pause_level_db(listeners["raw"].audio, clean_speech)
    assert raw_pause - denoised_pause >= 10, (raw_pause, denoised_pause)
    # Speech itself still comes through.
    assert level_db(listeners["denoised"].audio) > level_db(noisy_speech) - 12

    for name, (_pc, track) in publishers.items():
        result = results[name]
        assert result.path == tmp_path / f"{name}.wav" and result.path.exists()
        assert not (tmp_path / f"{name}.partial.wav").exists()
        assert abs(result.duration_s - track.seconds_sent) < 0.3, (result.duration_s, track.seconds_sent)
        assert abs(wav_duration(result.path) - result.duration_s) < 1e-3
    assert events.gone == []
    for name in sessions:
        assert (name, 1) in events.listener_counts and (name, 0) in events.listener_counts
    for pc, _track in publishers.values():
        await pc.close()
    for listener in listeners.values():
        await listener.pc.close()


async def test_second_publisher_for_a_session_is_refused(engine, noisy_speech, tmp_path):
    pc, _track = await start_publisher(engine, "s1", noisy_speech, denoise=False, recording_path=tmp_path / "s1.wav")
    with pytest.raises(PublisherExists):
        await start_publisher(engine, "s1", noisy_speech, denoise=False, recording_path=tmp_path / "again.wav")
    with pytest.raises(StreamNotFound):
        await start_listener(engine, "nobody")
    assert engine.is_publishing("s1") and not engine.is_publishing("nobody")
    await engine.end("s1")
    await pc.close()


async def test_publisher_that_disconnects_is_reported_gone(engine, events, noisy_speech, tmp_path):
    pc, _track = await start_publisher(
        engine, "s2", noisy_speech, denoise=False, autoplay=True, recording_path=tmp_path / "s2.wav"
    )
    await wait_until(lambda: engine._broadcasts["s2"].recorder.duration_s > 0.2)
    await pc.close()
    await wait_until(lambda: events.gone == ["s2"], timeout_s=15)
    # A re-publish that cannot be answered leaves the session as it was.
    with pytest.raises(InvalidOffer):
        await engine.publish("s2", "not an offer", denoise=False, recording_path=tmp_path / "s2.wav")
    assert engine.is_publishing("s2") and not engine.has_live_publisher("s2")
    result = await engine.end("s2")
    assert result.duration_s > 0.2
    assert engine.session_ids() == [] and not engine.has_live_publisher("s2")


def tone(frequency_hz: float, seconds: float) -> np.ndarray:
    t = np.arange(int(seconds * 48_000)) / 48_000
    return (0.3 * np.sin(2 * np.pi * frequency_hz * t)).astype(np.float32)


def dominant_hz(samples: np.ndarray) -> float:
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    return float(np.argmax(spectrum) * 48_000 / len(samples))


def tone_frames(samples: np.ndarray, frequency_hz: float) -> np.ndarray:
    """Indices of the 20 ms frames of `samples` that are an audible tone at `frequency_hz`."""
    frames = samples[: len(samples) // FRAME * FRAME].reshape(-1, FRAME)
    return np.flatnonzero([abs(dominant_hz(f) - frequency_hz) < 60 and level_db(f) > -40 for f in frames])


def tone_seconds(samples: np.ndarray, frequency_hz: float) -> float:
    return len(tone_frames(samples, frequency_hz)) * FRAME / 48_000


async def test_gone_publisher_is_replaced_and_listeners_hear_the_new_one(engine, events, tmp_path):
    recording_path = tmp_path / "s3.wav"
    first_pc, _track = await start_publisher(
        engine, "s3", tone(440, 30), denoise=False, autoplay=True, recording_path=recording_path
    )
    listener = await start_listener(engine, "s3")
    await wait_until(lambda: tone_seconds(listener.audio, 440) > 1.0)
    assert engine.has_live_publisher("s3") and engine.session_ids() == ["s3"]

    await first_pc.close()
    await wait_until(lambda: events.gone == ["s3"], timeout_s=15)
    assert engine.is_publishing("s3") and not engine.has_live_publisher("s3")
    heard_before = len(listener.audio)

    # The reloaded page publishes again; its own denoise flag and path are ignored.
    second_pc, _track = await start_publisher(
        engine, "s3", tone(1320, 30), denoise=True, autoplay=True, recording_path=tmp_path / "ignored.wav"
    )
    assert engine.has_live_publisher("s3") and engine.session_ids() == ["s3"]
    await wait_until(lambda: tone_seconds(listener.audio[heard_before:], 1320) > 1.0, timeout_s=15)
    assert listener.pc.connectionState == "connected" and engine.listener_count("s3") == 1
    assert ("s3", 0) not in events.listener_counts

    # Two tabs: while the new publisher is live a third one is refused.
    with pytest.raises(PublisherExists):
        await start_publisher(engine, "s3", tone(880, 1), denoise=False, recording_path=recording_path)

    # The new connection can be reported gone in turn.
    await second_pc.close()
    await wait_until(lambda: events.gone == ["s3", "s3"], timeout_s=15)
    result = await engine.end("s3")
    await asyncio.wait_for(listener.task, 5)
    await listener.pc.close()

    assert result.path == recording_path and not (tmp_path / "ignored.wav").exists()
    recorded = read_wav(recording_path)
    assert abs(len(recorded) / 48_000 - result.duration_s) < 1e-3
    first_part, second_part = tone_seconds(recorded, 440), tone_seconds(recorded, 1320)
    assert first_part > 1.0 and second_part > 1.0, (first_part, second_part)
    # The first part comes first, and the recording is continuous (no silence for the gap).
    assert tone_frames(recorded, 440).max() < tone_frames(recorded, 1320).min()
    assert first_part + second_part > result.duration_s - 0.5, (first_part, second_part, result.duration_s)


async def test_denoised_session_keeps_denoising_after_the_publisher_is_replaced(
    engine, events, noisy_speech, clean_speech, tmp_path
):
    first_pc, first = await start_publisher(
        engine, "s4", noisy_speech, denoise=True, autoplay=True, recording_path=tmp_path / "s4.wav"
    )
    listener = await start_listener(engine, "s4")
    await wait_until(lambda: engine._broadcasts["s4"].recorder.duration_s > 1.5)
    await first_pc.close()
    await wait_until(lambda: events.gone == ["s4"], timeout_s=15)
    heard_before = len(listener.audio)

    second_pc, second = await start_publisher(
        engine, "s4", noisy_speech, denoise=False, recording_path=tmp_path / "ignored.wav"
    )
    await wait_until(lambda: len(listener.audio) - heard_before > 48_000)  # silence before play()
    second.play()
    await asyncio.wait_for(second.finished.wait(), 20)
    await asyncio.sleep(0.3)
    result = await engine.end("s4")
    await asyncio.wait_for(listener.task, 5)
    await second_pc.close()
    await listener.pc.close()

    # Both connections' audio is in the one recording, back to back.
    assert abs(result.duration_s - first.seconds_sent - second.seconds_sent) < 0.6, (
        result.duration_s,
        first.seconds_sent,
        second.seconds_sent,
    )
    # The listener heard the new publisher's speech, still denoised (the first publish's flag).
    after = listener.audio[heard_before:]
    assert level_db(after) > level_db(noisy_speech) - 12
    assert pause_level_db(after, clean_speech) < pause_level_db(noisy_speech, clean_speech) - 10


async def test_disconnecting_one_listener_leaves_the_others_listening(engine, events, noisy_speech, tmp_path):
    pc, _track = await start_publisher(
        engine, "s4", noisy_speech, denoise=False, autoplay=True, recording_path=tmp_path / "s4.wav"
    )
    bob_phone = await start_listener(engine, "s4", listener_key="bob")
    bob_laptop = await start_listener(engine, "s4", listener_key="bob")
    zed = await start_listener(engine, "s4", listener_key="zed")
    await wait_until(lambda: all(len(peer.chunks) > 5 for peer in (bob_phone, bob_laptop, zed)))

    assert await engine.disconnect_listeners("s4", "bob") == 2
    await asyncio.wait_for(asyncio.gather(bob_phone.task, bob_laptop.task), 5)  # their tracks end
    assert engine.listener_count("s4") == 1 and events.listener_counts[-1] == ("s4", 1)
    heard_before = len(zed.chunks)
    await wait_until(lambda: len(zed.chunks) > heard_before + 10)  # zed still hears
    assert await engine.disconnect_listeners("s4", "nobody") == 0
    await engine.end("s4")
    await pc.close()
    for peer in (bob_phone, bob_laptop, zed):
        await peer.pc.close()


async def test_denoise_switched_on_while_live_quietens_the_pauses_and_the_audio_goes_on(
    engine, events, noisy_speech, clean_speech, tmp_path
):
    # Published without denoising: the noisy speech twice, denoising switched on between the two.
    speech_samples = len(noisy_speech)
    pc, track = await start_publisher(
        engine, "s6", np.concatenate([noisy_speech, noisy_speech]), denoise=False, autoplay=True,
        recording_path=tmp_path / "s6.wav",
    )
    listener = await start_listener(engine, "s6")
    await wait_until(lambda: track.seconds_sent >= speech_samples / 48_000, timeout_s=20)
    engine.set_denoise("s6", True)
    switched_at, sent_at_switch = len(listener.audio), track.seconds_sent
    await asyncio.wait_for(track.finished.wait(), 20)
    await asyncio.sleep(0.3)
    result = await engine.end("s6")
    await asyncio.wait_for(listener.task, 5)
    await pc.close()
    await listener.pc.close()

    heard = listener.audio
    before, after = heard[:switched_at], heard[switched_at + 48_000 :]
    # The pauses after the switch are at least 10 dB quieter than before it.
    assert pause_level_db(after, clean_speech) < pause_level_db(before, clean_speech) - 10, (
        pause_level_db(after, clean_speech), pause_level_db(before, clean_speech))
    assert level_db(after) > level_db(noisy_speech) - 12  # speech still comes through
    # Continuous across the switch: nothing missing (a receiver plays zeros for packets that never came), and
    # the second copy of the speech starts exactly one copy after the first (no jump in time).
    around_switch = heard[max(0, switched_at - 48_000) : switched_at + 48_000]
    assert longest_silence_s(around_switch) <= 0.03, longest_silence_s(around_switch)
    first_copy_at = alignment_lag(before, noisy_speech)
    second_copy_at = switched_at + alignment_lag(heard[switched_at:], clean_speech)
    assert abs(second_copy_at - first_copy_at - speech_samples) <= 720, (first_copy_at, second_copy_at)
    # The person's own switch is not reported as the server pausing denoising.
    assert events.denoise_modes == []
    # The recording says how much of it was denoised: what came after the switch, less the model's warm-up.
    after_switch_s = result.duration_s - sent_at_switch
    assert after_switch_s - 0.6 < result.denoised_s < after_switch_s, (result.denoised_s, after_switch_s)


async def test_switching_denoise_for_an_unknown_session_is_refused(engine):
    with pytest.raises(StreamNotFound):
        engine.set_denoise("nobody", True)


async def test_denoise_switched_while_the_first_offer_is_answered_takes_effect(engine, noisy_speech, tmp_path):
    track = PacedAudioTrack(noisy_speech[: 2 * 48_000])

    async def signal(offer: str) -> str:
        answering = asyncio.ensure_future(
            engine.publish("s7", offer, denoise=False, recording_path=tmp_path / "s7.wav")
        )
        await wait_until(lambda: engine.is_publishing("s7"))
        engine.set_denoise("s7", True)
        return await answering

    pc = await connect_publisher(track, signal)
    await asyncio.wait_for(track.finished.wait(), 20)
    await asyncio.sleep(0.3)
    result = await engine.end("s7")
    await pc.close()
    assert result.duration_s > 1.5 and result.denoised_s > result.duration_s - 0.3, result
