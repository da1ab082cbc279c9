"""Helpers shared by the media engine tests: fixture audio, levels, loopback peers."""

from __future__ import annotations

import asyncio
import wave
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from audio_engine import MediaEngine
from audio_engine.client import PacedAudioTrack, connect_listener, connect_publisher, read_audio_file

FIXTURE_DIR = Path(__file__).resolve().parent.parent / "fixtures"


def read_wav(path: Path) -> np.ndarray:
    """A fixture WAV file as 48 kHz mono float32 samples."""
    return read_audio_file(path)


def wav_duration(path: Path) -> float:
    with wave.open(str(path), "rb") as wav:
        return wav.getnframes() / wav.getframerate()


@dataclass
class RecordedEvents:
    """An EngineEvents that remembers what the engine reported."""

    connected: list[str] = field(default_factory=list)
    gone: list[str] = field(default_factory=list)
    listener_counts: list[tuple[str, int]] = field(default_factory=list)
    listener_keys: list[tuple[str, tuple[str, ...]]] = field(default_factory=list)
    denoise_modes: list[tuple[str, bool]] = field(default_factory=list)

    def publisher_connected(self, session_id: str) -> None:
        self.connected.append(session_id)

    def publisher_gone(self, session_id: str) -> None:
        self.gone.append(session_id)

    def listener_count_changed(self, session_id: str, count: int, listener_keys: tuple[str, ...]) -> None:
        self.listener_counts.append((session_id, count))
        self.listener_keys.append((session_id, listener_keys))

    def denoise_mode_changed(self, session_id: str, denoised: bool) -> None:
        self.denoise_modes.append((session_id, denoised))


@dataclass
class ListeningPeer:
    """A listener peer connection and everything it heard."""

    pc: object
    task: asyncio.Task
    chunks: list[np.ndarray] = field(default_factory=list)

    @property
    def audio(self) -> np.ndarray:
        return np.concatenate(self.chunks) if self.chunks else np.zeros(0, dtype=np.float32)


async def start_publisher(
    engine: MediaEngine,
    session_id: str,
    samples: np.ndarray,
    *,
    denoise: bool,
    recording_path: Path,
    autoplay: bool = False,
    muted: bool = False,
):
    track = PacedAudioTrack(samples, autoplay=autoplay)

    async def signal(offer: str) -> str:
        return await engine.publish(session_id, offer, denoise=denoise, recording_path=recording_path, muted=muted)

    pc = await connect_publisher(track, signal)
    return pc, track


async def start_listener(
    engine: MediaEngine, session_id: str, listener_key: str | None = None, admit=None
) -> ListeningPeer:
    chunks: list[np.ndarray] = []

    async def signal(offer: str) -> str:
        return await engine.listen(session_id, offer, listener_key=listener_key, admit=admit)

    pc, task = await connect_listener(signal, lambda samples, _at: chunks.append(samples))
    return ListeningPeer(pc, task, chunks)


async def wait_until(condition, timeout_s: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError("condition not met in time")
        await asyncio.sleep(0.02)


def tone_of(frequency_hz: float, seconds: float) -> np.ndarray:
    t = np.arange(int(seconds * 48_000)) / 48_000
    return (0.3 * np.sin(2 * np.pi * frequency_hz * t)).astype(np.float32)
