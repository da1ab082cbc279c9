"""Presence and stream sockets, over the in-memory layer and a real redis-server (REDIS_TEST_URL)."""

import os
import time

import pytest
from channels.db import database_sync_to_async
from channels.layers import channel_layers
from channels.testing import WebsocketCommunicator
from knox.models import AuthToken

from quietcast.asgi import application
from streams import services
from streams.events import EndReason
from streams.models import ActiveStream, PresenceConnection

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
def channel_layer(request, settings):
    """Run each test over both channel layers; Redis needs the real server the test command starts."""
    if request.param == "redis":
        redis_url = os.environ.get("REDIS_TEST_URL")
        if not redis_url:
            pytest.skip("REDIS_TEST_URL is not set: run the suite with `make test`, which starts redis-server")
        settings.CHANNEL_LAYERS = {
            "default": {
                "BACKEND": "channels_redis.core.RedisChannelLayer",
                "CONFIG": {"hosts": [redis_url], "prefix": f"test-{os.getpid()}-{time.monotonic_ns()}"},
            }
        }
    else:
        settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    channel_layers.backends = {}
    yield request.param
    channel_layers.backends = {}


async def connect(path: str, user=None, headers: list | None = None) -> tuple[WebsocketCommunicator, bool, int | None]:
    headers = list(headers or [])
    if user is not None:
        _, key = await database_sync_to_async(AuthToken.objects.create)(user=user)
        headers.append((b"authorization", f"Token {key}".encode()))
    communicator = WebsocketCommunicator(application, path, headers=headers)
    connected, code = await communicator.connect(timeout=3)
    return communicator, connected, code


async def expect_silence(communicator: WebsocketCommunicator, seconds: float = 0.3) -> None:
    assert await communicator.receive_nothing(timeout=seconds)


# --- /ws/presence/ -------------------------------------------------------------------------------------------


async def test_anonymous_presence_socket_is_closed(channel_layer):
    _, connected, _ = await connect("/ws/presence/")
    assert not connected


async def test_presence_starts_with_the_friends_who_are_live(channel_layer, cast):
    await database_sync_to_async(services.start_stream)(cast["owner"])
    socket, connected, _ = await connect("/ws/presence/", cast["friend"])
    assert connected
    assert await socket.receive_json_from() == {"type": "all_statuses", "streaming_users": ["alice"]}
    await socket.disconnect()


async def test_friend_sees_live_badge_within_a_second(channel_layer, cast):
    socket, _, _ = await connect("/ws/presence/", cast["friend"])
    assert (await socket.receive_json_from())["streaming_users"] == []
    started = time.monotonic()
    await database_sync_to_async(services.start_stream)(cast["owner"])
    message = await socket.receive_json_from(timeout=1)
    assert time.monotonic() - started < 1
    assert message == {"type": "streaming_status_update", "username": "alice", "is_streaming": True}
    await database_sync_to_async(services.end_stream)(cast["owner"], reason=EndReason.STOPPED)
    assert await socket.receive_json_from(timeout=1) == {
        "type": "streaming_status_update",
        "username": "alice",
        "is_streaming": False,
    }
    await socket.disconnect()


@pytest.mark.parametrize("role", ["stranger", "pending"])
async def test_only_friends_hear_about_a_stream(channel_layer, cast, role):
    socket, _, _ = await connect("/ws/presence/", cast[role])
    assert (await socket.receive_json_from())["streaming_users"] == []
    await database_sync_to_async(services.start_stream)(cast["owner"])
    await expect_silence(socket)
    await socket.send_json_to({"action": "get_status"})
    assert await socket.receive_json_from() == {"type": "all_statuses", "streaming_users": []}
    await socket.disconnect()


async def test_get_status_resends_all_statuses(channel_layer, cast):
    socket, _, _ = await connect("/ws/presence/", cast["friend"])
    await socket.receive_json_from()
    await database_sync_to_async(services.start_stream)(cast["owner"])
    await socket.receive_json_from()
    await socket.send_json_to({"action": "get_status"})
    assert await socket.receive_json_from() == {"type": "all_statuses", "streaming_users": ["alice"]}
    await socket.disconnect()


