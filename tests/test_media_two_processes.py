"""Two Daphne processes sharing a real redis-server and PostgreSQL, real aiortc peers and the real denoiser: every
media operation reaches the process that holds the stream, wherever it arrives.

Process A takes one denoised stream (MAX_DENOISED_STREAMS=1), so a second denoised start on A spills to B."""

import asyncio
import json
import os
import signal
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import numpy as np
import pytest

from audio_engine.client import PacedAudioTrack, connect_listener, connect_publisher, read_audio_file
from quietcast_cli.api import ApiError, QuietcastApi
from tests.audio_checks import level_db, pause_level_db
from tests.live_server import (
    PASSWORD,
    fresh_postgres_database,
    prepare_database,
    redis_test_database,
    running_daphne,
    seed_code,
    server_environment,
)

pytestmark = [pytest.mark.redis, pytest.mark.slow]

FIXTURES = Path(__file__).resolve().parent / "fixtures"
SEED = seed_code(("alice", "bob", "carol"), friends=(("alice", "bob"), ("carol", "bob")))
FORWARD_TIMEOUT_S = 2.0


@pytest.fixture(scope="module")
def two_servers(tmp_path_factory):
    redis_url = redis_test_database(5)  # no heartbeat of another test's servers is read as a live host
    workdir = tmp_path_factory.mktemp("two-media-hosts")
    env = server_environment(
        workdir,
        REDIS_URL=redis_url,
        DATABASE_URL=fresh_postgres_database("media_hosts"),
        DENOISE_WORKERS="1",
        MEDIA_FORWARD_TIMEOUT_SECONDS=str(FORWARD_TIMEOUT_S),
        MEDIA_HOST_DEAD_SECONDS="30",  # a paused process stays "alive" for the whole test
    )
    prepare_database(env, SEED)
    with (
        running_daphne({**env, "MAX_DENOISED_STREAMS": "1"}, workdir / "a.log") as server_a,
        running_daphne(env, workdir / "b.log") as server_b,
    ):
        yield server_a, server_b


@asynccontextmanager
async def people(*logins: tuple[str, str]) -> AsyncIterator[list[QuietcastApi]]:
    async with aiohttp.ClientSession() as http:
        apis = []
        for server, username in logins:
            api = QuietcastApi(server, http)
            await api.login(username, PASSWORD)
            apis.append(api)
        yield apis


async def watch_stream(server: str, username: str, owner: str, into: list[dict]) -> None:
    """`username`'s stream page socket for `owner` on `server`: its messages go into `into`."""
    async with aiohttp.ClientSession() as http:
        response = await http.post(f"{server}/api/auth/token/", json={"username": username, "password": PASSWORD})
        token = (await response.json())["token"]
        headers = {"Authorization": f"Token {token}"}
        async with http.ws_connect(f"{server}/ws/stream/{owner}/", headers=headers) as socket:
            async for message in socket:
                into.append(json.loads(message.data))


async def until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"not within {timeout} s: {what}"
        await asyncio.sleep(0.05)


async def metric(server: str, name: str) -> float:
    """A metric's value as the server's /metrics shows it (the test runs on its loopback address)."""
    async with aiohttp.ClientSession() as http, http.get(f"{server}/metrics") as response:
        text = await response.text()
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


