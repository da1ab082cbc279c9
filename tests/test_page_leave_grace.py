"""The short grace for a broadcaster's page that went away itself (closed or reloaded, WebSocket close 1001):
a reload is back within it and keeps the stream, a closed tab ends the stream when it is over. A dropped
network keeps the full reconnect grace. Time is moved by hand (`lifecycle_clock`)."""

import pytest
from channels.db import database_sync_to_async
from channels.layers import channel_layers
from channels.testing import WebsocketCommunicator
from rest_framework.authtoken.models import Token

from quietcast.asgi import application
from streams import services, signals
from streams.events import EndReason
from streams.models import ActiveStream

GRACE = 8
LEAVE_GRACE = 3


@pytest.fixture(autouse=True)
def graces(settings):
    settings.STREAM_RECONNECT_GRACE_SECONDS = GRACE
    settings.STREAM_LEAVE_GRACE_SECONDS = LEAVE_GRACE


@pytest.fixture
def ended_reasons(monkeypatch) -> list[EndReason]:
    reasons: list[EndReason] = []
    monkeypatch.setattr(services.events, "stream_ended", lambda owner_id, reason: reasons.append(reason))
    return reasons


def live(user) -> bool:
    return ActiveStream.objects.filter(owner=user).exists()


def go_live_with_audio(user) -> None:
    stream = services.start_stream(user)
    signals.publisher_connected.send(sender=signals.MEDIA, session_id=str(stream.session_id))
    services.presence_connected(user, "my-page")


@pytest.mark.django_db
def test_a_closed_page_ends_the_stream_after_the_leave_grace(alice, lifecycle_clock, ended_reasons):
    go_live_with_audio(alice)
    services.presence_disconnected(alice, "my-page", page_left=True)
    lifecycle_clock.advance(LEAVE_GRACE - 0.1)
    assert services.end_overdue_streams() == [] and live(alice)
    lifecycle_clock.advance(0.2)
    assert len(services.end_overdue_streams()) == 1
    assert not live(alice) and ended_reasons == [EndReason.TAB_CLOSED]


@pytest.mark.django_db
def test_a_reloaded_page_is_back_within_the_leave_grace_and_keeps_the_stream(alice, lifecycle_clock):
    go_live_with_audio(alice)
    services.presence_disconnected(alice, "my-page", page_left=True)
    lifecycle_clock.advance(0.5)
    services.presence_connected(alice, "my-page-reloaded")
    lifecycle_clock.advance(GRACE * 2)
    assert services.end_overdue_streams() == [] and live(alice)


@pytest.mark.django_db
def test_a_dropped_network_keeps_the_full_grace_even_after_an_earlier_reload(alice, lifecycle_clock, ended_reasons):
    go_live_with_audio(alice)
    services.presence_disconnected(alice, "my-page", page_left=True)
    services.presence_connected(alice, "my-page-reloaded")
    services.presence_disconnected(alice, "my-page-reloaded")
    lifecycle_clock.advance(LEAVE_GRACE + 1)
    assert services.end_overdue_streams() == [] and live(alice)
    lifecycle_clock.advance(GRACE)
    assert len(services.end_overdue_streams()) == 1 and ended_reasons == [EndReason.CONNECTION_LOST]


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(("close_code", "page_left"), [(1001, True), (1006, False), (1000, False)])
async def test_the_presence_socket_reports_a_page_going_away_by_its_close_code(alice, settings, close_code, page_left):
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    channel_layers.backends = {}
    await database_sync_to_async(services.start_stream)(alice)
    token, _ = await database_sync_to_async(Token.objects.get_or_create)(user=alice)
    socket = WebsocketCommunicator(
        application, "/ws/presence/", headers=[(b"authorization", f"Token {token.key}".encode())]
    )
    assert (await socket.connect(timeout=3))[0]
    await socket.receive_json_from()
    await socket.disconnect(code=close_code)
    stream = await database_sync_to_async(ActiveStream.objects.get)(owner=alice)
    assert stream.presence_lost_at is not None and stream.presence_left_page is page_left
    channel_layers.backends = {}
