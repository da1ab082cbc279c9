"""Incremental WAV recording (48 kHz mono 16-bit) that survives a killed process.

File convention: while a stream is recorded the file is `<name>.partial.wav` next to the requested
`<name>.wav`; `finalize()` writes the final RIFF sizes and renames it to `<name>.wav`. A `*.partial.wav`
left behind means the process died while recording: `complete_orphan_recording` (or `repair_partial_wav`
then a rename) turns it into a valid recording. The header written at the start carries 0xFFFFFFFF sizes,
the usual "length unknown" marker, so tools can read a partial file while it grows.

Samples are flushed to the OS at least every FLUSH_INTERVAL_S of audio, so a SIGKILL loses at most that much
(the OS keeps flushed data even when the process dies; only a machine crash would lose more).
The recording is never held in memory: at most one flush interval is buffered.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from audio_engine.framing import SAMPLE_RATE, float_to_int16

FLUSH_INTERVAL_S = 0.5
WAV_HEADER_BYTES = 44
BYTES_PER_SAMPLE = 2
PARTIAL_SUFFIX = ".partial.wav"
_UNKNOWN_SIZE = 0xFFFFFFFF
# The WAV header stores sizes in 32 bits: at most this much audio (~12.4 h at 48 kHz 16-bit mono) fits in a file.
MAX_DATA_BYTES = (0xFFFFFFFF - (WAV_HEADER_BYTES - 8)) // BYTES_PER_SAMPLE * BYTES_PER_SAMPLE
MAX_SAMPLES = MAX_DATA_BYTES // BYTES_PER_SAMPLE


@dataclass(frozen=True)
class RecordingResult:
    path: Path
    duration_s: float
    # Of duration_s, how much was denoised (what the worker actually did, frame by frame); 0 when unknown.
    denoised_s: float = 0.0


def partial_path_for(path: Path) -> Path:
    """`<dir>/<name>.wav` -> `<dir>/<name>.partial.wav`."""
    return path.with_name(path.name.removesuffix(".wav") + PARTIAL_SUFFIX)


def final_path_for(partial_path: Path) -> Path:
    """`<dir>/<name>.partial.wav` -> `<dir>/<name>.wav`."""
    return partial_path.with_name(partial_path.name.removesuffix(PARTIAL_SUFFIX) + ".wav")


def _wav_header(data_bytes: int) -> bytes:
    riff_size = _UNKNOWN_SIZE if data_bytes == _UNKNOWN_SIZE else WAV_HEADER_BYTES - 8 + data_bytes
    return struct.pack(
        "<4sI4s4sIHHIIHH4sI",
        b"RIFF", riff_size, b"WAVE",
        b"fmt ", 16, 1, 1, SAMPLE_RATE, SAMPLE_RATE * BYTES_PER_SAMPLE, BYTES_PER_SAMPLE, 16,
        b"data", data_bytes,
    )


class WavRecorder:
    """Writes one stream's audio to `<name>.partial.wav` as it arrives; `finalize()` makes `<name>.wav`."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.partial_path = partial_path_for(self.path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self.partial_path, "wb")  # closed in finalize()
        self._file.write(_wav_header(_UNKNOWN_SIZE))
        self._file.flush()
        self._samples_written = 0
        self._samples_at_last_flush = 0
        self._flush_every = int(FLUSH_INTERVAL_S * SAMPLE_RATE)

    @property
    def duration_s(self) -> float:
        return self._samples_written / SAMPLE_RATE

    def write(self, samples: np.ndarray) -> None:
        """Append float32 (converted) or int16 mono 48 kHz samples."""
        pcm = samples if samples.dtype == np.int16 else float_to_int16(samples)
        # Past the format's limit the rest is dropped (streams end long before: MAX_STREAM_SECONDS).
        pcm = pcm[: max(0, MAX_SAMPLES - self._samples_written)]
        self._file.write(pcm.astype("<i2", copy=False).tobytes())
        self._samples_written += len(pcm)
        if self._samples_written - self._samples_at_last_flush >= self._flush_every:
            self._file.flush()
            self._samples_at_last_flush = self._samples_written

    def finalize(self) -> RecordingResult:
        """Write the final sizes, close, rename to `<name>.wav`. Blocking file I/O: call it off the loop.
        Finalizing again returns the same result."""
        if self._file.closed:
            return RecordingResult(self.path, self.duration_s)
        data_bytes = self._samples_written * BYTES_PER_SAMPLE
        self._file.seek(0)
        self._file.write(_wav_header(data_bytes))
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        os.replace(self.partial_path, self.path)
        return RecordingResult(self.path, self.duration_s)

    def abandon(self) -> None:
        """Close without finalizing (the partial file stays for orphan repair)."""
        self._file.close()


def repair_partial_wav(path: Path | str) -> float:
    """Fix the RIFF and data sizes of a WAV file left by a killed recorder; returns its duration in seconds.

    The duration counts the whole samples present on disk. The file is repaired in place (not renamed).
    """
    path = Path(path)
    with open(path, "r+b") as wav:
        size = wav.seek(0, os.SEEK_END)
        if size < WAV_HEADER_BYTES:
            wav.seek(0)
            wav.truncate()
            wav.write(_wav_header(0))
            return 0.0
        data_bytes = min((size - WAV_HEADER_BYTES) // BYTES_PER_SAMPLE * BYTES_PER_SAMPLE, MAX_DATA_BYTES)
        wav.truncate(WAV_HEADER_BYTES + data_bytes)
        wav.seek(0)
        wav.write(_wav_header(data_bytes))
    return data_bytes / BYTES_PER_SAMPLE / SAMPLE_RATE


def complete_orphan_recording(partial_path: Path | str) -> RecordingResult:
    """Repair a `<name>.partial.wav` left by a killed process and rename it to `<name>.wav`."""
    partial_path = Path(partial_path)
    duration = repair_partial_wav(partial_path)
    final = final_path_for(partial_path)
    os.replace(partial_path, final)
    return RecordingResult(final, duration)
