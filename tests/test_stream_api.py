import threading

import pytest
from django.db import connection

from streams import services
from streams.events import EndReason
from streams.models import ActiveStream, StreamRecording

pytestmark = [pytest.mark.django_db, pytest.mark.api]


def test_start_goes_live_with_denoise_on_by_default(api_client, alice):
    response = api_client(alice).post("/api/stream/start/", {}, format="json")
    assert response.status_code == 201
    body = response.json()
    assert body["status"] == "started" and body["denoise"] is True
    assert str(ActiveStream.objects.get(owner=alice).session_id) == body["session_id"]


def test_start_with_denoise_off(api_client, alice):
    response = api_client(alice).post("/api/stream/start/", {"denoise": False}, format="json")
    assert response.json()["denoise"] is False
    assert ActiveStream.objects.get(owner=alice).denoise_enabled is False


def test_starting_twice_is_a_409_naming_the_live_session(api_client, alice):
    client = api_client(alice)
    first = client.post("/api/stream/start/", {}, format="json").json()
    response = client.post("/api/stream/start/", {}, format="json")
    assert response.status_code == 409
    assert response.json()["session_id"] == first["session_id"]
    assert response.json()["error"]


@pytest.mark.parametrize("body", ['{"denoise": "maybe"}', '{"denoise": [1]}', "{oops", '"text"'])
def test_start_with_a_bad_body_is_a_400(api_client, alice, body):
    response = api_client(alice).post("/api/stream/start/", body, content_type="application/json")
    assert response.status_code == 400
    assert response.json()["error"]
    assert not ActiveStream.objects.exists()


def test_stop_ends_the_stream(api_client, alice):
    client = api_client(alice)
    client.post("/api/stream/start/", {}, format="json")
    response = client.post("/api/stream/stop/", {"duration": 12.5}, format="json")
    assert response.status_code == 200
    assert response.json() == {"status": "stopped", "recording_id": None}
    assert not ActiveStream.objects.exists()


def test_stop_when_not_live_is_a_409(api_client, alice):
    response = api_client(alice).post("/api/stream/stop/", {}, format="json")
    assert response.status_code == 409
    assert response.json() == {"error": "No active stream"}


def test_stop_with_a_bad_duration_is_a_400_and_keeps_the_stream(api_client, alice):
    client = api_client(alice)
    client.post("/api/stream/start/", {}, format="json")
    for bad in ({"duration": "long"}, {"duration": -1}):
        assert client.post("/api/stream/stop/", bad, format="json").status_code == 400
    assert ActiveStream.objects.filter(owner=alice).exists()


def test_stop_accepts_a_form_encoded_beacon_with_a_csrf_token(browser_client, alice):
    client = browser_client(alice)
    client.get("/")
    csrf_token = client.cookies["csrftoken"].value
    services.start_stream(alice)
    response = client.post("/api/stream/stop/", {"csrfmiddlewaretoken": csrf_token})
    assert response.status_code == 200
    assert not ActiveStream.objects.exists()


def test_a_beacon_without_csrf_token_is_refused(browser_client, alice):
    services.start_stream(alice)
    response = browser_client(alice).post("/api/stream/stop/", {})
    assert response.status_code == 403
    assert ActiveStream.objects.exists()


@pytest.mark.parametrize(("role", "expected"), [("owner", 200), ("friend", 200), ("pending", 403), ("stranger", 403)])
def test_stream_status_is_for_the_owner_and_friends(api_client, cast, role, expected):
    stream = services.start_stream(cast["owner"], denoise=False)
    response = api_client(cast[role]).get("/api/stream/status/alice/")
    assert response.status_code == expected
    if expected == 200:
        assert response.json() == {
            "username": "alice",
            "is_streaming": True,
            "session_id": str(stream.session_id),
            "started_at": stream.started_at.isoformat(),
            "denoise": False,
            "listeners": 0,
            "muted": False,
            "audio_started": False,
            # Who listens is the owner's to know; friends see how many.
            **({"listener_names": []} if role == "owner" else {}),
        }
    else:
        assert "error" in response.json()


def test_stream_status_when_not_live(api_client, cast):
    body = api_client(cast["friend"]).get("/api/stream/status/alice/").json()
    assert body["is_streaming"] is False and body["session_id"] is None and body["listeners"] == 0


def test_stream_status_of_an_unknown_user_is_a_404(api_client, alice):
    assert api_client(alice).get("/api/stream/status/nobody/").status_code == 404