@pytest.mark.parametrize(
    ("frame", "error_fragment"),
    [
        ("not json", "not valid JSON"),
        ("[" * 2000 + "]" * 2000, "not valid JSON"),
        ('{"a":' * 2000 + "1" + "}" * 2000, "not valid JSON"),
        ("[1, 2]", "JSON objects"),
        ('{"action": "dance"}', "Unknown action"),
        ("{}", "Unknown action"),
    ],
)
async def test_malformed_presence_messages_get_an_error_and_the_socket_stays_open(
    channel_layer, cast, frame, error_fragment
):
    socket, _, _ = await connect("/ws/presence/", cast["friend"])
    await socket.receive_json_from()
    await socket.send_to(text_data=frame)
    reply = await socket.receive_json_from()
    assert reply["type"] == "error" and error_fragment in reply["error"]
    await socket.send_json_to({"action": "get_status"})
    assert (await socket.receive_json_from())["type"] == "all_statuses"
    await socket.disconnect()


async def test_binary_presence_messages_get_an_error(channel_layer, cast):
    socket, _, _ = await connect("/ws/presence/", cast["friend"])
    await socket.receive_json_from()
    await socket.send_to(bytes_data=b"\x00\x01")
    assert (await socket.receive_json_from())["type"] == "error"
    await socket.disconnect()


async def test_friends_and_owner_hear_when_a_recording_is_saved(channel_layer, cast, monkeypatch):
    from streams import media

    monkeypatch.setattr(
        media, "finish", lambda *_, **__: media.FinishedRecording(relative_path="1/x.wav", duration=4.0)
    )
    sockets = {}
    for role in ("friend", "owner", "stranger"):
        sockets[role], _, _ = await connect("/ws/presence/", cast[role])
        await sockets[role].receive_json_from()
    await database_sync_to_async(services.start_stream)(cast["owner"])
    await sockets["friend"].receive_json_from()
    await database_sync_to_async(services.end_stream)(cast["owner"], reason=EndReason.STOPPED)
    assert (await sockets["friend"].receive_json_from())["is_streaming"] is False
    for role in ("friend", "owner"):
        saved = await sockets[role].receive_json_from()
        assert saved["type"] == "recording_saved" and saved["username"] == "alice"
        assert saved["recording"]["duration"] == 4.0 and saved["recording"]["url"].endswith("/audio/")
    await expect_silence(sockets["stranger"])
    for socket in sockets.values():
        await socket.disconnect()


async def test_a_session_cookie_authenticates_the_presence_socket(channel_layer, cast, client):
    await database_sync_to_async(client.force_login)(cast["friend"])
    cookie = f"sessionid={client.cookies['sessionid'].value}".encode()
    socket, connected, _ = await connect("/ws/presence/", headers=[(b"cookie", cookie)])
    assert connected
    assert (await socket.receive_json_from())["type"] == "all_statuses"
    await socket.disconnect()


async def test_a_cross_site_origin_is_refused(channel_layer, cast):
    headers = [(b"origin", b"https://evil.example"), (b"host", b"testserver")]
    _, connected, _ = await connect("/ws/presence/", cast["friend"], headers=headers)
    assert not connected
    same_site = [(b"origin", b"http://testserver"), (b"host", b"testserver")]
    socket, connected, _ = await connect("/ws/presence/", cast["friend"], headers=same_site)
    assert connected
    await socket.disconnect()


# --- the broadcaster's presence socket and the reconnect grace period -----------------------------------------


async def test_a_broadcaster_whose_page_stays_away_past_the_grace_period_is_ended_and_everyone_is_told(
    channel_layer, cast, settings, lifecycle_clock
):
    settings.STREAM_RECONNECT_GRACE_SECONDS = 8
    settings.STREAM_DEADLINE_CHECK_SECONDS = 0.05  # the server's own deadline checks do the ending
    friend, _, _ = await connect("/ws/presence/", cast["friend"])
    await friend.receive_json_from()
    watcher, _, _ = await connect("/ws/stream/alice/", cast["friend"])
    await watcher.receive_json_from()
    broadcaster, _, _ = await connect("/ws/presence/", cast["owner"])
    await broadcaster.receive_json_from()
    await database_sync_to_async(services.start_stream)(cast["owner"])
    await friend.receive_json_from()
    await watcher.receive_json_from()  # stream_started
    await broadcaster.disconnect()
    lifecycle_clock.advance(7.9)
    await expect_silence(friend)
    lifecycle_clock.advance(0.2)
    ended = await friend.receive_json_from(timeout=2)
    assert ended == {"type": "streaming_status_update", "username": "alice", "is_streaming": False}
    assert await watcher.receive_json_from(timeout=1) == {"type": "stream_ended", "reason": "connection_lost"}
    assert not await database_sync_to_async(ActiveStream.objects.exists)()
    await friend.disconnect()
    await watcher.disconnect()


