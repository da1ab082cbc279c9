"""What the listeners' Opus encoder costs and keeps at each complexity: the choice of ENCODER_COMPLEXITY.

Run:  .venv/bin/python -m bench.opus_complexity [--repeats 5]

Every stream is encoded for its listeners on a denoise worker, 50 frames a second at 64 kbit/s mono. For each
complexity: CPU per 20 ms frame (median of the repeats, complexities interleaved within each repeat so that the
machine's speed changes hit all alike, with the ratio to libopus's default, 10, measured in the same run), and
what one encode and decode keeps, scored against the signal that went in (PESQ-WB, STOI):
- clean speech (the committed fixture's clean original);
- the noisy fixture (what listeners of a stream without denoising get);
- the noisy fixture denoised by the batched DeepFilterNet3 (what listeners of a denoised stream get), scored
  against the clean original, so that the codec's share shows beside the denoiser's.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from audio_engine.denoise import DenoiseSettings
from audio_engine.dfn3 import BatchedDfn3Backend
from audio_engine.framing import FRAME_SAMPLES
from audio_engine.opus import ENCODER_COMPLEXITY, OpusDecoder, OpusEncoder
from bench.common import fixture
from bench.quality import scores

COMPLEXITIES = (10, 8, 7, 6, 5, 4, 3, 0)
BITRATE = 64_000


def frames_of(signal: np.ndarray) -> list[np.ndarray]:
    return [signal[start : start + FRAME_SAMPLES] for start in range(0, len(signal) - FRAME_SAMPLES + 1, FRAME_SAMPLES)]


def encode_ms_per_frame(frames: list[np.ndarray], complexity: int) -> float:
    encoder = OpusEncoder(BITRATE, complexity)
    for frame in frames[:25]:
        encoder.encode(frame)
    started = time.process_time()
    for frame in frames:
        encoder.encode(frame)
    return (time.process_time() - started) / len(frames) * 1000


def through_opus(signal: np.ndarray, complexity: int) -> np.ndarray:
    encoder, decoder = OpusEncoder(BITRATE, complexity), OpusDecoder()
    return np.concatenate([decoder.decode(encoder.encode(frame)) for frame in frames_of(signal)])


def denoised(noisy: np.ndarray) -> np.ndarray:
    backend = BatchedDfn3Backend(DenoiseSettings())
    backend.open(0)
    return np.concatenate([backend.process({0: frame})[0] for frame in frames_of(noisy)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    clean, noisy = fixture("speech_clean.wav"), fixture("speech_noisy.wav")
    clean_denoised = denoised(noisy)
    frames = frames_of(noisy)
    costs: dict[int, list[float]] = {complexity: [] for complexity in COMPLEXITIES}
    for _ in range(args.repeats):
        for complexity in COMPLEXITIES:
            costs[complexity].append(encode_ms_per_frame(frames, complexity))
    default = statistics.median(costs[10])
    print(f"{len(frames)} frames of 20 ms at {BITRATE // 1000} kbit/s mono, medians of {args.repeats} "
          f"(complexities interleaved); in use: {ENCODER_COMPLEXITY}")
    print()
    print("| complexity | encode ms per frame | ratio to 10 | PESQ-WB / STOI: clean speech | noisy input "
          "(against itself) | denoised (against the clean speech) |")
    print("|---|---|---|---|---|---|")
    for complexity in COMPLEXITIES:
        cost = statistics.median(costs[complexity])
        kept = [scores(through_opus(signal, complexity), reference)[:2]
                for signal, reference in ((clean, clean), (noisy, noisy), (clean_denoised, clean))]
        cells = " | ".join(f"{pesq:.2f} / {stoi:.3f}" for pesq, stoi in kept)
        marker = " (in use)" if complexity == ENCODER_COMPLEXITY else ""
        print(f"| {complexity}{marker} | {cost:.3f} | {cost / default:.2f} | {cells} |")
    pesq, stoi, _ = scores(clean_denoised, clean)
    print()
    print(f"Denoised without Opus (against the clean speech): PESQ-WB {pesq:.2f}, STOI {stoi:.3f}.")


if __name__ == "__main__":
    main()
