"""Recording audio (access, HTTP Range, downloads, path safety) and the owner's rename/delete API."""

import pytest
from asgiref.sync import sync_to_async
from django.db import connections
from django.test import AsyncClient

from streams.models import StreamRecording
from streams.recordings_views import UnsatisfiableRange, requested_byte_range

pytestmark = [pytest.mark.django_db, pytest.mark.api]

AUDIO = bytes(range(256)) * 40  # 10240 bytes, every offset distinguishable
SIZE = len(AUDIO)


@pytest.fixture
def recordings_dir(settings, tmp_path):
    settings.RECORDINGS_DIR = tmp_path / "recordings"
    settings.RECORDINGS_DIR.mkdir()
    return settings.RECORDINGS_DIR


@pytest.fixture
def recording(recordings_dir, cast) -> StreamRecording:
    (recordings_dir / "alice").mkdir()
    (recordings_dir / "alice" / "morning.wav").write_bytes(AUDIO)
    return StreamRecording.objects.create(
        owner=cast["owner"], title="Morning walk", audio_path="alice/morning.wav", duration=12.5
    )


def audio_url(recording: StreamRecording) -> str:
    return f"/recordings/{recording.pk}/audio/"


def body(response) -> bytes:
    return b"".join(response.streaming_content)


# --- who may play ----------------------------------------------------------------------------------------


def test_anonymous_listeners_are_sent_to_the_login_page(client, recording):
    response = client.get(audio_url(recording))
    assert response.status_code == 302
    assert response["Location"].startswith("/login/?next=")


@pytest.mark.parametrize("role", ["stranger", "pending"])
def test_people_who_are_not_friends_are_told_it_does_not_exist(browser_client, cast, recording, role):
    assert browser_client(cast[role]).get(audio_url(recording)).status_code == 404


def test_an_unknown_recording_is_404(browser_client, cast, recording):
    assert browser_client(cast["owner"]).get(f"/recordings/{recording.pk + 1}/audio/").status_code == 404


@pytest.mark.parametrize("role", ["owner", "friend"])
def test_the_owner_and_friends_get_the_whole_file(browser_client, cast, recording, role):
    response = browser_client(cast[role]).get(audio_url(recording))
    assert response.status_code == 200
    assert body(response) == AUDIO
    assert response["Content-Type"] == "audio/wav"
    assert response["Content-Length"] == str(SIZE)
    assert response["Accept-Ranges"] == "bytes"
    assert response["Content-Disposition"].startswith("inline;")
    assert "private" in response["Cache-Control"]


def test_download_is_an_attachment_named_after_the_recording(browser_client, cast, recording):
    response = browser_client(cast["friend"]).get(audio_url(recording) + "?download=1")
    assert response.status_code == 200
    disposition = response["Content-Disposition"]
    assert disposition.startswith("attachment;")
    assert "alice-" in disposition and "morning-walk.wav" in disposition


def test_only_get_is_allowed(browser_client, cast, recording):
    client = browser_client(cast["owner"])
    client.get("/")
    response = client.post(audio_url(recording), {"csrfmiddlewaretoken": client.cookies["csrftoken"].value})
    assert response.status_code == 405


# --- HTTP Range ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("range_header", "first", "last"),
    [
        ("bytes=0-9", 0, 9),
        ("bytes=1000-", 1000, SIZE - 1),
        ("bytes=-100", SIZE - 100, SIZE - 1),
        ("bytes=5000-999999", 5000, SIZE - 1),
        ("bytes=-999999", 0, SIZE - 1),
        ("bytes=-" + "9" * 5000, 0, SIZE - 1),
        ("bytes=10-" + "9" * 5000, 10, SIZE - 1),
        (f"bytes={SIZE - 1}-{SIZE - 1}", SIZE - 1, SIZE - 1),
    ],
)
def test_a_range_answers_206_with_exactly_those_bytes(browser_client, cast, recording, range_header, first, last):
    response = browser_client(cast["friend"]).get(audio_url(recording), HTTP_RANGE=range_header)
    assert response.status_code == 206
    assert response["Content-Range"] == f"bytes {first}-{last}/{SIZE}"
    assert response["Content-Length"] == str(last - first + 1)
    assert response["Accept-Ranges"] == "bytes"
    assert body(response) == AUDIO[first : last + 1]


@pytest.mark.parametrize(
    "range_header", [f"bytes={SIZE}-", f"bytes={SIZE + 10}-{SIZE + 20}", "bytes=-0", "bytes=" + "9" * 5000 + "-"]
)
def test_a_range_past_the_end_is_416(browser_client, cast, recording, range_header):
    response = browser_client(cast["owner"]).get(audio_url(recording), HTTP_RANGE=range_header)
    assert response.status_code == 416
    assert response["Content-Range"] == f"bytes */{SIZE}"


@pytest.mark.parametrize("range_header", ["bytes=0-1,5-6", "items=0-5", "bytes=abc", "bytes=9-2", "bytes=-"])
def test_ranges_it_does_not_serve_get_the_whole_file(browser_client, cast, recording, range_header):
    response = browser_client(cast["owner"]).get(audio_url(recording), HTTP_RANGE=range_header)
    assert response.status_code == 200
    assert body(response) == AUDIO


def test_a_range_is_refused_to_strangers_before_anything_else(browser_client, cast, recording):
    response = browser_client(cast["stranger"]).get(audio_url(recording), HTTP_RANGE="bytes=0-9")
    assert response.status_code == 404


def test_requested_byte_range_on_an_empty_file():
    assert requested_byte_range("", 0) is None
    with pytest.raises(UnsatisfiableRange):
        requested_byte_range("bytes=0-", 0)