async def test_reconnecting_never_starts_a_stream(channel_layer, cast):
    socket, _, _ = await connect("/ws/presence/", cast["owner"])
    await socket.disconnect()
    socket, _, _ = await connect("/ws/presence/", cast["owner"])
    assert not await database_sync_to_async(ActiveStream.objects.exists)()
    await socket.disconnect()
    assert not await database_sync_to_async(PresenceConnection.objects.exists)()


@pytest.mark.parametrize(("close_code", "page_left"), [(1001, True), (1006, False), (1000, False)])
async def test_the_presence_socket_tells_a_page_going_away_from_a_dropped_connection(
    channel_layer, cast, close_code, page_left
):
    # Browsers close a page's sockets with 1001 when it is closed, reloaded or left: that page gets the short
    # leave grace (see test_stream_lifecycle), any other loss the full one.
    await database_sync_to_async(services.start_stream)(cast["owner"])
    broadcaster, _, _ = await connect("/ws/presence/", cast["owner"])
    await broadcaster.receive_json_from()
    await broadcaster.disconnect(code=close_code)
    stream = await database_sync_to_async(ActiveStream.objects.get)(owner=cast["owner"])
    assert stream.presence_lost_at is not None and stream.presence_left_page is page_left


# --- /ws/stream/<username>/ -----------------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["owner", "friend"])
async def test_owner_and_friends_may_watch_a_stream(channel_layer, cast, role):
    await database_sync_to_async(services.start_stream)(cast["owner"])
    socket, connected, _ = await connect("/ws/stream/alice/", cast[role])
    assert connected
    status = await socket.receive_json_from()
    assert status["type"] == "stream_status" and status["is_streaming"] is True and status["listeners"] == 0
    await socket.disconnect()


@pytest.mark.parametrize("role", ["anonymous", "stranger", "pending"])
async def test_others_are_closed_with_4403(channel_layer, cast, role):
    _, connected, code = await connect("/ws/stream/alice/", None if role == "anonymous" else cast[role])
    assert not connected and code == 4403


async def test_unknown_streamer_is_closed_with_4403(channel_layer, cast):
    _, connected, code = await connect("/ws/stream/nobody/", cast["friend"])
    assert not connected and code == 4403


async def test_stream_socket_carries_listener_counts_and_the_end(channel_layer, cast):
    stream = await database_sync_to_async(services.start_stream)(cast["owner"])
    socket, _, _ = await connect("/ws/stream/alice/", cast["friend"])
    await socket.receive_json_from()
    await database_sync_to_async(services.set_listener_count)(stream.session_id, 1)
    assert await socket.receive_json_from() == {"type": "listener_joined", "count": 1}
    await database_sync_to_async(services.set_listener_count)(stream.session_id, 0)
    assert await socket.receive_json_from() == {"type": "listener_left", "count": 0}
    await database_sync_to_async(services.end_stream)(cast["owner"], reason=EndReason.STOPPED)
    assert await socket.receive_json_from() == {"type": "stream_ended", "reason": "stopped"}
    await socket.send_json_to({"action": "anything"})
    assert (await socket.receive_json_from())["type"] == "error"
    await socket.disconnect()


async def test_only_the_owners_stream_status_carries_the_session_id(channel_layer, cast):
    stream = await database_sync_to_async(services.start_stream)(cast["owner"])
    owner, _, _ = await connect("/ws/stream/alice/", cast["owner"])
    friend, _, _ = await connect("/ws/stream/alice/", cast["friend"])
    assert (await owner.receive_json_from())["session_id"] == str(stream.session_id)
    status = await friend.receive_json_from()
    assert status["is_streaming"] is True and "session_id" not in status
    await owner.disconnect()
    await friend.disconnect()


