"""The `quietcast` command-line client against a stand-in HTTP API backed by a real MediaEngine."""

from __future__ import annotations

import asyncio
import threading

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from audio_engine import EngineConfig, MediaEngine, StreamNotFound
from quietcast_cli.api import QuietcastApi
from quietcast_cli.main import listen, main, publish

from .helpers import FIXTURE_DIR, RecordedEvents, wait_until, wav_duration

PASSWORDS = {"alice": "pw", "bob": "pw"}


def api_app(engine: MediaEngine, recordings) -> web.Application:
    """The subset of the Quietcast API the client uses, with tokens equal to user names."""
    denoise_of: dict[str, bool] = {}

    def user(request: web.Request) -> str:
        token = request.headers.get("Authorization", "").removeprefix("Token ")
        if token not in PASSWORDS:
            raise web.HTTPUnauthorized(text='{"detail": "Invalid token."}', content_type="application/json")
        return token

    async def token(request: web.Request) -> web.Response:
        body = await request.json()
        if PASSWORDS.get(body.get("username")) != body.get("password"):
            return web.json_response({"error": "Unable to log in with provided credentials."}, status=400)
        return web.json_response({"token": body["username"]})

    async def start(request: web.Request) -> web.Response:
        denoise_of[user(request)] = (await request.json())["denoise"]
        return web.json_response({"session_id": user(request)}, status=201)

    async def offer(request: web.Request) -> web.Response:
        name = user(request)
        answer = await engine.publish(
            name, (await request.json())["sdp"], denoise=denoise_of[name], recording_path=recordings / f"{name}.wav"
        )
        return web.json_response({"sdp": answer, "type": "answer", "session_id": name})

    async def stop(request: web.Request) -> web.Response:
        await engine.end(user(request))
        return web.json_response({})

    async def listener_offer(request: web.Request) -> web.Response:
        user(request)
        try:
            answer = await engine.listen(request.match_info["username"], (await request.json())["sdp"])
        except StreamNotFound:
            return web.json_response({"error": f"{request.match_info['username']} is not live"}, status=404)
        return web.json_response({"sdp": answer, "type": "answer"})

    app = web.Application()
    app.router.add_post("/api/auth/token/", token)
    app.router.add_post("/api/stream/start/", start)
    app.router.add_post("/api/stream/offer/", offer)
    app.router.add_post("/api/stream/stop/", stop)
    app.router.add_post("/api/stream/listener/{username}/offer/", listener_offer)
    return app


@pytest.mark.slow
async def test_cli_publishes_a_file_and_a_friend_hears_it(tmp_path):
    engine = MediaEngine(EngineConfig(denoise_workers=1), RecordedEvents())
    async with TestServer(api_app(engine, tmp_path)) as server, aiohttp.ClientSession() as session:
        base = str(server.make_url("/"))
        alice, bob = QuietcastApi(base, session), QuietcastApi(base, session)
        await alice.login("alice", "pw")
        await bob.login("bob", "pw")
        publishing = asyncio.create_task(publish(alice, FIXTURE_DIR / "speech_noisy.wav", denoise=True, seconds=3))
        await wait_until(lambda: engine.is_publishing("alice"))
        heard = await listen(bob, "alice", tmp_path / "heard.wav", seconds=10)
        sent = await publishing
    await engine.shutdown()

    assert sent == pytest.approx(3.0, abs=0.05)
    assert 1.5 < heard <= sent + 0.2
    assert wav_duration(tmp_path / "heard.wav") == pytest.approx(heard, abs=1e-3)
    assert wav_duration(tmp_path / "alice.wav") == pytest.approx(sent, abs=0.3)


def test_cli_reports_api_errors_in_one_line(tmp_path, capsys):
    engine_ready = threading.Event()
    urls: list[str] = []
    stop = threading.Event()

    def serve() -> None:
        async def run() -> None:
            engine = MediaEngine(EngineConfig(denoise_workers=1), RecordedEvents())
            async with TestServer(api_app(engine, tmp_path)) as server:
                urls.append(str(server.make_url("")))
                engine_ready.set()
                while not stop.is_set():
                    await asyncio.sleep(0.05)

        asyncio.run(run())

    thread = threading.Thread(target=serve)
    thread.start()
    engine_ready.wait(10)
    try:
        wrong_password = main(
            [
                "--server",
                urls[0],
                "listen",
                "--user",
                "bob",
                "--password",
                "nope",
                "alice",
                "--out",
                str(tmp_path / "x.wav"),
            ]
        )
        not_live = main(
            [
                "--server",
                urls[0],
                "listen",
                "--user",
                "bob",
                "--password",
                "pw",
                "alice",
                "--out",
                str(tmp_path / "x.wav"),
            ]
        )
    finally:
        stop.set()
        thread.join()
    errors = capsys.readouterr().err.strip().splitlines()
    assert (wrong_password, not_live) == (1, 1)
    assert errors == [
        "quietcast: POST /api/auth/token/ failed (400): Unable to log in with provided credentials.",
        "quietcast: POST /api/stream/listener/alice/offer/ failed (404): alice is not live",
    ]
    assert not (tmp_path / "x.wav").exists() and not (tmp_path / "x.partial.wav").exists()
