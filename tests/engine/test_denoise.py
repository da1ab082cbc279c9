"""Denoisers (in-process) and the denoise worker pool (worker processes, crash recovery)."""

from __future__ import annotations

import asyncio
import os
import signal

import numpy as np
import pytest

from audio_engine import DenoiserUnavailable
from audio_engine.codec import OpusPacketEncoder, StreamCodec
from audio_engine.denoise import DeepFilterDenoiser, DenoiseSettings, PassthroughDenoiser
from audio_engine.denoise_pool import DenoiseWorkerPool
from tests.audio_checks import level_db

from .helpers import wait_until

SECONDS = 3


def denoise_in_frames(denoiser, samples: np.ndarray, frame: int = 960) -> np.ndarray:
    whole = len(samples) - len(samples) % frame
    return np.concatenate([denoiser.process(samples[i : i + frame]) for i in range(0, whole, frame)])


def pause_mask(clean: np.ndarray, frame: int = 960) -> np.ndarray:
    frames = len(clean) // frame
    silent = np.max(np.abs(clean[: frames * frame].reshape(frames, frame)), axis=1) < 1e-3
    return silent & np.roll(silent, 3) & np.roll(silent, -3)


def frame_levels(samples: np.ndarray, mask: np.ndarray, frame: int = 960) -> float:
    frames = samples[: len(mask) * frame].reshape(len(mask), frame)
    return level_db(frames[mask])


def test_passthrough_denoiser_returns_audio_unchanged(noisy_speech):
    chunk = noisy_speech[:960]
    assert PassthroughDenoiser().process(chunk) is chunk


def test_deepfilternet_lowers_noise_in_speech_pauses_and_keeps_state_across_frames(noisy_speech, clean_speech):
    denoiser = DeepFilterDenoiser(DenoiseSettings())
    part = noisy_speech[: SECONDS * 48_000]
    out = denoise_in_frames(denoiser, part)
    denoiser.close()
    assert out.dtype == np.float32 and len(out) == len(part) - len(part) % 960
    mask = pause_mask(clean_speech[: len(out)])
    assert mask.sum() > 10
    assert frame_levels(part, mask) - frame_levels(out, mask) >= 15
    # Speech survives.
    assert level_db(out) > level_db(part) - 10


def test_attenuation_limit_is_applied(noisy_speech, clean_speech):
    part = noisy_speech[: SECONDS * 48_000]
    limited = DeepFilterDenoiser(DenoiseSettings(atten_lim_db=6))
    out = denoise_in_frames(limited, part)
    limited.close()
    mask = pause_mask(clean_speech[: len(out)])
    assert frame_levels(part, mask) - frame_levels(out, mask) < 9


def opus_payloads(samples: np.ndarray) -> list[bytes]:
    return [bytes(packet) for packet in OpusPacketEncoder().encode(samples)]


def collector(frames: list):
    return lambda opus, pcm: frames.append((opus, pcm.copy()))


async def test_worker_pool_decodes_denoises_and_encodes_streams_in_order(noisy_speech):
    pool = DenoiseWorkerPool(workers=2, settings=DenoiseSettings())
    await pool.start()
    outputs: dict[int, list] = {0: [], 1: []}
    streams = [pool.open_stream(collector(outputs[index])) for index in range(2)]
    payloads = opus_payloads(noisy_speech[: SECONDS * 48_000])
    await asyncio.sleep(0.5)  # the models load first (~80 ms each), or the first packets would pass through
    for index, payload in enumerate(payloads):
        for stream in streams:
            stream.submit(index * 960, payload)
        await asyncio.sleep(0.005)  # 4x real time: within what two workers sustain
    for stream in streams:
        await stream.close(drain_timeout_s=5)
    await pool.close()

    reference_codec = StreamCodec(DeepFilterDenoiser(DenoiseSettings()), 64_000)
    reference = [
        frame for index, payload in enumerate(payloads) for frame in reference_codec.push(index * 960, payload)
    ]
    assert pool.chunks_denoised == 2 * len(payloads) and pool.chunks_passed_through == 0
    for frames in outputs.values():
        # Same result as in-process, frames in order: identical PCM and identical Opus packets.
        assert len(frames) == len(reference) == len(payloads)
        assert all(np.array_equal(pcm, ref_pcm) for (_, pcm), (_, ref_pcm) in zip(frames, reference, strict=True))
        assert [opus for opus, _ in frames] == [opus for opus, _ in reference]


async def test_a_stream_its_worker_cannot_take_is_passed_through_in_the_loop(noisy_speech):
    pool = DenoiseWorkerPool(workers=1, settings=DenoiseSettings())
    await pool.start()
    frames: list = []
    stream = pool.open_stream(collector(frames))
    stream.failed = True  # as after OP_FAILED or repeated crashes
    payloads = opus_payloads(noisy_speech[:48_000])
    for index, payload in enumerate(payloads):
        stream.submit(index * 960, payload)
    # Synchronously, undenoised, one 20 ms frame per packet.
    assert len(frames) == len(payloads) and pool.chunks_passed_through == len(payloads)
    assert level_db(np.concatenate([pcm for _, pcm in frames]) / 32768) > level_db(noisy_speech[:48_000]) - 3
    await stream.close()
    await pool.close()


async def test_crashed_worker_is_restarted_and_audio_keeps_flowing(noisy_speech):
    pool = DenoiseWorkerPool(workers=1, settings=DenoiseSettings())
    await pool.start()
    received: list = []
    stream = pool.open_stream(collector(received))
    payloads = opus_payloads(noisy_speech[: 6 * 960])
    stream.submit(0, payloads[0])
    await wait_until(lambda: len(received) == 1)

    old_pid = pool.worker_pids()[0]
    os.kill(old_pid, signal.SIGKILL)
    await wait_until(lambda: pool.worker_pids()[0] != old_pid, timeout_s=5)
    for index in range(1, 6):
        stream.submit(index * 960, payloads[index])
        await asyncio.sleep(0.02)
    await wait_until(lambda: len(received) >= 6, timeout_s=20)
    await stream.close()
    await pool.close()


async def test_unloadable_model_is_reported_at_start(tmp_path):
    bogus = tmp_path / "not-a-model.tar.gz"
    bogus.write_bytes(b"nope")
    pool = DenoiseWorkerPool(workers=1, settings=DenoiseSettings(model_path=str(bogus)))
    with pytest.raises(DenoiserUnavailable):
        await pool.start()