@pytest.mark.django_db(transaction=True)
async def test_served_over_asgi_the_audio_streams_and_seeks(recording, cast):
    client = AsyncClient()
    await client.aforce_login(cast["friend"])
    response = await client.get(audio_url(recording), headers={"Range": "bytes=100-199"})
    assert response.status_code == 206
    chunks = [chunk async for chunk in response.streaming_content]
    assert b"".join(chunks) == AUDIO[100:200]
    # The view ran in asgiref's worker thread, whose connection would outlive the test and block dropping the
    # test database on PostgreSQL.
    await sync_to_async(connections.close_all)()


# --- path safety -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("stored_path", ["../outside.wav", "alice/../../outside.wav", "/etc/passwd", "", "."])
def test_a_stored_path_outside_the_recordings_directory_is_never_served(
    browser_client, cast, recordings_dir, stored_path
):
    (recordings_dir.parent / "outside.wav").write_bytes(b"secret")
    recording = StreamRecording.objects.create(owner=cast["owner"], title="x", audio_path=stored_path, duration=1)
    assert browser_client(cast["owner"]).get(audio_url(recording)).status_code == 404


def test_a_recording_whose_file_is_gone_is_404(browser_client, cast, recording, recordings_dir):
    (recordings_dir / recording.audio_path).unlink()
    assert browser_client(cast["owner"]).get(audio_url(recording)).status_code == 404


# --- rename and delete: the owner only ---------------------------------------------------------------------


def detail_url(recording: StreamRecording) -> str:
    return f"/api/recordings/{recording.pk}/"


@pytest.mark.parametrize("method", ["patch", "delete"])
def test_anonymous_edits_get_a_json_401(api_client, recording, method):
    response = getattr(api_client(), method)(detail_url(recording), {"title": "x"}, format="json")
    assert response.status_code == 401
    assert "error" in response.json()


@pytest.mark.parametrize(("role", "expected"), [("stranger", 404), ("pending", 404), ("friend", 403)])
@pytest.mark.parametrize("method", ["patch", "delete"])
def test_only_the_owner_may_edit(api_client, cast, recording, recordings_dir, role, expected, method):
    response = getattr(api_client(cast[role]), method)(detail_url(recording), {"title": "Mine now"}, format="json")
    assert response.status_code == expected
    assert set(response.json()) == {"error"}
    recording.refresh_from_db()
    assert recording.title == "Morning walk"
    assert (recordings_dir / recording.audio_path).exists()


def test_the_owner_renames_a_recording(api_client, cast, recording):
    response = api_client(cast["owner"]).patch(
        detail_url(recording), {"title": "  Evening walk ", "description": "By the river."}, format="json"
    )
    assert response.status_code == 200
    assert response.json()["title"] == "Evening walk"
    assert response.json()["description"] == "By the river."
    assert response.json()["url"] == audio_url(recording)
    recording.refresh_from_db()
    assert (recording.title, recording.description) == ("Evening walk", "By the river.")


def test_renaming_only_the_description_keeps_the_title(api_client, cast, recording):
    response = api_client(cast["owner"]).patch(detail_url(recording), {"description": "Birds."}, format="json")
    assert response.status_code == 200
    assert (response.json()["title"], response.json()["description"]) == ("Morning walk", "Birds.")


def test_a_browser_session_needs_the_csrf_header(browser_client, cast, recording):
    client = browser_client(cast["owner"])
    client.get("/")
    url, data = detail_url(recording), {"title": "From the page"}
    assert client.patch(url, data, content_type="application/json").status_code == 403
    response = client.patch(
        url, data, content_type="application/json", headers={"X-CSRFToken": client.cookies["csrftoken"].value}
    )
    assert response.status_code == 200


@pytest.mark.parametrize(
    ("details", "message"),
    [
        ({"title": "   "}, "A recording needs a title."),
        ({"title": "x" * 201}, "A title can be at most 200 characters long."),
        ({"description": "x" * 5001}, "A description can be at most 5000 characters long."),
        ({"title": ["not", "text"]}, "title: Not a valid string."),
    ],
)
def test_invalid_details_are_refused_with_a_sentence(api_client, cast, recording, details, message):
    response = api_client(cast["owner"]).patch(detail_url(recording), details, format="json")
    assert response.status_code == 400
    assert response.json() == {"error": message}
    recording.refresh_from_db()
    assert recording.title == "Morning walk"


def test_the_longest_allowed_title_and_description_are_accepted(api_client, cast, recording):
    details = {"title": "t" * 200, "description": "d" * 5000}
    assert api_client(cast["owner"]).patch(detail_url(recording), details, format="json").status_code == 200


def test_the_owner_deletes_a_recording_and_its_file(
    api_client, cast, recording, recordings_dir, django_capture_on_commit_callbacks
):
    client = api_client(cast["owner"])
    with django_capture_on_commit_callbacks(execute=True):
        assert client.delete(detail_url(recording)).status_code == 204
    assert not StreamRecording.objects.filter(pk=recording.pk).exists()
    assert not (recordings_dir / "alice" / "morning.wav").exists()
    assert client.delete(detail_url(recording)).status_code == 404


def test_deleting_never_touches_a_file_outside_the_recordings_directory(api_client, cast, recordings_dir):
    outside = recordings_dir.parent / "outside.wav"
    outside.write_bytes(b"keep me")
    recording = StreamRecording.objects.create(owner=cast["owner"], title="x", audio_path="../outside.wav", duration=1)
    assert api_client(cast["owner"]).delete(detail_url(recording)).status_code == 204
    assert outside.read_bytes() == b"keep me"
