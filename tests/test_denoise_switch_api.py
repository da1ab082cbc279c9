"""Denoise on/off while live: `POST /api/stream/denoise/` for the live owner, and what the recording says."""

import pytest

from streams import media, services
from streams.events import DENOISE_SWITCHED, EndReason, stream_group
from streams.models import ActiveStream

pytestmark = [pytest.mark.django_db, pytest.mark.api]

URL = "/api/stream/denoise/"


class RecordingLayer:
    """A channel layer that keeps what was sent."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, dict]] = []

    async def group_send(self, group: str, message: dict) -> None:
        self.sent.append((group, message))


@pytest.fixture
def layer(monkeypatch) -> RecordingLayer:
    recording_layer = RecordingLayer()
    monkeypatch.setattr(services.events, "get_channel_layer", lambda: recording_layer)
    return recording_layer


@pytest.fixture
def switches(monkeypatch) -> list[tuple[str, bool]]:
    """What the media adapter was asked to switch."""
    asked: list[tuple[str, bool]] = []
    monkeypatch.setattr(media, "set_denoise", lambda session_id, on, **_: asked.append((str(session_id), on)))
    return asked


def switched_events(layer: RecordingLayer) -> list[tuple[str, bool]]:
    return [(group, message["denoise"]) for group, message in layer.sent if message["type"] == DENOISE_SWITCHED]


@pytest.mark.parametrize("start_with, switch_to", [(True, False), (False, True)])
def test_the_live_owner_switches_denoising_and_their_pages_are_told(
    api_client, alice, layer, switches, django_capture_on_commit_callbacks, start_with, switch_to
):
    stream = services.start_stream(alice, denoise=start_with)
    with django_capture_on_commit_callbacks(execute=True):
        response = api_client(alice).post(URL, {"denoise": switch_to}, format="json")
    assert response.status_code == 200
    assert response.json() == {"session_id": str(stream.session_id), "denoise": switch_to}
    assert ActiveStream.objects.get(owner=alice).denoise_enabled is switch_to
    assert switches == [(str(stream.session_id), switch_to)]
    assert switched_events(layer) == [(stream_group(alice.pk), switch_to)]


def test_asking_for_what_is_already_so_changes_nothing(
    api_client, alice, layer, switches, django_capture_on_commit_callbacks
):
    services.start_stream(alice, denoise=True)
    with django_capture_on_commit_callbacks(execute=True):
        response = api_client(alice).post(URL, {"denoise": True}, format="json")
    assert response.status_code == 200 and response.json()["denoise"] is True
    assert switches == [] and switched_events(layer) == []


def test_switching_when_not_live_is_a_409(api_client, alice, switches):
    response = api_client(alice).post(URL, {"denoise": True}, format="json")
    assert response.status_code == 409 and "not live" in response.json()["error"]
    assert switches == []


@pytest.mark.parametrize("body", [{}, {"denoise": None}, {"denoise": "perhaps"}, {"denoise": [True]}])
def test_a_bad_body_is_a_400_and_changes_nothing(api_client, alice, switches, body):
    services.start_stream(alice, denoise=False)
    response = api_client(alice).post(URL, body, format="json")
    assert response.status_code == 400 and "error" in response.json()
    assert ActiveStream.objects.get(owner=alice).denoise_enabled is False and switches == []


def test_anonymous_is_a_401(api_client):
    assert api_client().post(URL, {"denoise": True}, format="json").status_code == 401


def test_switching_on_beyond_the_denoised_stream_limit_is_a_503_and_the_stream_goes_on(
    api_client, cast, settings, switches
):
    settings.MAX_DENOISED_STREAMS = 1
    services.start_stream(cast["friend"], denoise=True)
    services.start_stream(cast["owner"], denoise=False)
    refused = api_client(cast["owner"]).post(URL, {"denoise": True}, format="json")
    assert refused.status_code == 503 and "at capacity" in refused.json()["error"]
    assert ActiveStream.objects.get(owner=cast["owner"]).denoise_enabled is False and switches == []
    # Switching off is never refused, and the stream's own denoising does not count against it.
    assert api_client(cast["friend"]).post(URL, {"denoise": False}, format="json").status_code == 200
    assert api_client(cast["owner"]).post(URL, {"denoise": True}, format="json").status_code == 200


def test_switching_on_is_refused_when_the_denoise_workers_have_no_headroom(api_client, cast, monkeypatch, switches):
    monkeypatch.setattr(media, "denoise_headroom", lambda: 0)
    services.start_stream(cast["owner"], denoise=False)
    # Alone, a stream is always taken (as a start would be)...
    assert api_client(cast["owner"]).post(URL, {"denoise": True}, format="json").status_code == 200
    # ...beside another denoised stream, only with room.
    services.start_stream(cast["friend"], denoise=False)
    refused = api_client(cast["friend"]).post(URL, {"denoise": True}, format="json")
    assert refused.status_code == 503
    monkeypatch.setattr(media, "denoise_headroom", lambda: 1)
    assert api_client(cast["friend"]).post(URL, {"denoise": True}, format="json").status_code == 200


def test_a_stream_the_server_cannot_denoise_is_a_503_and_unchanged(api_client, alice, monkeypatch):
    def unavailable(session_id, on, **_):
        raise media.DenoiseUnavailable()

    monkeypatch.setattr(media, "set_denoise", unavailable)
    services.start_stream(alice, denoise=False)
    response = api_client(alice).post(URL, {"denoise": True}, format="json")
    assert response.status_code == 503 and "unavailable" in response.json()["error"]
    assert ActiveStream.objects.get(owner=alice).denoise_enabled is False


def recordings_finish_with(monkeypatch, *, denoised: float | None) -> None:
    """A minute of recording, of which the media engine says `denoised` seconds were denoised (None: unknown)."""
    finished = media.FinishedRecording(relative_path="1/x.wav", duration=60.0, denoised=denoised)
    monkeypatch.setattr(media, "finish", lambda session_id, owner_id, **_: finished)


def test_the_recording_says_how_much_was_denoised(api_client, alice, monkeypatch):
    recordings_finish_with(monkeypatch, denoised=42.5)
    services.start_stream(alice, denoise=False)
    services.end_stream(alice, reason=EndReason.STOPPED)
    (recording,) = api_client(alice).get("/api/recordings/").json()["recordings"]
    assert recording["denoised_seconds"] == 42.5 and recording["duration"] == 60.0
    assert recording["denoise_enabled"] is True  # some of it was, though the stream started without


def test_a_recording_of_which_nothing_was_denoised_is_not_called_denoised(api_client, alice, monkeypatch):
    recordings_finish_with(monkeypatch, denoised=0.0)
    services.start_stream(alice, denoise=True)
    services.end_stream(alice, reason=EndReason.STOPPED)
    (recording,) = api_client(alice).get("/api/recordings/").json()["recordings"]
    assert recording["denoised_seconds"] == 0.0 and recording["denoise_enabled"] is False


def test_a_recording_repaired_after_a_crash_does_not_claim_a_denoised_share(api_client, alice, monkeypatch):
    recordings_finish_with(monkeypatch, denoised=None)
    services.start_stream(alice)
    services.end_stream(alice, reason=EndReason.STOPPED)
    (recording,) = api_client(alice).get("/api/recordings/").json()["recordings"]
    assert recording["denoised_seconds"] is None
