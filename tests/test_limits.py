"""Nothing a person controls grows without bound: stream length, recording storage, open sockets; and nothing of
a deleted account stays on disk."""

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from knox.models import AuthToken

from quietcast.asgi import application
from streams import media, services
from streams.models import ActiveStream, StreamRecording

pytestmark = pytest.mark.django_db


@pytest.fixture
def recordings_dir(settings, tmp_path):
    settings.RECORDINGS_DIR = tmp_path / "recordings"
    settings.RECORDINGS_DIR.mkdir()
    return settings.RECORDINGS_DIR


@pytest.mark.api
def test_going_live_is_refused_with_a_403_once_the_storage_quota_is_used(settings, api_client, alice):
    settings.RECORDINGS_QUOTA_MB = 100
    minutes_per_quota = 100e6 / media.RECORDING_BYTES_PER_SECOND / 60  # ~17 minutes
    StreamRecording.objects.create(owner=alice, title="long", audio_path="x.wav", duration=minutes_per_quota * 60)
    response = api_client(alice).post("/api/stream/start/", {"denoise": False}, format="json")
    assert response.status_code == 403
    assert (
        response.json()["error"]
        == "Your recordings use 100 MB of your 100 MB. Delete some recordings to go live again."
    )
    assert not ActiveStream.objects.exists()


@pytest.mark.api
def test_going_live_is_allowed_under_the_quota(settings, api_client, alice):
    settings.RECORDINGS_QUOTA_MB = 100
    StreamRecording.objects.create(owner=alice, title="short", audio_path="x.wav", duration=60)
    assert api_client(alice).post("/api/stream/start/", {"denoise": False}, format="json").status_code == 201


def test_deleting_an_account_deletes_its_recording_files(
    recordings_dir, alice, bob, django_capture_on_commit_callbacks
):
    (recordings_dir / "1").mkdir()
    mine, theirs = recordings_dir / "1" / "a.wav", recordings_dir / "1" / "b.wav"
    mine.write_bytes(b"RIFF")
    theirs.write_bytes(b"RIFF")
    StreamRecording.objects.create(owner=alice, title="a", audio_path="1/a.wav", duration=1)
    StreamRecording.objects.create(owner=bob, title="b", audio_path="1/b.wav", duration=1)
    with django_capture_on_commit_callbacks(execute=True):
        alice.delete()
    assert not mine.exists()
    assert theirs.exists()


def test_a_deleted_recording_keeps_its_file_until_the_deletion_commits(
    recordings_dir, alice, django_capture_on_commit_callbacks
):
    (recordings_dir / "a.wav").write_bytes(b"RIFF")
    recording = StreamRecording.objects.create(owner=alice, title="a", audio_path="a.wav", duration=1)
    with django_capture_on_commit_callbacks(execute=False) as pending:
        recording.delete()
        assert (recordings_dir / "a.wav").exists()
    for callback in pending:
        callback()
    assert not (recordings_dir / "a.wav").exists()


def test_deleting_an_account_while_live_ends_its_stream_first(alice, bob):
    services.start_stream(alice, denoise=False)
    alice.delete()
    assert not ActiveStream.objects.exists()


def test_recovery_removes_partial_recordings_of_deleted_accounts(recordings_dir, alice):
    (recordings_dir / "999").mkdir()
    orphan = recordings_dir / "999" / "4f2b1a7e-1111-4c3d-8e9f-0123456789ab.partial.wav"
    orphan.write_bytes(b"RIFF" + bytes(1000))
    services.recover_after_restart()
    assert not orphan.exists()


@pytest.mark.django_db(transaction=True)
async def test_presence_sockets_per_person_are_capped(settings, alice):
    settings.MAX_PRESENCE_SOCKETS_PER_USER = 2
    _, key = await database_sync_to_async(AuthToken.objects.create)(user=alice)
    headers = [(b"authorization", f"Token {key}".encode())]
    sockets = [WebsocketCommunicator(application, "/ws/presence/", headers=headers) for _ in range(3)]
    results = [await socket.connect(timeout=3) for socket in sockets]
    assert [connected for connected, _ in results] == [True, True, False]
    assert results[2][1] == 4429
    await sockets[0].disconnect()
    again = WebsocketCommunicator(application, "/ws/presence/", headers=headers)
    assert (await again.connect(timeout=3))[0]
    for socket in (sockets[1], again):
        await socket.disconnect()


@pytest.mark.django_db(transaction=True)
async def test_stream_sockets_per_person_are_capped(settings, alice, bob):
    settings.MAX_STREAM_SOCKETS_PER_USER = 2
    _, key = await database_sync_to_async(AuthToken.objects.create)(user=bob)
    headers = [(b"authorization", f"Token {key}".encode())]
    sockets = [WebsocketCommunicator(application, "/ws/stream/alice/", headers=headers) for _ in range(3)]
    results = [await socket.connect(timeout=3) for socket in sockets]
    assert [connected for connected, _ in results] == [True, True, False]
    assert results[2][1] == 4429
    await sockets[0].disconnect()
    again = WebsocketCommunicator(application, "/ws/stream/alice/", headers=headers)
    assert (await again.connect(timeout=3))[0]
    for socket in (sockets[1], again):
        await socket.disconnect()
