"""The whole media path through the real server: Daphne serving quietcast.asgi, signalling over the HTTP API
with token auth, real aiortc peers on loopback and the real DeepFilterNet3 denoiser."""

import asyncio
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import numpy as np
import pytest
from aiortc import RTCPeerConnection

from audio_engine.client import PacedAudioTrack, connect_listener, connect_publisher, read_audio_file
from quietcast_cli.api import ApiError, QuietcastApi
from tests.audio_checks import level_db, pause_level_db
from tests.live_server import PASSWORD, prepare_database, running_daphne, seed_code, server_environment

pytestmark = pytest.mark.slow

FIXTURES = Path(__file__).resolve().parent / "fixtures"
SEED = seed_code(("alice", "bob", "carol"), friends=(("alice", "bob"),))


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("media-server")
    env = server_environment(workdir, DENOISE_WORKERS="1", STREAM_RECONNECT_GRACE_SECONDS="1")
    prepare_database(env, SEED)
    with running_daphne(env, workdir / "daphne.log") as daphne:
        yield daphne.url


async def logged_in(http: aiohttp.ClientSession, server: str, username: str) -> QuietcastApi:
    api = QuietcastApi(server, http)
    await api.login(username, PASSWORD)
    return api


@dataclass
class LiveSession:
    """alice live with the noisy fixture, bob connected as a listener."""

    track: PacedAudioTrack
    publisher: RTCPeerConnection
    listener: RTCPeerConnection
    listening: asyncio.Task  # ends when bob's audio track ends
    heard: list[np.ndarray] = field(default_factory=list)

    async def close(self) -> None:
        await self.publisher.close()
        await self.listener.close()


async def alice_live_and_bob_listening(
    alice: QuietcastApi, bob: QuietcastApi, *, denoise: bool, autoplay: bool = True
) -> LiveSession:
    await alice.start_stream(denoise)
    track = PacedAudioTrack(read_audio_file(FIXTURES / "speech_noisy.wav"), autoplay=autoplay)
    publisher = await connect_publisher(track, alice.send_publisher_offer, [])
    heard: list[np.ndarray] = []
    listener, listening = await connect_listener(
        lambda offer: bob.send_listener_offer("alice", offer), lambda samples, _at: heard.append(samples), []
    )
    return LiveSession(track, publisher, listener, listening, heard)


async def broadcast_and_listen(server: str, *, denoise: bool) -> dict:
    """alice streams the noisy fixture; bob listens from before the first word to the end."""
    async with aiohttp.ClientSession() as http:
        alice, bob, carol = [await logged_in(http, server, name) for name in ("alice", "bob", "carol")]
        live = await alice_live_and_bob_listening(alice, bob, denoise=denoise, autoplay=False)
        track = live.track
        with pytest.raises(ApiError, match=r"\(403\)"):
            await carol.send_listener_offer("alice", live.listener.localDescription.sdp)
        with pytest.raises(ApiError, match=r"\(409\)"):  # a second tab may not publish over a connected one
            await alice.send_publisher_offer(live.publisher.localDescription.sdp)
        track.play()
        await asyncio.wait_for(track.finished.wait(), 30)
        await asyncio.sleep(0.5)  # let the last packets arrive before stopping
        await alice.stop_stream()
        await asyncio.wait_for(live.listening, 5)  # stopping the stream ends the listener's track
        await live.close()
        recordings = await alice._call("GET", "/api/recordings/")
    return {
        "heard": np.concatenate(live.heard),
        "seconds_sent": track.seconds_sent,
        "recording": recordings["recordings"][0],
    }


