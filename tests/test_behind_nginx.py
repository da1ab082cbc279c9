"""Quietcast as deployed on several processes: the committed nginx config terminating TLS in front of two server
processes sharing a real redis-server and PostgreSQL, real aiortc peers. Each person's requests are pinned to one
process where it matters (tests/nginx_proxy.py), otherwise nginx balances them as the committed config does."""

import asyncio
import json
import os
import re
import time
from collections.abc import Callable
from http.cookies import Morsel
from pathlib import Path

import aiohttp
import numpy as np
import pytest

from audio_engine.client import PacedAudioTrack, connect_listener, connect_publisher, read_audio_file
from quietcast_cli.api import QuietcastApi
from tests.audio_checks import level_db, pause_level_db
from tests.live_server import PASSWORD, fresh_postgres_database, seed_code
from tests.nginx_proxy import Site, running_site
from tests.test_media_end_to_end import alice_live_and_bob_listening

pytestmark = [pytest.mark.redis, pytest.mark.slow]

FIXTURES = Path(__file__).resolve().parent / "fixtures"
SEED = seed_code(("alice", "bob", "dave"), friends=(("alice", "bob"), ("alice", "dave")))
A, B = 0, 1
# Short enough for a test, long enough that a process busy starting beside them is not taken for dead.
HEARTBEAT_SECONDS, DEAD_SECONDS, CHECK_SECONDS = 0.5, 3.0, 0.5
DETECTION_BOUND = DEAD_SECONDS + CHECK_SECONDS
DELIVERY_SLACK = 0.5  # the event's way from the survivor to the friend's socket, on a busy 2-core machine


@pytest.fixture
def site(tmp_path):
    redis_url = os.environ.get("REDIS_TEST_URL")
    if not redis_url:
        pytest.skip("REDIS_TEST_URL is not set: run the suite with `make test`, which starts redis-server")
    with running_site(
        tmp_path,
        processes=2,
        seed=SEED,
        database_url=fresh_postgres_database("nginx"),
        redis_url=redis_url,
        DENOISE_WORKERS="1",
        MEDIA_HOST_HEARTBEAT_SECONDS=str(HEARTBEAT_SECONDS),
        MEDIA_HOST_DEAD_SECONDS=str(DEAD_SECONDS),
        STREAM_DEADLINE_CHECK_SECONDS=str(CHECK_SECONDS),
    ) as site:
        yield site


async def log_in_with_the_form(http: aiohttp.ClientSession, site_url: str, username: str) -> Morsel:
    """As a browser does: the login page's CSRF token, then the form posted back over https. Returns the session
    cookie it was given."""
    page = await http.get(f"{site_url}/login/")
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', await page.text())
    assert page.status == 200 and token is not None
    response = await http.post(
        f"{site_url}/login/",
        data={"username": username, "password": PASSWORD, "csrfmiddlewaretoken": token[1]},
        headers={"Referer": f"{site_url}/login/"},
        allow_redirects=False,
    )
    assert response.status == 302, await response.text()
    return response.cookies["sessionid"]


async def logged_in(http: aiohttp.ClientSession, site: Site, username: str) -> QuietcastApi:
    api = QuietcastApi(site.proxy.url, http)
    await api.login(username, PASSWORD)
    return api


