"""Mute while live, with real aiortc peers: the engine sends silence in place of the publisher's audio on the same
timeline, and the recording keeps the silence, so its length and the audio after the mute stay where they were."""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest

from audio_engine import StreamNotFound
from tests.audio_checks import FRAME, alignment_lag, level_db

from .helpers import read_wav, start_listener, start_publisher, wait_until

pytestmark = pytest.mark.slow

MUTED_FOR_S = 1.5
QUIET_DB = -70  # digital silence decoded (the noisy input never goes under about -30 dB)


def offset_of(heard: np.ndarray, at: int, reference: np.ndarray, guess: int, search: int = 4800) -> int:
    """Where 0.25 s of `heard` from sample `at` lies in `reference`, to the sample: the offset `d` (reference
    position = heard position - d) that best matches the waveforms, searched around `guess`."""
    segment = heard[at : at + 12_000]
    start = at - guess - search
    window = reference[max(0, start) : at - guess + search + len(segment)]
    correlation = np.correlate(window, segment, mode="valid")
    return at - (int(np.argmax(correlation)) + max(0, start))


def quiet_stretches(samples: np.ndarray) -> list[tuple[int, int]]:
    """(start, end) sample positions of the runs of 20 ms frames quieter than QUIET_DB, longer than 0.1 s (the
    codec's start-up is a frame or two of silence)."""
    frames = samples[: len(samples) // FRAME * FRAME].reshape(-1, FRAME)
    quiet = np.array([level_db(frame) < QUIET_DB for frame in frames])
    edges = np.flatnonzero(np.diff(np.concatenate([[0], quiet.astype(np.int8), [0]])))
    runs = [(start * FRAME, end * FRAME) for start, end in zip(edges[::2], edges[1::2], strict=True)]
    return [(start, end) for start, end in runs if end - start > 48_000 // 10]


async def test_a_muted_stream_is_silence_on_the_same_timeline_and_the_recording_keeps_its_length(
    engine, events, noisy_speech, tmp_path
):
    recording_path = tmp_path / "muted.wav"
    pc, track = await start_publisher(
        engine, "m1", noisy_speech, denoise=False, autoplay=True, recording_path=recording_path
    )
    listener = await start_listener(engine, "m1")
    await wait_until(lambda: len(listener.chunks) > 50)

    engine.set_muted("m1", True)
    assert engine.is_muted("m1")
    muted_at = time.monotonic()
    await asyncio.sleep(MUTED_FOR_S)
    engine.set_muted("m1", False)
    muted_s = time.monotonic() - muted_at
    assert not engine.is_muted("m1")

    await asyncio.wait_for(track.finished.wait(), 20)
    await asyncio.sleep(0.3)
    result = await engine.end("m1")
    await asyncio.wait_for(listener.task, 5)
    await pc.close()
    await listener.pc.close()

    # The stream never stopped: the recording is as long as what was sent, the muted part included.
    assert abs(result.duration_s - track.seconds_sent) < 0.3, (result.duration_s, track.seconds_sent)
    recorded = read_wav(recording_path)
    assert len(recorded) == pytest.approx(result.duration_s * 48_000, abs=FRAME)

    # The mute is one stretch of silence, in the recording and for the listener alike: as long as the frames
    # that went out while it lasted (a busy machine processes frames in bursts, so not exactly its wall time).
    ((start, end),) = quiet_stretches(recorded)
    silence_s = (end - start) / 48_000
    assert 0.5 < silence_s <= muted_s + 0.1, (silence_s, muted_s)
    ((heard_start, heard_end),) = quiet_stretches(listener.audio)
    assert abs((heard_end - heard_start) / 48_000 - silence_s) <= 0.06

    # Same timeline: the speech after the mute lies exactly where it would have without it, in both (to the
    # millisecond, by the waveforms; the mute neither drops nor inserts audio).
    for heard, (quiet_start, quiet_end) in ((recorded, (start, end)), (listener.audio, (heard_start, heard_end))):
        assert level_db(heard[quiet_start - 24_000 : quiet_start]) > -40
        assert level_db(heard[quiet_end : quiet_end + 24_000]) > -40
        guess = alignment_lag(heard, noisy_speech)
        before = offset_of(heard, quiet_start - 12_000 - FRAME, noisy_speech, guess)
        after = offset_of(heard, quiet_end + FRAME, noisy_speech, guess)
        assert abs(after - before) <= 48, (before, after)


async def test_a_stream_published_muted_is_silent_from_its_first_frame(engine, noisy_speech, tmp_path):
    pc, track = await start_publisher(
        engine, "m2", noisy_speech[: 48_000 * 2], denoise=False, autoplay=True, muted=True,
        recording_path=tmp_path / "m2.wav",
    )
    await asyncio.wait_for(track.finished.wait(), 10)
    await asyncio.sleep(0.3)
    result = await engine.end("m2")
    await pc.close()
    recorded = read_wav(result.path)
    assert result.duration_s > 1.5 and np.all(recorded == 0)


async def test_muting_an_unknown_session_says_so(engine):
    with pytest.raises(StreamNotFound):
        engine.set_muted("nobody", True)
    assert not engine.is_muted("nobody")