async def test_a_listener_on_the_other_process_hears_the_stream_denoised_and_stop_there_ends_it(two_servers):
    server_a, server_b = (server.url for server in two_servers)
    async with people((server_a, "alice"), (server_b, "bob"), (server_b, "alice")) as (alice, bob, alice_on_b):
        bob_watching: list[dict] = []
        alice_watching: list[dict] = []
        watchers = [
            asyncio.ensure_future(watch_stream(server_b, "bob", "alice", bob_watching)),
            asyncio.ensure_future(watch_stream(server_a, "alice", "alice", alice_watching)),
        ]
        await until(lambda: bool(bob_watching and alice_watching), 5, "both stream pages open")
        await alice.start_stream(True)
        assert await metric(server_a, "quietcast_placements_total") == 1  # placed where it was started
        track = PacedAudioTrack(read_audio_file(FIXTURES / "speech_noisy.wav"), autoplay=False)
        publisher = await connect_publisher(track, alice.send_publisher_offer, [])
        heard: list[np.ndarray] = []
        listener, listening = await connect_listener(
            lambda offer: bob.send_listener_offer("alice", offer), lambda samples, _at: heard.append(samples), []
        )
        assert await metric(server_b, "quietcast_media_forwarded_total") >= 1  # bob's offer went to A
        # The listener count reaches the owner's page on A and the friend's on B.
        await until(lambda: any(event.get("count") == 1 for event in alice_watching), 5, "alice sees 1 listener")
        await until(lambda: any(event.get("count") == 1 for event in bob_watching), 5, "bob sees 1 listener")

        track.play()
        await asyncio.wait_for(track.finished.wait(), 30)
        await asyncio.sleep(0.5)  # the last packets arrive
        await alice_on_b.stop_stream()  # sent to B; the media is on A
        await asyncio.wait_for(listening, 5)  # A closed bob's audio
        await until(lambda: {"type": "stream_ended", "reason": "stopped"} in bob_watching, 5, "bob told it ended")
        await until(lambda: {"type": "stream_ended", "reason": "stopped"} in alice_watching, 5, "alice told")
        recordings = (await bob._call("GET", "/api/users/alice/recordings/"))["recordings"]
        await publisher.close()
        await listener.close()
        for watcher in watchers:
            watcher.cancel()

    clean = read_audio_file(FIXTURES / "speech_clean.wav")
    noisy = read_audio_file(FIXTURES / "speech_noisy.wav")
    received = np.concatenate(heard)
    assert pause_level_db(noisy, clean) - pause_level_db(received, clean) >= 10  # the pauses were denoised on A
    assert level_db(received) > level_db(noisy) - 12  # and the speech came through
    assert recordings[0]["denoise_enabled"] is True
    assert abs(recordings[0]["duration"] - track.seconds_sent) <= 0.3


async def test_mute_and_the_denoise_switch_sent_to_the_other_process_act_on_the_stream_there(two_servers):
    server_a, server_b = (server.url for server in two_servers)
    async with people((server_a, "alice"), (server_b, "alice"), (server_a, "bob")) as (alice, alice_on_b, bob):
        await alice.start_stream(True)
        track = PacedAudioTrack(read_audio_file(FIXTURES / "speech_noisy.wav"))
        publisher = await connect_publisher(track, alice.send_publisher_offer, [])
        heard: list[np.ndarray] = []
        listener, listening = await connect_listener(
            lambda offer: bob.send_listener_offer("alice", offer), lambda samples, _at: heard.append(samples), []
        )
        await until(lambda: len(heard) > 25, 10, "bob hears alice")
        assert await metric(server_a, "quietcast_denoised_streams") == 1

        await alice_on_b._call("POST", "/api/stream/denoise/", {"denoise": False})
        assert await metric(server_a, "quietcast_denoised_streams") == 0
        await alice_on_b._call("POST", "/api/stream/mute/", {"muted": True})
        await asyncio.sleep(0.5)  # what was already on its way plays out
        muted_from = len(heard)
        await until(lambda: len(heard) > muted_from + 25, 5, "bob hears half a second more")
        assert level_db(np.concatenate(heard[muted_from:])) < -80  # silence from A

        await alice_on_b.stop_stream()
        await asyncio.wait_for(listening, 5)
        await publisher.close()
        await listener.close()


async def test_a_denoised_start_on_a_full_process_spills_to_the_other_and_an_unanswering_host_is_a_503(two_servers):
    server_a, server_b = (server.url for server in two_servers)
    async with people((server_a, "alice"), (server_a, "carol"), (server_a, "bob")) as (alice, carol, bob):
        await alice.start_stream(True)  # A's one denoised stream
        await carol.start_stream(True)  # started on A: its media goes to B
        assert await metric(server_b, "quietcast_live_streams") == 0
        publisher = await connect_publisher(
            PacedAudioTrack(read_audio_file(FIXTURES / "speech_noisy.wav")), carol.send_publisher_offer, []
        )
        assert await metric(server_b, "quietcast_live_streams") == 1
        assert await metric(server_b, "quietcast_denoised_streams") == 1
        heard: list[np.ndarray] = []
        listener, listening = await connect_listener(
            lambda offer: bob.send_listener_offer("carol", offer), lambda samples, _at: heard.append(samples), []
        )
        await until(lambda: len(heard) > 25, 10, "bob hears carol through A's answer from B")

        daphne_b = two_servers[1].process.pid
        os.kill(daphne_b, signal.SIGSTOP)  # B holds carol's stream and answers nothing
        try:
            started = time.monotonic()
            with pytest.raises(ApiError, match=r"\(503\)"):
                await bob.send_listener_offer("carol", listener.localDescription.sdp)
            assert time.monotonic() - started < FORWARD_TIMEOUT_S + 1.5
        finally:
            os.kill(daphne_b, signal.SIGCONT)
        await carol.stop_stream()
        await alice.stop_stream()
        await asyncio.wait_for(listening, 5)
        await publisher.close()
        await listener.close()