async def test_owner_and_friends_pages_hear_a_stream_start_and_only_the_owner_gets_its_session(channel_layer, cast):
    owner, _, _ = await connect("/ws/stream/alice/", cast["owner"])
    friend, _, _ = await connect("/ws/stream/alice/", cast["friend"])
    for socket in (owner, friend):
        assert (await socket.receive_json_from())["is_streaming"] is False
    stream = await database_sync_to_async(services.start_stream)(cast["owner"], denoise=False)
    expected = {"type": "stream_started", "started_at": stream.started_at.isoformat(), "denoise": False}
    assert await friend.receive_json_from(timeout=1) == expected
    assert await owner.receive_json_from(timeout=1) == {**expected, "session_id": str(stream.session_id)}
    await owner.disconnect()
    await friend.disconnect()


async def test_the_owners_pages_hear_denoise_switched_while_live_and_friends_do_not(channel_layer, cast):
    await database_sync_to_async(services.start_stream)(cast["owner"], denoise=False)
    owner, _, _ = await connect("/ws/stream/alice/", cast["owner"])
    friend, _, _ = await connect("/ws/stream/alice/", cast["friend"])
    for socket in (owner, friend):
        assert (await socket.receive_json_from())["denoise"] is False
    await database_sync_to_async(services.set_denoise)(cast["owner"], True)
    assert await owner.receive_json_from(timeout=1) == {"type": "denoise_switched", "denoise": True}
    await expect_silence(friend)
    await owner.disconnect()
    await friend.disconnect()


@pytest.mark.parametrize("reason", ["stopped", "tab_closed"])
async def test_stop_and_the_unload_beacon_end_the_stream_with_their_reason(channel_layer, cast, reason):
    await database_sync_to_async(services.start_stream)(cast["owner"])
    owner, _, _ = await connect("/ws/stream/alice/", cast["owner"])
    await owner.receive_json_from()
    await database_sync_to_async(services.stop_stream)(cast["owner"], reason=EndReason(reason))
    assert await owner.receive_json_from(timeout=1) == {"type": "stream_ended", "reason": reason}
    await owner.disconnect()


async def test_logging_out_while_live_ends_the_stream(channel_layer, cast, client):
    await database_sync_to_async(client.force_login)(cast["owner"])
    await database_sync_to_async(services.start_stream)(cast["owner"])
    friend, _, _ = await connect("/ws/stream/alice/", cast["friend"])
    await friend.receive_json_from()
    response = await database_sync_to_async(client.post)("/logout/")
    assert response.status_code == 302
    assert await friend.receive_json_from(timeout=1) == {"type": "stream_ended", "reason": "logged_out"}
    assert not await database_sync_to_async(ActiveStream.objects.exists)()
    await friend.disconnect()


# --- friendships that change while someone is live ----------------------------------------------------------


async def test_a_new_friend_sees_a_live_stream_at_once(channel_layer, cast):
    from friends import services as friends

    await database_sync_to_async(services.start_stream)(cast["owner"])
    socket, _, _ = await connect("/ws/presence/", cast["stranger"])
    assert (await socket.receive_json_from())["streaming_users"] == []
    await database_sync_to_async(friends.send_request)(cast["stranger"], "alice")
    await expect_silence(socket)  # a request is not friendship
    await database_sync_to_async(friends.accept_request)(cast["owner"], "carol")
    assert await socket.receive_json_from(timeout=1) == {
        "type": "streaming_status_update",
        "username": "alice",
        "is_streaming": True,
    }
    await socket.disconnect()


async def test_an_unfriended_person_stops_seeing_and_watching_the_stream(channel_layer, cast):
    from friends import services as friends

    await database_sync_to_async(services.start_stream)(cast["owner"])
    presence, _, _ = await connect("/ws/presence/", cast["friend"])
    await presence.receive_json_from()
    watcher, _, _ = await connect("/ws/stream/alice/", cast["friend"])
    await watcher.receive_json_from()
    await database_sync_to_async(friends.remove_friend)(cast["owner"], "bob")
    assert await presence.receive_json_from(timeout=1) == {
        "type": "streaming_status_update",
        "username": "alice",
        "is_streaming": False,
    }
    assert await watcher.receive_output(timeout=1) == {"type": "websocket.close", "code": 4403}
    await presence.disconnect()


