"""Denoising quality of the live listener path and of the recording, against the clean fixture.

Run:  .venv/bin/python -m bench.quality

The noisy fixture (speech + stationary and babble-like noise, ~3 dB SNR) is published through the engine on
loopback with denoising on and off; what a listener hears (two Opus hops) and what was recorded (no Opus on
the server side of the recording, one hop in) are aligned to the clean speech and scored with PESQ
wide-band (at 16 kHz), STOI and SI-SDR. SI-SDR is not meaningful after Opus (it is phase-sensitive).

A second table shows what the broadcaster's Opus bit rate does to denoising: the noisy fixture through one Opus
hop at each rate (libopus, as a browser would send it), then through the server's default denoiser offline.
"""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

import numpy as np
from pesq import pesq
from pystoi import stoi
from scipy.signal import resample_poly

from audio_engine.client import read_audio_file
from audio_engine.codec import PacketDecoder, encode_frame
from audio_engine.config import EngineConfig
from audio_engine.denoise import DenoiseSettings, RsDfn3Backend, denoise_offline, make_denoise_backend
from audio_engine.framing import FRAME_SAMPLES
from audio_engine.opus import OpusEncoder
from bench.common import fixture, loopback_session, new_engine

SAMPLE_RATE = 48_000


def aligned(signal: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """`signal` shifted (whole samples) to line up with `reference`, cut or padded to its length."""
    spectrum = np.fft.rfft(signal, 2 * len(reference)) * np.conj(np.fft.rfft(reference, 2 * len(reference)))
    correlation = np.fft.irfft(spectrum)
    lag = int(np.argmax(correlation[: len(signal)]))
    shifted = signal[lag : lag + len(reference)]
    return np.pad(shifted, (0, len(reference) - len(shifted)))


def si_sdr(estimate: np.ndarray, reference: np.ndarray) -> float:
    scale = np.dot(estimate, reference) / np.dot(reference, reference)
    target = scale * reference
    return float(10 * np.log10(np.sum(target**2) / np.sum((estimate - target) ** 2)))


def scores(signal: np.ndarray, clean: np.ndarray) -> tuple[float, float, float]:
    estimate = aligned(signal, clean)
    clean16, estimate16 = resample_poly(clean, 1, 3), resample_poly(estimate, 1, 3)
    return (pesq(16_000, clean16, estimate16, "wb"), stoi(clean, estimate, SAMPLE_RATE, extended=False),
            si_sdr(estimate, clean))


async def through_engine(noisy: np.ndarray, denoise: bool, workdir: Path) -> tuple[np.ndarray, np.ndarray]:
    """(what the listener heard, what was recorded)."""
    engine = new_engine(denoise_workers=1)
    heard: list[np.ndarray] = []
    track, publisher, listener, _ended = await loopback_session(
        engine, "quality", noisy, denoise=denoise, recording_path=workdir / f"{denoise}.wav",
        on_samples=lambda samples, _at: heard.append(samples))
    await asyncio.sleep(1.0)
    track.play()
    await track.finished.wait()
    await asyncio.sleep(0.5)
    result = await engine.end("quality")
    await engine.shutdown()
    await publisher.close()
    await listener.close()
    return np.concatenate(heard), read_audio_file(result.path)


def through_opus(samples: np.ndarray, bitrate: int) -> np.ndarray:
    """`samples` encoded 20 ms at a time at `bitrate` and decoded again."""
    encoder, decoder = OpusEncoder(bitrate), PacketDecoder()
    frames = len(samples) // FRAME_SAMPLES
    decoded = [decoder.decode(index * FRAME_SAMPLES,
                              encode_frame(encoder, samples[index * FRAME_SAMPLES : (index + 1) * FRAME_SAMPLES])[0])
               for index in range(frames)]
    encoder.close()
    decoder.close()
    return np.concatenate(decoded)


def bitrate_table(clean: np.ndarray, noisy: np.ndarray) -> None:
    backend_name = EngineConfig().denoise_backend
    print()
    print(f"Broadcaster's Opus bit rate into the denoiser ({backend_name} backend, offline)")
    print("| broadcaster's Opus rate | PESQ-WB of the noisy audio | after denoising | STOI after |")
    print("|---|---|---|---|")
    backend = make_denoise_backend(backend_name, DenoiseSettings())
    for bitrate in (None, 16_000, 32_000, 64_000, 128_000):
        received = noisy if bitrate is None else through_opus(noisy, bitrate)
        denoised = denoise_offline(backend, received)
        label = "no Opus (the file)" if bitrate is None else f"{bitrate // 1000} kbit/s"
        print(f"| {label} | {scores(received, clean)[0]:.2f} | {scores(denoised, clean)[0]:.2f} | "
              f"{scores(denoised, clean)[1]:.3f} |", flush=True)


async def main() -> None:
    clean, noisy = fixture("speech_clean.wav"), fixture("speech_noisy.wav")
    offline_out = denoise_offline(RsDfn3Backend(DenoiseSettings()), noisy)
    rows = [("noisy input", noisy), ("DFN3 streaming in-process, no WebRTC", offline_out)]
    with tempfile.TemporaryDirectory() as tmp:
        for denoise in (False, True):
            heard, recorded = await through_engine(noisy, denoise, Path(tmp))
            label = "denoise on" if denoise else "denoise off"
            rows += [(f"{label}: recording", recorded), (f"{label}: listener (2 Opus hops)", heard)]
    print("| signal | PESQ-WB | STOI | SI-SDR dB |")
    print("|---|---|---|---|")
    for name, signal in rows:
        quality, intelligibility, sdr = scores(signal, clean)
        sdr_text = f"{sdr:.1f}" if "listener" not in name else f"({sdr:.1f})"
        print(f"| {name} | {quality:.2f} | {intelligibility:.3f} | {sdr_text} |")
    bitrate_table(clean, noisy)


if __name__ == "__main__":
    asyncio.run(main())
