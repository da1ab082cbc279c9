"""Controls while live: mute and unmute (`POST /api/stream/mute/`), who is listening (names for the owner only),
and the first audio turning the broadcaster's page from "Connecting…" to live."""

import pytest
from channels.db import database_sync_to_async

from streams import media, services, signals
from streams.events import AUDIO_STARTED, LISTENERS_CHANGED, MUTE_CHANGED, EndReason, stream_group
from streams.models import ActiveStream
from tests import test_denoise_switch_api as denoise_tests
from tests.test_denoise_switch_api import RecordingLayer
from tests.test_presence import channel_layer, connect  # noqa: F401 (a fixture, over both layers)

URL = "/api/stream/mute/"
layer = denoise_tests.layer  # the channel layer, keeping what was sent


@pytest.fixture
def mutes(monkeypatch) -> list[tuple[str, bool]]:
    """What the media adapter was asked to mute or unmute."""
    asked: list[tuple[str, bool]] = []
    monkeypatch.setattr(media, "set_muted", lambda session_id, muted, **_: asked.append((str(session_id), muted)))
    return asked


def sent(layer: RecordingLayer, event_type: str) -> list[tuple[str, dict]]:
    return [(group, message) for group, message in layer.sent if message["type"] == event_type]


# --- mute --------------------------------------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.api
def test_the_live_owner_mutes_and_unmutes_and_every_watcher_is_told(
    api_client, alice, layer, mutes, django_capture_on_commit_callbacks
):
    stream = services.start_stream(alice, denoise=False)
    client = api_client(alice)
    for muted in (True, False):
        with django_capture_on_commit_callbacks(execute=True):
            response = client.post(URL, {"muted": muted}, format="json")
        assert response.status_code == 200
        assert response.json() == {"session_id": str(stream.session_id), "muted": muted}
        assert ActiveStream.objects.get(owner=alice).muted is muted
        assert client.get("/api/stream/status/alice/").json()["muted"] is muted
    assert mutes == [(str(stream.session_id), True), (str(stream.session_id), False)]
    assert [(group, message["muted"]) for group, message in sent(layer, MUTE_CHANGED)] == [
        (stream_group(alice.pk), True),
        (stream_group(alice.pk), False),
    ]
    assert ActiveStream.objects.filter(owner=alice).exists()  # muting never ends the stream


@pytest.mark.django_db
@pytest.mark.api
def test_muting_what_is_already_muted_changes_nothing(api_client, alice, layer, mutes):
    services.start_stream(alice, denoise=False)
    assert api_client(alice).post(URL, {"muted": False}, format="json").json()["muted"] is False
    assert mutes == [] and sent(layer, MUTE_CHANGED) == []


@pytest.mark.django_db
@pytest.mark.api
def test_muting_when_not_live_is_a_409(api_client, alice, mutes):
    response = api_client(alice).post(URL, {"muted": True}, format="json")
    assert response.status_code == 409 and "not live" in response.json()["error"]
    assert mutes == []


@pytest.mark.django_db
@pytest.mark.api
@pytest.mark.parametrize("body", [{}, {"muted": None}, {"muted": "perhaps"}, {"muted": [True]}, {"mute": True}])
def test_a_bad_mute_body_is_a_400_and_changes_nothing(api_client, alice, mutes, body):
    services.start_stream(alice, denoise=False)
    response = api_client(alice).post(URL, body, format="json")
    assert response.status_code == 400 and "error" in response.json()
    assert ActiveStream.objects.get(owner=alice).muted is False and mutes == []


@pytest.mark.django_db
@pytest.mark.api
def test_a_friend_cannot_mute_someone_elses_stream(api_client, cast, mutes):
    services.start_stream(cast["owner"], denoise=False)
    assert api_client(cast["friend"]).post(URL, {"muted": True}, format="json").status_code == 409
    assert ActiveStream.objects.get(owner=cast["owner"]).muted is False and mutes == []


@pytest.mark.django_db
def test_a_new_stream_starts_unmuted_and_its_first_offer_carries_the_mute(alice, monkeypatch, mutes):
    published: list[bool] = []
    monkeypatch.setattr(media, "publish", lambda *args, muted, **kwargs: published.append(muted) or "answer")
    services.start_stream(alice, denoise=False)
    services.set_muted(alice, True)  # before the microphone's offer: nothing in the engine yet
    services.publish_offer(alice, "offer")
    assert published == [True]
    services.end_stream(alice, reason=EndReason.STOPPED)
    assert services.start_stream(alice, denoise=False).muted is False


# --- who is listening ------------------------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.api
def test_the_owner_sees_who_listens_and_friends_only_how_many(api_client, cast, make_user):
    erin = make_user("erin")
    stream = services.start_stream(cast["owner"], denoise=False)
    # What the media adapter reports: three connections, of two people.
    signals.listener_count_changed.send(
        sender=signals.MEDIA, session_id=str(stream.session_id), count=3, listener_ids=[erin.pk, cast["friend"].pk]
    )
    owner_view = api_client(cast["owner"]).get("/api/stream/status/alice/").json()
    assert owner_view["listeners"] == 3 and owner_view["listener_names"] == ["bob", "erin"]
    friend_view = api_client(cast["friend"]).get("/api/stream/status/alice/").json()
    assert friend_view["listeners"] == 3 and "listener_names" not in friend_view