async def test_unfriending_closes_only_the_stream_sockets_of_that_pair(channel_layer, cast, make_user):
    from friends import services as friends

    zed = await database_sync_to_async(make_user)("zed")
    await database_sync_to_async(friends.send_request)(zed, "bob")
    await database_sync_to_async(friends.accept_request)(cast["friend"], "zed")
    watching_zed, _, _ = await connect("/ws/stream/zed/", cast["friend"])
    await watching_zed.receive_json_from()
    await database_sync_to_async(friends.remove_friend)(cast["owner"], "bob")
    await expect_silence(watching_zed)
    await watching_zed.disconnect()


# --- friend requests and friendships, live on every page ------------------------------------------------------


async def test_a_friend_request_reaches_the_recipients_pages_with_their_count(channel_layer, cast):
    from friends import services as friends

    recipient, _, _ = await connect("/ws/presence/", cast["stranger"])
    await recipient.receive_json_from()
    sender, _, _ = await connect("/ws/presence/", cast["friend"])
    await sender.receive_json_from()
    await database_sync_to_async(friends.send_request)(cast["friend"], "carol")
    assert await recipient.receive_json_from(timeout=1) == {"type": "requests_changed", "received": 1}
    await expect_silence(sender)  # what waits for the sender did not change
    await database_sync_to_async(friends.cancel_request)(cast["friend"], "carol")
    assert await recipient.receive_json_from(timeout=1) == {"type": "requests_changed", "received": 0}
    await recipient.disconnect()
    await sender.disconnect()


async def test_an_accepted_request_updates_both_friends_lists_and_the_count(channel_layer, cast):
    from friends import services as friends

    accepter, _, _ = await connect("/ws/presence/", cast["owner"])  # dave asked alice
    await accepter.receive_json_from()
    asker, _, _ = await connect("/ws/presence/", cast["pending"])
    await asker.receive_json_from()
    await database_sync_to_async(services.start_stream)(cast["owner"])
    await database_sync_to_async(friends.accept_request)(cast["owner"], "dave")

    heard_by_accepter = [await accepter.receive_json_from(timeout=1) for _ in range(2)]
    assert {"type": "requests_changed", "received": 0} in heard_by_accepter
    assert {"type": "friends_changed", "username": "dave", "are_friends": True, "is_streaming": False} in (
        heard_by_accepter
    )
    # The asker's pages list alice, live, and hear of her stream.
    assert await asker.receive_json_from(timeout=1) == {
        "type": "streaming_status_update",
        "username": "alice",
        "is_streaming": True,
    }
    assert await asker.receive_json_from(timeout=1) == {
        "type": "friends_changed",
        "username": "alice",
        "are_friends": True,
        "is_streaming": True,
    }
    await expect_silence(accepter)
    await accepter.disconnect()
    await asker.disconnect()


async def test_an_unfriending_takes_each_off_the_others_friends_list(channel_layer, cast):
    from friends import services as friends

    socket, _, _ = await connect("/ws/presence/", cast["friend"])
    await socket.receive_json_from()
    await database_sync_to_async(friends.remove_friend)(cast["owner"], "bob")
    assert await socket.receive_json_from(timeout=1) == {
        "type": "friends_changed",
        "username": "alice",
        "are_friends": False,
        "is_streaming": False,
    }
    await socket.disconnect()


async def test_request_events_go_out_only_once_the_change_is_committed(channel_layer, cast):
    from django.db import transaction

    from friends import services as friends

    recipient, _, _ = await connect("/ws/presence/", cast["stranger"])
    await recipient.receive_json_from()

    def request_then_roll_back() -> None:
        with pytest.raises(RuntimeError), transaction.atomic():
            friends.send_request(cast["friend"], "carol")
            raise RuntimeError("rolled back")

    await database_sync_to_async(request_then_roll_back)()
    await expect_silence(recipient)
    await database_sync_to_async(friends.send_request)(cast["friend"], "carol")
    assert await recipient.receive_json_from(timeout=1) == {"type": "requests_changed", "received": 1}
    await recipient.disconnect()
