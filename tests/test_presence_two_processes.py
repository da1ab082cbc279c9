"""Two Daphne processes sharing a real redis-server and PostgreSQL: a start on one reaches a friend's socket on the
other."""

import asyncio
import json
import os
import time

import aiohttp
import pytest
from channels_redis.core import RedisChannelLayer

from quietcast import setting_values
from tests.live_server import (
    PASSWORD,
    fresh_postgres_database,
    prepare_database,
    running_daphne,
    seed_code,
    server_environment,
)

pytestmark = pytest.mark.redis

SEED = seed_code(("alice", "bob", "carol"), friends=(("alice", "bob"),))


async def token_for(http: aiohttp.ClientSession, base_url: str, username: str) -> str:
    response = await http.post(f"{base_url}/api/auth/token/", json={"username": username, "password": PASSWORD})
    return (await response.json())["token"]


async def next_json(socket: aiohttp.ClientWebSocketResponse, timeout: float) -> dict:
    return json.loads((await socket.receive(timeout=timeout)).data)


@pytest.fixture
def two_servers(tmp_path):
    redis_url = os.environ.get("REDIS_TEST_URL")
    if not redis_url:
        pytest.skip("REDIS_TEST_URL is not set: run the suite with `make test`, which starts redis-server")
    env = server_environment(tmp_path, REDIS_URL=redis_url, DATABASE_URL=fresh_postgres_database("presence"))
    prepare_database(env, SEED)
    with running_daphne(env, tmp_path / "a.log") as server_a, running_daphne(env, tmp_path / "b.log") as server_b:
        yield server_a.url, server_b.url


async def test_a_start_on_one_process_reaches_a_friend_on_the_other(two_servers):
    server_a, server_b = two_servers
    async with aiohttp.ClientSession() as http:
        alice = {"Authorization": f"Token {await token_for(http, server_a, 'alice')}"}
        bob = {"Authorization": f"Token {await token_for(http, server_b, 'bob')}"}
        carol = {"Authorization": f"Token {await token_for(http, server_b, 'carol')}"}
        async with (
            http.ws_connect(f"{server_b}/ws/presence/", headers=bob) as bob_socket,
            http.ws_connect(f"{server_b}/ws/presence/", headers=carol) as carol_socket,
        ):
            assert (await next_json(bob_socket, 5))["type"] == "all_statuses"
            assert (await next_json(carol_socket, 5))["type"] == "all_statuses"
            started = time.monotonic()
            response = await http.post(f"{server_a}/api/stream/start/", json={"denoise": True}, headers=alice)
            assert response.status == 201
            update = await next_json(bob_socket, 1)
            assert time.monotonic() - started < 1
            assert update == {"type": "streaming_status_update", "username": "alice", "is_streaming": True}
            response = await http.post(f"{server_a}/api/stream/stop/", json={}, headers=alice)
            assert response.status == 200
            assert (await next_json(bob_socket, 1))["is_streaming"] is False
            with pytest.raises(asyncio.TimeoutError):
                await carol_socket.receive(timeout=0.5)


async def test_a_socket_quiet_for_longer_than_one_blocking_pop_keeps_waiting():
    """The Redis layer's receive outlasts Redis's 5 s blocking pop: a quiet socket is not closed, it gets what comes."""
    redis_url = os.environ.get("REDIS_TEST_URL")
    if not redis_url:
        pytest.skip("REDIS_TEST_URL is not set: run the suite with `make test`, which starts redis-server")
    layer = RedisChannelLayer(**setting_values.redis_channel_layer(redis_url)["CONFIG"])
    channel = await layer.new_channel()

    async def send_later() -> None:
        await asyncio.sleep(7)
        await layer.send(channel, {"type": "presence.status_changed"})

    sending = asyncio.create_task(send_later())
    assert (await asyncio.wait_for(layer.receive(channel), 15)) == {"type": "presence.status_changed"}
    await sending
    await layer.flush()
