"""Mouth-to-ear latency through the engine: publisher track -> server (denoise) -> listener, on loopback.

Run:  .venv/bin/python -m bench.latency

A speech syllable (from the clean fixture) is played every 0.75 s; latency is the time from when its first
sample is handed to the publisher's RTCRtpSender (frame hand-over time plus its position in the frame) to
when that sample reaches the listener's application (found by cross-correlation; frame arrival time plus its
position in the frame), so it includes the codec's and the denoiser's algorithmic delay. The
listener peer uses the engine's jitter buffer with prefetch 1 (a browser's adaptive buffer is comparable on a
clean link). Everything runs in one process on loopback.

The lossy runs drop 2 % of the publisher's packets and delay each by 0-30 ms (reordering), then compare the
server's receive_prefetch settings (stock = aiortc's own buffer, prefetch 4).
"""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

import numpy as np

from bench.common import fixture, loopback_session, make_link_lossy, new_engine, percentile

SAMPLE_RATE = 48_000
REPEATS = 12
PERIOD_S = 0.75
SYLLABLE_S = 0.3
SEARCH_S = 0.5
MIN_MATCH = 0.5  # normalized cross-correlation for a syllable to count as heard


def syllable_program() -> tuple[np.ndarray, np.ndarray, list[int]]:
    """The test signal, the syllable, and the sample index where each copy starts."""
    clean = fixture("speech_clean.wav")
    start = int(np.argmax(np.abs(clean) > 0.02))
    syllable = clean[start : start + int(SYLLABLE_S * SAMPLE_RATE)]
    period = int(PERIOD_S * SAMPLE_RATE)
    program = np.zeros(REPEATS * period + SAMPLE_RATE, dtype=np.float32)
    starts = []
    for index in range(REPEATS):
        position = SAMPLE_RATE // 2 + index * period
        program[position : position + len(syllable)] = syllable
        starts.append(position)
    return program, syllable, starts


class ReceivedAudio:
    """Everything the listener heard, with when each sample arrived (its frame's arrival + its offset)."""

    def __init__(self) -> None:
        self.chunks: list[np.ndarray] = []
        self.arrivals: list[float] = []

    def feed(self, samples: np.ndarray, arrived_at: float) -> None:
        self.chunks.append(samples)
        self.arrivals.append(arrived_at)

    def timeline(self) -> tuple[np.ndarray, np.ndarray]:
        audio = np.concatenate(self.chunks)
        times = np.concatenate([at + np.arange(len(chunk)) / SAMPLE_RATE
                                for chunk, at in zip(self.chunks, self.arrivals, strict=True)])
        return audio, times


def syllable_latency(audio: np.ndarray, times: np.ndarray, syllable: np.ndarray, emitted: float) -> float | None:
    """Where the syllable emitted at `emitted` shows up (best cross-correlation; this includes the denoiser's
    algorithmic delay, unlike a threshold onset, which DeepFilterNet's lookahead smears earlier)."""
    first = int(np.searchsorted(times, emitted))
    window = audio[first : first + int(SEARCH_S * SAMPLE_RATE) + len(syllable)]
    if len(window) < len(syllable):
        return None
    correlation = np.correlate(window, syllable, mode="valid")
    energy = np.sqrt(np.convolve(window**2, np.ones(len(syllable)), mode="valid") * np.sum(syllable**2)) + 1e-9
    best = int(np.argmax(correlation / energy))
    if correlation[best] / energy[best] < MIN_MATCH:
        return None
    return times[first + best] - emitted


async def measure(*, denoise: bool, receive_prefetch: int | None, lossy: bool) -> tuple[list[float], int]:
    program, syllable, starts = syllable_program()
    engine = new_engine(denoise_workers=1, receive_prefetch=receive_prefetch)
    await engine.start()
    sent_at: dict[int, float] = {}
    received = ReceivedAudio()
    with tempfile.TemporaryDirectory() as tmp:
        track, publisher, listener, _ended = await loopback_session(
            engine, "latency", program, denoise=denoise, recording_path=Path(tmp) / "latency.wav",
            on_samples=received.feed, on_frame_sent=lambda pts, at: sent_at.__setitem__(pts, at))
        if lossy:
            make_link_lossy(publisher, loss=0.02, jitter_s=0.03)
        await asyncio.sleep(1.0)
        # The frame being prepared when play() is called is the program's first.
        program_offset = len(sent_at) * 960
        track.play()
        await track.finished.wait()
        await asyncio.sleep(0.5)
        await engine.shutdown()
        await publisher.close()
        await listener.close()

    audio, times = received.timeline()
    latencies = []
    for start in starts:
        emitted = sent_at[program_offset + start // 960 * 960] + (start % 960) / SAMPLE_RATE
        latency = syllable_latency(audio, times, syllable, emitted)
        if latency is not None:
            latencies.append(latency * 1000)
    return latencies, len(starts)


async def main() -> None:
    runs = [
        ("denoise off, prefetch 1, clean link", dict(denoise=False, receive_prefetch=1, lossy=False)),
        ("denoise on, prefetch 1, clean link", dict(denoise=True, receive_prefetch=1, lossy=False)),
        ("denoise on, stock aiortc buffer, clean link", dict(denoise=True, receive_prefetch=None, lossy=False)),
        ("denoise on, stock aiortc buffer, 2 % loss + 30 ms jitter",
         dict(denoise=True, receive_prefetch=None, lossy=True)),
    ] + [
        (f"denoise on, prefetch {prefetch}, 2 % loss + 30 ms jitter",
         dict(denoise=True, receive_prefetch=prefetch, lossy=True))
        for prefetch in (0, 1, 2)
    ]
    print("| run | p50 ms | p95 ms | syllables heard |")
    print("|---|---|---|---|")
    for name, options in runs:
        latencies, total = await measure(**options)
        print(f"| {name} | {percentile(latencies, 50):.0f} | {percentile(latencies, 95):.0f} | "
              f"{len(latencies)}/{total} |", flush=True)


if __name__ == "__main__":
    asyncio.run(main())
