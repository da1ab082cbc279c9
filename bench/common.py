"""Shared pieces of the benchmarks: fixtures, loopback sessions against an in-process engine, statistics."""

from __future__ import annotations

import asyncio
import random
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from aiortc import RTCPeerConnection

from audio_engine import EngineConfig, MediaEngine
from audio_engine.client import PacedAudioTrack, connect_listener, connect_publisher, read_audio_file

REPO_ROOT = Path(__file__).resolve().parent.parent
FIXTURE_DIR = REPO_ROOT / "tests" / "fixtures"


@contextmanager
def throwaway_redis_server(port: int) -> Iterator[str]:
    """A redis-server on loopback `port`, nothing kept on disk, for benchmarks of several server processes;
    yields its URL without a database number (append "/0", "/1", ...)."""
    redis = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    try:
        time.sleep(0.5)  # it listens within milliseconds; the servers retry anyway
        yield f"redis://127.0.0.1:{port}"
    finally:
        redis.terminate()
        redis.wait()


def fixture(name: str) -> np.ndarray:
    return read_audio_file(FIXTURE_DIR / name)


class SilentEvents:
    def publisher_connected(self, session_id: str) -> None:
        pass

    def publisher_gone(self, session_id: str) -> None:
        pass

    def listener_count_changed(self, session_id: str, count: int, listener_keys: tuple[str, ...]) -> None:
        pass

    def denoise_mode_changed(self, session_id: str, denoised: bool) -> None:
        pass


def new_engine(**config) -> MediaEngine:
    return MediaEngine(EngineConfig(**config), SilentEvents())


def make_link_lossy(pc: RTCPeerConnection, loss: float, jitter_s: float, seed: int = 7) -> None:
    """Drop `loss` of the packets the peer sends and delay the others by up to `jitter_s` (reordering them)."""
    transport = pc.getSenders()[0].transport
    send = transport._send_rtp
    rng = random.Random(seed)
    loop = asyncio.get_running_loop()

    async def send_quietly(data: bytes) -> None:
        try:
            await send(data)
        except ConnectionError:
            pass  # the connection closed while the packet was delayed

    async def lossy_send(data: bytes) -> None:
        if rng.random() < loss:
            return
        loop.call_later(rng.uniform(0, jitter_s), lambda: asyncio.ensure_future(send_quietly(data)))

    transport._send_rtp = lossy_send


async def loopback_session(engine: MediaEngine, session_id: str, samples: np.ndarray, *, denoise: bool,
                           recording_path: Path,
                           on_samples: Callable[[np.ndarray, float], None],
                           on_frame_sent=None, listener_prefetch: int | None = 1):
    """A publisher peer (not yet playing) and one listener peer connected through the engine."""
    track = PacedAudioTrack(samples, autoplay=False, on_frame_sent=on_frame_sent)

    async def publish_signal(offer: str) -> str:
        return await engine.publish(session_id, offer, denoise=denoise, recording_path=recording_path)

    async def listen_signal(offer: str) -> str:
        return await engine.listen(session_id, offer)

    publisher = await connect_publisher(track, publish_signal)
    listener, received = await connect_listener(listen_signal, on_samples, receive_prefetch=listener_prefetch)
    return track, publisher, listener, received


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")