@pytest.mark.parametrize(
    ("method", "url"),
    [
        ("post", "/api/stream/start/"),
        ("post", "/api/stream/stop/"),
        ("get", "/api/stream/status/alice/"),
        ("get", "/api/recordings/"),
        ("get", "/api/users/alice/recordings/"),
        ("get", "/api/ice-servers/"),
    ],
)
def test_anonymous_stream_calls_are_a_401(api_client, alice, method, url):
    response = getattr(api_client(), method)(url, {}, format="json")
    assert response.status_code == 401
    assert "error" in response.json()


def make_recording(owner, title: str, **fields) -> StreamRecording:
    return StreamRecording.objects.create(
        owner=owner, title=title, audio_path=f"{owner.pk}/{title}.wav", duration=fields.pop("duration", 3.0), **fields
    )


def test_my_recordings_newest_first(api_client, alice):
    make_recording(alice, "first")
    make_recording(alice, "second", denoise_enabled=False, description="late night")
    recordings = api_client(alice).get("/api/recordings/").json()["recordings"]
    assert [r["title"] for r in recordings] == ["second", "first"]
    newest = recordings[0]
    assert set(newest) == {
        "id", "title", "description", "duration", "created_at", "denoise_enabled", "denoised_seconds", "url", "peaks"
    }
    assert newest["denoise_enabled"] is False and newest["description"] == "late night"
    assert newest["url"] == f"/recordings/{newest['id']}/audio/"


@pytest.mark.parametrize(("role", "expected"), [("owner", 200), ("friend", 200), ("pending", 403), ("stranger", 403)])
def test_a_users_recordings_are_for_the_owner_and_friends(api_client, cast, role, expected):
    make_recording(cast["owner"], "morning show")
    response = api_client(cast[role]).get("/api/users/alice/recordings/")
    assert response.status_code == expected
    if expected == 200:
        assert [r["title"] for r in response.json()["recordings"]] == ["morning show"]


def test_recordings_of_an_unknown_user_is_a_404(api_client, alice):
    assert api_client(alice).get("/api/users/nobody/recordings/").status_code == 404


def test_ice_servers_are_handed_to_clients(api_client, alice, settings):
    settings.ICE_SERVERS = [{"urls": "turn:turn.example:3478", "username": "u", "credential": "c"}]
    assert api_client(alice).get("/api/ice-servers/").json() == {"ice_servers": settings.ICE_SERVERS}


@pytest.mark.django_db(transaction=True)
def test_concurrent_starts_leave_exactly_one_live_stream(api_client, alice):
    barrier = threading.Barrier(4)
    statuses: list[int] = []
    clients = [api_client(alice) for _ in range(4)]

    def start(client) -> None:
        barrier.wait()
        statuses.append(client.post("/api/stream/start/", {}, format="json").status_code)
        connection.close()  # each thread has its own; left open it would block dropping the test database

    threads = [threading.Thread(target=start, args=(client,)) for client in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses) == [201, 409, 409, 409]
    assert ActiveStream.objects.filter(owner=alice).count() == 1


@pytest.mark.django_db(transaction=True)
def test_concurrent_stops_never_fail(api_client, alice):
    """The Stop button and the unload beacon (or two tabs) at once: one stops the stream, the others are told it
    is not live; none gets a 500 ("database is locked" on SQLite)."""
    clients = [api_client(alice) for _ in range(4)]
    for _round in range(25):
        services.start_stream(alice)
        barrier = threading.Barrier(len(clients))
        statuses: list[int] = []

        def stop(client, barrier: threading.Barrier, statuses: list[int]) -> None:
            barrier.wait()
            statuses.append(client.post("/api/stream/stop/", {}, format="json").status_code)
            connection.close()

        threads = [threading.Thread(target=stop, args=(client, barrier, statuses)) for client in clients]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(statuses) == [200, 409, 409, 409]
        assert not ActiveStream.objects.exists()


OFFER = {"sdp": "v=0\r\n", "type": "offer"}


def test_a_publisher_offer_without_a_live_stream_is_a_409(api_client, alice):
    response = api_client(alice).post("/api/stream/offer/", OFFER, format="json")
    assert response.status_code == 409
    assert "Start a stream" in response.json()["error"]


@pytest.mark.parametrize(
    "body", [{}, {"sdp": "v=0"}, {"sdp": "v=0", "type": "answer"}, {"sdp": ["v=0"], "type": "offer"}]
)
def test_a_malformed_offer_is_a_400(api_client, alice, body):
    services.start_stream(alice)
    for url in ("/api/stream/offer/", "/api/stream/listener/alice/offer/"):
        response = api_client(alice).post(url, body, format="json")
        assert response.status_code == 400, url
        assert response.json()["error"]