async def next_of_type(socket: aiohttp.ClientWebSocketResponse, kind: str, timeout: float) -> dict:
    """The next message of `kind` on the socket (others pass), within `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        received = await socket.receive(timeout=max(0.01, deadline - time.monotonic()))
        assert received.type == aiohttp.WSMsgType.TEXT, f"the socket closed waiting for {kind}: {received}"
        message = json.loads(received.data)
        if message["type"] == kind:
            return message


async def until(condition: Callable[[], bool]) -> None:
    while not condition():
        await asyncio.sleep(0.05)


def wss(site: Site, path: str) -> str:
    return site.proxy.url.replace("https://", "wss://") + path


async def test_plain_http_goes_to_https_static_files_come_from_nginx_and_metrics_stay_private(site):
    async with site.client() as http:
        response = await http.get(f"{site.proxy.http_url}/login/", allow_redirects=False)
        assert response.status == 301 and response.headers["Location"].startswith("https://")
        static = await http.get(f"{site.proxy.url}/static/css/quietcast.css")
        assert static.status == 200 and static.headers["Cache-Control"] == "max-age=3600"
        assert (await static.read()) == (Path(__file__).resolve().parents[1] / "static/css/quietcast.css").read_bytes()
        # Through the proxy every visitor looks local to the processes; /metrics tells them apart (X-Forwarded-For).
        assert (await http.get(f"{site.proxy.url}/metrics")).status == 404


async def test_a_start_on_one_process_reaches_a_friends_sockets_on_the_other_through_nginx(site):
    async with site.client(A) as alice_http, site.client(A) as dave_http, site.client(B) as bob_http:
        session = await log_in_with_the_form(bob_http, site.proxy.url, "bob")
        assert session["secure"] and session["httponly"]  # served over https as far as Django can tell
        alice, dave = await logged_in(alice_http, site, "alice"), await logged_in(dave_http, site, "dave")
        async with (
            bob_http.ws_connect(wss(site, "/ws/presence/"), origin=site.proxy.url) as bob_presence,
            bob_http.ws_connect(wss(site, "/ws/stream/alice/"), origin=site.proxy.url) as bob_watching,
        ):
            await next_of_type(bob_presence, "all_statuses", 5)
            assert (await next_of_type(bob_watching, "stream_status", 5))["is_streaming"] is False

            await alice.start_stream(denoise=True)
            update = await next_of_type(bob_presence, "streaming_status_update", 2)
            assert update == {"type": "streaming_status_update", "username": "alice", "is_streaming": True}
            publisher = await connect_publisher(
                PacedAudioTrack(read_audio_file(FIXTURES / "speech_noisy.wav")), alice.send_publisher_offer, []
            )
            heard = []
            listener, listening = await connect_listener(
                lambda offer: dave.send_listener_offer("alice", offer), lambda samples, _at: heard.append(samples), []
            )
            assert (await next_of_type(bob_watching, "listener_joined", 10))["count"] == 1
            await asyncio.wait_for(until(lambda: len(heard) > 0), 5)  # dave hears alice

            await alice.stop_stream()
            assert (await next_of_type(bob_watching, "stream_ended", 2))["reason"] == "stopped"
            assert (await next_of_type(bob_presence, "streaming_status_update", 2))["is_streaming"] is False
            await asyncio.wait_for(listening, 5)  # dave's audio ends with the stream
            await publisher.close()
            await listener.close()


async def test_a_killed_processs_stream_ends_for_friends_and_is_saved_when_it_comes_back(site):
    async with (
        site.client(A) as alice_on_a,
        site.client(B) as bob_on_b,
        site.client(B) as alice_on_b,
        site.client() as alice_anywhere,
    ):
        alice, bob = await logged_in(alice_on_a, site, "alice"), await logged_in(bob_on_b, site, "bob")
        await log_in_with_the_form(bob_on_b, site.proxy.url, "bob")
        async with bob_on_b.ws_connect(wss(site, "/ws/stream/alice/"), origin=site.proxy.url) as bob_watching:
            await next_of_type(bob_watching, "stream_status", 5)
            await alice.start_stream(denoise=False)
            track = PacedAudioTrack(read_audio_file(FIXTURES / "speech_noisy.wav"))
            publisher = await connect_publisher(track, alice.send_publisher_offer, [])
            await asyncio.wait_for(until(lambda: track.seconds_sent >= 2.0), 10)

            site.kill(A)
            killed_at, seconds_sent = time.monotonic(), track.seconds_sent
            ended = await next_of_type(bob_watching, "stream_ended", DETECTION_BOUND + 5)
            detected_after = time.monotonic() - killed_at
            assert ended["reason"] == "server_lost"
            assert detected_after <= DETECTION_BOUND + DELIVERY_SLACK, detected_after
            await publisher.close()

            # She goes live again at once; nginx sends her, unpinned, to the process still up.
            alice_again = await logged_in(alice_anywhere, site, "alice")
            await alice_again.start_stream(denoise=False)
            assert (await next_of_type(bob_watching, "stream_started", 2))["denoise"] is False
            publisher = await connect_publisher(
                PacedAudioTrack(read_audio_file(FIXTURES / "speech_noisy.wav")), alice_again.send_publisher_offer, []
            )

            # The killed process, back under its own media host id, saves what it had recorded of the first stream
            # and leaves the second, which the other process holds, alone.
            await asyncio.to_thread(site.start, A)
            recordings = (await bob._call("GET", "/api/users/alice/recordings/"))["recordings"]
            assert len(recordings) == 1
            assert seconds_sent - 1.0 <= recordings[0]["duration"] <= seconds_sent + 0.3, (recordings, seconds_sent)
            assert (await bob._call("GET", "/api/stream/status/alice/"))["is_streaming"] is True

            await (await logged_in(alice_on_b, site, "alice")).stop_stream()
            assert (await next_of_type(bob_watching, "stream_ended", 2))["reason"] == "stopped"
            await publisher.close()
        assert len((await bob._call("GET", "/api/users/alice/recordings/"))["recordings"]) == 2


async def broadcast_to_the_other_process(site: Site, *, denoise: bool) -> np.ndarray:
    """alice streams the noisy fixture through process A; bob listens through process B from before her first
    word to the end. Returns what bob heard."""
    async with site.client(A) as alice_http, site.client(B) as bob_http:
        alice, bob = await logged_in(alice_http, site, "alice"), await logged_in(bob_http, site, "bob")
        live = await alice_live_and_bob_listening(alice, bob, denoise=denoise, autoplay=False)
        live.track.play()
        await asyncio.wait_for(live.track.finished.wait(), 30)
        await asyncio.sleep(0.5)  # let the last packets arrive before stopping
        await alice.stop_stream()
        await asyncio.wait_for(live.listening, 5)  # stopping the stream ends bob's track
        await live.close()
    return np.concatenate(live.heard)


async def test_a_listener_on_the_other_process_hears_the_broadcaster_denoised(site):
    clean = read_audio_file(FIXTURES / "speech_clean.wav")
    denoised = await broadcast_to_the_other_process(site, denoise=True)
    raw = await broadcast_to_the_other_process(site, denoise=False)
    pause_gain_db = pause_level_db(raw, clean) - pause_level_db(denoised, clean)
    assert pause_gain_db >= 10, pause_gain_db
    assert level_db(denoised) > level_db(raw) - 12  # the speech itself still comes through