@pytest.mark.django_db
def test_listener_changes_carry_the_names_and_a_second_connection_of_one_person_names_them_once(
    alice, bob, layer, django_capture_on_commit_callbacks
):
    stream = services.start_stream(alice, denoise=False)
    with django_capture_on_commit_callbacks(execute=True):
        services.set_listener_count(stream.session_id, 1, [bob.pk])
        services.set_listener_count(stream.session_id, 2, [bob.pk])
        services.set_listener_count(stream.session_id, 0, [])
    assert [(m["event"], m["count"], m["names"]) for _, m in sent(layer, LISTENERS_CHANGED)] == [
        ("listener_joined", 1, ["bob"]),
        ("listener_joined", 2, ["bob"]),
        ("listener_left", 0, []),
    ]


@pytest.mark.django_db(transaction=True)
async def test_only_the_owners_stream_socket_gets_the_listeners_names(channel_layer, cast):  # noqa: F811
    stream = await database_sync_to_async(services.start_stream)(cast["owner"], denoise=False)
    owner, _, _ = await connect("/ws/stream/alice/", cast["owner"])
    friend, _, _ = await connect("/ws/stream/alice/", cast["friend"])
    owner_status = await owner.receive_json_from()
    friend_status = await friend.receive_json_from()
    assert owner_status["listener_names"] == [] and "listener_names" not in friend_status
    await database_sync_to_async(services.set_listener_count)(stream.session_id, 1, [cast["friend"].pk])
    assert await owner.receive_json_from() == {"type": "listener_joined", "count": 1, "names": ["bob"]}
    assert await friend.receive_json_from() == {"type": "listener_joined", "count": 1}
    await database_sync_to_async(services.set_listener_count)(stream.session_id, 0, [])
    assert await owner.receive_json_from() == {"type": "listener_left", "count": 0, "names": []}
    assert await friend.receive_json_from() == {"type": "listener_left", "count": 0}
    # A page opened now hears the state as it is.
    later, _, _ = await connect("/ws/stream/alice/", cast["owner"])
    assert (await later.receive_json_from())["listener_names"] == []
    for socket in (owner, friend, later):
        await socket.disconnect()


@pytest.mark.django_db(transaction=True)
async def test_friends_pages_hear_the_mute_and_a_page_opened_while_muted_shows_it(channel_layer, cast):  # noqa: F811
    await database_sync_to_async(services.start_stream)(cast["owner"], denoise=False)
    friend, _, _ = await connect("/ws/stream/alice/", cast["friend"])
    assert (await friend.receive_json_from())["muted"] is False
    await database_sync_to_async(services.set_muted)(cast["owner"], True)
    assert await friend.receive_json_from() == {"type": "mute_changed", "muted": True}
    later, _, _ = await connect("/ws/stream/alice/", cast["friend"])
    assert (await later.receive_json_from())["muted"] is True
    await database_sync_to_async(services.set_muted)(cast["owner"], False)
    assert await friend.receive_json_from() == {"type": "mute_changed", "muted": False}
    for socket in (friend, later):
        await socket.disconnect()


# --- "Connecting…" until audio flows -----------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_first_audio_is_announced_to_the_owner_once(alice, layer, django_capture_on_commit_callbacks):
    stream = services.start_stream(alice, denoise=False)
    assert services.stream_status(alice)["audio_started"] is False
    with django_capture_on_commit_callbacks(execute=True):
        for _ in range(2):  # a reconnected microphone's audio is not a new start
            signals.publisher_connected.send(sender=signals.MEDIA, session_id=str(stream.session_id))
    assert sent(layer, AUDIO_STARTED) == [
        (stream_group(alice.pk), {"type": AUDIO_STARTED, "session_id": str(stream.session_id)})
    ]
    assert services.stream_status(alice)["audio_started"] is True


@pytest.mark.django_db(transaction=True)
async def test_only_the_owners_pages_hear_that_audio_started(channel_layer, cast):  # noqa: F811
    stream = await database_sync_to_async(services.start_stream)(cast["owner"], denoise=False)
    owner, _, _ = await connect("/ws/stream/alice/", cast["owner"])
    friend, _, _ = await connect("/ws/stream/alice/", cast["friend"])
    assert (await owner.receive_json_from())["audio_started"] is False
    await friend.receive_json_from()
    await database_sync_to_async(services.on_publisher_connected)(str(stream.session_id))
    assert await owner.receive_json_from() == {"type": "audio_started", "session_id": str(stream.session_id)}
    assert await friend.receive_nothing(timeout=0.3)
    for socket in (owner, friend):
        await socket.disconnect()
