"""What a recording's files cost: the waveform computed when it is saved, and the Ogg/Opus copy encoded the first
time it is downloaded, per minute of audio, beside the reference of reading the WAV once (measured in the same
run), and the Ogg copy's size against the WAV's.

    .venv/bin/python -m bench.recording_files [--minutes 10] [--rounds 3]

The audio is the committed speech fixture repeated to length (speech in noise, what recordings hold).
"""

import argparse
import statistics
import tempfile
import time
import wave
from collections.abc import Callable
from pathlib import Path

import numpy as np

from audio_engine.framing import SAMPLE_RATE
from audio_engine.recording_files import encode_ogg_opus, waveform_peaks
from bench.common import FIXTURE_DIR


def long_recording(path: Path, minutes: float) -> None:
    with wave.open(str(FIXTURE_DIR / "speech_noisy.wav")) as fixture:
        speech = np.frombuffer(fixture.readframes(fixture.getnframes()), dtype="<i2")
    total = int(minutes * 60 * SAMPLE_RATE)
    with wave.open(str(path), "wb") as audio:
        audio.setnchannels(1)
        audio.setsampwidth(2)
        audio.setframerate(SAMPLE_RATE)
        audio.writeframes(np.resize(speech, total).tobytes())


def read_once(path: Path) -> None:
    with path.open("rb") as audio:
        while audio.read(1 << 20):
            pass


def median_seconds(work: Callable[[], object], rounds: int) -> float:
    timings = []
    for _ in range(rounds):
        started = time.perf_counter()
        work()
        timings.append(time.perf_counter() - started)
    return statistics.median(timings)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        wav = Path(folder) / "recording.wav"
        ogg = Path(folder) / "recording.ogg"
        long_recording(wav, args.minutes)
        reference = median_seconds(lambda: read_once(wav), args.rounds)
        peaks = median_seconds(lambda: waveform_peaks(wav, 200), args.rounds)
        encode = median_seconds(lambda: encode_ogg_opus(wav, ogg), args.rounds)
        wav_mb, ogg_mb = wav.stat().st_size / 1e6, ogg.stat().st_size / 1e6

    per_minute = 1000 / args.minutes
    print(f"{args.minutes:g} minutes of speech, median of {args.rounds} rounds\n")
    print("| work | ms per minute of audio | ratio to the reference | MB per minute |")
    print("|---|---|---|---|")
    print(f"| reading the WAV once (reference) | {reference * per_minute:.1f} | 1.0 | {wav_mb / args.minutes:.2f} |")
    print(f"| waveform peaks (on save) | {peaks * per_minute:.1f} | {peaks / reference:.1f} | |")
    print(
        f"| Ogg/Opus copy (first download) | {encode * per_minute:.1f} | {encode / reference:.0f} "
        f"| {ogg_mb / args.minutes:.2f} |"
    )


if __name__ == "__main__":
    main()
