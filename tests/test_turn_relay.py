"""TURN: people behind NATs that block direct media reach the server through a relay. Against a real coturn on
loopback, started with the shared secret, a broadcaster and a listener that may ONLY use relayed candidates
connect with the credentials Quietcast mints for them, and audio flows; credentials minted from another secret,
or expired ones, get nowhere."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from audio_engine import EngineConfig, MediaEngine
from audio_engine.client import PacedAudioTrack, connect_listener, connect_publisher
from streams.ice_servers import ice_servers_for, turn_credentials
from tests.audio_checks import level_db
from tests.engine.helpers import RecordedEvents, wait_until

pytestmark = pytest.mark.slow

SECRET = "quietcast-test-turn-secret"


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _accepts_tcp(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
    except OSError:
        return False
    return True


@pytest.fixture
def coturn(tmp_path: Path) -> Iterator[str]:
    """coturn on loopback with the TURN REST API scheme; yields its turn: URL."""
    port = _free_udp_port()
    server = subprocess.Popen(
        [
            "turnserver", "-n", "--no-cli", "--no-tls", "--no-dtls", "--log-file=stdout",
            f"--pidfile={tmp_path / 'turnserver.pid'}", f"--userdb={tmp_path / 'turndb'}",
            "--listening-ip=127.0.0.1", "--relay-ip=127.0.0.1", f"--listening-port={port}",
            "--min-port=49152", "--max-port=65535", "--allow-loopback-peers",
            "--use-auth-secret", f"--static-auth-secret={SECRET}", "--realm=quietcast.test",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 10
        while not _accepts_tcp(port):  # it opens its TCP and UDP listeners together
            assert server.poll() is None and time.monotonic() < deadline, "turnserver did not start"
            time.sleep(0.05)
        yield f"turn:127.0.0.1:{port}?transport=udp"
    finally:
        server.terminate()
        server.wait(5)


def test_minted_credentials_follow_the_turn_rest_scheme():
    username, password = turn_credentials("secret", "42", ttl_seconds=3600, now=1_000_000)
    assert username == "1003600:42"
    # base64(HMAC-SHA1("secret", "1003600:42")), as coturn computes it
    assert password == "hCmSb3xRV/Ul6FeBz/b4qJhnf1Q="


def test_the_api_hands_out_per_user_credentials_only_with_a_secret(settings):
    settings.ICE_SERVERS = [{"urls": "stun:stun.example.org"}]
    settings.TURN_URLS = ["turn:turn.example.org:3478"]
    settings.TURN_SECRET = ""
    alice, bob = SimpleNamespace(pk=1), SimpleNamespace(pk=2)
    assert ice_servers_for(alice) == [{"urls": "stun:stun.example.org"}]
    settings.TURN_SECRET = SECRET
    settings.TURN_CREDENTIAL_TTL_SECONDS = 600
    servers = ice_servers_for(alice, now=1000)
    assert servers[1]["username"] == "1600:1" and servers[1]["urls"] == ["turn:turn.example.org:3478"]
    assert servers[1]["credential"] != ice_servers_for(bob, now=1000)[1]["credential"]


async def _stream_through(ice_servers: list[dict], tmp_path: Path, wait_s: float = 15) -> np.ndarray:
    """Publish a tone and listen to it, both peers restricted to relayed candidates; what the listener heard."""
    engine = MediaEngine(EngineConfig(denoise_workers=1, receive_prefetch=1), RecordedEvents())
    heard: list[np.ndarray] = []
    pcs = []
    try:
        tone = (0.3 * np.sin(2 * np.pi * 440 * np.arange(48000 * 3) / 48000)).astype(np.float32)
        track = PacedAudioTrack(tone, autoplay=True)

        async def publish(offer: str) -> str:
            return await engine.publish("relayed", offer, denoise=False, recording_path=tmp_path / "relayed.wav")

        pcs.append(await connect_publisher(track, publish, ice_servers=ice_servers, relay_only=True))

        async def listen(offer: str) -> str:
            return await engine.listen("relayed", offer)

        pc, _task = await connect_listener(listen, lambda samples, _at: heard.append(samples),
                                           ice_servers=ice_servers, relay_only=True)
        pcs.append(pc)
        try:
            await wait_until(lambda: sum(map(len, heard)) > 48000, timeout_s=wait_s)
        except TimeoutError:
            pass
    finally:
        for pc in pcs:
            await pc.close()
        await engine.shutdown()
    return np.concatenate(heard) if heard else np.zeros(0, dtype=np.float32)


async def test_a_relay_only_broadcaster_and_listener_are_heard_through_coturn(coturn, settings, tmp_path):
    settings.ICE_SERVERS, settings.TURN_URLS, settings.TURN_SECRET = [], [coturn], SECRET
    ice_servers = ice_servers_for(SimpleNamespace(pk=7))
    heard = await _stream_through(ice_servers, tmp_path)
    assert len(heard) > 48000
    assert level_db(heard[-24000:]) > -25


@pytest.mark.parametrize(("secret", "ttl_seconds"), [("not-the-servers-secret", 3600), (SECRET, -60)])
async def test_foreign_or_expired_credentials_get_no_relay(coturn, settings, tmp_path, secret, ttl_seconds):
    settings.ICE_SERVERS, settings.TURN_URLS, settings.TURN_SECRET = [], [coturn], secret
    settings.TURN_CREDENTIAL_TTL_SECONDS = ttl_seconds
    heard = await _stream_through(ice_servers_for(SimpleNamespace(pk=7)), tmp_path, wait_s=5)
    assert len(heard) == 0