async def test_friend_hears_the_stream_denoised_and_the_recording_is_saved(server):
    clean = read_audio_file(FIXTURES / "speech_clean.wav")
    denoised = await broadcast_and_listen(server, denoise=True)
    raw = await broadcast_and_listen(server, denoise=False)

    pause_gain_db = pause_level_db(raw["heard"], clean) - pause_level_db(denoised["heard"], clean)
    assert pause_gain_db >= 10, pause_gain_db
    assert level_db(denoised["heard"]) > level_db(raw["heard"]) - 12  # the speech itself still comes through

    for run, denoise in ((denoised, True), (raw, False)):
        recording = run["recording"]
        assert recording["denoise_enabled"] is denoise
        assert abs(recording["duration"] - run["seconds_sent"]) <= 0.3, (recording["duration"], run["seconds_sent"])


async def test_a_dropped_broadcaster_connection_ends_the_stream_and_saves_it(server):
    async with aiohttp.ClientSession() as http:
        alice, bob = [await logged_in(http, server, name) for name in ("alice", "bob")]
        live = await alice_live_and_bob_listening(alice, bob, denoise=False)
        while live.track.seconds_sent < 1.5:
            await asyncio.sleep(0.05)
        await live.publisher.close()  # the tab crashed or the network went: no Stop, no beacon
        await asyncio.wait_for(live.listening, 10)  # the grace period passes and the stream is ended for alice
        status = await bob._call("GET", "/api/stream/status/alice/")
        recordings = (await bob._call("GET", "/api/users/alice/recordings/"))["recordings"]
        await live.close()
    assert status["is_streaming"] is False
    assert recordings[0]["denoise_enabled"] is False and recordings[0]["duration"] >= 1.0


async def test_an_unfriended_listener_is_cut_off_at_once(server):
    async with aiohttp.ClientSession() as http:
        alice, bob = [await logged_in(http, server, name) for name in ("alice", "bob")]
        live = await alice_live_and_bob_listening(alice, bob, denoise=False)
        while len(live.heard) < 10:  # bob is really listening
            await asyncio.sleep(0.05)
        await alice._call("POST", "/api/friends/remove/", {"username": "bob"})
        await asyncio.wait_for(live.listening, 5)  # bob's audio ends while alice is still live
        assert (await alice._call("GET", "/api/stream/status/alice/"))["is_streaming"] is True
        with pytest.raises(ApiError, match=r"\(403\)"):
            await bob.send_listener_offer("alice", live.listener.localDescription.sdp)
        await alice.stop_stream()
        await live.close()
        await bob._call("POST", "/api/friends/request/", {"username": "alice"})  # as the other tests expect
        await alice._call("POST", "/api/friends/accept/", {"username": "bob"})


async def test_an_unfriending_while_the_listener_offer_is_in_flight_never_lets_audio_through(server):
    async with aiohttp.ClientSession() as http:
        alice, bob = [await logged_in(http, server, name) for name in ("alice", "bob")]
        await alice.start_stream(False)
        heard: list[np.ndarray] = []
        # bob's offer arrives before alice's microphone: the server holds it until her audio is there.
        listening_to_alice = asyncio.ensure_future(
            connect_listener(
                lambda offer: bob.send_listener_offer("alice", offer), lambda samples, _at: heard.append(samples), []
            )
        )
        await asyncio.sleep(0.5)  # bob's offer has passed the access check and waits inside the server
        await alice._call("POST", "/api/friends/remove/", {"username": "bob"})
        track = PacedAudioTrack(read_audio_file(FIXTURES / "speech_noisy.wav"))
        publisher = await connect_publisher(track, alice.send_publisher_offer, [])
        listener, listening = await listening_to_alice
        await asyncio.wait_for(listening, 10)  # bob's connection is closed when it attaches
        while track.seconds_sent < 1.0:
            await asyncio.sleep(0.05)
        assert heard == []
        assert (await alice._call("GET", "/api/stream/status/alice/"))["listeners"] == 0
        await alice.stop_stream()
        await publisher.close()
        await listener.close()
        await bob._call("POST", "/api/friends/request/", {"username": "alice"})  # as the other tests expect
        await alice._call("POST", "/api/friends/accept/", {"username": "bob"})