@pytest.mark.parametrize(("role", "expected"), [("anonymous", 401), ("stranger", 403), ("pending", 403)])
def test_only_the_owner_and_friends_may_offer_to_listen(api_client, cast, role, expected):
    services.start_stream(cast["owner"])
    client = api_client(None if role == "anonymous" else cast[role])
    response = client.post("/api/stream/listener/alice/offer/", OFFER, format="json")
    assert response.status_code == expected
    assert "error" in response.json()


def test_listening_to_someone_who_is_not_live_is_a_404(api_client, cast):
    response = api_client(cast["friend"]).post("/api/stream/listener/alice/offer/", OFFER, format="json")
    assert response.status_code == 404
    assert response.json() == {"error": "alice is not live."}


def test_listening_to_an_unknown_user_is_a_404(api_client, alice):
    assert api_client(alice).post("/api/stream/listener/nobody/offer/", OFFER, format="json").status_code == 404


def test_anonymous_publisher_offer_is_a_401(api_client):
    assert api_client().post("/api/stream/offer/", OFFER, format="json").status_code == 401


def test_denoised_streams_beyond_capacity_are_refused_but_plain_ones_go_live(api_client, cast, settings):
    settings.MAX_DENOISED_STREAMS = 1
    assert api_client(cast["owner"]).post("/api/stream/start/", {"denoise": True}, format="json").status_code == 201
    refused = api_client(cast["friend"]).post("/api/stream/start/", {"denoise": True}, format="json")
    assert refused.status_code == 503
    assert "without denoise" in refused.json()["error"]
    assert not ActiveStream.objects.filter(owner=cast["friend"]).exists()
    plain = api_client(cast["friend"]).post("/api/stream/start/", {"denoise": False}, format="json")
    assert plain.status_code == 201
    again = api_client(cast["owner"]).post("/api/stream/start/", {"denoise": True}, format="json")
    assert again.status_code == 409  # already live says more than "at capacity"


def test_denoised_starts_are_refused_when_the_denoise_workers_have_no_headroom(api_client, cast, monkeypatch):
    from streams import media

    monkeypatch.setattr(media, "denoise_headroom", lambda: 0)
    # A server with no denoised stream takes one whatever its measured load...
    first = api_client(cast["friend"]).post("/api/stream/start/", {"denoise": True}, format="json")
    assert first.status_code == 201
    # ...and refuses the next while its workers have no room.
    refused = api_client(cast["owner"]).post("/api/stream/start/", {"denoise": True}, format="json")
    assert refused.status_code == 503 and "without denoise" in refused.json()["error"]
    monkeypatch.setattr(media, "denoise_headroom", lambda: 1)
    assert api_client(cast["owner"]).post("/api/stream/start/", {"denoise": True}, format="json").status_code == 201


def test_a_recording_is_titled_by_when_the_stream_started(alice, monkeypatch):
    from datetime import UTC, datetime

    from streams import media

    monkeypatch.setattr(
        media, "finish", lambda *_, **__: media.FinishedRecording(relative_path="1/x.wav", duration=600.0)
    )
    stream = services.start_stream(alice)
    ActiveStream.objects.filter(pk=stream.pk).update(started_at=datetime(2026, 3, 1, 20, 15, tzinfo=UTC))
    ended = services.end_stream(alice, reason=EndReason.STOPPED)
    assert ended.recording.title == "Sunday evening live"  # 20:15 by TIME_ZONE (UTC): no zone came with the start


def test_a_listener_beyond_the_per_person_connection_limit_gets_a_429(api_client, cast, monkeypatch):
    from streams import media

    def third_connection(*args, **kwargs):
        raise media.TooManyConnections(2)

    monkeypatch.setattr(media, "listen", third_connection)
    services.start_stream(cast["owner"])
    response = api_client(cast["friend"]).post("/api/stream/listener/alice/offer/", OFFER, format="json")
    assert response.status_code == 429
    assert "2 connection(s)" in response.json()["error"]


def test_the_unload_beacon_names_its_reason_and_other_reasons_are_refused(api_client, alice):
    client = api_client(alice)
    services.start_stream(alice)
    assert client.post("/api/stream/stop/", {"reason": "logged_out"}, format="json").status_code == 400
    assert ActiveStream.objects.filter(owner=alice).exists()
    assert client.post("/api/stream/stop/", {"reason": "tab_closed"}, format="json").status_code == 200
    assert not ActiveStream.objects.exists()
