"""Finished recordings as files: a compressed copy (Ogg/Opus), waveform peaks, and joining fragments.

Recordings are the recorder's 48 kHz mono 16-bit WAV. Everything here reads them in bounded chunks, so hours of
audio never sit in memory at once.
"""

import os
import tempfile
import wave
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import av
import numpy as np

from audio_engine.framing import SAMPLE_RATE

# 64 kbit/s Opus, tuned for speech and held near that rate (constrained VBR): transparent for voice, at most about
# 0.49 MB per minute whatever the content (the WAV is 5.76 MB per minute).
OGG_OPUS_BIT_RATE = 64_000
# Encoder effort 5 of 10: the same size, and twice as fast as 10 (bench.recording_files), which a person waiting for
# a long recording's first download feels; at this rate speech loses nothing audible.
OPUS_OPTIONS = {"application": "voip", "vbr": "constrained", "compression_level": "5"}
READ_FRAMES = SAMPLE_RATE  # one second per read
FULL_SCALE = 32768.0


class NotARecording(ValueError):
    """The file is not a mono 16-bit WAV at the recorder's rate."""


def _open_recording(path: Path) -> wave.Wave_read:
    try:
        audio = wave.open(str(path), "rb")
    except (wave.Error, EOFError) as error:
        raise NotARecording(f"{path.name}: {error}") from error
    if (audio.getnchannels(), audio.getsampwidth(), audio.getframerate()) != (1, 2, SAMPLE_RATE):
        audio.close()
        raise NotARecording(f"{path.name} is not 48 kHz mono 16-bit WAV")
    return audio


def _chunks(path: Path) -> Iterator[np.ndarray]:
    with _open_recording(path) as audio:
        while data := audio.readframes(READ_FRAMES):
            yield np.frombuffer(data, dtype="<i2")


def _replace_atomically(target: Path, write: Callable[[Path], None]) -> None:
    """Write through a temporary file in the same folder and rename it into place, so a reader (or a second
    writer racing this one) never sees half a file."""
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=".", suffix=target.suffix)
    os.close(handle)
    try:
        write(Path(temporary))
        os.chmod(temporary, 0o600)
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def encode_ogg_opus(wav_path: Path, ogg_path: Path, bit_rate: int = OGG_OPUS_BIT_RATE) -> None:
    """Encode a recording as Ogg/Opus at `bit_rate`, written to `ogg_path` in one rename."""

    def write(temporary: Path) -> None:
        with av.open(str(temporary), "w", format="ogg") as container:
            stream = container.add_stream("libopus", rate=SAMPLE_RATE, layout="mono", options=OPUS_OPTIONS)
            stream.bit_rate = bit_rate
            samples_written = 0
            for chunk in _chunks(wav_path):
                frame = av.AudioFrame.from_ndarray(chunk.reshape(1, -1), format="s16", layout="mono")
                frame.sample_rate = SAMPLE_RATE
                frame.pts = samples_written
                samples_written += len(chunk)
                for packet in stream.encode(frame):
                    container.mux(packet)
            for packet in stream.encode(None):
                container.mux(packet)

    _replace_atomically(ogg_path, write)


def waveform_peaks(wav_path: Path, count: int) -> list[float]:
    """The loudest sample (0..1 of full scale) in each of `count` equal slices of the recording."""
    with _open_recording(wav_path) as audio:
        total = audio.getnframes()
    if total == 0 or count <= 0:
        return []
    count = min(count, total)
    # Slice i covers samples [edges[i], edges[i + 1]).
    edges = np.linspace(0, total, count + 1).astype(np.int64)
    peaks = np.zeros(count)
    offset = 0
    for chunk in _chunks(wav_path):
        magnitudes = np.abs(chunk.astype(np.int32))
        first = int(np.searchsorted(edges, offset, side="right")) - 1
        last = int(np.searchsorted(edges, offset + len(chunk) - 1, side="right")) - 1
        for index in range(first, min(last, count - 1) + 1):
            start = max(edges[index] - offset, 0)
            stop = min(edges[index + 1] - offset, len(chunk))
            if stop > start:
                peaks[index] = max(peaks[index], magnitudes[start:stop].max())
        offset += len(chunk)
    return [round(float(peak) / FULL_SCALE, 3) for peak in peaks]


def join_recordings(wav_paths: Sequence[Path], joined_path: Path) -> float:
    """Write the recordings one after another as one WAV (one timeline); returns its duration in seconds."""
    for path in wav_paths:
        _open_recording(path).close()  # refuse before writing anything
    frames = 0

    def write(temporary: Path) -> None:
        nonlocal frames
        with wave.open(str(temporary), "wb") as joined:
            joined.setnchannels(1)
            joined.setsampwidth(2)
            joined.setframerate(SAMPLE_RATE)
            for path in wav_paths:
                for chunk in _chunks(path):
                    joined.writeframes(chunk.tobytes())
                    frames += len(chunk)

    _replace_atomically(joined_path, write)
    return frames / SAMPLE_RATE
