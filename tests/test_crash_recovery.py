"""A server killed with SIGKILL mid-stream: on the next start the stream is ended and its recording saved."""

import asyncio
from collections.abc import Callable
from pathlib import Path

import aiohttp
import pytest

from audio_engine.client import PacedAudioTrack, connect_publisher, read_audio_file
from quietcast_cli.api import QuietcastApi
from tests.live_server import PASSWORD, manage, prepare_database, running_daphne, seed_code, server_environment

pytestmark = pytest.mark.slow

FIXTURES = Path(__file__).resolve().parent / "fixtures"
SEED = seed_code(("alice", "bob"), friends=(("alice", "bob"),))
SECONDS_BEFORE_THE_CRASH = 3.0


async def stream_until_stopped(server, *, denoise: bool, seconds: float, stop: Callable[[], None]) -> float:
    """alice goes live and streams until `stop` is done to the server; returns the seconds of audio she sent."""
    async with aiohttp.ClientSession() as http:
        alice = QuietcastApi(server.url, http)
        await alice.login("alice", PASSWORD)
        await alice.start_stream(denoise=denoise)
        track = PacedAudioTrack(read_audio_file(FIXTURES / "speech_noisy.wav"))
        publisher = await connect_publisher(track, alice.send_publisher_offer, [])
        while track.seconds_sent < seconds:
            await asyncio.sleep(0.05)
        stop()
        await asyncio.to_thread(server.process.wait, 15)
        sent = track.seconds_sent
        await publisher.close()
    return sent


async def recordings_seen_by(server_url: str, username: str) -> list[dict]:
    async with aiohttp.ClientSession() as http:
        api = QuietcastApi(server_url, http)
        await api.login(username, PASSWORD)
        return (await api._call("GET", "/api/users/alice/recordings/"))["recordings"]


async def test_a_killed_servers_stream_is_saved_on_the_next_start(tmp_path):
    # The recovery and the restarted server are the same media host as the killed one: a process recovers only
    # the streams held under its own id (the default id names the port, which differs between runs here).
    env = server_environment(tmp_path, DENOISE_WORKERS="1", MEDIA_HOST_ID="crash-test-host")
    prepare_database(env, SEED)
    with running_daphne(env, tmp_path / "first-run.log") as server:
        seconds_sent = await stream_until_stopped(
            server, denoise=True, seconds=SECONDS_BEFORE_THE_CRASH, stop=server.process.kill
        )

    assert list((tmp_path / "recordings").glob("*/*.partial.wav")), "a partial recording was left behind"
    report = manage(env, "recover_streams")
    assert "Ended 1 stream(s)" in report and "saved 1 recording(s)" in report
    assert not list((tmp_path / "recordings").glob("*/*.partial.wav"))

    with running_daphne(env, tmp_path / "second-run.log") as restarted:
        recordings = await recordings_seen_by(restarted.url, "bob")
        status = await recordings_seen_by(restarted.url, "alice")
    assert len(recordings) == 1 and recordings == status
    # At most the last second is lost (flushes are more frequent; the publisher's first packets need a moment).
    assert seconds_sent - 1.0 <= recordings[0]["duration"] <= seconds_sent + 0.3, (recordings[0], seconds_sent)
    assert recordings[0]["denoise_enabled"] is True


async def test_stopping_the_server_ends_live_streams_and_saves_them(tmp_path):
    env = server_environment(tmp_path, DENOISE_WORKERS="1", MEDIA_HOST_ID="crash-test-host")
    prepare_database(env, SEED)
    with running_daphne(env, tmp_path / "first-run.log") as server:
        # SIGTERM, as a service manager or Ctrl-C stops it.
        await stream_until_stopped(server, denoise=False, seconds=2.0, stop=server.process.terminate)

    assert not list((tmp_path / "recordings").glob("*/*.partial.wav"))
    assert manage(env, "recover_streams") == ""  # nothing was left for the next start to clean up
    with running_daphne(env, tmp_path / "second-run.log") as restarted:
        recordings = await recordings_seen_by(restarted.url, "bob")
    assert len(recordings) == 1 and recordings[0]["duration"] >= 1.5 and recordings[0]["denoise_enabled"] is False
